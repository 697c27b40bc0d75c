//! The owner's side of the cluster stream: edge nodes' hook calls, applied in order.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use std::time::Duration;

use super::{ApiError, ApiState};
use crate::cluster::{Batch, Hold};

/// The longest the owner holds an edge's acknowledgement (a fault's delay, or until released).
const HOLD_LIMIT: Duration = Duration::from_secs(600);

/// `POST /api/cluster/v1/batch`: one answer per call, in order; 400 applies nothing.
pub(super) async fn batch(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<Json<Vec<crate::cluster::Answer>>, ApiError> {
    let batch: Batch = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(None, format!("not a cluster batch: {e}")))?;
    state
        .hub
        .owner()
        .apply(batch)
        .map(Json)
        .map_err(|e| ApiError::bad_request(None, e))
}

/// `POST /api/cluster/v1/hold`: answers once the owner releases the held acknowledgement.
pub(super) async fn hold(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let hold: Hold = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(None, format!("not a hold: {e}")))?;
    if let Some(held) = state.hub.owner().hold(hold) {
        tokio::select! {
            () = held => {}
            () = tokio::time::sleep(HOLD_LIMIT) => {}
            () = state.stop.cancelled() => {}
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
