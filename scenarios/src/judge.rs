//! Judging a finished run against its expectations: every failure with the transcript
//! position where it shows, so the first divergence can be printed with its context.

use crate::expect::{
    describe_report, first_divergence, parse_report_pattern, result_matches, sequence_matches,
};
use crate::plan::Plan;
use crate::run::{DeviceRow, report_entries, reports_for};
use crate::timeline::describe_entry;
use crate::world::World;

use fake_cos::JournalEntry;
use fake_hub::{Direction, TranscriptEntry, UpdateState};
use gateway::GatewayEvent;
use otasim_protocol::{DeviceId, GatewayReply, OperationType, Topic};
use std::collections::BTreeMap;

/// Transcript lines shown before and after the first divergence.
const CONTEXT: u64 = 4;

/// What did not hold, and where.
pub(crate) struct Judgement {
    /// Failures, first divergence first.
    pub(crate) failures: Vec<String>,
    /// The transcript around the first divergence.
    pub(crate) context: Vec<String>,
}

fn online_results(transcript: &[TranscriptEntry]) -> BTreeMap<DeviceId, i64> {
    let mut out = BTreeMap::new();
    for e in transcript.iter().filter(|e| e.direction == Direction::Out) {
        let Ok(Topic::GatewayOperationResult(_)) = e.topic.parse::<Topic>() else {
            continue;
        };
        let Ok(reply) = GatewayReply::parse(e.payload.as_bytes()) else {
            continue;
        };
        if reply.kind != OperationType::Online {
            continue;
        }
        for d in &reply.devices {
            if let (Ok(id), Some(r)) = (d.id(), d.result) {
                out.insert(id, r);
            }
        }
    }
    out
}

pub(crate) fn commands_to(transcript: &[TranscriptEntry], device: &DeviceId) -> usize {
    let topic = Topic::OtaUpdate(device.clone()).to_string();
    transcript
        .iter()
        .filter(|e| e.direction == Direction::Out && e.topic == topic)
        .filter(|e| e.message_type().as_deref() == Some("update_firmware"))
        .count()
}

pub(crate) fn rows(
    plan: &Plan,
    world: &World,
    transcript: &[TranscriptEntry],
    events: &[(DeviceId, GatewayEvent)],
) -> Vec<DeviceRow> {
    plan.subdevices
        .iter()
        .map(|s| {
            let status = world.hub.device(&s.id);
            let update = status.as_ref().and_then(|d| d.update.clone());
            let result = match &update {
                None if commands_to(transcript, &s.id) == 0 => "untouched".to_owned(),
                None => "no task".to_owned(),
                Some(u) => match &u.state {
                    UpdateState::Failed { code, message } => format!("failed {code} ({message})"),
                    other => other.label().to_owned(),
                },
            };
            let update_ms = update.as_ref().and_then(|u| {
                let first = u.history.first()?.0;
                let last = u.history.last().filter(|(_, st)| st.is_final())?.0;
                Some(last - first)
            });
            let bytes_downloaded = events
                .iter()
                .filter_map(|(_, e)| match e {
                    GatewayEvent::ImageFetched {
                        device,
                        bytes_transferred,
                        ..
                    } if device == &s.id => Some(*bytes_transferred),
                    _ => None,
                })
                .sum();
            DeviceRow {
                device: s.id.to_string(),
                version_before: s.version.clone(),
                version_after: status.and_then(|d| d.version),
                result,
                bytes_downloaded,
                update_ms,
                reports: reports_for(transcript, &s.id)
                    .iter()
                    .map(describe_report)
                    .collect(),
            }
        })
        .collect()
}

pub(crate) fn judge(
    plan: &Plan,
    devices: &[DeviceRow],
    transcript: &[TranscriptEntry],
    journal: &[JournalEntry],
    tasks: &[BTreeMap<String, usize>],
    step_failure: Option<(u64, String)>,
) -> Judgement {
    let mut found: Vec<(u64, String)> = step_failure.into_iter().collect();
    let end = transcript.len() as u64;
    found.extend(report_failures(plan, transcript));
    found.extend(
        final_failures(plan, devices, transcript)
            .into_iter()
            .map(|f| (end, f)),
    );
    found.extend(cos_failures(plan, journal).into_iter().map(|f| (end, f)));
    found.extend(task_failures(plan, tasks).into_iter().map(|f| (end, f)));
    found.sort_by_key(|(at, _)| *at);
    let context = found
        .first()
        .map(|(at, _)| context_around(transcript, *at))
        .unwrap_or_default();
    Judgement {
        failures: found.into_iter().map(|(_, f)| f).collect(),
        context,
    }
}

