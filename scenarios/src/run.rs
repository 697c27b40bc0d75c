//! Running a plan in a fresh world, alone or many side by side, and reporting the outcome.

use crate::failure::Failure;
use crate::happened::DeviceRow;
use crate::judge::{Judge, Judgement};
use crate::plan::{GatewayRun, Plan, Step};
use crate::profile::{Concurrency, GatewayProfile};
use crate::steps::run_step;
use crate::world::{Note, Ports, World, WorldError};
use fake_cos::JournalEntry;
use fake_hub::TranscriptEntry;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use std::time::Instant;
use tokio::sync::{Semaphore, mpsc};

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
    pub failures: Vec<Failure>,
    /// The records around the first divergence (`>>` marks it): COS requests for a COS
    /// expectation, the device's messages for a device expectation.
    pub context: Vec<String>,
    /// The 1-based step that failed, if one did.
    pub failed_step: Option<usize>,
    /// Where a gateway profile or an external gateway changed what was judged.
    pub adjustments: Vec<String>,
    /// The record of the first divergence (a transcript entry or a COS request).
    pub diverged_at: Option<crate::judge::Record>,
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

/// How long the versions a plan expects get to arrive after its last step.
const VERSION_SETTLE: std::time::Duration = std::time::Duration::from_secs(3);

/// `done` ends an update as succeeded, and a gateway's `report_version` of the new version may
/// come just after the task finished: wait (on hub changes, bounded) until the expected
/// versions are in; a wrong version is still judged a failure after the wait.
async fn settle_versions(world: &World, plan: &Plan) {
    if plan.expect.versions.is_empty() {
        return;
    }
    let arrived = |hub: &fake_hub::Hub| {
        plan.expect.versions.iter().all(|(id, want)| {
            hub.device(id).and_then(|d| d.version).as_deref() == Some(want.as_str())
        })
    };
    let _ = world.hub.wait_until(VERSION_SETTLE, arrived).await;
}

impl RunReport {
    /// Each failure as a line of text, first divergence first.
    pub fn failure_lines(&self) -> Vec<String> {
        self.failures.iter().map(|f| f.to_string()).collect()
    }
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
    let options = RunOptions {
        seed: Some(seed),
        timeline,
        ..RunOptions::default()
    };
    run_keeping_world_with(plan, options).await
}

/// How a run is set up beyond its plan.
#[derive(Debug, Default)]
pub struct RunOptions {
    /// Overrides the plan's seed.
    pub seed: Option<u64>,
    /// Where the world listens.
    pub ports: Ports,
    /// The gateway's accepted behaviours (the catalog's expectations as written by default).
    pub profile: GatewayProfile,
    /// Receives transcript entries live.
    pub timeline: Option<mpsc::UnboundedSender<TranscriptEntry>>,
}

/// Runs `plan` as `options` say, then shuts the world down.
pub async fn run_with(plan: &Plan, options: RunOptions) -> Result<RunReport, WorldError> {
    let (report, world) = run_keeping_world_with(plan, options).await?;
    world.shutdown().await;
    Ok(report)
}

/// Whether any gateway of the plan is an external program.
pub fn is_external(plan: &Plan) -> bool {
    plan.gateways
        .iter()
        .any(|g| matches!(g.run, GatewayRun::Command { .. }))
}

