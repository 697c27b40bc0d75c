//! `otasim bench hub --series`: one fleet size after another in one run, a fresh hub process
//! per size, then one table with each phase's growth against the first size, the bench
//! clients' own CPU cost beside it, and the round trip against mosquitto.

use super::capacity::{self, Capacity};
use super::client::{Client, Counters, Login};
use super::proc::{self, CpuTime};
use super::{
    Fleet, HubProcess, SECRET, bounded, connect_all, cores, print_round_trips, rtt, start_hub,
    update_all,
};
use anyhow::Context as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Clients and messages per client of the probe of the bench's own clients.
const PROBE_CLIENTS: usize = 1000;
const PROBE_MESSAGES: usize = 50;

/// What one size measured.
struct Measured {
    connect: Duration,
    update: Duration,
    messages: u64,
    succeeded: u64,
    hub_rss: Option<f64>,
    /// The bench process's CPU time over connect and update.
    client_cpu: Option<Duration>,
    /// The bench process's CPU time in the update, per message.
    client_us_per_msg: Option<f64>,
}

/// Why one size has no numbers.
struct Failed {
    phase: &'static str,
    after: Duration,
    error: String,
    hub_rss: Option<f64>,
}

struct SizeRun {
    fleet: Fleet,
    outcome: Result<Measured, Failed>,
}

pub(super) async fn run(base: Fleet, sizes: &[usize], samples: usize) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    say!(
        "otasim bench hub --series: {} x {} subdevices, {}-byte firmware, {} cores, \
         at most {:?} per phase",
        sizes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        base.subdevices,
        base.firmware_bytes,
        cores(),
        base.phase_timeout
    );
    let mosquitto = rtt::Mosquitto::start(dir.path()).await?;
    let probe = capacity::probe(
        mosquitto.addr,
        PROBE_CLIENTS,
        PROBE_MESSAGES,
        base.phase_timeout,
    )
    .await;
    let mut runs = Vec::new();
    let mut hub_rtt = None;
    for &gateways in sizes {
        let fleet = Fleet { gateways, ..base };
        let (outcome, rtt) = one_size(dir.path(), &fleet, hub_rtt.is_none(), samples).await;
        match &outcome {
            Ok(m) => say!(
                "  {gateways} x {}: connect {:.2} s, update {:.2} s",
                fleet.subdevices,
                m.connect.as_secs_f64(),
                m.update.as_secs_f64()
            ),
            Err(f) => say!(
                "  {gateways} x {}: failed in {} after {:.1} s",
                fleet.subdevices,
                f.phase,
                f.after.as_secs_f64()
            ),
        }
        hub_rtt = hub_rtt.or(rtt);
        runs.push(SizeRun { fleet, outcome });
    }
    print_table(&runs);
    print_clients(&runs, &probe);
    let reference = mosquitto_round_trips(&mosquitto, samples).await;
    match (hub_rtt, reference) {
        (Some(Ok(hub)), Ok(reference)) => print_round_trips(samples, &[hub, reference]),
        (hub, reference) => {
            let why = |r: Option<anyhow::Result<_>>| match r {
                None => "no size succeeded".to_owned(),
                Some(Ok(_)) => "ok".to_owned(),
                Some(Err(e)) => format!("{e:#}"),
            };
            say!(
                "round trips not measured: otasim hub: {}; mosquitto: {}",
                why(hub),
                why(Some(reference))
            );
        }
    }
    let all_ok = runs
        .iter()
        .all(|r| matches!(&r.outcome, Ok(m) if m.succeeded as usize == r.fleet.devices()));
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs one size on a fresh hub; with `rtt`, also the hub's round trips once it succeeded.
async fn one_size(
    dir: &Path,
    fleet: &Fleet,
    rtt: bool,
    samples: usize,
) -> (
    Result<Measured, Failed>,
    Option<anyhow::Result<Vec<Duration>>>,
) {
    let started = Instant::now();
    let limit = fleet.phase_timeout;
    let hub = match bounded("starting the hub", limit, start_hub(dir, fleet)).await {
        Ok(hub) => hub,
        Err(e) => return (Err(failed("hub start", started, &e, None)), None),
    };
    let outcome = measure(&hub, fleet).await;
    let round_trips = match (&outcome, rtt) {
        (Ok(_), true) => Some(hub_round_trips(&hub, samples).await),
        _ => None,
    };
    hub.stop().await;
    (outcome, round_trips)
}

async fn measure(hub: &HubProcess, fleet: &Fleet) -> Result<Measured, Failed> {
    let limit = fleet.phase_timeout;
    let counters = Arc::new(Counters::default());
    let cpu_start = CpuTime::of(None);
    let started = Instant::now();
    let (ready, connect) = bounded("connecting", limit, connect_all(hub, fleet, &counters))
        .await
        .map_err(|e| failed("connect", started, &e, hub.peak_rss_mib()))?;
    let cpu_connected = CpuTime::of(None);
    let update_started = Instant::now();
    let updated = bounded(
        "the update",
        limit,
        update_all(hub, fleet, ready, &counters),
    )
    .await
    .map_err(|e| failed("update", update_started, &e, hub.peak_rss_mib()))?;
    let cpu_end = CpuTime::of(None);
    Ok(Measured {
        connect,
        update: updated.elapsed,
        messages: updated.messages,
        succeeded: updated.succeeded,
        hub_rss: hub.peak_rss_mib(),
        client_cpu: proc::cpu_used(cpu_start, cpu_end),
        client_us_per_msg: proc::cpu_used(cpu_connected, cpu_end)
            .map(|cpu| cpu.as_secs_f64() * 1e6 / updated.messages.max(1) as f64),
    })
}

