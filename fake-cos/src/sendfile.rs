//! Plain-HTTP firmware connections, with untouched bodies sent by `sendfile(2)`.
//!
//! hyper writes every body from user memory, so the kernel copies each byte out of the process
//! once more than a file server needs. Here a small loop reads request heads itself (with
//! `httparse`, the parser hyper uses). A `GET` that is answered with stored bytes no fault rule
//! touched gets its head written here and its body `sendfile`d from the object's file, and
//! the loop waits for the next request on the connection. Anything else (a `PUT`, `HEAD`, an
//! error answer, a fired rule, a head this loop does not take apart, HTTP/1.0) hands the
//! connection, with the bytes already read, to the existing hyper path for the rest of its
//! life; an answer already decided here travels with it, so every request is decided and
//! journaled exactly once. Faulted bodies thus keep the byte-exact path, and the fast one only
//! ever sends the stored bytes, with the head hyper would have written (a property test holds
//! the two paths to the same bytes).
//!
//! Why not something else: hyper has no way to lend out its socket mid-connection (its
//! upgrades need a 101), and writing a whole HTTP/1.1 server would duplicate what hyper does
//! for the rare requests. TLS connections stay with hyper: their bytes must pass through
//! rustls anyway.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use axum::{Extension, Router};
use bytes::{Buf, BytesMut};
use hyper_util::service::TowerToHyperService;
use rustix::net::SendFlags;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use crate::handler::{ConnCtx, Decision, SERVER_NAME, decide_request};
use crate::io::{ConnCtl, FaultIo};
use crate::journal::{ConnEnd, Recorder};
use crate::response::AnswerBody;
use crate::server::serve_http;
use crate::shared::Shared;
use crate::store::Span;

/// The longest head this loop parses; a longer one goes to hyper, which has its own limit.
const MAX_HEAD_BYTES: usize = 16 << 10;
/// Header lines this loop parses; more go to hyper.
const MAX_HEADERS: usize = 64;
/// The most one `sendfile` call is asked for, so the journal's count moves in steps.
const SENDFILE_CHUNK: u64 = 4 << 20;

/// A request head taken apart, if this loop may answer it.
struct PlainGet {
    uri: Uri,
    headers: HeaderMap,
    /// The client asked to close after this response.
    close: bool,
}

enum Head {
    /// A complete head of `len` bytes at the start of the buffer.
    Complete(usize),
    /// Not for this loop (too long, or not HTTP as `httparse` reads it): hyper answers it.
    HandOff,
    /// The client closed, went quiet past the deadline, or the server is shutting down.
    Gone,
}

/// Serves one plain-HTTP connection until it closes or is handed to hyper.
pub(crate) async fn serve(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, app: Router) {
    let mut buf = BytesMut::with_capacity(4096);
    let mut decided = None;
    loop {
        let len = match read_head(&stream, &mut buf, &shared).await {
            Head::Complete(len) => len,
            Head::HandOff => break,
            Head::Gone => return,
        };
        let Some(get) = parse(&buf[..len]) else {
            break;
        };
        let decision = decide_request(&shared, peer, Method::GET, &get.uri, &get.headers);
        let span = match &decision.answer.body {
            AnswerBody::Object(span) if span.file().is_some() => span.clone(),
            _ => {
                decided = Some(decision);
                break;
            }
        };
        buf.advance(len);
        if send(&stream, &shared, decision, &span, get.close)
            .await
            .is_err()
        {
            return;
        }
        if get.close {
            let mut stream = stream;
            // The response is complete; a failed FIN only means the client left first.
            let _ = stream.shutdown().await;
            return;
        }
    }
    hand_off(stream, peer, shared, app, buf, decided).await;
}

/// Serves the rest of the connection with hyper, replaying what was read.
async fn hand_off(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    app: Router,
    buf: BytesMut,
    decided: Option<Decision>,
) {
    let ctl = Arc::new(ConnCtl::default());
    let ctx = ConnCtx::new(peer, Arc::clone(&ctl));
    *ctx.decided
        .lock()
        .expect("the decided slot is never held across a panic") = decided;
    let io = FaultIo::replaying(stream, ctl, buf.freeze());
    let service = TowerToHyperService::new(app.layer(Extension(ctx)));
    serve_http(io, service, shared.plan.limits, shared.shutdown.clone()).await;
}

/// Reads until `buf` starts with a complete head, within the header deadline.
async fn read_head(stream: &TcpStream, buf: &mut BytesMut, shared: &Shared) -> Head {
    let deadline = Instant::now() + shared.plan.limits.header_timeout;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::Request::new(&mut headers).parse(buf) {
            Ok(httparse::Status::Complete(len)) => return Head::Complete(len),
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => {}
            Ok(httparse::Status::Partial) | Err(_) => return Head::HandOff,
        }
        // Cancel-safe: a read that loses the race has taken no bytes.
        let read = tokio::select! {
            read = tokio::time::timeout_at(deadline, read_some(stream, buf)) => read,
            () = shared.shutdown.cancelled() => return Head::Gone,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return Head::Gone,
            Ok(Ok(_)) => {}
            Err(_) => {
                debug!("request head not complete within the header deadline, closing");
                return Head::Gone;
            }
        }
    }
}

async fn read_some(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    buf.reserve(4096);
    loop {
        stream.readable().await?;
        match stream.try_read_buf(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            read => return read,
        }
    }
}

