//! `otasim bench hub`: many gateways on one hub, and MQTT round trips against mosquitto.
//!
//! The hub runs as an `otasim hub` child process (so its peak RSS is its own); the simulated
//! gateways run in this process on rumqttc with TCP_NODELAY, each bringing its subdevices
//! online, reporting versions, then answering one task's `update_firmware` with a real HTTP
//! download from the hub's fake COS, progress, `done` and the new version. The round trip is a
//! device's `report_version` to the reply on its update topic: the hub's `report_version_rsp`,
//! beside mosquitto (Debian's package, started here on a loopback port) relaying the same
//! publish back through a plain echo client.
//!
//! `--series` runs several fleet sizes in one run, a fresh hub process per size, and prints
//! each phase's growth against the first size; it also prices the bench's own clients (their
//! CPU time per message, and what they push against mosquitto alone), so a slow hub cannot be
//! confused with slow clients. Every wait is bounded: a size that fails or runs out of time is
//! reported with its error and the series goes on.

mod capacity;
mod client;
mod fleet;
mod nodes;
mod proc;
mod rtt;
mod series;

use anyhow::Context as _;
use client::{Client, Counters, Login};
use fleet::SimGateway;
use otasim_protocol::DeviceId;
use proc::CpuTime;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Arguments of `otasim bench hub`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Simulated gateways (without --series).
    #[arg(long, default_value_t = 1000)]
    gateways: usize,
    /// Subdevices per gateway.
    #[arg(long, default_value_t = 10)]
    subdevices: usize,
    /// Firmware size in bytes.
    #[arg(long, default_value_t = 4096)]
    firmware_bytes: usize,
    /// Gateways connecting at the same time.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Firmware downloads at the same time across the fleet (the hub's COS holds as many
    /// connections as its MQTT listener, `otasim hub --max-connections`, and closes more).
    #[arg(long, default_value_t = 256)]
    downloads: usize,
    /// Round trips measured per broker (after 200 unmeasured).
    #[arg(long, default_value_t = 5000)]
    samples: usize,
    /// Run several fleet sizes in one run (see --sizes), a fresh hub per size.
    #[arg(long)]
    series: bool,
    /// Fleet sizes of --series, in gateways (each with --subdevices).
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,5000,10000")]
    sizes: Vec<usize>,
    /// Run the fleet on one hub, then on a cluster of this many nodes (an owner and edges, as
    /// `otasim hub --cluster-*`; needs an otasim built with `--features cluster`), side by side.
    #[arg(long, value_parser = clap::value_parser!(u16).range(2..=16))]
    nodes: Option<u16>,
    /// Longest any phase (hub start, connect, update) may take before it is reported failed.
    #[arg(long, default_value_t = 300)]
    phase_timeout_secs: u64,
}

const SECRET: &str = "YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldA==";
const GW_PRODUCT: &str = "BENCHGW001";
const SUB_PRODUCT: &str = "BENCHSUB01";
/// Longest one control API call may take.
const API_TIMEOUT: Duration = Duration::from_secs(30);

/// One fleet to run: its shape and how hard the clients push.
#[derive(Debug, Clone, Copy)]
struct Fleet {
    gateways: usize,
    subdevices: usize,
    firmware_bytes: usize,
    concurrency: usize,
    downloads: usize,
    phase_timeout: Duration,
}

impl Fleet {
    fn devices(&self) -> usize {
        self.gateways * self.subdevices
    }
}

/// `otasim hub` as a child process, killed on drop; with `--nodes`, the owner node of a
/// cluster whose edge nodes are child processes too.
struct HubProcess {
    child: Child,
    mqtt: SocketAddr,
    api: SocketAddr,
    /// The edge nodes and their MQTT listeners, if the hub is a cluster.
    edges: Vec<(Child, SocketAddr)>,
}

impl HubProcess {
    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Every node's MQTT listener, the owner's first: gateway `g` connects to `g % len`.
    fn mqtt_nodes(&self) -> Vec<SocketAddr> {
        std::iter::once(self.mqtt)
            .chain(self.edges.iter().map(|(_, a)| *a))
            .collect()
    }

    /// The peak RSS of every node process, in MiB, summed (the one hub's without a cluster).
    fn peak_rss_mib(&self) -> Option<f64> {
        let edges: Option<f64> = self
            .edges
            .iter()
            .map(|(c, _)| proc::peak_rss_mib(c.id()))
            .sum();
        Some(proc::peak_rss_mib(self.pid())? + edges?)
    }