fn report_failures(plan: &Plan, transcript: &[TranscriptEntry]) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for (id, want) in &plan.expect.reports {
        let patterns: Vec<_> = want
            .iter()
            .map(|p| parse_report_pattern(p).expect("validated when the plan was loaded"))
            .collect();
        let entries = report_entries(transcript, id);
        let got: Vec<_> = entries.iter().map(|(_, r)| r.clone()).collect();
        if sequence_matches(&patterns, &got) {
            continue;
        }
        let at = first_divergence(&patterns, &got).unwrap_or(0);
        let seq = entries
            .get(at)
            .map(|(s, _)| *s)
            .unwrap_or(transcript.len() as u64);
        let got_text: Vec<String> = got.iter().map(describe_report).collect();
        let what = match got.get(at) {
            Some(r) => format!(
                "report #{} {:?} was not expected",
                at + 1,
                describe_report(r)
            ),
            None => format!("after report #{at}, more reports were expected"),
        };
        out.push((
            seq,
            format!(
                "{id}: {what}; expected [{}], got [{}]",
                want.join(", "),
                got_text.join(", ")
            ),
        ));
    }
    if plan.expect.nothing_else {
        out.extend(nothing_else(plan, transcript));
    }
    out
}

/// Reports from devices no expectation lists, and refused publishes.
fn nothing_else(plan: &Plan, transcript: &[TranscriptEntry]) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for s in &plan.subdevices {
        if plan.expect.reports.contains_key(&s.id) {
            continue;
        }
        if let Some((seq, r)) = report_entries(transcript, &s.id).first() {
            out.push((
                *seq,
                format!(
                    "{}: unexpected report {:?} (nothing_else)",
                    s.id,
                    describe_report(r)
                ),
            ));
        }
    }
    for e in transcript
        .iter()
        .filter(|e| e.direction == Direction::Refused)
    {
        out.push((
            e.seq,
            format!(
                "refused publish by {} on {} (nothing_else)",
                e.client_id, e.topic
            ),
        ));
    }

    out
}

fn final_failures(
    plan: &Plan,
    devices: &[DeviceRow],
    transcript: &[TranscriptEntry],
) -> Vec<String> {
    let mut failures = Vec::new();
    let row = |id: &DeviceId| devices.iter().find(|r| r.device == id.to_string());
    for (id, want) in &plan.expect.versions {
        let got = row(id).and_then(|r| r.version_after.clone());
        if got.as_deref() != Some(want.as_str()) {
            failures.push(format!(
                "{id}: expected version {want}, hub has {}",
                got.as_deref().unwrap_or("none")
            ));
        }
    }
    for (id, want) in &plan.expect.results {
        let got = row(id).map(|r| r.result.clone()).unwrap_or_default();
        if !result_matches(want, &got) {
            failures.push(format!("{id}: expected result {want}, got {got}"));
        }
    }
    for (id, bounds) in &plan.expect.bytes_downloaded {
        let got = row(id).map_or(0, |r| r.bytes_downloaded);
        if !bounds.holds(got) {
            failures.push(format!(
                "{id}: expected bytes downloaded {bounds}, got {got}"
            ));
        }
    }
    let online = online_results(transcript);
    for (id, want) in &plan.expect.online_results {
        if online.get(id) != Some(want) {
            failures.push(format!(
                "{id}: expected online result {want}, got {:?}",
                online.get(id)
            ));
        }
    }
    for id in &plan.expect.untouched {
        let n = commands_to(transcript, id);
        if n > 0 {
            failures.push(format!("{id}: expected untouched, got {n} update_firmware"));
        }
    }
    failures
}

fn cos_failures(plan: &Plan, journal: &[JournalEntry]) -> Vec<String> {
    let gets = journal.iter().filter(|j| j.method == "GET");
    let mut out = Vec::new();
    if let Some(b) = plan.expect.cos_bytes_sent {
        // Firmware bytes: bodies of 2xx answers (an error page is not part of the image).
        let sent: u64 = gets
            .clone()
            .filter(|j| (200..300).contains(&j.status))
            .map(|j| j.body_bytes_sent)
            .sum();
        if !b.holds(sent) {
            out.push(format!("expected COS body bytes sent {b}, got {sent}"));
        }
    }
    if let Some(b) = plan.expect.cos_requests {
        let n = gets.count() as u64;
        if !b.holds(n) {
            out.push(format!("expected COS GET requests {b}, got {n}"));
        }
    }
    out
}

/// The task summaries, oldest first, checked against `expect.tasks`.
fn task_failures(plan: &Plan, got: &[BTreeMap<String, usize>]) -> Vec<String> {
    let Some(want) = &plan.expect.tasks else {
        return Vec::new();
    };
    if got == want.as_slice() {
        Vec::new()
    } else {
        vec![format!("expected task summaries {want:?}, got {got:?}")]
    }
}

fn context_around(transcript: &[TranscriptEntry], at: u64) -> Vec<String> {
    let from = at.saturating_sub(CONTEXT);
    let to = (at + CONTEXT).min(transcript.len() as u64);
    let mut lines: Vec<String> = transcript[from as usize..to as usize]
        .iter()
        .map(|e| {
            let mark = if e.seq == at { ">>" } else { "  " };
            format!("{mark} #{:<4} {}", e.seq, describe_entry(e))
        })
        .collect();
    if at >= transcript.len() as u64 {
        lines.push(">> (end of transcript: the expected message never came)".into());
    }
    lines
}