/// The head as a `GET` this loop may answer, or `None` for hyper to serve.
fn parse(head: &[u8]) -> Option<PlainGet> {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut lines);
    req.parse(head).ok()?;
    if req.method? != "GET" || req.version? != 1 {
        return None;
    }
    let uri = Uri::try_from(req.path?).ok()?;
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    let mut close = false;
    for line in req.headers.iter() {
        let name = HeaderName::from_bytes(line.name.as_bytes()).ok()?;
        // Bodies, expectations and upgrades are hyper's to handle.
        if [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::EXPECT,
            header::UPGRADE,
        ]
        .contains(&name)
        {
            return None;
        }
        let value = HeaderValue::from_bytes(line.value).ok()?;
        if name == header::CONNECTION {
            close |= value
                .to_str()
                .ok()?
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"));
        }
        headers.append(name, value);
    }
    Some(PlainGet {
        uri,
        headers,
        close,
    })
}

/// The response head hyper writes for `decision` (title-case names, `Server` then
/// `Connection: close` if asked, then `Date`).
pub(crate) fn head_bytes(decision: &Decision, close: bool) -> Vec<u8> {
    let answer = &decision.answer;
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(answer.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(
        answer
            .status
            .canonical_reason()
            .unwrap_or("<none>")
            .as_bytes(),
    );
    head.extend_from_slice(b"\r\n");
    let server = HeaderValue::from_static(SERVER_NAME);
    let close_value = HeaderValue::from_static("close");
    let date = HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now()))
        .expect("an HTTP date is a valid header value");
    let extra = [
        Some((&header::SERVER, &server)),
        close.then_some((&header::CONNECTION, &close_value)),
        Some((&header::DATE, &date)),
    ];
    let lines = answer
        .headers
        .iter()
        .filter(|(name, _)| **name != header::SERVER)
        .chain(extra.into_iter().flatten());
    for (name, value) in lines {
        title_case(&mut head, name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// `content-range` as `Content-Range`, the way hyper's `title_case_headers` spells names.
fn title_case(dst: &mut Vec<u8>, name: &[u8]) {
    let mut prev = b'-';
    for &c in name {
        dst.push(if prev == b'-' {
            c.to_ascii_uppercase()
        } else {
            c
        });
        prev = c;
    }
}

/// Writes the head and `sendfile`s the body, keeping the journal entry current.
async fn send(
    stream: &TcpStream,
    shared: &Shared,
    decision: Decision,
    span: &Span,
    close: bool,
) -> io::Result<()> {
    let recorder = Recorder::new(Arc::clone(&shared.journal), decision.ticket);
    let head = head_bytes(&decision, close);
    let sent = async {
        // MSG_MORE: the head waits in the kernel for the body's first bytes, as nginx's
        // tcp_nopush does, instead of leaving in a packet of its own.
        write_all(stream, &head, SendFlags::MORE | SendFlags::NOSIGNAL).await?;
        body(stream, span, &recorder).await
    };
    // Cancel-safe: on shutdown the connection is dropped mid-body, which is what it means.
    let result = tokio::select! {
        result = sent => result,
        () = shared.shutdown.cancelled() => {
            recorder.end_if_in_progress(ConnEnd::Shutdown);
            return Err(io::ErrorKind::Interrupted.into());
        }
    };
    if let Err(error) = &result {
        debug!(%error, "client gone before the body was complete");
        recorder.end_if_in_progress(ConnEnd::ClientGone);
    }
    result
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8], flags: SendFlags) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_io(Interest::WRITABLE, || {
            rustix::net::send(stream, bytes, flags).map_err(io::Error::from)
        }) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn body(stream: &TcpStream, span: &Span, recorder: &Recorder) -> io::Result<()> {
    let (file, start) = span.file().expect("only spans in a file are sent here");
    let (len, end) = (span.len(), start + span.len());
    let mut offset = start;
    while offset < end {
        stream.writable().await?;
        let want = usize::try_from((end - offset).min(SENDFILE_CHUNK)).expect("a chunk fits usize");
        let sent = stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, file, Some(&mut offset), want).map_err(io::Error::from)
        });
        match sent {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {
                let done = offset - start;
                recorder.sent(done, (done == len).then_some(ConnEnd::Complete));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        // A fast reader keeps the socket writable: let the connection's neighbours run too.
        tokio::task::coop::consume_budget().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_gets_without_a_body_stay_on_the_sendfile_loop() {
        let get = parse(b"GET /fw.bin?sign=x HTTP/1.1\r\nHost: a\r\nRange: bytes=0-9\r\n\r\n")
            .expect("a plain GET");
        assert_eq!(get.uri.path(), "/fw.bin");
        assert_eq!(get.headers[header::RANGE], "bytes=0-9");
        assert!(!get.close);
        for head in [
            &b"HEAD /fw.bin HTTP/1.1\r\n\r\n"[..],
            b"PUT /fw.bin HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"GET /fw.bin HTTP/1.0\r\n\r\n",
            b"GET /fw.bin HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"GET /fw.bin HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /fw.bin HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"GET /fw.bin HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
        ] {
            assert!(parse(head).is_none(), "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn a_close_token_anywhere_in_connection_closes() {
        let head = b"GET /a HTTP/1.1\r\nConnection: keep-alive\r\nConnection: TE, Close\r\n\r\n";
        assert!(parse(head).expect("a plain GET").close);
        let head = b"GET /a HTTP/1.1\r\nConnection: keep-alive\r\n\r\n";
        assert!(!parse(head).expect("a plain GET").close);
    }

    #[test]
    fn header_names_are_title_cased_as_hyper_does() {
        let mut out = Vec::new();
        title_case(&mut out, b"x-cos-request-id");
        assert_eq!(out, b"X-Cos-Request-Id");
    }
}