    /// Kills the hub and waits until it is gone, so the next size starts on a quiet machine.
    async fn stop(mut self) {
        for (mut edge, _) in std::mem::take(&mut self.edges) {
            if let Err(e) = edge.kill().await {
                eprintln!("warning: could not stop an edge node: {e}");
            }
        }
        if let Err(e) = self.child.kill().await {
            eprintln!("warning: could not stop otasim hub: {e}");
        }
    }
}

fn fleet_toml(fleet: &Fleet) -> String {
    let mut out = String::new();
    let rtt = rtt::device();
    let _ = writeln!(
        out,
        "[[gateways]]\nproduct_id = \"{}\"\ndevice_name = \"{}\"\nsecret = \"{SECRET}\"\n",
        rtt.product_id(),
        rtt.device_name()
    );
    for g in 0..fleet.gateways {
        let _ = writeln!(
            out,
            "[[gateways]]\nproduct_id = \"{GW_PRODUCT}\"\ndevice_name = \"gw{g}\"\nsecret = \"{SECRET}\"\n"
        );
        for s in 0..fleet.subdevices {
            let _ = writeln!(
                out,
                "[[subdevices]]\nproduct_id = \"{SUB_PRODUCT}\"\ndevice_name = \"s{g}_{s}\"\n\
                 secret = \"x\"\ngateway = \"{GW_PRODUCT}/gw{g}\"\nversion = \"1.0\"\n"
            );
        }
    }
    out
}

/// The hub's connection cap for `fleet`: the default, or the fleet and its round-trip device
/// with room to spare.
fn max_connections(fleet: &Fleet) -> usize {
    (fleet.gateways + 64).clamp(fake_hub::DEFAULT_MAX_CONNECTIONS, 65_536)
}

/// Starts the hub for `fleet`; waits at most the phase timeout for its address line.
async fn start_hub(dir: &std::path::Path, fleet: &Fleet) -> anyhow::Result<HubProcess> {
    start_hub_with(dir, fleet, &[]).await
}

/// [`start_hub`] with `extra` arguments for `otasim hub`.
async fn start_hub_with(
    dir: &std::path::Path,
    fleet: &Fleet,
    extra: &[String],
) -> anyhow::Result<HubProcess> {
    let fleet_file = dir.join("fleet.toml");
    std::fs::write(&fleet_file, fleet_toml(fleet))?;
    let image = dir.join("fw.bin");
    let bytes: Vec<u8> = (0..fleet.firmware_bytes).map(|i| (i % 251) as u8).collect();
    std::fs::write(&image, bytes)?;
    // Every gateway holds a connection, plus the round-trip device and room to spare.
    let mut child = hub_command(max_connections(fleet))?
        .args(["--cos-port", "0"])
        .arg("--fleet")
        .arg(&fleet_file)
        .arg("--firmware")
        .arg(format!("{SUB_PRODUCT}:2.0:{}", image.display()))
        .args(extra)
        .spawn()
        .context("starting otasim hub")?;
    let first = listening_line(&mut child, fleet.phase_timeout).await?;
    Ok(HubProcess {
        mqtt: line_addr(&first, "mqtt")?,
        api: line_addr(&first, "api")?,
        child,
        edges: Vec::new(),
    })
}

/// `otasim hub` on free loopback ports without TLS, quiet, holding `max_connections`, its
/// stdout piped for the `listening` line and killed on drop.
fn hub_command(max_connections: usize) -> anyhow::Result<Command> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["hub", "--quiet", "--mqtt-port", "0", "--api-port", "0"])
        .args(["--tls-port", "off"])
        .arg("--max-connections")
        .arg(max_connections.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    Ok(command)
}

/// A child `otasim hub`'s first line, read within `limit`; the rest of its stdout is drained.
async fn listening_line(child: &mut Child, limit: Duration) -> anyhow::Result<String> {
    let mut lines = BufReader::new(child.stdout.take().context("piped stdout")?).lines();
    let first = tokio::time::timeout(limit, lines.next_line())
        .await
        .context("otasim hub printed no address line in time")??
        .context("otasim hub printed nothing")?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(first)
}

/// The `key=` address of a `listening` line.
fn line_addr(line: &str, key: &str) -> anyhow::Result<SocketAddr> {
    let v = line
        .split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .with_context(|| format!("no {key}= in {line:?}"))?;
    Ok(v.parse()?)
}