fn failed(
    phase: &'static str,
    started: Instant,
    error: &anyhow::Error,
    hub_rss: Option<f64>,
) -> Failed {
    Failed {
        phase,
        after: started.elapsed(),
        error: format!("{error:#}"),
        hub_rss,
    }
}

async fn hub_round_trips(hub: &HubProcess, samples: usize) -> anyhow::Result<Vec<Duration>> {
    let counters = Arc::new(Counters::default());
    let id = rtt::device();
    let mut device = Client::connect(hub.mqtt, Login::Device(&id, SECRET), counters).await?;
    device.subscribe(&format!("$ota/update/{id}")).await?;
    let mut times = rtt::measure(&mut device, 200, samples)
        .await
        .context("otasim round trips")?;
    times.sort();
    Ok(times)
}

async fn mosquitto_round_trips(
    mosquitto: &rtt::Mosquitto,
    samples: usize,
) -> anyhow::Result<Vec<Duration>> {
    rtt::echo_relay(mosquitto.addr).await?;
    let mut device = rtt::mosquitto_device(mosquitto.addr).await?;
    let mut times = rtt::measure(&mut device, 200, samples)
        .await
        .context("mosquitto round trips")?;
    times.sort();
    Ok(times)
}

/// `value` and its ratio to `base` (the first size that has one).
fn grown(value: f64, base: Option<f64>) -> String {
    match base {
        Some(b) if b > 0.0 => format!("x{:.2}", value / b),
        _ => "-".to_owned(),
    }
}

fn print_table(runs: &[SizeRun]) {
    let first = runs.iter().find_map(|r| r.outcome.as_ref().ok());
    let first_fleet = runs.first().map_or(1, |r| r.fleet.devices()).max(1);
    let rate = |m: &Measured| m.messages as f64 / m.update.as_secs_f64().max(1e-9);
    say!(
        "{:>14} {:>6}  {:>16}  {:>16}  {:>15}  {:>18}  {:>14}  {:>12}",
        "gateways x sub",
        "fleet",
        "connect",
        "update (1 task)",
        "msg/s",
        "hub RSS",
        "clients CPU",
        "clients us/msg"
    );
    for r in runs {
        let size = format!("{} x {}", r.fleet.gateways, r.fleet.subdevices);
        let fleet = format!("x{:.1}", r.fleet.devices() as f64 / first_fleet as f64);
        match &r.outcome {
            Ok(m) => {
                let secs = |d: Duration| d.as_secs_f64();
                let rss = m.hub_rss.unwrap_or(f64::NAN);
                let cpu = m.client_cpu.map_or(f64::NAN, |c| {
                    100.0 * c.as_secs_f64() / (secs(m.connect + m.update) * cores() as f64)
                });
                say!(
                    "{size:>14} {fleet:>6}  {:>8.2} s {:>5}  {:>8.2} s {:>5}  {:>9.0} {:>5}  \
                     {:>8.1} MiB {:>5}  {:>6.0}% of all  {:>12.1}{}",
                    secs(m.connect),
                    grown(secs(m.connect), first.map(|f| secs(f.connect))),
                    secs(m.update),
                    grown(secs(m.update), first.map(|f| secs(f.update))),
                    rate(m),
                    grown(rate(m), first.map(rate)),
                    rss,
                    grown(rss, first.and_then(|f| f.hub_rss)),
                    cpu,
                    m.client_us_per_msg.unwrap_or(f64::NAN),
                    if m.succeeded as usize == r.fleet.devices() {
                        String::new()
                    } else {
                        format!("  ({} of {} succeeded)", m.succeeded, r.fleet.devices())
                    }
                );
            }
            Err(f) => say!(
                "{size:>14} {fleet:>6}  FAILED in {} after {:.1} s (hub RSS {}): {}",
                f.phase,
                f.after.as_secs_f64(),
                f.hub_rss
                    .map_or("n/a".to_owned(), |m| format!("{m:.1} MiB")),
                f.error
            ),
        }
    }
}

/// The clients' cost in the series beside what they cost against mosquitto alone.
fn print_clients(runs: &[SizeRun], probe: &anyhow::Result<Capacity>) {
    let probe = match probe {
        Ok(p) => p,
        Err(e) => {
            say!("bench clients alone: not measured: {e:#}");
            return;
        }
    };
    let Some(us) = probe.cpu_us_per_msg() else {
        say!("bench clients alone: CPU time not readable from /proc");
        return;
    };
    say!(
        "bench clients alone, against mosquitto 2 ({} clients x {} QoS 1 publishes echoed back): \
         {:.0} msg/s, {us:.1} us of client CPU per message, so one core of clients drives \
         {:.0} msg/s",
        probe.clients,
        PROBE_MESSAGES,
        probe.messages as f64 / probe.wall.as_secs_f64().max(1e-9),
        1e6 / us.max(1e-9)
    );
    let fastest = runs
        .iter()
        .filter_map(|r| r.outcome.as_ref().ok())
        .map(|m| m.messages as f64 / m.update.as_secs_f64().max(1e-9))
        .fold(0.0, f64::max);
    if fastest > 0.0 {
        say!(
            "the fastest size's update ran at {fastest:.0} msg/s: {:.1}% of what one core of \
             clients drives",
            100.0 * fastest * us / 1e6
        );
    }
}
