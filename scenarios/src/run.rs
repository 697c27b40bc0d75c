//! Running a plan in a fresh world and judging the outcome.

use crate::expect::{describe_report, parse_report_pattern, sequence_matches};
use crate::plan::{Plan, Step};
use crate::world::{World, WorldError};
use fake_cos::JournalEntry;
use fake_hub::{Direction, TranscriptEntry, UpdateState};
use gateway::GatewayEvent;
use otasim_protocol::{
    DeviceId, DeviceOtaMessage, GatewayReply, OperationType, ProgressReport, Topic,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// One row of the final table: what happened to a subdevice.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRow {
    /// The subdevice.
    pub device: String,
    /// Its version before the scenario.
    pub version_before: String,
    /// The last version it reported to the hub.
    pub version_after: Option<String>,
    /// `succeeded`, `failed -4 (md5 mismatch: ...)`, `untouched`, ...
    pub result: String,
    /// Body bytes the gateway fetched over HTTP for this device's command (0 when the image was
    /// shared with another subdevice).
    pub bytes_downloaded: u64,
    /// From the first `update_firmware` to the final state, in hub time.
    pub update_ms: Option<u64>,
    /// The reports the hub received, as patterns spell them.
    pub reports: Vec<String>,
}

/// The outcome of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The scenario's name.
    pub name: String,
    /// Its file.
    pub path: String,
    /// Whether every step and expectation held.
    pub passed: bool,
    /// What did not hold, first divergence first.
    pub failures: Vec<String>,
    /// Per subdevice, in fleet order.
    pub devices: Vec<DeviceRow>,
    /// Every MQTT message and connection event the hub saw.
    pub transcript: Vec<TranscriptEntry>,
    /// Every HTTP request fake COS answered.
    pub cos_journal: Vec<JournalEntry>,
    /// Wall time of the run, for the record (never asserted).
    pub elapsed_ms: u64,
}

/// Runs `plan` in a fresh world. `timeline`, if given, receives transcript entries live.
pub async fn run(
    plan: &Plan,
    timeline: Option<mpsc::UnboundedSender<TranscriptEntry>>,
) -> Result<RunReport, WorldError> {
    let started = Instant::now();
    let mut world = World::build(plan).await?;
    let forwarder = timeline.map(|tx| Forwarder::start(&world, tx));
    world.start_gateways()?;
    let mut failures = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        if let Err(why) = run_step(&world, plan, step).await {
            failures.push(format!("step {} ({}): {why}", i + 1, step_name(step)));
            break;
        }
    }
    let transcript = world.hub.transcript();
    if let Some(f) = forwarder {
        f.finish(&transcript).await;
    }
    let events = world.gateway_events();
    let devices = rows(plan, &world, &transcript, &events);
    failures.extend(judge(plan, &devices, &transcript));
    let report = RunReport {
        name: plan.name.clone(),
        path: plan.path.display().to_string(),
        passed: failures.is_empty(),
        failures,
        devices,
        transcript,
        cos_journal: world.cos.journal(),
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    world.shutdown().await;
    Ok(report)
}

/// Streams transcript entries to a live timeline, and on `finish` sends whatever the live
/// stream had not delivered yet (a slow reader may lag behind the broadcast), so the timeline
/// always ends complete and in order.
struct Forwarder {
    task: tokio::task::JoinHandle<()>,
    next_seq: Arc<AtomicU64>,
    tx: mpsc::UnboundedSender<TranscriptEntry>,
}

impl Forwarder {
    fn start(world: &World, tx: mpsc::UnboundedSender<TranscriptEntry>) -> Self {
        let mut live = world.hub.watch_transcript();
        let next_seq = Arc::new(AtomicU64::new(0));
        let (next, out) = (Arc::clone(&next_seq), tx.clone());
        let task = tokio::spawn(async move {
            while let Ok(entry) = live.recv().await {
                // Entries arrive in seq order; a lagged receiver skips, and `finish` fills in.
                if entry.seq == next.load(Ordering::SeqCst) {
                    next.store(entry.seq + 1, Ordering::SeqCst);
                    if out.send(entry).is_err() {
                        break;
                    }
                }
            }
        });
        Forwarder { task, next_seq, tx }
    }

