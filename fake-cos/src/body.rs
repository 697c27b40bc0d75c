//! Response bodies of objects. A body with a delivery fault is fed to hyper by a pump task
//! through a one-slot channel, so every milestone (byte N handed over, stall, cut) is recorded
//! in the journal before the client can see it, and faults act on exact byte counts. A body
//! without one is a [`DirectBody`]: large pieces of the object handed to hyper as it polls,
//! recorded the same way but with no task, channel or small chunks in between. (Untouched
//! bodies on plain connections skip hyper altogether: see `sendfile`.)

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::fault::delivery::{Delivery, Interrupt};
use crate::io::{Abort, ConnCtl};
use crate::journal::{ConnEnd, Recorder};
use crate::store::Span;

const CHUNK_BYTES: u64 = 16 * 1024;
/// Frame size of a body without delivery faults: big enough that per-frame costs vanish.
const DIRECT_CHUNK_BYTES: u64 = 1 << 20;

type Item = Result<Frame<Bytes>, Infallible>;

/// The body hyper polls; it never reports a size, so framing is whatever the headers say.
#[derive(Debug)]
pub(crate) struct PumpBody {
    rx: mpsc::Receiver<Item>,
}

impl http_body::Body for PumpBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        self.rx.poll_recv(cx)
    }
}

/// A body without delivery faults, read from the object's span as hyper polls: large pieces,
/// with no task, channel or small chunks in between.
#[derive(Debug)]
pub(crate) struct DirectBody {
    span: Span,
    sent: u64,
    recorder: Recorder,
    shutdown: CancellationToken,
}

impl DirectBody {
    pub(crate) fn new(span: Span, recorder: Recorder, shutdown: CancellationToken) -> Self {
        Self {
            span,
            sent: 0,
            recorder,
            shutdown,
        }
    }
}

impl http_body::Body for DirectBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let len = self.span.len();
        if self.sent >= len {
            return Poll::Ready(None);
        }
        let stop = (self.sent + DIRECT_CHUNK_BYTES).min(len);
        // The object's pages were written when it was stored and stay in memory (page cache or
        // memfd): a read is a memory copy, which waits on a device only under memory pressure.
        let chunk = match self.span.read(self.sent, stop) {
            Ok(chunk) => chunk,
            Err(error) => return Poll::Ready(Some(Err(error))),
        };
        self.sent = stop;
        let end = (stop == len).then_some(ConnEnd::Complete);
        self.recorder.sent(stop, end);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.span.len()
    }
}

impl Drop for DirectBody {
    fn drop(&mut self) {
        if self.sent < self.span.len() {
            let end = if self.shutdown.is_cancelled() {
                ConnEnd::Shutdown
            } else {
                ConnEnd::ClientGone
            };
            self.recorder.end_if_in_progress(end);
        }
    }
}

/// Everything a pump needs to send one body.
#[derive(Debug)]
pub(crate) struct Pump {
    pub(crate) data: Bytes,
    pub(crate) delivery: Delivery,
    pub(crate) ctl: Arc<ConnCtl>,
    pub(crate) recorder: Recorder,
    pub(crate) shutdown: CancellationToken,
}

impl Pump {
    /// Starts the pump on `tracker` and returns the body it feeds.
    pub(crate) fn spawn(self, tracker: &TaskTracker) -> PumpBody {
        let (tx, rx) = mpsc::channel(1);
        tracker.spawn(self.run(tx));
        PumpBody { rx }
    }

    async fn run(mut self, tx: mpsc::Sender<Item>) {
        let len = self.data.len() as u64;
        let mut sent = 0u64;
        loop {
            if let Some((at, interrupt)) = self.delivery.interrupt
                && at <= sent
            {
                match interrupt {
                    Interrupt::Close => return self.abort(&tx, Abort::Close).await,
                    Interrupt::Reset => return self.abort(&tx, Abort::Reset).await,
                    Interrupt::Stall(how_long) => {
                        if !self.stall(&tx, how_long).await {
                            return;
                        }
                        self.delivery.interrupt = None;
                        continue;
                    }
                }
            }
            if sent >= len {
                return;
            }
            let stop = self.next_stop(sent, len);
            let chunk = self.data.slice(to_usize(sent)..to_usize(stop));
            let last = stop == len && self.delivery.interrupt.is_none_or(|(at, _)| at > len);
            self.recorder.sent(stop, last.then_some(ConnEnd::Complete));
            if !self.send(&tx, chunk).await {
                return;
            }
            sent = stop;
            if let Some(rate) = self.delivery.bytes_per_sec {
                let pause = Duration::from_secs_f64(self.chunk_len() as f64 / rate as f64);
                if !self.pause(&tx, pause).await {
                    return;
                }
            }
        }
    }

