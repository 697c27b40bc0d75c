//! Devices and firmware: registering, listing, uploading.

use super::{ApiError, ApiState};
use crate::{DeviceStatus, FirmwareInfo};
use axum::Json;
use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use otasim_protocol::DeviceId;
use serde::Deserialize;

/// Parses `"PID/name"`, naming `field` when it is not a valid device id.
pub(crate) fn parse_id(field: &str, text: &str) -> Result<DeviceId, ApiError> {
    let (pid, name) = text.split_once('/').ok_or_else(|| {
        ApiError::bad_request(
            Some(field),
            format!("{text:?} is not PRODUCT_ID/DEVICE_NAME"),
        )
    })?;
    DeviceId::new(pid, name).map_err(|e| ApiError::bad_request(Some(field), e.to_string()))
}

fn id_of(product_id: &str, device_name: &str) -> Result<DeviceId, ApiError> {
    DeviceId::new(product_id, device_name).map_err(|e| {
        let field = match e {
            otasim_protocol::IdError::ProductId(_) => "product_id",
            otasim_protocol::IdError::DeviceName(_) => "device_name",
        };
        ApiError::bad_request(Some(field), e.to_string())
    })
}

fn check_secret(secret: &str) -> Result<(), ApiError> {
    let printable = secret.bytes().all(|b| b.is_ascii_graphic());
    if secret.is_empty() || secret.len() > 256 || !printable {
        return Err(ApiError::bad_request(
            Some("secret"),
            "must be 1 to 256 printable ASCII characters",
        ));
    }
    Ok(())
}

pub(crate) async fn list_devices(State(s): State<ApiState>) -> Json<Vec<DeviceStatus>> {
    Json(s.hub.devices())
}

pub(crate) async fn get_device(
    State(s): State<ApiState>,
    Path((product_id, device_name)): Path<(String, String)>,
) -> Result<Json<DeviceStatus>, ApiError> {
    let id = id_of(&product_id, &device_name)?;
    s.hub
        .device(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(None, format!("unknown device {id}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewGateway {
    product_id: String,
    device_name: String,
    secret: String,
}

pub(crate) async fn add_gateway(
    State(s): State<ApiState>,
    body: Result<Json<NewGateway>, JsonRejection>,
) -> Result<(StatusCode, Json<DeviceStatus>), ApiError> {
    let Json(g) = body?;
    let id = id_of(&g.product_id, &g.device_name)?;
    check_secret(&g.secret)?;
    if s.hub.device(&id).is_some() {
        return Err(ApiError::conflict(
            Some("device_name"),
            format!("device {id} already exists"),
        ));
    }
    s.hub.add_gateway(&id, &g.secret);
    created(&s, &id)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSubdevice {
    product_id: String,
    device_name: String,
    secret: String,
    /// The gateway it is bound to, as `PID/name`.
    gateway: Option<String>,
    /// The version it runs, if known.
    version: Option<String>,
}

pub(crate) async fn add_subdevice(
    State(s): State<ApiState>,
    body: Result<Json<NewSubdevice>, JsonRejection>,
) -> Result<(StatusCode, Json<DeviceStatus>), ApiError> {
    let Json(d) = body?;
    let id = id_of(&d.product_id, &d.device_name)?;
    check_secret(&d.secret)?;
    let gateway = d
        .gateway
        .as_deref()
        .map(|g| parse_id("gateway", g))
        .transpose()?;
    if let Some(gw) = &gateway
        && s.hub
            .device(gw)
            .is_none_or(|st| st.kind != crate::DeviceKind::Gateway)
    {
        return Err(ApiError::bad_request(
            Some("gateway"),
            format!("{gw} is not a registered gateway"),
        ));
    }
    if let Some(v) = &d.version
        && (v.is_empty() || v.len() > 32)
    {
        return Err(ApiError::bad_request(
            Some("version"),
            "must be 1 to 32 characters",
        ));
    }
    if s.hub.device(&id).is_some() {
        return Err(ApiError::conflict(
            Some("device_name"),
            format!("device {id} already exists"),
        ));
    }
    s.hub
        .add_subdevice(&id, &d.secret, gateway.as_ref(), d.version.as_deref());
    created(&s, &id)
}

fn created(s: &ApiState, id: &DeviceId) -> Result<(StatusCode, Json<DeviceStatus>), ApiError> {
    let status = s
        .hub
        .device(id)
        .ok_or_else(|| ApiError::not_found(None, format!("device {id} vanished")))?;
    Ok((StatusCode::CREATED, Json(status)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FirmwareQuery {
    product_id: String,
    version: String,
    /// Overwrite a version uploaded before with other bytes.
    #[serde(default)]
    replace: bool,
}

pub(crate) async fn upload_raw(
    State(s): State<ApiState>,
    query: Result<Query<FirmwareQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<FirmwareInfo>), ApiError> {
    let Query(q) = query?;
    let body = body.map_err(|e| ApiError::too_large_or_bad(e.status(), e.body_text()))?;
    upload(&s, &q.product_id, &q.version, body.to_vec(), q.replace)
}

fn upload(
    s: &ApiState,
    product_id: &str,
    version: &str,
    bytes: Vec<u8>,
    replace: bool,
) -> Result<(StatusCode, Json<FirmwareInfo>), ApiError> {
    id_of(product_id, "x")?;
    let info = if replace {
        s.hub
            .upload_firmware_replacing(product_id, version, bytes)?
    } else {
        s.hub.upload_firmware(product_id, version, bytes)?
    };
    Ok((StatusCode::CREATED, Json(info)))
}

pub(crate) async fn upload_form(
    State(s): State<ApiState>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<FirmwareInfo>), ApiError> {
    let mut form = form.map_err(|e| ApiError::bad_request(None, e.body_text()))?;
    let (mut product_id, mut version, mut file) = (None, None, None);
    let mut replace = false;
    loop {
        let field = form
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request(None, e.body_text()))?;
        let Some(field) = field else { break };
        let name = field.name().unwrap_or_default().to_owned();
        let data = field
            .bytes()
            .await
            .map_err(|e| ApiError::bad_request(Some(&name), e.body_text()))?;
        let text = || {
            String::from_utf8(data.to_vec())
                .map_err(|_| ApiError::bad_request(Some(&name), "must be UTF-8 text"))
        };
        match name.as_str() {
            "product_id" => product_id = Some(text()?),
            "version" => version = Some(text()?),
            "file" => file = Some(data.to_vec()),
            "replace" => {
                replace = match text()?.as_str() {
                    "true" | "on" | "1" => true,
                    "false" | "off" | "0" | "" => false,
                    other => {
                        return Err(ApiError::bad_request(
                            Some("replace"),
                            format!("{other:?} is not true or false"),
                        ));
                    }
                }
            }
            other => {
                return Err(ApiError::bad_request(
                    Some(other),
                    format!("unknown form field {other:?}"),
                ));
            }
        }
    }
    let missing = |f: &str| ApiError::bad_request(Some(f), format!("missing form field {f:?}"));
    upload(
        &s,
        &product_id.ok_or_else(|| missing("product_id"))?,
        &version.ok_or_else(|| missing("version"))?,
        file.ok_or_else(|| missing("file"))?,
        replace,
    )
}

pub(crate) async fn list_firmware(State(s): State<ApiState>) -> Json<Vec<FirmwareInfo>> {
    Json(s.hub.firmware())
}
