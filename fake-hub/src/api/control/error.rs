//! API errors: a status and `{"error": "...", "field": "..."}`.

use crate::{HubError, StoreError};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Why the API refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    error: String,
    field: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// 400: the request is malformed or names something invalid.
    pub fn bad_request(field: Option<&str>, error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, field, error)
    }

    /// 404: the thing asked for does not exist.
    pub fn not_found(field: Option<&str>, error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, field, error)
    }

    /// 409: the request conflicts with what the hub holds.
    pub fn conflict(field: Option<&str>, error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, field, error)
    }

    /// 413 when `status` says the body was too large, 400 otherwise.
    pub(crate) fn too_large_or_bad(status: StatusCode, error: impl Into<String>) -> Self {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, None, error)
        } else {
            ApiError::bad_request(None, error)
        }
    }

    fn new(status: StatusCode, field: Option<&str>, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            field: field.map(str::to_owned),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: &self.error,
            field: self.field.as_deref(),
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        let text = e.to_string();
        match e {
            HubError::UnknownDevice(_) => ApiError::bad_request(Some("devices"), text),
            HubError::UnknownFirmware { .. } => ApiError::bad_request(Some("version"), text),
            HubError::NoTargets => ApiError::conflict(Some("method"), text),
            HubError::Invalid { field, .. } => ApiError::bad_request(Some(field), text),
            HubError::NoTls => ApiError::conflict(None, text),
            HubError::FirmwareConflict { .. } => ApiError::conflict(Some("replace"), text),
            HubError::Store(StoreError::InvalidRule { .. }) => {
                ApiError::bad_request(Some("rule"), text)
            }
            HubError::Store(StoreError::InvalidName { .. }) => {
                ApiError::bad_request(Some("object"), text)
            }
            HubError::Store(StoreError::Unsupported(_)) => {
                ApiError::new(StatusCode::NOT_IMPLEMENTED, None, text)
            }
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, None, text),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        let mut error = ApiError::too_large_or_bad(e.status(), e.body_text());
        error.field = json_error_field(&e.body_text());
        error
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        let field = json_error_field(&e.body_text());
        ApiError::bad_request(field.as_deref(), e.body_text())
    }
}

/// The field serde names in an error text (`unknown field `x``, `missing field `x``, or a
/// path before the message, `x.y: ...`), if any.
fn json_error_field(text: &str) -> Option<String> {
    for marker in ["unknown field `", "missing field `"] {
        if let Some(rest) = text.split(marker).nth(1) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    let rest = ["target type: ", "query string: "]
        .iter()
        .find_map(|m| text.split(m).nth(1))?;
    let (path, _) = rest.split_once(": ")?;
    (!path.is_empty() && !path.contains(' ')).then(|| path.to_owned())
}

/// The fallback for unknown routes.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found(None, "no such route")
}

#[cfg(test)]
mod tests {
    use super::json_error_field;

    #[test]
    fn field_is_taken_from_serde_messages() {
        assert_eq!(
            json_error_field("Failed to deserialize the JSON body into the target type: options.retries: invalid type: string \"x\", expected u32 at line 1 column 9").as_deref(),
            Some("options.retries")
        );
        assert_eq!(
            json_error_field(
                "Failed to parse the request body as JSON: key must be a string at line 1 column 2"
            ),
            None
        );
        assert_eq!(
            json_error_field("Failed to deserialize the JSON body into the target type: unknown field `nope`, expected one of `a`").as_deref(),
            Some("nope")
        );
        assert_eq!(
            json_error_field("missing field `version` at line 1 column 2").as_deref(),
            Some("version")
        );
    }
}