    fn chunk_len(&self) -> u64 {
        match self.delivery.bytes_per_sec {
            // About ten pieces a second, so the pacing is smooth at any rate.
            Some(rate) => (rate / 10).clamp(1, CHUNK_BYTES),
            None => CHUNK_BYTES,
        }
    }

    fn next_stop(&self, sent: u64, len: u64) -> u64 {
        let mut stop = (sent + self.chunk_len()).min(len);
        if let Some((at, _)) = self.delivery.interrupt
            && at > sent
        {
            stop = stop.min(at);
        }
        stop
    }

    /// Hands one frame to hyper; false if the client or the server is gone.
    async fn send(&self, tx: &mpsc::Sender<Item>, chunk: Bytes) -> bool {
        // Cancel-safe: losing the race drops the frame, and the journal already counts it as
        // handed over, which is what a shutdown mid-body looks like anyway.
        let delivered = tokio::select! {
            sent = tx.send(Ok(Frame::data(chunk))) => sent.is_ok(),
            () = self.shutdown.cancelled() => {
                self.recorder.end_if_in_progress(ConnEnd::Shutdown);
                return false;
            }
        };
        if !delivered {
            self.recorder.end_if_in_progress(ConnEnd::ClientGone);
        }
        delivered
    }

    /// Waits out a throttle pause; false if the client or the server went away meanwhile.
    async fn pause(&self, tx: &mpsc::Sender<Item>, pause: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(pause) => true,
            () = tx.closed() => {
                self.recorder.end_if_in_progress(ConnEnd::ClientGone);
                false
            }
            () = self.shutdown.cancelled() => {
                self.recorder.end_if_in_progress(ConnEnd::Shutdown);
                false
            }
        }
    }

    /// Stalls; true if the stall ran out and the body goes on.
    async fn stall(&self, tx: &mpsc::Sender<Item>, how_long: Option<Duration>) -> bool {
        self.recorder.end(ConnEnd::Stalled);
        debug!(?how_long, "body stalled by fault");
        let over = async {
            match how_long {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        // Cancel-safe: nothing is in flight while stalled.
        tokio::select! {
            () = over => {
                self.recorder.end(ConnEnd::InProgress);
                true
            }
            () = tx.closed() => false,
            () = self.shutdown.cancelled() => false,
        }
    }

    /// Ends the connection after hyper has taken every frame sent so far (see `io`).
    async fn abort(&self, tx: &mpsc::Sender<Item>, abort: Abort) {
        self.recorder.end(match abort {
            Abort::Close => ConnEnd::Cut,
            Abort::Reset => ConnEnd::Reset,
        });
        // The empty frame is taken only once hyper polls the body, i.e. after it has buffered
        // the head and every earlier frame; the slot frees when it is taken.
        if !self.send(tx, Bytes::new()).await {
            return;
        }
        let permit = tokio::select! {
            permit = tx.reserve() => permit,
            () = self.shutdown.cancelled() => return,
        };
        let Ok(permit) = permit else {
            return;
        };
        self.ctl.request(abort);
        // Wakes hyper, which discards the empty frame and flushes into the raised flag.
        permit.send(Ok(Frame::data(Bytes::new())));
        // Keeping the sender alive: ending the body now would make hyper fail before flushing.
        tokio::select! {
            () = tx.closed() => {}
            () = self.shutdown.cancelled() => {}
        }
    }
}

fn to_usize(offset: u64) -> usize {
    usize::try_from(offset).expect("offsets inside a Bytes fit usize")
}
