//! Strict mode: warn when the hub does something a real C SDK device could not take.
//!
//! The C SDK (v3.2.3) reads one incoming PUBLISH (topic plus payload) into a 2 KB buffer, keeps
//! at most 10 subscriptions per client, and holds an OTA topic in 64 bytes. The hub goes on
//! regardless (another client may cope); it records a `strict` event and logs a warning.

use crate::core::{HubCore, State};
use tracing::warn;

/// The C SDK's read buffer for one PUBLISH, topic plus payload.
pub(crate) const MAX_PUBLISH_BYTES: usize = 2048;
/// The C SDK's subscription table size.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 10;
/// The C SDK's OTA topic buffer.
pub(crate) const MAX_OTA_TOPIC_BYTES: usize = 64;

fn warn_strict(core: &HubCore, state: &mut State, client_id: &str, detail: String) {
    warn!(client_id, %detail, "strict mode: a C SDK device would break");
    core.event(state, client_id, "strict", detail);
}

/// A hub publish of `payload_len` bytes on `topic` to `client_id`.
pub(crate) fn check_publish(
    core: &HubCore,
    state: &mut State,
    client_id: &str,
    topic: &str,
    payload_len: usize,
) {
    if !core.strict() {
        return;
    }
    let total = topic.len() + payload_len;
    if total > MAX_PUBLISH_BYTES {
        let detail = format!(
            "publish on {topic} is {total} bytes (topic + payload), over the C SDK's {MAX_PUBLISH_BYTES}"
        );
        warn_strict(core, state, client_id, detail);
    }
    check_ota_topic(core, state, client_id, topic);
}

/// A granted subscription; `count` is the client's subscriptions including it.
pub(crate) fn check_subscription(
    core: &HubCore,
    state: &mut State,
    client_id: &str,
    topic_filter: &str,
    count: usize,
) {
    if !core.strict() {
        return;
    }
    if count > MAX_SUBSCRIPTIONS {
        let detail = format!(
            "subscription {count} ({topic_filter}) is over the C SDK's {MAX_SUBSCRIPTIONS} per client"
        );
        warn_strict(core, state, client_id, detail);
    }
    check_ota_topic(core, state, client_id, topic_filter);
}

fn check_ota_topic(core: &HubCore, state: &mut State, client_id: &str, topic: &str) {
    if topic.starts_with("$ota/") && topic.len() > MAX_OTA_TOPIC_BYTES {
        let detail = format!(
            "OTA topic {topic} is {} bytes, over the C SDK's {MAX_OTA_TOPIC_BYTES}",
            topic.len()
        );
        warn_strict(core, state, client_id, detail);
    }
}
