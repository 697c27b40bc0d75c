//! What the console does to topology and devices, and what only a fake offers: faults, the
//! clock, strict mode and reset.

use super::registry::parse_id;
use super::{ApiError, ApiState};
use crate::{DeviceCert, DeviceStatus, FaultId, HubFaultRule, InstalledFault};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use otasim_protocol::DeviceId;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Binding {
    /// `PID/name` of the gateway.
    gateway: String,
    /// `PID/name` of the subdevice.
    subdevice: String,
}

fn device(s: &ApiState, field: &str, text: &str) -> Result<DeviceId, ApiError> {
    let id = parse_id(field, text)?;
    if s.hub.device(&id).is_none() {
        return Err(ApiError::bad_request(
            Some(field),
            format!("unknown device {id}"),
        ));
    }
    Ok(id)
}

async fn change(
    s: ApiState,
    body: Result<Json<Binding>, JsonRejection>,
    bound: bool,
) -> Result<Json<DeviceStatus>, ApiError> {
    let Json(b) = body?;
    let gateway = device(&s, "gateway", &b.gateway)?;
    let subdevice = device(&s, "subdevice", &b.subdevice)?;
    s.hub.change_binding(&gateway, &subdevice, bound)?;
    s.hub
        .device(&subdevice)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(Some("subdevice"), "subdevice vanished"))
}

pub(crate) async fn bind(
    State(s): State<ApiState>,
    body: Result<Json<Binding>, JsonRejection>,
) -> Result<Json<DeviceStatus>, ApiError> {
    change(s, body, true).await
}

pub(crate) async fn unbind(
    State(s): State<ApiState>,
    body: Result<Json<Binding>, JsonRejection>,
) -> Result<Json<DeviceStatus>, ApiError> {
    change(s, body, false).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Gateway {
    gateway: String,
}

pub(crate) async fn unbind_all(
    State(s): State<ApiState>,
    body: Result<Json<Gateway>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(g) = body?;
    let gateway = device(&s, "gateway", &g.gateway)?;
    s.hub.unbind_all(&gateway)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Enabled {
    enabled: bool,
}

pub(crate) async fn set_enabled(
    State(s): State<ApiState>,
    Path((product_id, device_name)): Path<(String, String)>,
    body: Result<Json<Enabled>, JsonRejection>,
) -> Result<Json<DeviceStatus>, ApiError> {
    let Json(e) = body?;
    let id = DeviceId::new(product_id, device_name)
        .map_err(|e| ApiError::bad_request(Some("device"), e.to_string()))?;
    if s.hub.device(&id).is_none() {
        return Err(ApiError::not_found(None, format!("unknown device {id}")));
    }
    s.hub.set_enabled(&id, e.enabled)?;
    s.hub
        .device(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(None, "device vanished"))
}

pub(crate) async fn list_faults(State(s): State<ApiState>) -> Json<Vec<InstalledFault>> {
    Json(s.hub.faults())
}

#[derive(Serialize)]
pub(crate) struct FaultCreated {
    id: FaultId,
}

pub(crate) async fn add_fault(
    State(s): State<ApiState>,
    body: Result<Json<HubFaultRule>, JsonRejection>,
) -> Result<(StatusCode, Json<FaultCreated>), ApiError> {
    let Json(rule) = body?;
    let id = s.hub.add_fault(rule)?;
    Ok((StatusCode::CREATED, Json(FaultCreated { id })))
}

pub(crate) async fn remove_fault(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(Some("id"), format!("{id:?} is not a fault id")))?;
    if s.hub.remove_fault(FaultId(id)) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            Some("id"),
            format!("unknown fault {id}"),
        ))
    }
}

pub(crate) async fn clear_faults(State(s): State<ApiState>) -> StatusCode {
    s.hub.clear_faults();
    StatusCode::NO_CONTENT
}

pub(crate) async fn release_held(State(s): State<ApiState>) -> StatusCode {
    s.hub.release_held();
    StatusCode::NO_CONTENT
}

/// How far the wall clock may be set from real time: a century.
const MAX_CLOCK_OFFSET_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

#[derive(Serialize)]
pub(crate) struct Clock {
    now_unix_ms: i64,
    offset_ms: i64,
}

fn clock(s: &ApiState) -> Json<Clock> {
    Json(Clock {
        now_unix_ms: s.hub.now_unix_ms(),
        offset_ms: s.hub.clock_offset_ms(),
    })
}

