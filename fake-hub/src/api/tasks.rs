//! Update tasks and the transcript.

use super::registry::parse_id;
use super::{ApiError, ApiState};
use crate::{PushMethod, PushRequest, TaskOptions, TaskRequest, TaskStatus, TranscriptEntry};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
pub(crate) struct Created {
    task_id: u64,
}

/// A task as posted: the push, flat, and optional options. Unknown keys are refused by the
/// method's variant (serde cannot refuse them on a struct with a flattened field).
#[derive(Deserialize)]
pub(crate) struct TaskBody {
    product_id: String,
    version: String,
    #[serde(flatten)]
    method: PushMethod,
    #[serde(default)]
    options: TaskOptions,
}

pub(crate) async fn create(
    State(s): State<ApiState>,
    body: Result<Json<TaskBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let Json(body) = body?;
    let request = TaskRequest {
        push: PushRequest {
            product_id: body.product_id,
            version: body.version,
            method: body.method,
        },
        options: body.options,
    };
    let task_id = s.hub.create_task(request)?;
    Ok((StatusCode::CREATED, Json(Created { task_id })))
}

pub(crate) async fn cancel(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<TaskStatus>, ApiError> {
    let id = task_id(&id)?;
    // A finished task has nothing left to cancel: saying so beats marking it cancelled.
    if s.hub.task(id).is_some_and(|t| t.is_finished()) {
        return Err(ApiError::conflict(
            Some("id"),
            format!("task {id} has finished: nothing to cancel"),
        ));
    }
    if !s.hub.cancel_task(id) {
        return Err(ApiError::not_found(
            Some("id"),
            format!("unknown task {id}"),
        ));
    }
    get_one(State(s), Path(id.to_string())).await
}

pub(crate) async fn list(State(s): State<ApiState>) -> Json<Vec<TaskStatus>> {
    Json(s.hub.tasks())
}

fn task_id(text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(Some("id"), format!("{text:?} is not a task id")))
}

pub(crate) async fn get_one(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<TaskStatus>, ApiError> {
    let id = task_id(&id)?;
    s.hub
        .task(id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(Some("id"), format!("unknown task {id}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TranscriptQuery {
    /// Only entries with `seq >= since`.
    since: Option<u64>,
    /// Only entries about this device (`PID/name`): its topics, or its client's events.
    device: Option<String>,
}

/// Whether `e` is about `device` (`PID/name`, client id `PIDname`).
pub(crate) fn entry_is_about(e: &TranscriptEntry, device: &otasim_protocol::DeviceId) -> bool {
    match e.topic.parse::<otasim_protocol::Topic>() {
        Ok(t) => t.device() == device,
        Err(_) => e.client_id == device.client_id(),
    }
}

pub(crate) async fn transcript(
    State(s): State<ApiState>,
    query: Result<Query<TranscriptQuery>, QueryRejection>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let Query(q) = query?;
    let device = q
        .device
        .as_deref()
        .map(|d| parse_id("device", d))
        .transpose()?;
    let since = q.since.unwrap_or(0);
    let known = s.hub.devices();
    let clients = super::view::client_devices(known.iter().map(|d| &d.device));
    let entries = s
        .hub
        .transcript()
        .into_iter()
        .filter(|e| e.seq >= since)
        .filter(|e| device.as_ref().is_none_or(|d| entry_is_about(e, d)))
        .map(|e| {
            let client = clients.get(&e.client_id).cloned();
            serde_json::to_value(super::view::EntryView::of(&e, client))
                .expect("transcript entries serialize")
        })
        .collect();
    Ok(Json(entries))
}
