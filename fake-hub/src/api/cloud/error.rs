//! Cloud API errors: a code from the API's own list (the common codes of API 3.0 and the
//! `iotcloud` codes of the official SDK's `errorcodes.py`) and a message. Every error is answered
//! with HTTP 200 and `{"Response": {"Error": {"Code", "Message"}, "RequestId"}}`, as the real API
//! does: the SDK raises `TencentCloudSDKException(code, message, request_id)` from it.

use std::fmt;

/// An error code of Tencent Cloud API 3.0 or of `iotcloud` 2021-04-08.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The signature does not match (or the `Authorization` header is malformed).
    SignatureFailure,
    /// `X-TC-Timestamp` is more than five minutes away from the server's clock.
    SignatureExpire,
    /// The SecretId is not one of the declared keys.
    SecretIdNotFound,
    /// The action does not exist in the API.
    InvalidAction,
    /// The API version is not served.
    NoSuchVersion,
    /// A request method other than POST and GET.
    UnsupportedProtocol,
    /// The action (or one of its options) exists but is not simulated.
    UnsupportedOperation,
    /// The body exceeds the size limit.
    RequestSizeLimitExceeded,
    /// A required parameter is missing.
    MissingParameter,
    /// A parameter the action does not define.
    UnknownParameter,
    /// The body is not JSON, or a parameter has the wrong type.
    InvalidParameter,
    /// A parameter is out of range or malformed.
    InvalidParameterValue,
    /// `InvalidParameterValue.FirmwareAlreadyExist`.
    FirmwareAlreadyExist,
    /// `InvalidParameterValue.DeviceAlreadyExist`.
    DeviceAlreadyExist,
    /// `InvalidParameterValue.DeviceIsNotGateway`.
    DeviceIsNotGateway,
    /// `InvalidParameterValue.DefinedPskNotBase64`.
    DefinedPskNotBase64,
    /// `ResourceNotFound.ProductNotExist`.
    ProductNotExist,
    /// `ResourceNotFound.DeviceNotExist`.
    DeviceNotExist,
    /// `ResourceNotFound.FirmwareNotExist`.
    FirmwareNotExist,
    /// `ResourceNotFound.FirmwareTaskNotExist`.
    FirmwareTaskNotExist,
    /// `ResourceNotFound.DeviceFirmwareTaskNotExist`.
    DeviceFirmwareTaskNotExist,
    /// `FailedOperation`: the request is valid but cannot be carried out now.
    FailedOperation,
    /// `FailedOperation.DeviceFirmwareTaskAlreadDone` (sic).
    DeviceFirmwareTaskAlreadyDone,
    /// `FailedOperation.DeviceRunningOtherOtaTask`.
    DeviceRunningOtherOtaTask,
    /// `FailedOperation.DeviceOffline`.
    DeviceOffline,
    /// `FailedOperation.InvalidTopicName`.
    InvalidTopicName,
    /// `FailedOperation.InvalidMsgLen`.
    InvalidMsgLen,
    /// `FailedOperation.BindDevicePerOnceOverLimit`.
    BindDevicePerOnceOverLimit,
    /// `UnauthorizedOperation.DeviceHasAlreadyBindGateway`.
    DeviceHasAlreadyBindGateway,
    /// `UnauthorizedOperation.GatewayHasBindedDevices` (sic).
    GatewayHasBoundDevices,
    /// `UnsupportedOperation.DeviceOtaTaskInProgress`.
    DeviceOtaTaskInProgress,
    /// `InternalError`: the firmware store failed.
    InternalError,
}