async fn run_keeping_world_with(
    plan: &Plan,
    options: RunOptions,
) -> Result<(RunReport, World), WorldError> {
    let started = Instant::now();
    let external = is_external(plan);
    let mut seeded = if external {
        for_external(plan, &options.profile)
    } else {
        plan.clone()
    };
    seeded.seed = options.seed.unwrap_or(plan.seed);
    let plan = &seeded;
    let mut world = World::build_on(plan, options.ports).await?;
    let forwarder = options.timeline.map(|tx| Forwarder::start(&world, tx));
    world.start_gateways()?;
    let mut step_failure = None;
    for (i, step) in plan.steps.iter().enumerate() {
        if let Err(error) = run_step(&mut world, plan, step).await {
            let at = world.hub.transcript().len() as u64;
            let failure = Failure::Step {
                index: i + 1,
                action: step.name(),
                error,
            };
            step_failure = Some((at, failure));
            break;
        }
    }
    if step_failure.is_none() {
        settle_versions(&world, plan).await;
    }
    let failed_step = step_failure.as_ref().map(|(_, f)| match f {
        Failure::Step { index, .. } => *index,
        _ => 0,
    });
    let happened = world.snapshot(plan);
    if let Some(f) = forwarder {
        f.finish(&happened.transcript).await;
    }
    let devices = happened.rows(plan);
    let Judgement {
        mut failures,
        context,
        adjustments,
        diverged_at,
    } = Judge {
        plan,
        profile: &options.profile,
        happened: &happened,
        rows: &devices,
        external,
    }
    .judge(step_failure);
    let notes = world.notes();
    let e = &plan.expect;
    failures.extend(
        crate::counts::judge(
            &e.counts,
            &e.cos_gaps,
            &e.cos_ranges,
            &happened.transcript,
            &happened.journal,
            &notes,
        )
        .into_iter()
        .map(|what| Failure::Counted { what }),
    );
    failures.extend(
        crate::hub_records::judge(e, &happened.transcript, &happened.devices)
            .into_iter()
            .map(|(_, what)| Failure::Recorded { what }),
    );
    let report = RunReport {
        name: plan.name.clone(),
        path: plan.path.display().to_string(),
        description: plan.description.clone(),
        seed: plan.seed,
        passed: failures.is_empty(),
        failures,
        context,
        failed_step,
        adjustments,
        diverged_at,
        devices,
        transcript: happened.transcript,
        cos_journal: happened.journal,
        notes,
        tasks: happened.tasks,
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    Ok((report, world))
}

/// The longest a stretched wait may become: a gateway that never gets there fails in time.
const MAX_SCALED: Duration = Duration::from_secs(40);
/// The most the hub's side is stretched for an external gateway.
const MAX_STRETCH: f64 = 10.0;

/// The plan as an external gateway needs it. Its timers cannot be scaled, so `time_scale`
/// reaches it through the hub's side instead: task timeouts, retry intervals, start delays,
/// rate-limit periods, fault windows, quiet spells and step deadlines are divided by the
/// scale, keeping the ratios the scenario was written with. A serial gateway's deadlines are
/// also multiplied by its number of subdevices.
pub fn for_external(plan: &Plan, profile: &GatewayProfile) -> Plan {
    let mut p = plan.clone();
    let slow = if plan.time_scale < 1.0 {
        (1.0 / plan.time_scale).min(MAX_STRETCH)
    } else {
        1.0
    };
    let serial = match profile.subdevices {
        Concurrency::Serial => plan.subdevices.len().max(1) as f64,
        Concurrency::Concurrent => 1.0,
    };
    let hub = |d: Duration| d.mul_f64(slow).min(MAX_SCALED);
    let wait = |d: Duration| d.mul_f64(slow * serial).min(MAX_SCALED.max(d));
    for step in &mut p.steps {
        match step {
            Step::WaitOnline { timeout } | Step::WaitTasks { timeout } => *timeout = wait(*timeout),
            Step::WaitUntil { timeout, .. } => *timeout = wait(*timeout),
            Step::Quiet { duration, .. } => *duration = hub(*duration),
            Step::AddCosFault {
                window: Some(w), ..
            } => *w = hub(*w),
            Step::PushTask(t) => {
                let o = &mut t.options;
                o.timeout = o.timeout.map(wait);
                o.retry_interval = hub(o.retry_interval);
                o.start_delay = hub(o.start_delay);
                if let Some(r) = &mut o.rate_limit {
                    r.per = hub(r.per);
                }
            }
            _ => {}
        }
    }
    p
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
