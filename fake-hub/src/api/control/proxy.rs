//! An edge node's control API: the owner's, forwarded, so that the API and the console on any
//! node of a cluster show the whole fleet.
//!
//! The edge applies the same access rules as the owner (Host names, cross-origin writes, the
//! token) to what reaches it, then forwards the request to the owner under the owner's own Host
//! and token, without the browser's Origin (which names the edge). Responses stream back, so
//! `/api/events` works through an edge too.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{ApiAccess, ApiServer, guarded, spawn_server};

/// Where an edge forwards to.
#[derive(Debug, Clone)]
struct Upstream {
    addr: SocketAddr,
    token: Option<String>,
}

/// Serves, on `listener`, `extra` (the console) and every other request forwarded to the
/// owner's control API at `owner`, under `access`.
pub fn serve_proxy(
    listener: TcpListener,
    owner: SocketAddr,
    owner_token: Option<String>,
    extra: Router,
    access: ApiAccess,
) -> std::io::Result<ApiServer> {
    let addr = listener.local_addr()?;
    access.check_bind(addr)?;
    let stop = CancellationToken::new();
    let upstream = Arc::new(Upstream {
        addr: owner,
        token: owner_token,
    });
    let app = extra.fallback(move |request: Request| forward(upstream.clone(), request));
    Ok(spawn_server(
        listener,
        guarded(app, access),
        addr,
        stop,
        super::events::stream_permits(),
    ))
}

async fn forward(upstream: Arc<Upstream>, request: Request) -> Response {
    match try_forward(&upstream, request).await {
        Ok(response) => response,
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            axum::Json(serde_json::json!({
                "error": format!("the owner node's control API at {}: {e}", upstream.addr)
            })),
        )
            .into_response(),
    }
}

async fn try_forward(upstream: &Upstream, request: Request) -> Result<Response, String> {
    let (mut parts, body) = request.into_parts();
    let host = HeaderValue::from_str(&upstream.addr.to_string()).map_err(|e| e.to_string())?;
    parts.headers.insert(header::HOST, host);
    // The edge checked the origin; the owner would see the edge's name and refuse it.
    parts.headers.remove(header::ORIGIN);
    parts.headers.remove(header::REFERER);
    parts.headers.remove(header::AUTHORIZATION);
    if let Some(token) = &upstream.token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| e.to_string())?;
        parts.headers.insert(header::AUTHORIZATION, value);
    }
    let tcp = TcpStream::connect(upstream.addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, connection) = http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(hyper::Request::from_parts(parts, body))
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.map(Body::new))
}
