//! The control API over HTTP and JSON: what the Tencent console and its cloud API do for a
//! real Hub (registry, topology, firmware, update tasks), plus what only a fake offers (faults,
//! the transcript, reset, a live event stream).
//!
//! Every error is JSON `{"error": "...", "field": "..."}` with 400 (bad input), 404 (unknown
//! thing) or 409 (conflict); a refused request changes nothing. Routes, all under `/api`:
//!
//! | route | what |
//! |---|---|
//! | `GET /devices`, `GET /devices/{product_id}/{device_name}` | devices with their state |
//! | `POST /gateways` `{product_id, device_name, secret}` | registers a gateway |
//! | `POST /subdevices` `{product_id, device_name, secret, gateway?, version?}` | registers a subdevice, bound to `gateway` (`"PID/name"`) if given |
//! | `POST /devices/{product_id}/{device_name}/enabled` `{enabled}` | enables or disables a device |
//! | `POST /devices/{product_id}/{device_name}/cert` | a client certificate and key for mutual TLS (`GET /tls/ca`: the CA's PEM) |
//! | `POST /clients/{client_id}/kick` | disconnects a client |
//! | `POST /topology/bind`, `POST /topology/unbind` `{gateway, subdevice}`; `POST /topology/unbind_all` `{gateway}` | the console changes bindings (the Hub sends `change` / `unbind_all`) |
//! | `POST /firmware?product_id=&version=&replace=` (raw body), `POST /firmware/form` (multipart `product_id`, `version`, `file`, `replace`) | uploads firmware; answers size and MD5; 409 if the version exists with other bytes and `replace` is not `true` |
//! | `GET /firmware`, `DELETE /firmware/{product_id}/{version}` | uploaded firmware; deletes a version (its URLs then get 404) |
//! | `POST /tasks` `{product_id, version, method, devices?, from_versions?, options?}` ([`PushMethod`](crate::PushMethod), [`TaskOptions`](crate::TaskOptions)) | creates an update task; answers `{task_id}` |
//! | `GET /tasks`, `GET /tasks/{id}`, `POST /tasks/{id}/cancel` | tasks with per-device state and summary |
//! | `GET /faults`, `POST /faults` (a [`HubFaultRule`](crate::HubFaultRule)), `DELETE /faults/{id}`, `DELETE /faults`, `POST /faults/release` | misbehaviour on cue |
//! | `GET /cos/faults`, `POST /cos/faults` (the COS's rule format, as `otasim cos`), `DELETE /cos/faults/{id}`, `DELETE /cos/faults` | COS download faults |
//! | `GET /cos/journal?since=SEQ` | the COS request journal |
//! | `GET /clock`, `POST /clock` `{advance_ms}` or `{offset_ms}` | the one clock of hub and COS (URL expiry too) |
//! | `GET /health` | `{"status": "ok", ...}` |
//! | `GET /openapi.json` | this API as an OpenAPI 3.1 document |
//! | `POST /strict` `{on}` | the C SDK's limits as warnings |
//! | `GET /transcript?since=SEQ&device=PID/name` | the transcript, each entry with `device`, `about`, `who`, `summary` and `code` worked out for display |
//! | `GET /codes` | the meaning of every OTA and gateway result code, and the final task states |
//! | `POST /reset` | removes faults, ends holds, cancels unfinished tasks |
//! | `GET /events` | server-sent events: `transcript` entries and `device` state changes, live |
//! | `POST /cluster/v1/batch`, `POST /cluster/v1/hold` | an edge node's hook calls, in order (see [`crate::cluster`]) |

mod actions;
mod cluster;
mod cos;
mod error;
mod events;
mod guard;
mod openapi;
mod proxy;
mod registry;
mod tasks;
mod view;

pub use error::ApiError;

use crate::Hub;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The largest firmware image the API accepts in one upload.
pub const MAX_FIRMWARE_BYTES: usize = 256 << 20;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) hub: Arc<Hub>,
    /// Cancelled on shutdown, so that endless event streams end too.
    pub(crate) stop: CancellationToken,
    /// One permit per open event stream (see [`events::MAX_STREAMS`]).
    pub(crate) streams: Arc<tokio::sync::Semaphore>,
}

pub use guard::ApiAccess;
pub use proxy::serve_proxy;

/// How many `/api/events` streams may be open at once (503 beyond).
pub const MAX_EVENT_STREAMS: usize = events::MAX_STREAMS;

/// The control API's routes over `hub`, refusing cross-origin writes and foreign Host names
/// (see [`ApiAccess`]; no token).
pub fn router(hub: Arc<Hub>) -> Router {
    guarded(
        routes(ApiState {
            hub,
            stop: CancellationToken::new(),
            streams: events::stream_permits(),
        }),
        ApiAccess::default(),
    )
}

/// `app` behind the access rules.
fn guarded(app: Router, access: ApiAccess) -> Router {
    app.layer(axum::middleware::from_fn_with_state(
        Arc::new(access),
        guard::guard,
    ))
}

