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
    /// `ignored` (malformed JSON, an unknown type, a wrong shape), `will refused` (a CONNECT whose
    /// Last Will the client may not publish), `will` (a Last Will sent, followed by its `In` entry).
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

/// How much transcript a hub keeps in memory: the oldest entries go first once either bound is
/// reached (the transcript file, when one is written, keeps everything). The defaults hold
/// every scenario of the catalog many times over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranscriptLimits {
    /// At most this many entries.
    pub max_entries: usize,
    /// At most about this many bytes of client ids, topics and payloads.
    pub max_bytes: usize,
}

impl TranscriptLimits {
    /// A million entries or 64 MiB, whichever comes first.
    pub const DEFAULT: TranscriptLimits = TranscriptLimits {
        max_entries: 1_000_000,
        max_bytes: 64 << 20,
    };
}

impl Default for TranscriptLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Longest client id kept whole in an entry; longer ones are cut, with their length.
pub const MAX_CLIENT_ID_BYTES: usize = 256;
/// Longest topic (or event name) kept whole.
pub const MAX_TOPIC_BYTES: usize = 256;
/// Longest payload (or event detail) kept whole: above the broker's packet limit, so every
/// payload a device can send is kept whole.
pub const MAX_PAYLOAD_BYTES: usize = 20 * 1024;

/// What an entry costs besides its strings (seq, time, direction, string headers).
const ENTRY_OVERHEAD_BYTES: usize = 96;

/// `text` if it is at most `max` bytes; else its first bytes (on a character boundary) and
/// `…[N bytes]` with its full length.
pub(crate) fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes]", &text[..end], text.len())
}

/// The transcript as a bounded ring: entries keep their `seq` from 0 for the hub's whole life,
/// the oldest are dropped first.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    entries: std::collections::VecDeque<TranscriptEntry>,
    bytes: usize,
    next_seq: u64,
    limits: TranscriptLimits,
}

fn cost(e: &TranscriptEntry) -> usize {
    ENTRY_OVERHEAD_BYTES + e.client_id.len() + e.topic.len() + e.payload.len()
}

impl Ring {
    pub(crate) fn new(limits: TranscriptLimits) -> Self {
        Ring {
            limits,
            ..Ring::default()
        }
    }

    /// The seq the next entry gets.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The seq of the oldest entry kept (`next_seq` when none is).
    pub(crate) fn first_seq(&self) -> u64 {
        self.entries.front().map_or(self.next_seq, |e| e.seq)
    }

    /// Adds an entry made by `make` from its seq, dropping the oldest as needed; returns it.
    pub(crate) fn push(&mut self, make: impl FnOnce(u64) -> TranscriptEntry) -> &TranscriptEntry {
        let entry = make(self.next_seq);
        self.next_seq = self.next_seq.saturating_add(1);
        self.bytes = self.bytes.saturating_add(cost(&entry));
        self.entries.push_back(entry);
        while self.entries.len() > 1
            && (self.entries.len() > self.limits.max_entries.max(1)
                || self.bytes > self.limits.max_bytes)
        {
            if let Some(old) = self.entries.pop_front() {
                self.bytes = self.bytes.saturating_sub(cost(&old));
            }
        }
        self.entries
            .back()
            .expect("an entry was just pushed and the ring keeps at least one")
    }

    /// Every entry kept, oldest first.
    pub(crate) fn all(&self) -> Vec<TranscriptEntry> {
        self.entries.iter().cloned().collect()
    }

    /// Up to `limit` kept entries with `seq >= since` for which `keep` holds, oldest first.
    pub(crate) fn page(
        &self,
        since: u64,
        limit: usize,
        mut keep: impl FnMut(&TranscriptEntry) -> bool,
    ) -> Vec<TranscriptEntry> {
        let skip = usize::try_from(since.saturating_sub(self.first_seq())).unwrap_or(usize::MAX);
        self.entries
            .iter()
            .skip(skip)
            .filter(|e| keep(e))
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(seq: u64, payload: &str) -> TranscriptEntry {
        TranscriptEntry {
            seq,
            at: Duration::ZERO,
            direction: Direction::Event,
            client_id: "c".into(),
            topic: "t".into(),
            payload: payload.into(),
        }
    }

    #[test]
    fn oversize_text_is_cut_on_a_character_boundary_with_its_length() {
        assert_eq!(truncated("short", 10), "short");
        assert_eq!(truncated("ééé", 3), "é…[6 bytes]");
        assert_eq!(truncated(&"x".repeat(300), 4), "xxxx…[300 bytes]");
    }

    proptest! {
        #[test]
        fn ring_keeps_the_newest_entries_within_its_bounds(
            payloads in proptest::collection::vec(0usize..3000, 1..200),
            max_entries in 1usize..50,
            max_bytes in 0usize..20_000,
            since in 0u64..250,
            limit in 0usize..60,
        ) {
            let mut ring = Ring::new(TranscriptLimits { max_entries, max_bytes });
            for (i, len) in payloads.iter().enumerate() {
                let e = ring.push(|seq| entry(seq, &"p".repeat(*len)));
                prop_assert_eq!(e.seq, i as u64);
            }
            let kept = ring.all();
            prop_assert!(!kept.is_empty() && kept.len() <= max_entries);
            prop_assert!(kept.len() == 1 || kept.iter().map(cost).sum::<usize>() <= max_bytes);
            prop_assert_eq!(kept.last().map(|e| e.seq), Some(payloads.len() as u64 - 1));
            prop_assert!(kept.windows(2).all(|w| w[1].seq == w[0].seq + 1));
            prop_assert_eq!(ring.next_seq(), payloads.len() as u64);
            let page = ring.page(since, limit, |_| true);
            let want: Vec<_> = kept.iter().filter(|e| e.seq >= since).take(limit).cloned().collect();
            prop_assert_eq!(page, want);
        }
    }
}