impl Code {
    /// The code as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::SignatureFailure => "AuthFailure.SignatureFailure",
            Code::SignatureExpire => "AuthFailure.SignatureExpire",
            Code::SecretIdNotFound => "AuthFailure.SecretIdNotFound",
            Code::InvalidAction => "InvalidAction",
            Code::NoSuchVersion => "NoSuchVersion",
            Code::UnsupportedProtocol => "UnsupportedProtocol",
            Code::UnsupportedOperation => "UnsupportedOperation",
            Code::RequestSizeLimitExceeded => "RequestSizeLimitExceeded",
            Code::MissingParameter => "MissingParameter",
            Code::UnknownParameter => "UnknownParameter",
            Code::InvalidParameter => "InvalidParameter",
            Code::InvalidParameterValue => "InvalidParameterValue",
            Code::FirmwareAlreadyExist => "InvalidParameterValue.FirmwareAlreadyExist",
            Code::DeviceAlreadyExist => "InvalidParameterValue.DeviceAlreadyExist",
            Code::DeviceIsNotGateway => "InvalidParameterValue.DeviceIsNotGateway",
            Code::DefinedPskNotBase64 => "InvalidParameterValue.DefinedPskNotBase64",
            Code::ProductNotExist => "ResourceNotFound.ProductNotExist",
            Code::DeviceNotExist => "ResourceNotFound.DeviceNotExist",
            Code::FirmwareNotExist => "ResourceNotFound.FirmwareNotExist",
            Code::FirmwareTaskNotExist => "ResourceNotFound.FirmwareTaskNotExist",
            Code::DeviceFirmwareTaskNotExist => "ResourceNotFound.DeviceFirmwareTaskNotExist",
            Code::FailedOperation => "FailedOperation",
            Code::DeviceFirmwareTaskAlreadyDone => "FailedOperation.DeviceFirmwareTaskAlreadDone",
            Code::DeviceRunningOtherOtaTask => "FailedOperation.DeviceRunningOtherOtaTask",
            Code::DeviceOffline => "FailedOperation.DeviceOffline",
            Code::InvalidTopicName => "FailedOperation.InvalidTopicName",
            Code::InvalidMsgLen => "FailedOperation.InvalidMsgLen",
            Code::BindDevicePerOnceOverLimit => "FailedOperation.BindDevicePerOnceOverLimit",
            Code::DeviceHasAlreadyBindGateway => {
                "UnauthorizedOperation.DeviceHasAlreadyBindGateway"
            }
            Code::GatewayHasBoundDevices => "UnauthorizedOperation.GatewayHasBindedDevices",
            Code::DeviceOtaTaskInProgress => "UnsupportedOperation.DeviceOtaTaskInProgress",
            Code::InternalError => "InternalError",
        }
    }
}

/// Why the Cloud API refused a request: a code and a message naming the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct CloudError {
    /// The code.
    pub code: Code,
    /// What was wrong, naming the parameter or header.
    pub message: String,
}

impl CloudError {
    /// An error with `code` and `message`.
    pub fn new(code: Code, message: impl fmt::Display) -> Self {
        CloudError {
            code,
            message: message.to_string(),
        }
    }

    /// `InvalidParameterValue` for `param`.
    pub(crate) fn value(param: &str, why: impl fmt::Display) -> Self {
        CloudError::new(
            Code::InvalidParameterValue,
            format!("the value of parameter `{param}` is invalid: {why}"),
        )
    }

    /// Classifies a serde error from decoding an action's parameters.
    pub(crate) fn from_params(e: &serde_json::Error) -> Self {
        let text = e.to_string();
        let named = |marker: &str| {
            text.split(marker)
                .nth(1)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_owned)
        };
        if let Some(name) = named("unknown field `") {
            return CloudError::new(
                Code::UnknownParameter,
                format!("the parameter `{name}` is not defined for this action"),
            );
        }
        if let Some(name) = named("missing field `") {
            return CloudError::new(
                Code::MissingParameter,
                format!("the request is missing a required parameter `{name}`"),
            );
        }
        CloudError::new(
            Code::InvalidParameter,
            format!("invalid parameters: {text}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_errors_become_the_api_parameter_codes() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "PascalCase")]
        #[allow(dead_code)]
        struct P {
            product_id: String,
            file_size: Option<i64>,
        }
        let e = |body: &str| {
            CloudError::from_params(&serde_json::from_str::<P>(body).expect_err("invalid"))
        };
        assert_eq!(
            e(r#"{"ProductId":"A","Nope":1}"#).code,
            Code::UnknownParameter
        );
        assert!(
            e(r#"{"ProductId":"A","Nope":1}"#)
                .message
                .contains("`Nope`")
        );
        assert_eq!(e(r#"{}"#).code, Code::MissingParameter);
        assert!(e(r#"{}"#).message.contains("`ProductId`"));
        assert_eq!(
            e(r#"{"ProductId":"A","FileSize":"x"}"#).code,
            Code::InvalidParameter
        );
    }
}