pub(crate) async fn get_clock(State(s): State<ApiState>) -> Json<Clock> {
    clock(&s)
}

/// Either moves the hub's clocks forward or sets the wall clock's offset.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClockChange {
    advance_ms: Option<u64>,
    offset_ms: Option<i64>,
}

pub(crate) async fn set_clock(
    State(s): State<ApiState>,
    body: Result<Json<ClockChange>, JsonRejection>,
) -> Result<Json<Clock>, ApiError> {
    let Json(c) = body?;
    let max = crate::tasks::options::MAX_DURATION_MS;
    if c.advance_ms.is_some_and(|ms| ms > max) {
        let error = format!("at most {max} ms (a year) per call");
        return Err(ApiError::bad_request(Some("advance_ms"), error));
    }
    if c.offset_ms
        .is_some_and(|ms| ms.unsigned_abs() > MAX_CLOCK_OFFSET_MS)
    {
        let error = format!("at most {MAX_CLOCK_OFFSET_MS} ms (a century) either way");
        return Err(ApiError::bad_request(Some("offset_ms"), error));
    }
    match (c.advance_ms, c.offset_ms) {
        (Some(ms), None) => s.hub.advance_clock(std::time::Duration::from_millis(ms)),
        (None, Some(ms)) => s.hub.set_clock_offset_ms(ms),
        _ => {
            return Err(ApiError::bad_request(
                Some("advance_ms"),
                "give exactly one of advance_ms and offset_ms",
            ));
        }
    }
    Ok(clock(&s))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Strict {
    on: bool,
}

pub(crate) async fn set_strict(
    State(s): State<ApiState>,
    body: Result<Json<Strict>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(st) = body?;
    s.hub.set_strict(st.on);
    Ok(StatusCode::NO_CONTENT)
}

/// What `POST /api/reset` did.
#[derive(Serialize)]
pub(crate) struct ResetReport {
    faults_removed: usize,
    cos_faults_removed: usize,
    tasks_cancelled: Vec<u64>,
}

/// Back to a quiet hub between test cases: removes every hub and COS fault, ends every hold and cancels
/// every unfinished task. Devices, firmware and the transcript stay (the hub never forgets
/// them; start a new hub for a clean slate).
pub(crate) async fn reset(State(s): State<ApiState>) -> Json<ResetReport> {
    let faults_removed = s.hub.faults().len();
    s.hub.clear_faults();
    let cos_faults_removed = s.hub.clear_cos_faults();
    s.hub.release_held();
    let tasks_cancelled = s
        .hub
        .tasks()
        .into_iter()
        .filter(|t| !t.is_finished())
        .map(|t| t.id)
        .filter(|id| s.hub.cancel_task(*id))
        .collect();
    Json(ResetReport {
        faults_removed,
        cos_faults_removed,
        tasks_cancelled,
    })
}

pub(crate) async fn kick(State(s): State<ApiState>, Path(client_id): Path<String>) -> StatusCode {
    s.hub.kick(&client_id);
    StatusCode::NO_CONTENT
}

/// `?format=c` asks for the C SDK's `iot_https_ca_crt` array instead of PEM.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaFormat {
    format: Option<String>,
}

pub(crate) async fn ca_pem(
    State(s): State<ApiState>,
    axum::extract::Query(q): axum::extract::Query<CaFormat>,
) -> Result<String, ApiError> {
    let pem = s
        .hub
        .ca_pem()
        .ok_or_else(|| ApiError::conflict(None, "the hub has no TLS listener"))?;
    match q.format.as_deref() {
        None | Some("pem") => Ok(pem),
        Some("c") => Ok(crate::ca_as_c_array(&pem)),
        Some(other) => Err(ApiError::bad_request(
            Some("format"),
            format!("{other:?}: use pem or c"),
        )),
    }
}

pub(crate) async fn issue_cert(
    State(s): State<ApiState>,
    Path((product_id, device_name)): Path<(String, String)>,
) -> Result<Json<DeviceCert>, ApiError> {
    let id = DeviceId::new(product_id, device_name)
        .map_err(|e| ApiError::bad_request(Some("device"), e.to_string()))?;
    if s.hub.device(&id).is_none() {
        return Err(ApiError::not_found(None, format!("unknown device {id}")));
    }
    Ok(Json(s.hub.issue_device_cert(&id)?))
}
