//! The wire protocol of gateway subdevice OTA on Tencent Cloud IoT Hub, as spoken by the official
//! C and Python SDKs: topics, messages, result codes, MQTT key-auth credentials, the gateway bind
//! signature and the SDKs' `device_info.json`.
//!
//! This crate does no I/O. The fake hub, the fake COS and the gateway all agree through it and
//! never through each other. Parsers accept what both SDKs send (whitespace, numbers as JSON
//! strings); encoders produce compact JSON that both SDKs accept.

mod auth;
mod bind;
mod codes;
mod device_info;
mod gateway_op;
mod ids;
mod ota;
mod topic;
mod version;

pub use auth::{AuthError, Credentials, SDK_APP_ID, SignMethod, Username, device_key};
pub use bind::{bind_signature, verify_bind_signature};
pub use codes::{GatewayResult, OtaResultCode};
pub use device_info::{AuthMode, DeviceInfo, DeviceInfoError};
pub use gateway_op::{GatewayDevice, GatewayReply, GatewayRequest, OperationType};
pub use ids::{DeviceId, IdError};
pub use ota::{
    DeviceOtaMessage, HubOtaMessage, MessageError, ProgressReport, ProgressState, UpdateFirmware,
};
pub use topic::{Topic, TopicError};
pub use version::{MAX_VERSION_CHARS, VersionError, check_version, firmware_object_name};
