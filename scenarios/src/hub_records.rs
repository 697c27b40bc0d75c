//! Expectations on what the hub itself recorded: `[[expect.transcript]]` counts entries of a
//! direction and topic whose JSON has (or has not) some fields, or whose detail says something
//! (a refused publish, a `report_version_rsp` with a non-zero `result_code`, a `malformed`
//! event), and `[expect.warnings]` reads the warning on a device's update.

use crate::plan::{Expectations, TranscriptExpect};
use fake_hub::{DeviceStatus, Direction, TranscriptEntry};
use otasim_protocol::DeviceId;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Whether `value` has every field of `want` with its value (objects compared the same way).
fn has_fields(value: &Value, want: &Map<String, Value>) -> bool {
    want.iter().all(|(k, w)| match (value.get(k), w) {
        (Some(got @ Value::Object(_)), Value::Object(inner)) => has_fields(got, inner),
        (Some(got), w) => got == w,
        (None, _) => false,
    })
}

fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::In => "in",
        Direction::Out => "out",
        Direction::Refused => "refused",
        Direction::Event => "event",
        Direction::Http => "http",
    }
}

impl TranscriptExpect {
    fn matches(&self, e: &TranscriptEntry) -> bool {
        if e.direction != self.direction || e.topic != self.topic {
            return false;
        }
        if self.client_id.as_ref().is_some_and(|c| *c != e.client_id) {
            return false;
        }
        if self
            .contains
            .as_ref()
            .is_some_and(|c| !e.payload.contains(c))
        {
            return false;
        }
        let json = e.json();
        if let Some(want) = &self.json
            && !json.as_ref().is_some_and(|v| has_fields(v, want))
        {
            return false;
        }
        if let Some(not) = &self.not_json
            && json.as_ref().is_some_and(|v| has_fields(v, not))
        {
            return false;
        }
        true
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "{} entries on {}",
            direction_name(self.direction),
            self.topic
        );
        if let Some(c) = &self.client_id {
            s.push_str(&format!(" about {c}"));
        }
        if let Some(j) = &self.json {
            s.push_str(&format!(" with {}", Value::Object(j.clone())));
        }
        if let Some(j) = &self.not_json {
            s.push_str(&format!(" without {}", Value::Object(j.clone())));
        }
        if let Some(c) = &self.contains {
            s.push_str(&format!(" containing {c:?}"));
        }
        s
    }
}

/// What did not hold, as text, with the transcript position where it shows (the first entry
/// too many, or the end).
pub(crate) fn judge(
    expect: &Expectations,
    transcript: &[TranscriptEntry],
    devices: &BTreeMap<DeviceId, DeviceStatus>,
) -> Vec<(u64, String)> {
    let end = transcript.len() as u64;
    let mut out = Vec::new();
    for t in &expect.transcript {
        let hits: Vec<&TranscriptEntry> = transcript.iter().filter(|e| t.matches(e)).collect();
        let got = hits.len() as u64;
        if t.bounds.holds(got) {
            continue;
        }
        let at = t
            .bounds
            .max
            .and_then(|m| hits.get(m as usize))
            .map_or(end, |e| e.seq);
        // What there was instead, on the same topic: the likeliest near miss.
        let seen: Vec<String> = transcript
            .iter()
            .filter(|e| e.direction == t.direction && e.topic == t.topic)
            .take(3)
            .map(|e| format!("{:.120}", e.payload))
            .collect();
        let instead = if seen.is_empty() || got > 0 {
            String::new()
        } else {
            format!(" (on that topic: {})", seen.join(" | "))
        };
        out.push((
            at,
            format!("expected {} {}, got {got}{instead}", t.bounds, t.describe()),
        ));
    }
    for (id, want) in &expect.warnings {
        let got = devices
            .get(id)
            .and_then(|d| d.update.as_ref())
            .and_then(|u| u.warning.clone());
        if !got.as_deref().is_some_and(|g| g.contains(want.as_str())) {
            out.push((
                end,
                format!(
                    "{id}: expected a warning containing {want:?} on its update, got {}",
                    got.map_or("none".to_owned(), |g| format!("{g:?}"))
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_match_as_a_subset_and_nested_objects_too() {
        let v = json!({"type": "report_version_rsp", "result_code": -1, "p": {"a": 1, "b": 2}});
        let m = |j: Value| j.as_object().cloned().expect("object");
        assert!(has_fields(&v, &m(json!({"type": "report_version_rsp"}))));
        assert!(has_fields(&v, &m(json!({"p": {"a": 1}}))));
        assert!(!has_fields(&v, &m(json!({"result_code": 0}))));
        assert!(!has_fields(&v, &m(json!({"missing": 0}))));
        assert!(has_fields(&v, &Map::new()));
    }
}
