//! Accept loop and connections: the axum router served by hyper's HTTP/1 builder with
//! title-case headers (the C SDK looks for `Content-Length` byte for byte), never by
//! `axum::serve`, which would send them lower-case. With a TLS identity each connection is
//! wrapped in rustls on top of the fault-aware socket, so cuts and resets act the same way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::{Extension, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, debug_span, warn};

use crate::handler::{ConnCtx, handle};
use crate::io::{ConnCtl, FaultIo};
use crate::shared::Shared;

/// The router: every path goes to one handler, which validates names itself.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// Accepts connections until shutdown; each connection is its own task on the tracker.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let app = router(Arc::clone(&shared));
    loop {
        // Cancel-safe: `accept` holds no connection until it returns one.
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let span = debug_span!("cos_conn", %peer);
                let conn = serve_conn(stream, peer, Arc::clone(&shared), app.clone());
                shared.tracker.spawn(conn.instrument(span));
            }
            Err(error) => {
                warn!(%error, "fake COS accept failed");
                tokio::task::yield_now().await;
            }
        }
    }
    debug!("fake COS stopped accepting");
}

/// How long a TLS client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn serve_conn(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, app: Router) {
    if let Err(error) = stream.set_nodelay(true) {
        warn!(%error, "could not set TCP_NODELAY");
    }
    let ctl = Arc::new(ConnCtl::default());
    let io = FaultIo::new(stream, Arc::clone(&ctl));
    let ctx = ConnCtx { peer, ctl };
    let Some(config) = shared.plan.tls.clone() else {
        return serve_http(io, ctx, &shared, app).await;
    };
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(io));
    // Cancel-safe: dropping a half-done handshake only closes its socket.
    let accepted = tokio::select! {
        accepted = handshake => accepted,
        () = shared.shutdown.cancelled() => return,
    };
    match accepted {
        Ok(Ok(tls)) => serve_http(tls, ctx, &shared, app).await,
        Ok(Err(error)) => debug!(%error, "TLS handshake failed"),
        Err(_) => debug!("TLS handshake timed out"),
    }
}

async fn serve_http<I>(io: I, ctx: ConnCtx, shared: &Shared, app: Router)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app.layer(Extension(ctx)));
    let conn = http1::Builder::new()
        .title_case_headers(true)
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(io), service);
    // Cancel-safe: dropping the connection closes the socket, which is what shutdown means.
    tokio::select! {
        result = conn => if let Err(error) = result {
            debug!(%error, "connection ended with an error");
        },
        () = shared.shutdown.cancelled() => debug!("connection dropped by shutdown"),
    }
}
