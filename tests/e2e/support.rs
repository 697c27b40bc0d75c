//! Helpers shared by every end-to-end module.

use fake_hub::{Direction, TranscriptEntry};
use otasim_protocol::{DeviceId, Topic};
use std::future::Future;
use std::path::Path;
use std::time::Duration;

/// How long any end-to-end wait may take before the test fails. Generous: CI machines are slow,
/// and a wait ends as soon as its condition holds.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// Awaits `fut` for at most [`DEADLINE`], failing the test with `what` otherwise.
pub(crate) async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// Waits until `check` finds what it looks for in files that another process writes under
/// `dir`, re-checking whenever the file system reports a change there (inotify), for at most
/// [`DEADLINE`]. The watch starts before the first check, so no change is missed.
pub(crate) async fn wait_for_files<T>(
    what: &str,
    dir: &Path,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    use notify::Watcher as _;
    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = tx.send(event);
    })
    .expect("a file watcher (inotify) is available");
    watcher
        .watch(dir, notify::RecursiveMode::Recursive)
        .unwrap_or_else(|e| panic!("watching {}: {e}", dir.display()));
    within(what, async {
        loop {
            if let Some(found) = check() {
                return found;
            }
            let change = changes
                .recv()
                .await
                .expect("the watcher lives as long as this wait");
            if let Err(e) = change {
                panic!("watching {}: {e}", dir.display());
            }
        }
    })
    .await
}

/// The device a transcript entry is about: the topic's device for messages, the client for events.
pub(crate) fn entry_device(e: &TranscriptEntry) -> String {
    match e.topic.parse::<Topic>() {
        Ok(t) => t.device().to_string(),
        Err(_) => e.client_id.clone(),
    }
}

/// Whether `e` is a gateway operation (request or reply) about `device`.
fn operation_names(e: &TranscriptEntry, device: &DeviceId) -> bool {
    let gateway_topic = matches!(
        e.topic.parse::<Topic>(),
        Ok(Topic::GatewayOperation(_) | Topic::GatewayOperationResult(_))
    );
    gateway_topic
        && e.json().is_some_and(|v| {
            v["payload"]["devices"].as_array().is_some_and(|ds| {
                ds.iter().any(|d| {
                    d["product_id"] == device.product_id()
                        && d["device_name"] == device.device_name()
                })
            })
        })
}

/// A stable, readable rendering of a device's part of the transcript: direction, topic and the
/// payload with URLs, signatures and times redacted. Per device, the order is deterministic
/// even though devices interleave differently on every run.
pub(crate) fn render_device(transcript: &[TranscriptEntry], device: &DeviceId) -> String {
    let name = device.to_string();
    let mut out = String::new();
    for e in transcript
        .iter()
        .filter(|e| entry_device(e) == name || operation_names(e, device))
    {
        let dir = match e.direction {
            Direction::In => "in ",
            Direction::Out => "out",
            Direction::Refused => "rej",
            Direction::Event => "evt",
            Direction::Http => "http",
        };
        let payload = match e.json() {
            Some(mut v) => {
                if let Some(url) = v.get_mut("url") {
                    *url = serde_json::Value::String("[signed url]".into());
                }
                v.to_string()
            }
            None => e.payload.clone(),
        };
        out.push_str(&format!("{dir} {} {payload}\n", e.topic));
    }
    out
}