/// One HTTP request to the control API, bounded by [`API_TIMEOUT`]; answers status and body.
async fn api(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let call = async {
        let mut tcp = TcpStream::connect(addr).await?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(head.as_bytes()).await?;
        let mut raw = String::new();
        tcp.read_to_string(&mut raw).await?;
        let (head, body) = raw.split_once("\r\n\r\n").context("incomplete response")?;
        let status = head.get(9..12).context("no status")?.parse()?;
        anyhow::Ok((status, body.to_owned()))
    };
    tokio::time::timeout(API_TIMEOUT, call)
        .await
        .with_context(|| format!("{method} {path}: no answer within {API_TIMEOUT:?}"))?
}

/// Connects every gateway; answers them ready and the time it took. On the first failure the
/// other gateways are abandoned (their tasks aborted) and the error names the gateway.
async fn connect_all(
    hub: &HubProcess,
    fleet: &Fleet,
    counters: &Arc<Counters>,
) -> anyhow::Result<(Vec<fleet::Ready>, Duration)> {
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(fleet.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let nodes = hub.mqtt_nodes();
    for g in 0..fleet.gateways {
        let mqtt = nodes[g % nodes.len()];
        let gw = SimGateway {
            id: DeviceId::new(GW_PRODUCT, format!("gw{g}"))?,
            subdevices: (0..fleet.subdevices)
                .map(|s| DeviceId::new(SUB_PRODUCT, format!("s{g}_{s}")))
                .collect::<Result<_, _>>()?,
        };
        let (gate, counters) = (gate.clone(), counters.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let id = gw.id.clone();
            fleet::bring_up(mqtt, SECRET, gw, "1.0", counters)
                .await
                .with_context(|| format!("gateway {id}"))
        });
    }
    let mut ready = Vec::with_capacity(fleet.gateways);
    while let Some(done) = tasks.join_next().await {
        ready.push(done.context("gateway task")??);
    }
    Ok((ready, started.elapsed()))
}

/// What one task over the whole fleet took.
struct Updated {
    elapsed: Duration,
    messages: u64,
    succeeded: u64,
}

/// Pushes one task to every subdevice and waits until each runs the new version.
async fn update_all(
    hub: &HubProcess,
    fleet: &Fleet,
    ready: Vec<fleet::Ready>,
    counters: &Arc<Counters>,
) -> anyhow::Result<Updated> {
    let before = counters.total();
    let started = Instant::now();
    let downloads = Arc::new(Semaphore::new(fleet.downloads.max(1)));
    let mut workers = JoinSet::new();
    for r in ready {
        workers.spawn(r.update("2.0", downloads.clone()));
    }
    let push = format!(
        r#"{{"product_id":"{SUB_PRODUCT}","version":"2.0","method":"versions","from_versions":["1.0"]}}"#
    );
    let (status, body) = api(hub.api, "POST", "/api/tasks", &push).await?;
    anyhow::ensure!(status == 201, "creating the task: {status} {body}");
    let task: serde_json::Value = serde_json::from_str(&body)?;
    while let Some(done) = workers.join_next().await {
        done.context("gateway task")??;
    }
    let elapsed = started.elapsed();
    let id = task["task_id"].as_u64().context("task id")?;
    let (_, status) = api(hub.api, "GET", &format!("/api/tasks/{id}"), "").await?;
    let status: serde_json::Value = serde_json::from_str(&status)?;
    Ok(Updated {
        elapsed,
        messages: counters.total() - before,
        succeeded: status["summary"]["succeeded"].as_u64().unwrap_or(0),
    })
}

/// Runs `phase` for at most `limit`; a timeout is an error naming the phase.
async fn bounded<T>(
    what: &str,
    limit: Duration,
    phase: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, phase)
        .await
        .with_context(|| format!("{what} did not finish within {limit:?}"))?
}

async fn round_trips(
    hub: &HubProcess,
    dir: &std::path::Path,
    samples: usize,
) -> anyhow::Result<[Vec<Duration>; 2]> {
    let counters = Arc::new(Counters::default());
    let rtt_id = rtt::device();
    let mut device = Client::connect(hub.mqtt, Login::Device(&rtt_id, SECRET), counters).await?;
    device.subscribe(&format!("$ota/update/{rtt_id}")).await?;
    let mut otasim = rtt::measure(&mut device, 200, samples)
        .await
        .context("otasim round trips")?;
    let mosquitto = rtt::Mosquitto::start(dir).await?;
    rtt::echo_relay(mosquitto.addr).await?;
    let mut device = rtt::mosquitto_device(mosquitto.addr).await?;
    let mut reference = rtt::measure(&mut device, 200, samples)
        .await
        .context("mosquitto round trips")?;
    otasim.sort();
    reference.sort();
    Ok([otasim, reference])
}

