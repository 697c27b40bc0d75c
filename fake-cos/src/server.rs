//! Accept loops and connections: axum routers served by hyper's HTTP/1 builder with
//! title-case headers (the C SDK looks for `Content-Length` byte for byte), never by
//! `axum::serve`, which would send them lower-case and has no header deadline. A plain
//! firmware connection starts in [`sendfile`]'s loop, which sends untouched bodies without
//! copying them through the process and hands everything else to hyper. With a TLS identity
//! each firmware connection is wrapped in rustls on top of the fault-aware socket, so cuts and
//! resets act the same way.
//!
//! Connection hygiene, per listener: a client must finish its request head within the header
//! deadline (an idle or trickling socket is closed, slowloris included), and past the
//! connection cap new connections are closed as soon as they are accepted, so a flood of one
//! port holds a bounded number of descriptors and the other listeners keep answering.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::{Extension, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, debug_span, warn};

use crate::handler::{ConnCtx, handle};
use crate::io::{ConnCtl, FaultIo};
use crate::sendfile;
use crate::shared::Shared;

/// The router: every path goes to one handler, which validates names itself.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// What one listener allows its clients.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// How long a client may take to send a request head (from connect, or from the end of
    /// the previous response).
    pub(crate) header_timeout: Duration,
    /// Connections served at once; more are closed on accept.
    pub(crate) max_connections: usize,
}

/// Hands out one permit per connection up to the cap.
#[derive(Debug, Clone)]
struct Gate {
    permits: Arc<Semaphore>,
    listener: &'static str,
}

impl Gate {
    fn new(max: usize, listener: &'static str) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            listener,
        }
    }

    /// A permit, or `None` (and the caller drops the socket) when the cap is reached.
    fn admit(&self, peer: SocketAddr) -> Option<OwnedSemaphorePermit> {
        let permit = Arc::clone(&self.permits).try_acquire_owned().ok();
        if permit.is_none() {
            debug!(%peer, listener = self.listener, "connection cap reached, closing");
        }
        permit
    }
}

/// Accepts firmware connections until shutdown; each is its own task on the tracker.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let tls = shared.plan.tls.clone();
    accept_with(listener, shared, tls).await;
}

/// [`accept_loop`] with HTTPS by `tls` (or plain HTTP), e.g. for an extra HTTPS listener.
pub(crate) async fn accept_with(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let app = router(Arc::clone(&shared));
    let limits = shared.plan.limits;
    let gate = Gate::new(limits.max_connections, "firmware");
    loop {
        // Cancel-safe: `accept` holds no connection until it returns one.
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(permit) = gate.admit(peer) else {
                    continue;
                };
                let span = debug_span!("cos_conn", %peer);
                let conn = serve_conn(stream, peer, Arc::clone(&shared), app.clone(), tls.clone());
                shared.tracker.spawn(
                    async move {
                        conn.await;
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
            Err(error) => accept_failed(error).await,
        }
    }
    debug!("fake COS stopped accepting");
}

/// Serves `app` (the control API) on `listener` with the same limits, until `shutdown`.
pub(crate) async fn serve_router(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let gate = Gate::new(limits.max_connections, "control API");
    loop {
        // Cancel-safe: `accept` holds no connection until it returns one.
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(permit) = gate.admit(peer) else {
                    continue;
                };
                let service = TowerToHyperService::new(app.clone());
                let conn = serve_http(stream, service, limits, shutdown.clone());
                tracker.spawn(
                    async move {
                        conn.await;
                        drop(permit);
                    }
                    .instrument(debug_span!("cos_admin_conn", %peer)),
                );
            }
            Err(error) => accept_failed(error).await,
        }
    }
}

/// An accept error (e.g. out of descriptors) is logged; the loop goes on after a pause, so it
/// neither spins nor gives up while connections close.
async fn accept_failed(error: std::io::Error) {
    warn!(%error, "fake COS accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// How long a TLS client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn serve_conn(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    if let Err(error) = stream.set_nodelay(true) {
        warn!(%error, "could not set TCP_NODELAY");
    }
    let Some(config) = tls else {
        return sendfile::serve(stream, peer, shared, app).await;
    };
    let ctl = Arc::new(ConnCtl::default());
    let io = FaultIo::new(stream, Arc::clone(&ctl));
    let ctx = ConnCtx::new(peer, ctl);
    let service = TowerToHyperService::new(app.layer(Extension(ctx)));
    let (limits, shutdown) = (shared.plan.limits, shared.shutdown.clone());
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(io));
    // Cancel-safe: dropping a half-done handshake only closes its socket.
    let accepted = tokio::select! {
        accepted = handshake => accepted,
        () = shared.shutdown.cancelled() => return,
    };
    match accepted {
        Ok(Ok(tls)) => serve_http(tls, service, limits, shutdown).await,
        Ok(Err(error)) => debug!(%error, "TLS handshake failed"),
        Err(_) => debug!("TLS handshake timed out"),
    }
}

pub(crate) async fn serve_http<I>(
    io: I,
    service: TowerToHyperService<Router>,
    limits: Limits,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = http1::Builder::new()
        .title_case_headers(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(io), service);
    // Cancel-safe: dropping the connection closes the socket, which is what shutdown means.
    tokio::select! {
        result = conn => if let Err(error) = result {
            debug!(%error, "connection ended with an error");
        },
        () = shutdown.cancelled() => debug!("connection dropped by shutdown"),
    }
}
