//! Handlers of the control API. Bodies are parsed here rather than by axum's extractors, so a
//! malformed request gets one JSON error shape whose message names the field.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::clock::MAX_OFFSET;
use crate::{Cos, CosError, FaultRule, ObjectInfo, RuleId};

/// The largest object `PUT /objects/{name}` accepts.
const MAX_OBJECT_BYTES: usize = 512 << 20;
/// Validity of a URL from `GET /objects/{name}/url` without `valid_secs`.
const DEFAULT_URL_SECS: u64 = 24 * 3600;
/// Entries `GET /journal` returns without `limit`.
const DEFAULT_JOURNAL_PAGE: usize = 1000;
/// The largest `limit` of `GET /journal`.
const MAX_JOURNAL_PAGE: usize = 10_000;

pub(super) fn router(cos: Cos) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/objects", get(list_objects))
        .route(
            "/objects/{name}",
            get(object_info).put(put_object).delete(delete_object),
        )
        .route("/objects/{name}/url", get(object_url))
        .route("/rules", get(list_rules).post(add_rule).delete(clear_rules))
        .route("/rules/{id}", delete(remove_rule))
        .route("/journal", get(journal))
        .route("/reset", axum::routing::post(reset))
        .route("/clock", get(clock).post(move_clock))
        .fallback(unknown)
        .layer(DefaultBodyLimit::max(MAX_OBJECT_BYTES))
        .with_state(cos)
}

/// A refused control request.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// An object as the control API shows it.
#[derive(Debug, Serialize)]
struct ObjectView {
    name: String,
    size: u64,
    md5_hex: String,
    etag: String,
    last_modified: String,
}

impl From<ObjectInfo> for ObjectView {
    fn from(info: ObjectInfo) -> Self {
        Self {
            last_modified: httpdate::fmt_http_date(info.last_modified),
            name: info.name,
            size: info.size,
            md5_hex: info.md5_hex,
            etag: info.etag,
        }
    }
}

async fn index() -> Json<serde_json::Value> {
    Json(json!({
        "service": "fake-cos control API",
        "endpoints": [
            "GET /objects", "PUT /objects/{name}", "GET /objects/{name}",
            "DELETE /objects/{name}", "GET /objects/{name}/url?valid_secs=N",
            "GET /rules", "POST /rules", "DELETE /rules", "DELETE /rules/{id}",
            "GET /journal?since=SEQ", "POST /reset", "GET /clock", "POST /clock",
        ],
    }))
}

async fn unknown(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no endpoint {method} {}; GET / lists them",
        uri.path()
    ))
}

async fn list_objects(State(cos): State<Cos>) -> Json<Vec<ObjectView>> {
    Json(cos.list_objects().into_iter().map(Into::into).collect())
}

async fn object_info(State(cos): State<Cos>, Path(name): Path<String>) -> ApiResult<Response> {
    let info = cos
        .object_info(&name)
        .ok_or_else(|| ApiError::not_found(format!("no object {name:?}")))?;
    Ok(Json(ObjectView::from(info)).into_response())
}

async fn put_object(
    State(cos): State<Cos>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let info = cos
        .put_object(&name, body)
        .map_err(|e| ApiError::bad(format!("name: {e}")))?;
    Ok((StatusCode::CREATED, Json(ObjectView::from(info))).into_response())
}

async fn delete_object(State(cos): State<Cos>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    if cos.delete_object(&name) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no object {name:?}")))
    }
}

async fn object_url(
    State(cos): State<Cos>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<serde_json::Value>> {
    let secs = query_number(query.as_deref(), "valid_secs")?.unwrap_or(DEFAULT_URL_SECS);
    if cos.object_info(&name).is_none() {
        return Err(ApiError::not_found(format!("no object {name:?}")));
    }
    let url = cos
        .signed_url(&name, Duration::from_secs(secs))
        .map_err(|e| match e {
            CosError::ValidityTooLong { .. } => ApiError::bad(e.to_string()),
            e => ApiError::bad(format!("name: {e}")),
        })?;
    Ok(Json(json!({ "url": url })))
}

async fn list_rules(State(cos): State<Cos>) -> Response {
    Json(cos.rules()).into_response()
}

async fn add_rule(State(cos): State<Cos>, body: Bytes) -> ApiResult<Response> {
    let rule: FaultRule =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("rule: {e}")))?;
    let guard = cos
        .add_rule(rule)
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let id = guard.keep();
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