fn routes(state: ApiState) -> Router {
    let firmware = Router::new()
        .route(
            "/api/firmware",
            post(registry::upload_raw).get(registry::list_firmware),
        )
        .route("/api/firmware/form", post(registry::upload_form))
        .route(
            "/api/firmware/{product_id}/{version}",
            delete(cos::delete_firmware),
        )
        .layer(DefaultBodyLimit::max(MAX_FIRMWARE_BYTES));
    Router::new()
        .route("/api/devices", get(registry::list_devices))
        .route(
            "/api/devices/{product_id}/{device_name}",
            get(registry::get_device),
        )
        .route("/api/gateways", post(registry::add_gateway))
        .route("/api/subdevices", post(registry::add_subdevice))
        .route("/api/tasks", post(tasks::create).get(tasks::list))
        .route(
            "/api/devices/{product_id}/{device_name}/enabled",
            post(actions::set_enabled),
        )
        .route(
            "/api/devices/{product_id}/{device_name}/cert",
            post(actions::issue_cert),
        )
        .route("/api/clients/{client_id}/kick", post(actions::kick))
        .route("/api/tls/ca", get(actions::ca_pem))
        .route("/api/topology/bind", post(actions::bind))
        .route("/api/topology/unbind", post(actions::unbind))
        .route("/api/topology/unbind_all", post(actions::unbind_all))
        .route("/api/tasks/{id}", get(tasks::get_one))
        .route("/api/tasks/{id}/cancel", post(tasks::cancel))
        .route(
            "/api/faults",
            get(actions::list_faults)
                .post(actions::add_fault)
                .delete(actions::clear_faults),
        )
        .route("/api/faults/release", post(actions::release_held))
        .route("/api/faults/{id}", delete(actions::remove_fault))
        .route(
            "/api/clock",
            get(actions::get_clock).post(actions::set_clock),
        )
        .route(
            "/api/cos/faults",
            get(cos::list_faults)
                .post(cos::add_fault)
                .delete(cos::clear_faults),
        )
        .route("/api/cos/faults/{id}", delete(cos::remove_fault))
        .route("/api/cos/journal", get(cos::journal))
        .route("/api/health", get(cos::health))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/strict", post(actions::set_strict))
        .route("/api/reset", post(actions::reset))
        .route("/api/transcript", get(tasks::transcript))
        .route("/api/codes", get(view::codes))
        .route("/api/events", get(events::stream))
        .merge(firmware)
        .merge(
            Router::new()
                .route(crate::cluster::BATCH_PATH, post(cluster::batch))
                .route(crate::cluster::HOLD_PATH, post(cluster::hold))
                .layer(DefaultBodyLimit::max(crate::cluster::MAX_BATCH_BYTES)),
        )
        .fallback(error::not_found)
        .with_state(state)
}

/// A running control API server.
pub struct ApiServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
    streams: Arc<tokio::sync::Semaphore>,
}

/// Serves the control API for `hub` on an already-bound `listener` (TCP_NODELAY on every
/// connection).
pub fn serve(listener: TcpListener, hub: Arc<Hub>) -> std::io::Result<ApiServer> {
    serve_with(listener, hub, Router::new())
}

/// Serves the control API with `extra` routes (the web console) merged beside it; the API's
/// stop token still ends open event streams, so a browser tab cannot hold up shutdown.
pub fn serve_with(
    listener: TcpListener,
    hub: Arc<Hub>,
    extra: Router,
) -> std::io::Result<ApiServer> {
    serve_guarded(listener, hub, extra, ApiAccess::default())
}

/// [`serve_with`] under `access` (a bearer token, more host names). Fails without a token on a
/// non-loopback address.
pub fn serve_guarded(
    listener: TcpListener,
    hub: Arc<Hub>,
    extra: Router,
    access: ApiAccess,
) -> std::io::Result<ApiServer> {
    let addr = listener.local_addr()?;
    access.check_bind(addr)?;
    let stop = CancellationToken::new();
    let streams = events::stream_permits();
    let app = routes(ApiState {
        hub,
        stop: stop.clone(),
        streams: streams.clone(),
    })
    .merge(extra);
    Ok(spawn_server(
        listener,
        guarded(app, access),
        addr,
        stop,
        streams,
    ))
}

/// Serves `app` on `listener` (TCP_NODELAY on every connection) until `stop`.
fn spawn_server(
    listener: TcpListener,
    app: Router,
    addr: SocketAddr,
    stop: CancellationToken,
    streams: Arc<tokio::sync::Semaphore>,
) -> ApiServer {
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on an API connection");
        }
    });
    let signal = stop.clone().cancelled_owned();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
        {
            tracing::warn!(error = %e, "control API server stopped");
        }
    });
    ApiServer {
        addr,
        stop,
        task,
        streams,
    }
}

impl ApiServer {
    /// The address the API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many `/api/events` streams are being served.
    pub fn open_event_streams(&self) -> usize {
        MAX_EVENT_STREAMS.saturating_sub(self.streams.available_permits())
    }

    /// Stops accepting, ends event streams and waits for open requests to finish.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
