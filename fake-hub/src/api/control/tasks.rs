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
    /// At most this many entries (default and maximum [`MAX_TRANSCRIPT_PAGE`]); when more
    /// remain, the `x-next-since` header says where the next page starts.
    limit: Option<usize>,
}

/// The largest transcript page one request returns.
pub(crate) const MAX_TRANSCRIPT_PAGE: usize = 10_000;

/// Whether `e` is about `device` (`PID/name`, client id `PIDname`).
pub(crate) fn entry_is_about(e: &TranscriptEntry, device: &otasim_protocol::DeviceId) -> bool {
    if e.direction == crate::Direction::Http {
        // A COS request may be for several devices holding a URL for the same object.
        return serde_json::from_str::<crate::HttpRecord>(&e.payload)
            .is_ok_and(|r| r.devices.contains(&device.to_string()));
    }
    match e.topic.parse::<otasim_protocol::Topic>() {
        Ok(t) => t.device() == device,
        Err(_) => e.client_id == device.client_id(),
    }
}

/// A page of the transcript, oldest first; `x-first-seq` says which is the oldest entry the
/// hub still keeps (older ones were dropped from its bounded ring).
pub(crate) async fn transcript(
    State(s): State<ApiState>,
    query: Result<Query<TranscriptQuery>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    let Query(q) = query?;
    let device = q
        .device
        .as_deref()
        .map(|d| parse_id("device", d))
        .transpose()?;
    let limit = match q.limit {
        None => MAX_TRANSCRIPT_PAGE,
        Some(n @ 1..=MAX_TRANSCRIPT_PAGE) => n,
        Some(n) => {
            let error = format!("{n}: give 1 to {MAX_TRANSCRIPT_PAGE}");
            return Err(ApiError::bad_request(Some("limit"), error));
        }
    };
    let since = q.since.unwrap_or(0);
    let mut entries = s.hub.transcript_page(since, limit + 1, |e| {
        device.as_ref().is_none_or(|d| entry_is_about(e, d))
    });
    let next = (entries.len() > limit).then(|| entries[limit].seq);
    entries.truncate(limit);
    let first = s.hub.transcript_since(0, 1).first().map(|e| e.seq);
    // Each entry as the console shows it: the device, a summary and a code's meaning.
    let known = s.hub.devices();
    let clients = super::view::client_devices(known.iter().map(|d| &d.device));
    let views: Vec<super::view::EntryView<'_>> = entries
        .iter()
        .map(|e| super::view::EntryView::of(e, clients.get(&e.client_id).cloned()))
        .collect();
    let mut response = Json(views).into_response();
    let headers = response.headers_mut();
    if let Some(next) = next {
        headers.insert("x-next-since", next.into());
    }
    headers.insert("x-first-seq", first.unwrap_or(0).into());
    Ok(response)
}
