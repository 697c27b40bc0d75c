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
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_util::task::TaskTracker;
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
    // `port_u16` reads 99999 as "no port", which would dial the default one: read it here.
    let text = authority.as_str();
    let port_text = match text.rfind(']') {
        Some(end) => text[end + 1..].strip_prefix(':'),
        None => text.rsplit_once(':').map(|(_, p)| p),
    };
    let port = match port_text {
        None | Some("") => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err("port out of range (1-65535)"),
            Ok(n) => n,
        },
    };
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

impl Endpoint {
    /// Where a redirect's `Location` points: an absolute `http(s)://` URL, or a path (with
    /// query) on the same host.
    pub(crate) fn redirect(&self, location: &str) -> Result<Endpoint, &'static str> {
        let location = location.trim();
        if location.starts_with('/') && !location.starts_with("//") {
            let scheme = if self.https { "https" } else { "http" };
            let authority = if self.host.contains(':') {
                format!("[{}]", self.host)
            } else {
                self.host.clone()
            };
            return parse_url(&format!("{scheme}://{authority}:{}{location}", self.port));
        }
        parse_url(location)
    }
}

/// The `Location` of a redirect response (301, 302, 303, 307, 308), `None` for any other.
pub(crate) fn redirect_location(response: &Response<Incoming>) -> Option<String> {
    if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    Some(text(response.headers(), header::LOCATION).unwrap_or_default())
}

/// A `Retry-After` the server asked for: delay-seconds, or an HTTP date (relative to now).
pub(crate) fn retry_after(response: &Response<Incoming>) -> Option<Duration> {
    parse_retry_after(
        &text(response.headers(), header::RETRY_AFTER)?,
        SystemTime::now(),
    )
}

pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings saturate rather than fail: the cap bounds them anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// The most of an error body read for its COS `<Code>`: COS error documents are a few hundred
/// bytes, and a refused download must not read a large or endless body.
pub(crate) const MAX_ERROR_BODY: usize = 4096;

/// The `<Code>` of a COS XML error body (`SignatureDoesNotMatch`, `AccessDenied`, ...): a
/// letter then up to 63 letters and digits; `None` for any other body.
pub(crate) fn cos_error_code(body: &[u8]) -> Option<String> {
    let body = &body[..body.len().min(MAX_ERROR_BODY)];
    let text = String::from_utf8_lossy(body);
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    let code = text[start..start + len].trim();
    let well_formed = code.len() <= 64
        && code.starts_with(|c: char| c.is_ascii_alphabetic())
        && code.chars().all(|c| c.is_ascii_alphanumeric());
    well_formed.then(|| code.to_owned())
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
    tasks: &TaskTracker,
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
            handshake(stream, tasks).await
        }
        (true, None) => Err(ConnectError::Tls(std::io::Error::other(
            "https URL but no CA is configured",
        ))),
        (false, _) => handshake(stream, tasks).await,
    }
}

async fn handshake<S>(stream: S, tasks: &TaskTracker) -> Result<Connection, ConnectError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(ConnectError::Handshake)?;
    let driver = tasks.spawn(async move {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cos_error_code_reads_the_code_of_a_cos_error_body_only() {
        let cos = b"<?xml version='1.0' encoding='utf-8' ?>\n<Error>\n\t<Code>SignatureDoesNotMatch</Code>\n\t<Message>The Signature you specified is invalid.</Message>\n</Error>";
        assert_eq!(
            cos_error_code(cos).as_deref(),
            Some("SignatureDoesNotMatch")
        );
        for bad in [
            &b"<Error><Code>403</Code></Error>"[..],
            b"<Code>a b</Code>",
            b"<Code>AccessDenied",
            b"",
            b"<Code></Code>",
        ] {
            assert_eq!(
                cos_error_code(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest! {
        #[test]
        fn cos_error_code_never_panics_and_returns_a_short_word(
            body in proptest::collection::vec(any::<u8>(), 0..6000),
            at in 0usize..6000,
        ) {
            let mut body = body;
            let at = at.min(body.len());
            body.splice(at..at, b"<Code>".iter().copied());
            if let Some(code) = cos_error_code(&body) {
                prop_assert!(code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric()));
            }
        }
    }

    #[test]
    fn ports_out_of_range_are_refused_not_defaulted() {
        assert_eq!(parse_url("http://h:8080/x").map(|e| e.port), Ok(8080));
        assert_eq!(parse_url("http://h/x").map(|e| e.port), Ok(80));
        assert_eq!(parse_url("https://h/x").map(|e| e.port), Ok(443));
        for bad in [
            "http://127.0.0.1:99999/x",
            "http://h:0/x",
            "http://h:65536/x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redirects_resolve_absolute_urls_and_paths_on_the_same_host() {
        let from = parse_url("http://127.0.0.1:9000/a?sign=1").expect("valid");
        let path = from.redirect("/b?sign=2").expect("path");
        assert_eq!(
            (path.authority(), path.path_and_query.as_str()),
            ("127.0.0.1:9000".into(), "/b?sign=2")
        );
        let abs = from.redirect("http://other:81/c").expect("absolute");
        assert_eq!(abs.authority(), "other:81");
        for bad in [
            "",
            "//evil/x",
            "ftp://h/x",
            "relative/x",
            "http://h:99999/x",
        ] {
            assert!(from.redirect(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after("6", now), Some(Duration::from_secs(6)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in ["", "-1", "1.5", "soon"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn retry_after_parsing_never_panics(value in ".{0,64}") {
            let _ = parse_retry_after(&value, SystemTime::now());
        }

        #[test]
        fn url_parsing_never_panics_and_keeps_ports_in_range(url in "(http|https)://[a-z0-9.:\\[\\]]{0,20}(/[ -~]{0,20})?") {
            if let Ok(e) = parse_url(&url) {
                prop_assert!(e.port >= 1);
                let _ = e.redirect(&url);
            }
        }
    }
}
