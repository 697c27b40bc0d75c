//! Tencent Cloud API 3.0 for IoT Hub (service `iotcloud`, version 2021-04-08), served beside
//! the control API so that a team's own backend, written on the official `tencentcloud-sdk-*`
//! packages, runs against otasim unmodified: point `HttpProfile(endpoint=..., scheme="http")`
//! at the listener.
//!
//! Every request is `POST /` with a JSON body and the `X-TC-Action`, `X-TC-Version`,
//! `X-TC-Timestamp` (and `X-TC-Region`) headers, signed with TC3-HMAC-SHA256 by one of the
//! declared SecretId/SecretKey pairs ([`auth`]). Every answer is HTTP 200 with
//! `{"Response": {..., "RequestId"}}`, or `{"Response": {"Error": {"Code", "Message"},
//! "RequestId"}}` with the API's own codes ([`error`]). The actions act on the hub's one store:
//! a task made here is the console's and the control API's too.
//!
//! | family | actions |
//! |---|---|
//! | firmware ([`firmware`]) | `GetCOSURL`, `UploadFirmware`, `ListFirmwares`, `DescribeFirmware`, `EditFirmware`, `GetAllVersion` |
//! | updates ([`tasks`]) | `BatchUpdateFirmware`, `DescribeFirmwareTasks`, `DescribeFirmwareTask`, `DescribeFirmwareTaskDevices`, `DescribeFirmwareTaskStatistics`, `DescribeFirmwareTaskDistribution`, `CancelDeviceFirmwareTask`, `RetryDeviceFirmwareTask`, `UpdateOtaTaskStatus` |
//! | devices ([`devices`]) | `CreateDevice`, `DescribeDevice`, `DescribeDevices`, `DeleteDevice`, `UpdateDevicesEnableState`, `BindDevices`, `UnbindDevices`, `DescribeGatewayBindDevices` |
//! | messages ([`messages`]) | `PublishMessage` |
//!
//! Any other action of the SDK's `IotcloudClient` answers `UnsupportedOperation`; a name the API
//! does not have answers `InvalidAction`.

mod actions;
pub mod auth;
mod devices;
pub mod error;
mod firmware;
mod glue;
mod messages;
mod params;
mod request;
mod tasks;

pub use error::{CloudError, Code};

use crate::Hub;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use request::Call;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The API version served.
pub const VERSION: &str = "2021-04-08";

/// The SecretId of the pair `otasim hub` accepts when the fleet declares none.
pub const DEFAULT_SECRET_ID: &str = "AKIDotasimDefaultSecretId0000000000";
/// The SecretKey of the default pair.
pub const DEFAULT_SECRET_KEY: &str = "otasimDefaultSecretKey0000000000";

/// SecretId/SecretKey pairs the API accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudKeys(BTreeMap<String, String>);

impl CloudKeys {
    /// The default pair alone.
    pub fn default_pair() -> Self {
        let mut keys = CloudKeys::default();
        keys.add(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY);
        keys
    }

    /// Accepts `secret_id` signed with `secret_key`.
    pub fn add(&mut self, secret_id: &str, secret_key: &str) {
        self.0.insert(secret_id.to_owned(), secret_key.to_owned());
    }

    /// Whether no pair is declared.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Per-firmware details the hub's registry does not keep (name, description, user data, time).
#[derive(Debug, Clone, Default)]
pub(crate) struct FirmwareMeta {
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) user_defined: Option<String>,
    pub(crate) created_unix: Option<i64>,
}

/// What every call shares.
pub(crate) struct CloudState {
    pub(crate) hub: Arc<Hub>,
    keys: CloudKeys,
    pub(crate) firmware_meta: Mutex<BTreeMap<(String, String), FirmwareMeta>>,
    requests: AtomicU64,
}

impl CloudState {
    fn request_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        format!("00000000-0000-4000-8000-{n:012x}")
    }

    pub(crate) fn meta(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), FirmwareMeta>> {
        self.firmware_meta
            .lock()
            .expect("firmware meta lock: no code panics while holding it")
    }
}

/// Answers one call: checks it, verifies its signature, runs its action.
fn answer(state: &CloudState, call: Result<Call, CloudError>) -> Result<Value, CloudError> {
    let call = call?;
    let now = state.hub.now_unix_ms().div_euclid(1000);
    auth::verify(&call, &state.keys.0, now)?;
    if call.version != VERSION {
        return Err(CloudError::new(
            Code::NoSuchVersion,
            format!(
                "the API version {:?} of iotcloud is not served; use {VERSION}",
                call.version
            ),
        ));
    }
    let params = call.params()?;
    actions::run(state, &call.action, params)
}

fn envelope(request_id: String, result: Result<Value, CloudError>) -> Value {
    let mut body = match result {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => serde_json::Map::new(),
        Err(e) => {
            let mut m = serde_json::Map::new();
            m.insert(
                "Error".into(),
                json!({"Code": e.code.as_str(), "Message": e.message}),
            );
            m
        }
    };
    body.insert("RequestId".into(), Value::String(request_id));
    json!({ "Response": body })
}

async fn handle(State(state): State<Arc<CloudState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let request_id = state.request_id();
    let call = match axum::body::to_bytes(body, request::MAX_BODY_BYTES).await {
        Ok(bytes) => Call::parse(
            parts.method.as_str(),
            parts.uri.path(),
            parts.uri.query().unwrap_or(""),
            parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_bytes())),
            bytes.to_vec(),
        ),
        Err(_) => Err(CloudError::new(
            Code::RequestSizeLimitExceeded,
            format!("the request body exceeds {} bytes", request::MAX_BODY_BYTES),
        )),
    };
    let result = answer(&state, call);
    if let Err(e) = &result {
        tracing::debug!(code = e.code.as_str(), message = %e.message, "cloud API call refused");
    }
    axum::Json(envelope(request_id, result)).into_response()
}

/// The Cloud API over `hub`, accepting `keys`: one handler for every path and method.
pub fn router(hub: Arc<Hub>, keys: CloudKeys) -> Router {
    let state = Arc::new(CloudState {
        hub,
        keys,
        firmware_meta: Mutex::default(),
        requests: AtomicU64::new(0),
    });
    Router::new().fallback(handle).with_state(state)
}

/// A running Cloud API server.
pub struct CloudServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Serves the Cloud API for `hub` on an already-bound `listener`.
pub fn serve(
    listener: TcpListener,
    hub: Arc<Hub>,
    keys: CloudKeys,
) -> std::io::Result<CloudServer> {
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let app = router(hub, keys);
    let signal = stop.clone().cancelled_owned();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
        {
            tracing::warn!(error = %e, "cloud API server stopped");
        }
    });
    Ok(CloudServer { addr, stop, task })
}

impl CloudServer {
    /// The address the API listens on (the SDK's `HttpProfile.endpoint`).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for open requests to finish.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
