//! The hub's COS through its control API: fault rules (the COS's own JSON format), the request
//! journal and firmware deletion, so `otasim hub` is one world with one API.

use super::{ApiError, ApiState};
use crate::FirmwareInfo;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// The largest COS fault rule accepted (rules are small JSON objects).
const MAX_RULE_BYTES: usize = 64 << 10;

pub(crate) async fn list_faults(State(s): State<ApiState>) -> Json<Vec<serde_json::Value>> {
    Json(s.hub.cos_faults())
}

#[derive(Serialize)]
pub(crate) struct RuleCreated {
    id: u64,
}

/// Parsed here rather than by `Json<T>`: the rule's format is the store's, not the hub's.
pub(crate) async fn add_fault(
    State(s): State<ApiState>,
    body: Bytes,
) -> Result<(StatusCode, Json<RuleCreated>), ApiError> {
    if body.len() > MAX_RULE_BYTES {
        return Err(ApiError::bad_request(
            Some("rule"),
            format!("a rule is at most {MAX_RULE_BYTES} bytes"),
        ));
    }
    let rule: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(Some("rule"), format!("not JSON: {e}")))?;
    let id = s.hub.add_cos_fault(rule)?;
    Ok((StatusCode::CREATED, Json(RuleCreated { id })))
}

pub(crate) async fn remove_fault(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(Some("id"), format!("{id:?} is not a rule id")))?;
    if s.hub.remove_cos_fault(id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            Some("id"),
            format!("unknown COS rule {id}"),
        ))
    }
}

pub(crate) async fn clear_faults(State(s): State<ApiState>) -> StatusCode {
    s.hub.clear_cos_faults();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JournalQuery {
    since: Option<u64>,
}

pub(crate) async fn journal(
    State(s): State<ApiState>,
    query: Result<Query<JournalQuery>, QueryRejection>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let Query(q) = query?;
    Ok(Json(s.hub.cos_journal_since(q.since.unwrap_or(0))?))
}

pub(crate) async fn delete_firmware(
    State(s): State<ApiState>,
    Path((product_id, version)): Path<(String, String)>,
) -> Result<Json<FirmwareInfo>, ApiError> {
    match s.hub.delete_firmware(&product_id, &version) {
        Err(crate::HubError::UnknownFirmware { .. }) => Err(ApiError::not_found(
            Some("version"),
            format!("no firmware {version} for product {product_id}"),
        )),
        other => Ok(Json(other?)),
    }
}

/// `GET /api/health`: the hub answers, and what it runs.
#[derive(Serialize)]
pub(crate) struct Health {
    status: &'static str,
    mqtt: String,
    devices: usize,
    firmware: usize,
}

pub(crate) async fn health(State(s): State<ApiState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        mqtt: s.hub.local_addr().to_string(),
        devices: s.hub.devices().len(),
        firmware: s.hub.firmware().len(),
    })
}
