//! One HTTP/1.1 GET per attempt with hyper's low-level client, so each wait has its own timeout.
//!
//! `https://` adds a rustls handshake over the same `TcpStream`, verified against the
//! configured CA; nothing else changes.

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tracing::debug;

use crate::download::plan::ResponseHead;

/// Where an image lives, parsed once before the first attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    https: bool,
    /// Host for DNS / socket address, without IPv6 brackets.
    host: String,
    port: u16,
    /// `Host` header: the URL's authority without user info.
    host_header: String,
    path_and_query: String,
    /// The URL without its query, for messages and logs (the query holds the signature).
    pub(crate) redacted: String,
}

impl Endpoint {
    /// Whether the URL is `https://`.
    pub(crate) fn is_https(&self) -> bool {
        self.https
    }

    /// `host:port` as dialled, for messages.
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Strips the query (and fragment) from a URL for messages; the signature never reaches logs.
pub(crate) fn redact(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or_default().to_owned()
}

/// Parses and checks an image URL: `http://host[:port]/path[?query]`, nothing else.
pub(crate) fn parse_url(url: &str) -> Result<Endpoint, &'static str> {
    let uri: Uri = url.parse().map_err(|_| "not a valid URL")?;
    let (https, default_port) = match uri.scheme_str() {
        Some("http") => (false, 80),
        Some("https") => (true, 443),
        _ => return Err("only http and https URLs are accepted"),
    };
    let authority = uri.authority().ok_or("no host")?;
    if authority.as_str().contains('@') {
        return Err("user info in URL");
    }
    let host = authority.host();
    if host.is_empty() {
        return Err("no host");
    }
    let port = authority.port_u16().unwrap_or(default_port);
    let host_header = match authority.port_u16() {
        Some(p) if p != default_port => format!("{host}:{p}"),
        _ => host.to_owned(),
    };
    let path_and_query = uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    Ok(Endpoint {
        https,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
        host_header,
        path_and_query,
        redacted: redact(url),
    })
}

/// An open HTTP/1.1 connection; the task driving it is aborted on drop.
pub(crate) struct Connection {
    sender: http1::SendRequest<Empty<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A failed connect: socket or HTTP handshake.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Socket(std::io::Error),
    Tls(std::io::Error),
    Handshake(hyper::Error),
}

/// Opens a TCP connection (TCP_NODELAY), the TLS session for `https://`, and performs the
/// HTTP/1 handshake.
pub(crate) async fn connect(
    endpoint: &Endpoint,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Connection, ConnectError> {
    let stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(ConnectError::Socket)?;
    stream.set_nodelay(true).map_err(ConnectError::Socket)?;
    match (endpoint.https, tls) {
        (true, Some(tls)) => {
            let name = ServerName::try_from(endpoint.host.clone()).map_err(|e| {
                ConnectError::Tls(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
            })?;
            let stream = TlsConnector::from(Arc::clone(tls))
                .connect(name, stream)
                .await
                .map_err(ConnectError::Tls)?;
            handshake(stream).await
        }
        (true, None) => Err(ConnectError::Tls(std::io::Error::other(
            "https URL but no CA is configured",
        ))),
        (false, _) => handshake(stream).await,
    }
}

async fn handshake<S>(stream: S) -> Result<Connection, ConnectError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(ConnectError::Handshake)?;
    let driver = tokio::spawn(async move {
        if let Err(error) = conn.await {
            debug!(%error, "http connection ended with an error");
        }
    });
    Ok(Connection { sender, driver })
}

impl Connection {
    /// Sends the GET; resolves when the response head has arrived.
    pub(crate) async fn get(
        &mut self,
        endpoint: &Endpoint,
        range: Option<&str>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        let mut request = Request::get(endpoint.path_and_query.as_str())
            .header(header::HOST, endpoint.host_header.as_str())
            .header(header::ACCEPT, "*/*")
            .header(header::ACCEPT_ENCODING, "identity")
            .header(header::CONNECTION, "close")
            .header(header::USER_AGENT, "otasim-gateway");
        if let Some(range) = range {
            request = request.header(header::RANGE, range);
        }
        let request = request
            .body(Empty::new())
            .expect("method, path and headers are valid");
        self.sender.send_request(request).await
    }
}

fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The head fields the state machine judges. An unparsable `Content-Length` is reported as
/// `u64::MAX`, which never matches a range, rather than as "absent".
pub(crate) fn head_of(response: &Response<Incoming>) -> ResponseHead {
    let headers = response.headers();
    ResponseHead {
        status: response.status().as_u16(),
        content_length: text(headers, header::CONTENT_LENGTH)
            .map(|v| v.trim().parse::<u64>().unwrap_or(u64::MAX)),
        content_range: text(headers, header::CONTENT_RANGE),
        etag: text(headers, header::ETAG),
        content_encoding: text(headers, header::CONTENT_ENCODING),
    }
}