fn print_round_trips(samples: usize, [otasim, mosquitto]: &[Vec<Duration>; 2]) {
    say!("round trip, report_version to reply, {samples} samples each:");
    say!("  {:<32} {:>9} {:>9}", "", "p50", "p99");
    for (name, t) in [
        ("otasim hub (report_version_rsp)", otasim),
        ("mosquitto 2 (echo relay)", mosquitto),
    ] {
        say!(
            "  {name:<32} {:>6.3} ms {:>6.3} ms",
            rtt::percentile_ms(t, 50.0),
            rtt::percentile_ms(t, 99.0)
        );
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

pub(super) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.gateways > 0 && args.subdevices > 0 && args.samples > 0,
        "--gateways, --subdevices and --samples must be at least 1"
    );
    anyhow::ensure!(
        args.sizes.iter().all(|&s| s > 0) && !args.sizes.is_empty(),
        "--sizes must list gateway counts of at least 1"
    );
    let fleet = Fleet {
        gateways: args.gateways,
        subdevices: args.subdevices,
        firmware_bytes: args.firmware_bytes,
        concurrency: args.concurrency,
        downloads: args.downloads,
        phase_timeout: Duration::from_secs(args.phase_timeout_secs.max(1)),
    };
    // The hub child inherits the limit, and needs more than the clients here do.
    let largest = match args.series {
        true => args.sizes.iter().copied().max().unwrap_or(1),
        false => args.gateways,
    };
    let wanted = crate::cmd::fdlimit::wanted_for_hub(max_connections(&Fleet {
        gateways: largest,
        ..fleet
    }));
    let limit = crate::cmd::fdlimit::raise_to(wanted);
    if limit < wanted {
        eprintln!(
            "warning: the open-file limit is {limit}; {largest} gateways need about {wanted} \
             (run as root, or `ulimit -n {wanted}` first), so the largest fleets may fail"
        );
    }
    if let Some(nodes) = args.nodes {
        return nodes::run(fleet, usize::from(nodes)).await;
    }
    if args.series {
        return series::run(fleet, &args.sizes, args.samples).await;
    }
    single(fleet, args.samples).await
}

/// One fleet size, as `otasim bench hub` without `--series` has always reported it.
async fn single(fleet: Fleet, samples: usize) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let limit = fleet.phase_timeout;
    let hub = bounded("starting the hub", limit, start_hub(dir.path(), &fleet)).await?;
    let counters = Arc::new(Counters::default());
    let clients_before = CpuTime::of(None);
    let (ready, connect) =
        bounded("connecting", limit, connect_all(&hub, &fleet, &counters)).await?;
    let updated = bounded(
        "the update",
        limit,
        update_all(&hub, &fleet, ready, &counters),
    )
    .await?;
    let client_cpu = proc::cpu_used(clients_before, CpuTime::of(None));
    let hub_rss = hub.peak_rss_mib();
    let rtts = round_trips(&hub, dir.path(), samples).await?;
    hub.stop().await;
    let devices = fleet.devices();
    say!(
        "otasim bench hub: {} gateways x {} subdevices, {}-byte firmware, {} cores",
        fleet.gateways,
        fleet.subdevices,
        fleet.firmware_bytes,
        cores()
    );
    say!(
        "connect:   {:>8.2} s  (every gateway connected, {devices} subdevices online and versions reported)",
        connect.as_secs_f64()
    );
    say!(
        "update:    {:>8.2} s  ({} of {devices} succeeded under one task; {} MQTT publishes, {:.0} msg/s)",
        updated.elapsed.as_secs_f64(),
        updated.succeeded,
        updated.messages,
        updated.messages as f64 / updated.elapsed.as_secs_f64()
    );
    let rss = |r: Option<f64>| r.map_or("n/a".to_owned(), |m| format!("{m:.1} MiB"));
    say!(
        "peak RSS:  hub process {}, bench clients {}",
        rss(hub_rss),
        rss(proc::peak_rss_mib(None))
    );
    if let Some(cpu) = client_cpu {
        say!(
            "bench clients' CPU: {:.2} s over connect and update ({:.0}% of one core)",
            cpu.as_secs_f64(),
            100.0 * cpu.as_secs_f64() / (connect + updated.elapsed).as_secs_f64()
        );
    }
    print_round_trips(samples, &rtts);
    Ok(if updated.succeeded as usize == devices {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
