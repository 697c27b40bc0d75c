//! Device and gateway actions: create, describe, list, delete, enable or disable, and the
//! console's gateway bindings (the Hub sends the gateway `change` as it does for the console).
//! otasim has no products of their own: a product exists once a device or firmware of it does,
//! and a device created in a product takes the kind (gateway or subdevice) of the product's
//! other devices, subdevice for a new product.

use super::CloudState;
use super::error::{CloudError, Code};
use super::params::{self, Answer, answer, decode};
use crate::{DeviceKind, DeviceStatus};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use otasim_protocol::DeviceId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// At most this many devices in one bind or unbind, as the real Hub.
const MAX_BIND_PER_CALL: usize = 100;

fn status(state: &CloudState, id: &DeviceId) -> Result<DeviceStatus, CloudError> {
    state
        .hub
        .device(id)
        .ok_or_else(|| CloudError::new(Code::DeviceNotExist, format!("device {id} does not exist")))
}

fn unsupported(param: &str, what: &str) -> CloudError {
    CloudError::new(
        Code::UnsupportedOperation,
        format!("`{param}`: {what} are not simulated"),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateDeviceRequest {
    product_id: String,
    device_name: String,
    attribute: Option<Value>,
    defined_psk: Option<String>,
    isp: Option<i64>,
    imei: Option<String>,
    lora_dev_eui: Option<String>,
    lora_mote_type: Option<i64>,
    skey: Option<String>,
    lora_app_key: Option<String>,
    tls_crt: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateDeviceResponse {
    device_name: String,
    device_psk: String,
    device_cert: String,
    device_private_key: String,
}

fn new_psk() -> Result<String, CloudError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| CloudError::new(Code::InternalError, format!("making a PSK: {e}")))?;
    Ok(STANDARD.encode(bytes))
}

pub(crate) fn create_device(state: &CloudState, params: Value) -> Answer {
    let r: CreateDeviceRequest = decode(params)?;
    if r.isp.is_some() || r.imei.is_some() {
        return Err(unsupported("Isp/Imei", "NB-IoT devices"));
    }
    if r.lora_dev_eui.is_some()
        || r.lora_mote_type.is_some()
        || r.lora_app_key.is_some()
        || r.skey.is_some()
    {
        return Err(unsupported("Lora*/Skey", "LoRa devices"));
    }
    if r.tls_crt.is_some() {
        return Err(unsupported("TlsCrt", "private-CA certificate devices"));
    }
    if r.attribute.as_ref().is_some_and(|a| !a.is_object()) {
        return Err(CloudError::new(
            Code::InvalidParameter,
            "`Attribute` must be an object",
        ));
    }
    let id = params::device(&r.product_id, &r.device_name)?;
    if state.hub.device(&id).is_some() {
        return Err(CloudError::new(
            Code::DeviceAlreadyExist,
            format!("device {id} exists already"),
        ));
    }
    let psk = match r.defined_psk {
        Some(psk) => {
            let valid = STANDARD
                .decode(&psk)
                .is_ok_and(|b| !b.is_empty() && b.len() <= 64);
            if !valid {
                return Err(CloudError::new(
                    Code::DefinedPskNotBase64,
                    "`DefinedPsk` must be base64 of 1 to 64 bytes",
                ));
            }
            psk
        }
        None => new_psk()?,
    };
    let kind = state
        .hub
        .devices()
        .iter()
        .find(|d| d.device.product_id() == id.product_id())
        .map_or(DeviceKind::Subdevice, |d| d.kind);
    match kind {
        DeviceKind::Gateway => state.hub.add_gateway(&id, &psk),
        DeviceKind::Subdevice => state.hub.add_subdevice(&id, &psk, None, None),
    }
    answer(&CreateDeviceResponse {
        device_name: r.device_name,
        device_psk: psk,
        device_cert: String::new(),
        device_private_key: String::new(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeviceKey {
    product_id: String,
    device_name: String,
}

/// The fields of `DeviceInfo` (and `DescribeDevice`) that otasim knows.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DeviceInfo {
    device_name: String,
    online: i64,
    version: String,
    device_psk: String,
    device_cert: String,
    tags: Vec<Value>,
    enable_state: i64,
    cert_state: i64,
}

fn info(state: &CloudState, d: &DeviceStatus) -> DeviceInfo {
    DeviceInfo {
        device_name: d.device.device_name().to_owned(),
        online: i64::from(d.online),
        version: d.version.clone().unwrap_or_default(),
        device_psk: state.hub.device_secret(&d.device).unwrap_or_default(),
        device_cert: String::new(),
        tags: Vec::new(),
        enable_state: i64::from(d.enabled),
        cert_state: 0,
    }
}

pub(crate) fn describe_device(state: &CloudState, params: Value) -> Answer {
    let r: DeviceKey = decode(params)?;
    let id = params::device(&r.product_id, &r.device_name)?;
    answer(&info(state, &status(state, &id)?))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeDevicesRequest {
    product_id: String,
    offset: Option<i64>,
    limit: Option<i64>,
    firmware_version: Option<String>,
    device_name: Option<String>,
    enable_state: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeDevicesResponse {
    total_count: usize,
    devices: Vec<DeviceInfo>,
}

pub(crate) fn describe_devices(state: &CloudState, params: Value) -> Answer {
    let r: DescribeDevicesRequest = decode(params)?;
    params::known_product(&state.hub, "ProductId", &r.product_id)?;
    let offset = params::in_range("Offset", r.offset.unwrap_or(0), 0, i64::from(u32::MAX))?;
    let limit = params::in_range("Limit", r.limit.unwrap_or(10), 10, 250)?;
    let enable = r
        .enable_state
        .map(|e| params::in_range("EnableState", e, 0, 1))
        .transpose()?;
    let all: Vec<DeviceStatus> = state
        .hub
        .devices()
        .into_iter()
        .filter(|d| d.device.product_id() == r.product_id)
        .filter(|d| match r.firmware_version.as_deref() {
            None => true,
            Some("None-FirmwareVersion") => d.version.is_none(),
            Some(v) => d.version.as_deref() == Some(v),
        })
        .filter(|d| {
            r.device_name
                .as_deref()
                .is_none_or(|n| d.device.device_name().contains(n))
        })
        .filter(|d| enable.is_none_or(|e| i64::from(d.enabled) == e))
        .collect();
    let total_count = all.len();
    let devices = params::page(all, offset, limit)
        .iter()
        .map(|d| info(state, d))
        .collect();
    answer(&DescribeDevicesResponse {
        total_count,
        devices,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteDeviceRequest {
    product_id: String,
    device_name: String,
    skey: Option<String>,
}

pub(crate) fn delete_device(state: &CloudState, params: Value) -> Answer {
    let r: DeleteDeviceRequest = decode(params)?;
    if r.skey.is_some() {
        return Err(unsupported("Skey", "LoRa devices"));
    }
    let id = params::device(&r.product_id, &r.device_name)?;
    state.hub.delete_device(&id)?;
    answer(&serde_json::Map::new())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct UpdateDevicesEnableStateRequest {
    product_id: String,
    device_names: Vec<String>,
    status: i64,
}

pub(crate) fn update_devices_enable_state(state: &CloudState, params: Value) -> Answer {
    let r: UpdateDevicesEnableStateRequest = decode(params)?;
    let enabled = params::in_range("Status", r.status, 0, 1)? == 1;
    if r.device_names.is_empty() || r.device_names.len() > 100 {
        return Err(CloudError::value("DeviceNames", "1 to 100 devices"));
    }
    let mut ids = Vec::with_capacity(r.device_names.len());
    for name in &r.device_names {
        let id = params::device(&r.product_id, name)?;
        status(state, &id)?;
        ids.push(id);
    }
    for id in &ids {
        state
            .hub
            .set_enabled(id, enabled)
            .map_err(|e| CloudError::new(Code::DeviceNotExist, format!("device {id}: {e}")))?;
    }
    answer(&serde_json::Map::new())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct BindRequest {
    gateway_product_id: String,
    gateway_device_name: String,
    product_id: String,
    device_names: Vec<String>,
    skey: Option<String>,
}

/// The gateway and the subdevices of a bind or unbind, checked.
fn bind_targets(
    state: &CloudState,
    r: &BindRequest,
) -> Result<(DeviceId, Vec<DeviceStatus>), CloudError> {
    if r.skey.is_some() {
        return Err(unsupported("Skey", "CLAA devices"));
    }
    if r.device_names.is_empty() {
        return Err(CloudError::value("DeviceNames", "name at least one device"));
    }
    if r.device_names.len() > MAX_BIND_PER_CALL {
        return Err(CloudError::new(
            Code::BindDevicePerOnceOverLimit,
            format!("at most {MAX_BIND_PER_CALL} devices per call"),
        ));
    }
    let gw = params::device(&r.gateway_product_id, &r.gateway_device_name)?;
    if status(state, &gw)?.kind != DeviceKind::Gateway {
        return Err(CloudError::new(
            Code::DeviceIsNotGateway,
            format!("device {gw} is not a gateway"),
        ));
    }
    let mut subs = Vec::with_capacity(r.device_names.len());
    for name in &r.device_names {
        let sub = status(state, &params::device(&r.product_id, name)?)?;
        if sub.kind != DeviceKind::Subdevice {
            return Err(CloudError::value(
                "DeviceNames",
                format!("{} is a gateway, not a subdevice", sub.device),
            ));
        }
        subs.push(sub);
    }
    Ok((gw, subs))
}

fn change_error(e: crate::HubError) -> CloudError {
    CloudError::new(Code::DeviceNotExist, e)
}

pub(crate) fn bind_devices(state: &CloudState, params: Value) -> Answer {
    let r: BindRequest = decode(params)?;
    let (gw, subs) = bind_targets(state, &r)?;
    if let Some(s) = subs
        .iter()
        .find(|s| s.bound_to.as_ref().is_some_and(|b| b != &gw))
    {
        return Err(CloudError::new(
            Code::DeviceHasAlreadyBindGateway,
            format!("device {} is bound to another gateway", s.device),
        ));
    }
    for s in subs.iter().filter(|s| s.bound_to.is_none()) {
        state
            .hub
            .change_binding(&gw, &s.device, true)
            .map_err(change_error)?;
    }
    answer(&serde_json::Map::new())
}

pub(crate) fn unbind_devices(state: &CloudState, params: Value) -> Answer {
    let r: BindRequest = decode(params)?;
    let (gw, subs) = bind_targets(state, &r)?;
    if let Some(s) = subs.iter().find(|s| s.bound_to.as_ref() != Some(&gw)) {
        return Err(CloudError::value(
            "DeviceNames",
            format!("device {} is not bound to gateway {gw}", s.device),
        ));
    }
    for s in &subs {
        state
            .hub
            .change_binding(&gw, &s.device, false)
            .map_err(change_error)?;
    }
    answer(&serde_json::Map::new())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeGatewayBindDevicesRequest {
    gateway_product_id: String,
    gateway_device_name: String,
    offset: Option<i64>,
    limit: Option<i64>,
    product_id: Option<String>,
}

/// `BindDeviceInfo` of the SDK's models.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BindDeviceInfo {
    product_id: String,
    device_name: String,
    tags: Vec<Value>,
    bind_time: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeGatewayBindDevicesResponse {
    total_count: usize,
    devices: Vec<BindDeviceInfo>,
    product_name: String,
}

pub(crate) fn describe_gateway_bind_devices(state: &CloudState, params: Value) -> Answer {
    let r: DescribeGatewayBindDevicesRequest = decode(params)?;
    let offset = params::in_range("Offset", r.offset.unwrap_or(0), 0, i64::from(u32::MAX))?;
    let limit = params::in_range("Limit", r.limit.unwrap_or(10), 1, 100)?;
    let gw = params::device(&r.gateway_product_id, &r.gateway_device_name)?;
    if status(state, &gw)?.kind != DeviceKind::Gateway {
        return Err(CloudError::new(
            Code::DeviceIsNotGateway,
            format!("device {gw} is not a gateway"),
        ));
    }
    let bound: Vec<DeviceStatus> = state
        .hub
        .devices()
        .into_iter()
        .filter(|d| d.bound_to.as_ref() == Some(&gw))
        .filter(|d| {
            r.product_id
                .as_deref()
                .is_none_or(|p| d.device.product_id() == p)
        })
        .collect();
    let total_count = bound.len();
    let product_name = r
        .product_id
        .clone()
        .or_else(|| bound.first().map(|d| d.device.product_id().to_owned()))
        .unwrap_or_default();
    let devices = params::page(bound, offset, limit)
        .into_iter()
        .map(|d| BindDeviceInfo {
            product_id: d.device.product_id().to_owned(),
            device_name: d.device.device_name().to_owned(),
            tags: Vec::new(),
            bind_time: None,
        })
        .collect();
    answer(&DescribeGatewayBindDevicesResponse {
        total_count,
        devices,
        product_name,
    })
}