async fn clear_rules(State(cos): State<Cos>) -> StatusCode {
    cos.clear_rules();
    StatusCode::NO_CONTENT
}

async fn remove_rule(State(cos): State<Cos>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad(format!("id: {id:?} is not a rule number")))?;
    if cos.remove_rule(RuleId::new(id)) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no rule {id}")))
    }
}

async fn journal(State(cos): State<Cos>, RawQuery(query): RawQuery) -> ApiResult<Response> {
    let [since, limit] = query_numbers(query.as_deref(), ["since", "limit"])?;
    let limit = match limit {
        None => DEFAULT_JOURNAL_PAGE,
        Some(n) if (1..=MAX_JOURNAL_PAGE as u64).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::bad(format!(
                "limit: {n} is not between 1 and {MAX_JOURNAL_PAGE}"
            )));
        }
    };
    Ok(Json(cos.journal_page(since.unwrap_or(0), limit)).into_response())
}

async fn reset(State(cos): State<Cos>) -> StatusCode {
    cos.reset();
    StatusCode::NO_CONTENT
}

/// A clock change: exactly one of the fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    #[serde(default)]
    advance_secs: Option<u64>,
    #[serde(default)]
    offset_ms: Option<i64>,
}

fn clock_view(cos: &Cos) -> Json<serde_json::Value> {
    Json(json!({
        "offset_ms": cos.clock().offset_ms(),
        "now_unix": cos.clock().now_unix(),
    }))
}

async fn clock(State(cos): State<Cos>) -> Json<serde_json::Value> {
    clock_view(&cos)
}

async fn move_clock(State(cos): State<Cos>, body: Bytes) -> ApiResult<Json<serde_json::Value>> {
    let change: ClockChange =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("clock: {e}")))?;
    let max_ms = MAX_OFFSET.as_millis() as i64;
    match (change.advance_secs, change.offset_ms) {
        (Some(secs), None) if secs > MAX_OFFSET.as_secs() => {
            return Err(ApiError::bad(format!(
                "advance_secs: {secs} is more than {} (100 years)",
                MAX_OFFSET.as_secs()
            )));
        }
        (None, Some(ms)) if !(-max_ms..=max_ms).contains(&ms) => {
            return Err(ApiError::bad(format!(
                "offset_ms: {ms} is not between -{max_ms} and {max_ms} (100 years)"
            )));
        }
        (Some(secs), None) => cos.advance_clock(Duration::from_secs(secs)),
        (None, Some(ms)) => cos.clock().set_offset_ms(ms),
        _ => {
            return Err(ApiError::bad(
                "clock: give exactly one of advance_secs, offset_ms",
            ));
        }
    }
    Ok(clock_view(&cos))
}

/// The unsigned number `key=` of a query string; any other parameter is refused.
fn query_number(query: Option<&str>, key: &'static str) -> ApiResult<Option<u64>> {
    let [found] = query_numbers(query, [key])?;
    Ok(found)
}

/// The unsigned numbers `keys[i]=` of a query string; any other parameter is refused.
fn query_numbers<const N: usize>(
    query: Option<&str>,
    keys: [&'static str; N],
) -> ApiResult<[Option<u64>; N]> {
    let mut found = [None; N];
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(at) = keys.iter().position(|k| *k == name) else {
            let name: String = name.chars().take(64).collect();
            return Err(ApiError::bad(format!(
                "{name}: unknown query parameter (only {})",
                keys.join(", ")
            )));
        };
        let n = value.parse().map_err(|_| {
            let value: String = value.chars().take(64).collect();
            ApiError::bad(format!("{}: {value:?} is not an unsigned number", keys[at]))
        })?;
        found[at] = Some(n);
    }
    Ok(found)
}