    async fn finish(self, transcript: &[TranscriptEntry]) {
        self.task.abort();
        let _ = self.task.await;
        let from = self.next_seq.load(Ordering::SeqCst) as usize;
        for entry in transcript.iter().skip(from) {
            let _ = self.tx.send(entry.clone());
        }
    }
}

fn step_name(step: &Step) -> &'static str {
    match step {
        Step::WaitOnline { .. } => "wait_online",
        Step::Push(_) => "push",
        Step::WaitTasks { .. } => "wait_tasks",
    }
}

async fn run_step(world: &World, plan: &Plan, step: &Step) -> Result<(), String> {
    match step {
        Step::WaitOnline { timeout } => {
            let bound: Vec<&DeviceId> = plan
                .subdevices
                .iter()
                .filter(|s| s.bound)
                .map(|s| &s.id)
                .collect();
            let ok = world
                .hub
                .wait_until(*timeout, |hub| {
                    bound
                        .iter()
                        .all(|id| hub.device(id).is_some_and(|d| d.version.is_some()))
                })
                .await;
            if ok {
                return Ok(());
            }
            let missing: Vec<String> = bound
                .iter()
                .filter(|id| world.hub.device(id).is_none_or(|d| d.version.is_none()))
                .map(|id| id.to_string())
                .collect();
            Err(format!(
                "after {}, no version report from {}",
                fmt_dur(*timeout),
                missing.join(", ")
            ))
        }
        Step::Push(request) => world
            .hub
            .push(request.clone())
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Step::WaitTasks { timeout } => {
            let ok = world
                .hub
                .wait_until(*timeout, |hub| hub.tasks().iter().all(|t| t.is_finished()))
                .await;
            if ok {
                return Ok(());
            }
            let pending: Vec<String> = world
                .hub
                .tasks()
                .iter()
                .flat_map(|t| t.devices.values())
                .filter(|d| !d.state.is_final())
                .map(|d| format!("{} {}", d.device, d.state.label()))
                .collect();
            Err(format!(
                "after {}, still running: {}",
                fmt_dur(*timeout),
                pending.join(", ")
            ))
        }
    }
}

fn fmt_dur(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The progress reports the hub received about `device`, in order.
pub fn reports_for(transcript: &[TranscriptEntry], device: &DeviceId) -> Vec<ProgressReport> {
    let topic = Topic::OtaReport(device.clone()).to_string();
    transcript
        .iter()
        .filter(|e| e.direction == Direction::In && e.topic == topic)
        .filter_map(|e| match DeviceOtaMessage::parse(e.payload.as_bytes()) {
            Ok(DeviceOtaMessage::ReportProgress(r)) => Some(r),
            _ => None,
        })
        .collect()
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

fn commands_to(transcript: &[TranscriptEntry], device: &DeviceId) -> usize {
    let topic = Topic::OtaUpdate(device.clone()).to_string();
    transcript
        .iter()
        .filter(|e| e.direction == Direction::Out && e.topic == topic)
        .filter(|e| e.message_type().as_deref() == Some("update_firmware"))
        .count()
}

fn rows(
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

fn judge(plan: &Plan, devices: &[DeviceRow], transcript: &[TranscriptEntry]) -> Vec<String> {
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
    for (id, want) in &plan.expect.reports {
        let patterns: Vec<_> = want
            .iter()
            .map(|p| parse_report_pattern(p).expect("validated when the plan was loaded"))
            .collect();
        let got = reports_for(transcript, id);
        if !sequence_matches(&patterns, &got) {
            let got: Vec<String> = got.iter().map(describe_report).collect();
            failures.push(format!(
                "{id}: expected reports [{}], got [{}]",
                want.join(", "),
                got.join(", ")
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
