//! Shared helpers: a raw-socket HTTP/1.1 client (so tests see the exact bytes on the wire) and
//! a fake COS holding one firmware image.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use fake_cos::{Cos, CosConfig, ObjectInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The seed demo's firmware size.
pub(crate) const FW_SIZE: usize = 29_972;
/// The object name the tests use.
pub(crate) const FW_NAME: &str = "100003908905_E69UADXUYY_V100R0001";
/// Upper bound for any wait in these tests.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// Deterministic bytes that differ at every offset modulo 251.
pub(crate) fn firmware(size: usize) -> Bytes {
    (0..size)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into()
}

/// A fake COS with the firmware stored, and a signed path for it.
pub(crate) struct Fixture {
    pub(crate) cos: Cos,
    pub(crate) info: ObjectInfo,
    pub(crate) bytes: Bytes,
    /// `/{name}?sign=..&t=..`, valid for an hour.
    pub(crate) target: String,
}

pub(crate) async fn fixture_sized(size: usize) -> Fixture {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let cos = fake_cos::start(listener, CosConfig::default())
        .await
        .expect("start fake COS");
    let bytes = firmware(size);
    let info = cos.put_object(FW_NAME, bytes.clone()).expect("valid name");
    let url = cos
        .signed_url(FW_NAME, Duration::from_secs(3600))
        .expect("valid name");
    let target = url
        .strip_prefix(&format!("http://{}", cos.local_addr()))
        .expect("URL uses the listener address")
        .to_owned();
    Fixture {
        cos,
        info,
        bytes,
        target,
    }
}

pub(crate) async fn fixture() -> Fixture {
    fixture_sized(FW_SIZE).await
}

/// How the server ended the response stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Orderly close (FIN).
    Eof,
    /// The read failed, e.g. with `ConnectionReset`.
    Error(io::ErrorKind),
}

/// A response exactly as read off the socket.
#[derive(Debug)]
pub(crate) struct RawResponse {
    /// The head, status line and headers, without the blank line.
    pub(crate) head: String,
    /// Everything after the blank line, undecoded.
    pub(crate) body: Vec<u8>,
    pub(crate) ending: Ending,
}

impl RawResponse {
    pub(crate) fn status(&self) -> u16 {
        self.head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line has a code")
    }

    /// The value of the header spelled exactly `name` (case-sensitive, one space after the colon).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.head
            .split("\r\n")
            .find_map(|line| line.strip_prefix(prefix.as_str()))
    }

    pub(crate) fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }
}

/// Sends one request with `Connection: close` and reads until the server ends the stream.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect to fake COS");
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .expect("send request");
    read_response(&mut stream).await
}

/// Reads a response until EOF or a read error, within [`DEADLINE`].
pub(crate) async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let ending = loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "no end of response within {DEADLINE:?}; got {} bytes",
                raw.len()
            ),
            Ok(Ok(0)) => break Ending::Eof,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => break Ending::Error(e.kind()),
        }
    };
    split(raw, ending)
}

fn split(raw: Vec<u8>, ending: Ending) -> RawResponse {
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head in {} bytes ({ending:?})", raw.len()));
    RawResponse {
        head: String::from_utf8(raw[..at].to_vec()).expect("ASCII head"),
        body: raw[at + 4..].to_vec(),
        ending,
    }
}

/// GET of the fixture's signed target with the given headers.
pub(crate) async fn get(fx: &Fixture, headers: &[(&str, &str)]) -> RawResponse {
    request(fx.cos.local_addr(), "GET", &fx.target, headers).await
}

/// Sends one request with a body (`Content-Length` unless a header sets the framing) and
/// `Connection: close`, and reads the whole response.
pub(crate) async fn request_with_body(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect to fake COS");
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
    {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.expect("send head");
    stream.write_all(body).await.expect("send body");
    read_response(&mut stream).await
}
