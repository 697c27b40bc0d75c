//! A tiny scripted HTTP/1.1 server on a raw `TcpListener`: each connection takes the next
//! [`Reply`] of the script (honest when the script is empty), answers one request and closes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How the server answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reply {
    /// 206 with the asked range (clamped), or 200 with the whole image without `Range`.
    Honest,
    /// An honest head, then only this many body bytes, then close.
    CutAfter(u64),
    /// 200 with the whole image, whatever the range.
    FullIgnoringRange,
    /// 206 whose range starts one byte after the asked offset (with matching data).
    WrongStart,
    /// 206 with the asked range but a total one byte larger.
    WrongTotal,
    /// This status with a small body.
    Status(u16),
    /// An honest head, this many body bytes, then silence until shutdown.
    StallAfter(u64),
    /// 200, no `Content-Length`, the image plus this many extra bytes, close-delimited.
    TooLong(u64),
    /// Honest 206 but `Content-Length` one more than the range holds.
    BadContentLength,
    /// Honest, with this ETag instead of the default.
    Etag(&'static str),
    /// Honest but every byte of the body is flipped.
    Corrupt,
    /// No answer at all until shutdown.
    Silent,
}

/// A request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    pub(super) target: String,
    pub(super) range: Option<String>,
    pub(super) host: Option<String>,
}

struct State {
    image: Vec<u8>,
    script: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Seen>>,
}

/// A running scripted server.
pub(super) struct ScriptedServer {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedServer {
    /// Binds `127.0.0.1:0` and serves `image` by `script`.
    pub(super) async fn start(image: &[u8], script: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound address");
        let state = Arc::new(State {
            image: image.to_vec(),
            script: Mutex::new(script.into()),
            seen: Mutex::new(Vec::new()),
        });
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, state.clone(), shutdown.clone()));
        ScriptedServer {
            addr,
            state,
            shutdown,
            task,
        }
    }

    /// URL of the image, with a query the client must keep.
    pub(super) fn url(&self) -> String {
        format!("http://{}/fw_V100R0001?sign=secret", self.addr)
    }

    /// Requests seen so far, in order.
    pub(super) fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("seen lock").clone()
    }

    /// `Range` headers seen so far.
    pub(super) fn ranges(&self) -> Vec<Option<String>> {
        self.seen().into_iter().map(|s| s.range).collect()
    }

    /// Stops accepting, ends stalled connections and waits for the server task.
    pub(super) async fn shutdown(self) {
        self.shutdown.cancel();
        self.task.await.expect("server task does not panic");
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, shutdown: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                connections.spawn(serve(stream, state.clone(), shutdown.clone()));
            }
        }
    }
    connections.shutdown().await;
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 16 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).ok()
}

fn parse_seen(head: &str) -> Seen {
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or_default()
        .to_owned();
    let mut seen = Seen {
        target,
        range: None,
        host: None,
    };
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = Some(value.trim().to_owned());
            match name.to_ascii_lowercase().as_str() {
                "range" => seen.range = value,
                "host" => seen.host = value,
                _ => {}
            }
        }
    }
    seen
}

/// `(first, last)` of the asked range, clamped to the image; the whole image without one.
fn asked(range: Option<&str>, size: u64) -> (u64, u64) {
    let parsed = range.and_then(|r| r.strip_prefix("bytes=")).and_then(|r| {
        let (a, b) = r.split_once('-')?;
        let last = if b.is_empty() {
            size - 1
        } else {
            b.parse::<u64>().ok()?.min(size - 1)
        };
        Some((a.parse().ok()?, last))
    });
    parsed.unwrap_or((0, size.saturating_sub(1)))
}

fn head(status: &str, fields: &[(&str, String)]) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in fields {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// Head and body of a 206 (or 200 without a range) for `image[first..=last]`.
fn partial(
    state: &State,
    seen: &Seen,
    first: u64,
    etag: &str,
    extra_len: u64,
) -> (Vec<u8>, Vec<u8>) {
    let size = state.image.len() as u64;
    let (_, last) = asked(seen.range.as_deref(), size);
    let body = state
        .image
        .get(first as usize..=last as usize)
        .unwrap_or_default()
        .to_vec();
    let length = (
        "Content-Length",
        (body.len() as u64 + extra_len).to_string(),
    );
    let etag = ("ETag", format!("\"{etag}\""));
    if seen.range.is_none() {
        return (head("200 OK", &[length, etag]), body);
    }
    let range = ("Content-Range", format!("bytes {first}-{last}/{size}"));
    (head("206 Partial Content", &[length, range, etag]), body)
}

fn respond(state: &State, seen: &Seen, reply: &Reply) -> (Vec<u8>, Vec<u8>) {
    let size = state.image.len() as u64;
    let (first, last) = asked(seen.range.as_deref(), size);
    match reply {
        Reply::Honest | Reply::CutAfter(_) | Reply::StallAfter(_) => {
            partial(state, seen, first, "v1", 0)
        }
        Reply::Etag(tag) => partial(state, seen, first, tag, 0),
        Reply::WrongStart => partial(state, seen, (first + 1).min(last), "v1", 0),
        Reply::BadContentLength => partial(state, seen, first, "v1", 1),
        Reply::Corrupt => {
            let (head, body) = partial(state, seen, first, "v1", 0);
            (head, body.iter().map(|b| !b).collect())
        }
        Reply::WrongTotal => {
            let fields = [
                ("Content-Length", (last + 1 - first).to_string()),
                (
                    "Content-Range",
                    format!("bytes {first}-{last}/{}", size + 1),
                ),
            ];
            (
                head("206 Partial Content", &fields),
                state.image[first as usize..=last as usize].to_vec(),
            )
        }
        Reply::FullIgnoringRange => {
            let fields = [
                ("Content-Length", size.to_string()),
                ("ETag", "\"v1\"".into()),
            ];
            (head("200 OK", &fields), state.image.clone())
        }
        Reply::TooLong(extra) => {
            let mut body = state.image.clone();
            body.extend(std::iter::repeat_n(0x5a, *extra as usize));
            (head("200 OK", &[]), body)
        }
        Reply::Silent => (Vec::new(), Vec::new()),
        Reply::Status(code) => {
            let body = format!("<Error><Code>{code}</Code></Error>").into_bytes();
            let fields = [("Content-Length", body.len().to_string())];
            (head(&format!("{code} Scripted"), &fields), body)
        }
    }
}

async fn serve(mut stream: TcpStream, state: Arc<State>, shutdown: CancellationToken) {
    let Some(text) = read_head(&mut stream).await else {
        return;
    };
    let seen = parse_seen(&text);
    state.seen.lock().expect("seen lock").push(seen.clone());
    let reply = state
        .script
        .lock()
        .expect("script lock")
        .pop_front()
        .unwrap_or(Reply::Honest);
    let (head, mut body) = respond(&state, &seen, &reply);
    let stall = match reply {
        Reply::CutAfter(n) => {
            body.truncate(n as usize);
            false
        }
        Reply::StallAfter(n) => {
            body.truncate(n as usize);
            true
        }
        Reply::Silent => true,
        _ => false,
    };
    // A failed write means the client hung up, which some scripts cause on purpose.
    let _ = stream.write_all(&head).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.flush().await;
    if stall {
        shutdown.cancelled().await;
    }
    let _ = stream.shutdown().await;
}
