//! The connection's socket, wrapped so a fault can end the connection only after hyper has
//! handed every byte it buffered to the kernel.
//!
//! hyper drops its write buffer when a body errors, so a body error cannot cut "after N bytes"
//! exactly. Instead the body pump raises a flag here; the next `poll_flush` (which hyper calls
//! only after writing out its whole buffer) fails, hyper drops the connection, and `Drop` turns
//! the close into an RST when asked.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tracing::warn;

const CLOSE: u8 = 1;
const RESET: u8 = 2;

/// How a fault wants the connection to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abort {
    /// Close normally (FIN) once flushed.
    Close,
    /// Reset (RST) once flushed.
    Reset,
}

/// Per-connection switch shared by the socket wrapper and the body pumps.
#[derive(Debug, Default)]
pub(crate) struct ConnCtl {
    abort: AtomicU8,
}

impl ConnCtl {
    pub(crate) fn request(&self, abort: Abort) {
        let value = match abort {
            Abort::Close => CLOSE,
            Abort::Reset => RESET,
        };
        self.abort.store(value, Ordering::SeqCst);
    }

    fn requested(&self) -> Option<Abort> {
        match self.abort.load(Ordering::SeqCst) {
            CLOSE => Some(Abort::Close),
            RESET => Some(Abort::Reset),
            _ => None,
        }
    }
}

/// A TCP stream that obeys its [`ConnCtl`].
#[derive(Debug)]
pub(crate) struct FaultIo {
    stream: TcpStream,
    ctl: Arc<ConnCtl>,
    /// Bytes already read from the socket by the plain connection loop, read again first.
    replay: Bytes,
}

impl FaultIo {
    pub(crate) fn new(stream: TcpStream, ctl: Arc<ConnCtl>) -> Self {
        Self::replaying(stream, ctl, Bytes::new())
    }

    /// A stream whose reads return `replay` before anything else from the socket.
    pub(crate) fn replaying(stream: TcpStream, ctl: Arc<ConnCtl>, replay: Bytes) -> Self {
        Self {
            stream,
            ctl,
            replay,
        }
    }
}

impl AsyncRead for FaultIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.replay.is_empty() {
            let n = self.replay.len().min(buf.remaining());
            buf.put_slice(&self.replay.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.stream).poll_flush(cx))?;
        match self.ctl.requested() {
            None => Poll::Ready(Ok(())),
            Some(_) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection ended by an injected fault",
            ))),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Drop for FaultIo {
    fn drop(&mut self) {
        if self.ctl.requested() == Some(Abort::Reset)
            && let Err(error) = self.stream.set_zero_linger()
        {
            warn!(%error, "could not set SO_LINGER 0 for an injected reset");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_request_wins() {
        let ctl = ConnCtl::default();
        assert_eq!(ctl.requested(), None);
        ctl.request(Abort::Close);
        ctl.request(Abort::Reset);
        assert_eq!(ctl.requested(), Some(Abort::Reset));
    }
}
