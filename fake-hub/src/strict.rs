//! Strict mode: warn when the hub does something a real C SDK device could not take.
//!
//! The C SDK (v3.2.3) reads one incoming PUBLISH (topic plus payload) into a 2 KB buffer, keeps
//! at most 10 subscriptions per client, and holds an OTA topic in 64 bytes. The hub goes on
//! regardless (another client may cope); it records a `strict` event and logs a warning.

use tracing::warn;

/// The C SDK's read buffer for one PUBLISH, topic plus payload.
pub(crate) const MAX_PUBLISH_BYTES: usize = 2048;
/// The C SDK's subscription table size.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 10;
/// The C SDK's OTA topic buffer.
pub(crate) const MAX_OTA_TOPIC_BYTES: usize = 64;

/// Logs what a strict check found (the caller records it as a `strict` event).
pub(crate) fn warn(client_id: &str, detail: &str) {
    warn!(client_id, %detail, "strict mode: a C SDK device would break");
}

/// What a hub publish of `payload_len` bytes on `topic` breaks, one line each.
pub(crate) fn publish_warnings(topic: &str, payload_len: usize) -> Vec<String> {
    let mut found = Vec::new();
    let total = topic.len() + payload_len;
    if total > MAX_PUBLISH_BYTES {
        found.push(format!(
            "publish on {topic} is {total} bytes (topic + payload), over the C SDK's {MAX_PUBLISH_BYTES}"
        ));
    }
    found.extend(ota_topic_warning(topic));
    found
}

/// What a granted subscription breaks; `count` is the client's subscriptions including it.
pub(crate) fn subscription_warnings(topic_filter: &str, count: usize) -> Vec<String> {
    let mut found = Vec::new();
    if count > MAX_SUBSCRIPTIONS {
        found.push(format!(
            "subscription {count} ({topic_filter}) is over the C SDK's {MAX_SUBSCRIPTIONS} per client"
        ));
    }
    found.extend(ota_topic_warning(topic_filter));
    found
}

fn ota_topic_warning(topic: &str) -> Option<String> {
    (topic.starts_with("$ota/") && topic.len() > MAX_OTA_TOPIC_BYTES).then(|| {
        format!(
            "OTA topic {topic} is {} bytes, over the C SDK's {MAX_OTA_TOPIC_BYTES}",
            topic.len()
        )
    })
}

/// Strict mode, on and off.
impl crate::Hub {
    /// Turns strict mode on or off: a `strict` transcript event and a warning whenever the hub
    /// publishes more than 2 KB (topic + payload) to a client, grants an 11th subscription, or
    /// uses an OTA topic over 64 bytes.
    pub fn set_strict(&self, on: bool) {
        self.core.set_strict(on);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_over_2_kb_with_its_topic_is_flagged() {
        assert!(publish_warnings("$ota/update/P/d", 2048 - 15).is_empty());
        let found = publish_warnings("$ota/update/P/d", 2048 - 14);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("2049 bytes"), "{found:?}");
    }

    #[test]
    fn the_eleventh_subscription_and_long_ota_topics_are_flagged() {
        assert!(subscription_warnings("$ota/update/P/d", 10).is_empty());
        assert_eq!(subscription_warnings("$ota/update/P/d", 11).len(), 1);
        let long = format!("$ota/update/P/{}", "d".repeat(60));
        assert_eq!(subscription_warnings(&long, 1).len(), 1);
        assert_eq!(publish_warnings(&long, 1).len(), 1);
        assert!(publish_warnings(&format!("$sys/{}", "d".repeat(60)), 1).is_empty());
    }
}
