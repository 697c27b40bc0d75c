//! The hub's transcript: every MQTT message in and out, every connection event and every COS
//! request, in order.

use serde::Serialize;
use std::time::Duration;

/// Which way a message went, or what kind of event it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Device to hub, accepted.
    In,
    /// Device to hub, refused by the ACL (not routed).
    Refused,
    /// Hub to device.
    Out,
    /// A hub event: `connect` (the verdict), `subscribe`, `suback failure`, `disconnect` (the
    /// reason), `fault` (a rule fired), `fault refused`, `strict` (a C SDK limit crossed),
    /// `ignored` (malformed JSON, an unknown type, a wrong shape).
    Event,
    /// An HTTP request the firmware store (COS) answered: `client_id` is the device the URL
    /// was signed for, `topic` is `METHOD /object`, the payload an [`HttpRecord`] as JSON.
    ///
    /// [`HttpRecord`]: crate::HttpRecord
    Http,
}

/// One line of the transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TranscriptEntry {
    /// Position in the transcript, from 0.
    pub seq: u64,
    /// Monotonic time since the hub started.
    #[serde(serialize_with = "as_millis")]
    pub at: Duration,
    /// In, out, refused or event.
    pub direction: Direction,
    /// The MQTT client id of the device (for `Out`, the device the topic belongs to).
    pub client_id: String,
    /// The topic, or the event name (see [`Direction::Event`]).
    pub topic: String,
    /// The payload as text (lossy UTF-8), or the event's detail.
    pub payload: String,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl TranscriptEntry {
    /// The payload parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.payload).ok()
    }

    /// The payload's `type` field, if it has one.
    pub fn message_type(&self) -> Option<String> {
        self.json()?.get("type")?.as_str().map(str::to_owned)
    }
}
