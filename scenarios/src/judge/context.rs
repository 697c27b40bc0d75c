//! The records around the first divergence, from the record the failure is about: COS
//! requests for a COS expectation, the device's own messages for a device expectation.

use super::Record;
use crate::failure::Failure;
use crate::happened::Happened;
use crate::timeline::{describe_cos, describe_entry};

/// Records shown before and after the divergence.
const CONTEXT: usize = 4;

pub(super) fn around(h: &Happened, at: Record, failure: &Failure) -> Vec<String> {
    match at {
        Record::Cos(seq) => cos_around(h, seq),
        Record::Transcript(seq) => transcript_around(h, seq, device_of(failure)),
    }
}

fn device_of(f: &Failure) -> Option<&str> {
    match f {
        Failure::Reports { device, .. }
        | Failure::UnexpectedReport { device, .. }
        | Failure::Version { device, .. }
        | Failure::Result { device, .. }
        | Failure::Touched { device, .. }
        | Failure::UpdateCommands { device, .. } => Some(device),
        _ => None,
    }
}

fn transcript_around(h: &Happened, at: u64, device: Option<&str>) -> Vec<String> {
    // A device's failure shows that device's messages (and its gateway's connection events).
    let about = |e: &&fake_hub::TranscriptEntry| match device {
        None => true,
        Some(d) => e.topic.ends_with(d) || e.direction == fake_hub::Direction::Event,
    };
    let entries: Vec<&fake_hub::TranscriptEntry> = h.transcript.iter().filter(about).collect();
    let pos = entries
        .iter()
        .position(|e| e.seq >= at)
        .unwrap_or(entries.len());
    let from = pos.saturating_sub(CONTEXT);
    let to = (pos + CONTEXT).min(entries.len());
    let mut lines: Vec<String> = entries[from..to]
        .iter()
        .map(|e| {
            let mark = if e.seq == at { ">>" } else { "  " };
            format!("{mark} #{:<4} {}", e.seq, describe_entry(e))
        })
        .collect();
    if at >= h.transcript.len() as u64 {
        lines.push(">> (end of transcript: the expected message never came)".into());
    }
    lines
}

fn cos_around(h: &Happened, at: u64) -> Vec<String> {
    let pos = h
        .journal
        .iter()
        .position(|j| j.seq >= at)
        .unwrap_or(h.journal.len());
    let from = pos.saturating_sub(CONTEXT);
    let to = (pos + CONTEXT).min(h.journal.len());
    let mut lines: Vec<String> = h.journal[from..to]
        .iter()
        .map(|j| {
            let mark = if j.seq == at { ">>" } else { "  " };
            format!("{mark} COS #{:<3} {}", j.seq, describe_cos(j))
        })
        .collect();
    if pos >= h.journal.len() {
        lines.push(">> (end of the COS journal: the expected request never came)".into());
    }
    lines
}
