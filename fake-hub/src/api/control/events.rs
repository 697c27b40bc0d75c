//! `GET /api/events`: server-sent events, live. `event: transcript` carries one
//! [`TranscriptEntry`](crate::TranscriptEntry); `event: device` one
//! [`DeviceStatus`](crate::DeviceStatus) that changed (all devices once when the stream opens);
//! `event: lagged` says how many transcript entries a slow reader missed. A comment line every
//! 15 s keeps idle connections open.
//!
//! A reader that stays [`BUFFER`] events behind for [`SLOW_READER`] is dropped (its stream
//! ends: reconnect and re-read the transcript from the last seq seen), and at most [`MAX_STREAMS`] streams are
//! open at once (503 beyond), so readers that never read cannot eat the hub's memory.

use super::ApiState;
use crate::{DeviceStatus, Hub};
use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::Frame;
use otasim_protocol::DeviceId;
use serde::Serialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

const KEEPALIVE: Duration = Duration::from_secs(15);
/// Events buffered per reader before a slow one is dropped.
pub(crate) const BUFFER: usize = 64;
/// Event streams open at once.
pub(crate) const MAX_STREAMS: usize = 32;

pub(crate) fn stream_permits() -> std::sync::Arc<tokio::sync::Semaphore> {
    std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS))
}

/// How long a reader's buffer may stay full before the reader is dropped.
pub(crate) const SLOW_READER: Duration = Duration::from_secs(5);

/// Queues `bytes` for the reader; fails when it is gone, or [`BUFFER`] events behind for
/// [`SLOW_READER`].
async fn offer(tx: &mpsc::Sender<Bytes>, bytes: Bytes) -> Result<(), ()> {
    match tokio::time::timeout(SLOW_READER, tx.send(bytes)).await {
        Ok(sent) => sent.map_err(|_| ()),
        Err(_) => {
            tracing::info!("event stream reader too slow: dropped");
            Err(())
        }
    }
}

/// A response body fed by a channel; it ends when the sender goes away.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

pub(crate) async fn stream(axum::extract::State(s): axum::extract::State<ApiState>) -> Response {
    let Ok(permit) = s.streams.clone().try_acquire_owned() else {
        let mut e = super::ApiError::conflict(
            None,
            format!("{MAX_STREAMS} event streams are open already; close one"),
        )
        .into_response();
        *e.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
        return e;
    };
    let (tx, rx) = mpsc::channel(BUFFER);
    // Subscribe before the task starts, so nothing between this request and the task is lost.
    let live = s.hub.watch_transcript();
    tokio::spawn(async move {
        pump(s, live, tx).await;
        drop(permit);
    });
    let mut response = Body::new(ChannelBody(rx)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn event(name: &str, data: &impl Serialize) -> Bytes {
    let json = serde_json::to_string(data).expect("API types always serialize");
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

/// Sends device states that differ from `last`, and remembers them.
async fn send_changes(
    hub: &Hub,
    last: &mut BTreeMap<DeviceId, DeviceStatus>,
    tx: &mpsc::Sender<Bytes>,
) -> Result<(), ()> {
    for d in hub.devices() {
        if last.get(&d.device) != Some(&d) {
            offer(tx, event("device", &d)).await?;
            last.insert(d.device.clone(), d);
        }
    }
    Ok(())
}

/// Feeds one client until it goes away or the server stops.
async fn pump(
    s: ApiState,
    mut live: broadcast::Receiver<crate::TranscriptEntry>,
    tx: mpsc::Sender<Bytes>,
) {
    let mut last = BTreeMap::new();
    if send_changes(&s.hub, &mut last, &tx).await.is_err() {
        return;
    }
    loop {
        let snapshot = last.clone();
        let out = tokio::select! {
            _ = s.stop.cancelled() => return,
            // Cancel-safe: a broadcast receiver loses nothing when `recv` is dropped.
            entry = live.recv() => match entry {
                Ok(e) => {
                    let client = last
                        .keys()
                        .find(|d| d.client_id() == e.client_id)
                        .map(ToString::to_string);
                    event("transcript", &super::view::EntryView::of(&e, client))
                }
                Err(broadcast::error::RecvError::Lagged(n)) => event("lagged", &n),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            // Only reads the hub: dropping this wait loses nothing, the next loop compares again.
            changed = s.hub.wait_until(KEEPALIVE, |h| devices_differ(h, &snapshot)) => {
                if changed && send_changes(&s.hub, &mut last, &tx).await.is_err() {
                    return;
                }
                if changed { continue }
                Bytes::from_static(b": keepalive\n\n")
            }
        };
        if offer(&tx, out).await.is_err() {
            return;
        }
    }
}

fn devices_differ(hub: &Hub, last: &BTreeMap<DeviceId, DeviceStatus>) -> bool {
    let now = hub.devices();
    now.len() != last.len() || now.iter().any(|d| last.get(&d.device) != Some(d))
}
