//! Running a plan in a fresh world, alone or many side by side, and reporting the outcome.

use crate::judge::{Judgement, judge, rows};
use crate::plan::Plan;
use crate::steps::run_step;
use crate::world::{Note, World, WorldError};
use fake_cos::JournalEntry;
use fake_hub::{Direction, TranscriptEntry};
use otasim_protocol::{DeviceId, DeviceOtaMessage, ProgressReport, Topic};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::{Semaphore, mpsc};

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
    /// What it models.
    pub description: String,
    /// The seed every generated image came from; `otasim replay SEED PATH` runs it again.
    pub seed: u64,
    /// Whether every step and expectation held.
    pub passed: bool,
    /// What did not hold, first divergence first.
    pub failures: Vec<String>,
    /// The transcript around the first divergence (`>>` marks it).
    pub context: Vec<String>,
    /// Per subdevice, in fleet order.
    pub devices: Vec<DeviceRow>,
    /// Every MQTT message and connection event the hub saw.
    pub transcript: Vec<TranscriptEntry>,
    /// Every HTTP request fake COS answered (Range, status, bytes, fault fired).
    pub cos_journal: Vec<JournalEntry>,
    /// Runner actions and HTTP requests placed in the transcript's order.
    pub notes: Vec<Note>,
    /// Every task as the console shows it at the end, with each device's state history.
    pub tasks: Vec<fake_hub::TaskStatus>,
    /// Wall time of the run, for the record (never asserted).
    pub elapsed_ms: u64,
}

/// Runs `plan` in a fresh world under its own seed. `timeline`, if given, receives transcript
/// entries live.
pub async fn run(
    plan: &Plan,
    timeline: Option<mpsc::UnboundedSender<TranscriptEntry>>,
) -> Result<RunReport, WorldError> {
    run_seeded(plan, plan.seed, timeline).await
}

/// Runs `plan` in a fresh world with every generated image drawn from `seed`.
pub async fn run_seeded(
    plan: &Plan,
    seed: u64,
    timeline: Option<mpsc::UnboundedSender<TranscriptEntry>>,
) -> Result<RunReport, WorldError> {
    let (report, world) = run_keeping_world(plan, seed, timeline).await?;
    world.shutdown().await;
    Ok(report)
}

/// Like [`run_seeded`], but hands back the world still running (hub, COS and gateways), so a
/// person can keep looking at it (`otasim demo --serve`). The caller shuts it down.
pub async fn run_keeping_world(
    plan: &Plan,
    seed: u64,
    timeline: Option<mpsc::UnboundedSender<TranscriptEntry>>,
) -> Result<(RunReport, World), WorldError> {
    let started = Instant::now();
    let mut seeded = plan.clone();
    seeded.seed = seed;
    let plan = &seeded;
    let mut world = World::build(plan).await?;
    let forwarder = timeline.map(|tx| Forwarder::start(&world, tx));
    world.start_gateways()?;
    let mut step_failure = None;
    for (i, step) in plan.steps.iter().enumerate() {
        if let Err(why) = run_step(&mut world, plan, step).await {
            let at = world.hub.transcript().len() as u64;
            step_failure = Some((at, format!("step {} ({}): {why}", i + 1, step.name())));
            break;
        }
    }
    let transcript = world.hub.transcript();
    if let Some(f) = forwarder {
        f.finish(&transcript).await;
    }
    let events = world.gateway_events();
    let devices = rows(plan, &world, &transcript, &events);
    let cos_journal = world.cos.journal();
    let tasks = world.hub.tasks();
    let summaries: Vec<_> = tasks.iter().map(|t| t.summary.clone()).collect();
    let Judgement {
        mut failures,
        context,
    } = judge(
        plan,
        &devices,
        &transcript,
        &cos_journal,
        &summaries,
        step_failure,
    );
    let notes = world.notes();
    let e = &plan.expect;
    failures.extend(crate::counts::judge(
        &e.counts,
        &e.cos_gaps,
        &e.cos_ranges,
        &transcript,
        &cos_journal,
        &notes,
    ));
    let report = RunReport {
        name: plan.name.clone(),
        path: plan.path.display().to_string(),
        description: plan.description.clone(),
        seed,
        passed: failures.is_empty(),
        failures,
        context,
        devices,
        transcript,
        cos_journal,
        notes,
        tasks,
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    Ok((report, world))
}

/// Runs every plan, at most `jobs` at once, each in its own world; `seed` overrides each
/// plan's. `done` hears of each as it finishes; the results come back in `plans` order.
pub async fn run_all(
    plans: &[Plan],
    seed: Option<u64>,
    jobs: usize,
    mut done: impl FnMut(&Plan, &Result<RunReport, WorldError>),
) -> Vec<Result<RunReport, WorldError>> {
    let gate = Arc::new(Semaphore::new(jobs.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, plan) in plans.iter().enumerate() {
        let (plan, gate) = (plan.clone(), Arc::clone(&gate));
        set.spawn(async move {
            let _permit = gate
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let seed = seed.unwrap_or(plan.seed);
            (i, run_seeded(&plan, seed, None).await)
        });
    }
    let mut out: Vec<Option<Result<RunReport, WorldError>>> = plans.iter().map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, result) = match joined {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        done(&plans[i], &result);
        out[i] = Some(result);
    }
    out.into_iter()
        .map(|r| r.expect("every task reported"))
        .collect()
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

/// The progress reports the hub received about `device`, in order.
pub fn reports_for(transcript: &[TranscriptEntry], device: &DeviceId) -> Vec<ProgressReport> {
    report_entries(transcript, device)
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

/// The progress reports about `device` with the transcript position of each.
pub(crate) fn report_entries(
    transcript: &[TranscriptEntry],
    device: &DeviceId,
) -> Vec<(u64, ProgressReport)> {
    let topic = Topic::OtaReport(device.clone()).to_string();
    transcript
        .iter()
        .filter(|e| e.direction == Direction::In && e.topic == topic)
        .filter_map(|e| match DeviceOtaMessage::parse(e.payload.as_bytes()) {
            Ok(DeviceOtaMessage::ReportProgress(r)) => Some((e.seq, r)),
            _ => None,
        })
        .collect()
}
