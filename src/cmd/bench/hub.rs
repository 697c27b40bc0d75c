//! `otasim bench hub`: many gateways on one hub, and MQTT round trips against mosquitto.
//!
//! The hub runs as an `otasim hub` child process (so its peak RSS is its own); the simulated
//! gateways run in this process on rumqttc with TCP_NODELAY, each bringing its subdevices
//! online, reporting versions, then answering one task's `update_firmware` with a real HTTP
//! download from the hub's fake COS, progress, `done` and the new version. The round trip is a
//! device's `report_version` to the reply on its update topic: the hub's `report_version_rsp`,
//! beside mosquitto (Debian's package, started here on a loopback port) relaying the same
//! publish back through a plain echo client.

mod client;
mod fleet;
mod rtt;

use anyhow::Context as _;
use client::{Client, Counters, Login};
use fleet::SimGateway;
use otasim_protocol::DeviceId;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;

/// Arguments of `otasim bench hub`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Simulated gateways.
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
    /// Round trips measured per broker (after 200 unmeasured).
    #[arg(long, default_value_t = 5000)]
    samples: usize,
}

const SECRET: &str = "YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldA==";
const GW_PRODUCT: &str = "BENCHGW001";
const SUB_PRODUCT: &str = "BENCHSUB01";

/// `otasim hub` as a child process.
struct HubProcess {
    child: Child,
    mqtt: SocketAddr,
    api: SocketAddr,
}

fn fleet_toml(args: &Args) -> String {
    let mut out = String::new();
    let rtt = rtt::device();
    let _ = writeln!(
        out,
        "[[gateways]]\nproduct_id = \"{}\"\ndevice_name = \"{}\"\nsecret = \"{SECRET}\"\n",
        rtt.product_id(),
        rtt.device_name()
    );
    for g in 0..args.gateways {
        let _ = writeln!(
            out,
            "[[gateways]]\nproduct_id = \"{GW_PRODUCT}\"\ndevice_name = \"gw{g}\"\nsecret = \"{SECRET}\"\n"
        );
        for s in 0..args.subdevices {
            let _ = writeln!(
                out,
                "[[subdevices]]\nproduct_id = \"{SUB_PRODUCT}\"\ndevice_name = \"s{g}_{s}\"\n\
                 secret = \"x\"\ngateway = \"{GW_PRODUCT}/gw{g}\"\nversion = \"1.0\"\n"
            );
        }
    }
    out
}

async fn start_hub(dir: &std::path::Path, args: &Args) -> anyhow::Result<HubProcess> {
    let fleet = dir.join("fleet.toml");
    std::fs::write(&fleet, fleet_toml(args))?;
    let image = dir.join("fw.bin");
    let bytes: Vec<u8> = (0..args.firmware_bytes).map(|i| (i % 251) as u8).collect();
    std::fs::write(&image, bytes)?;
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "hub",
            "--quiet",
            "--mqtt-port",
            "0",
            "--cos-port",
            "0",
            "--api-port",
            "0",
            "--tls-port",
            "off",
        ])
        .arg("--fleet")
        .arg(&fleet)
        .arg("--firmware")
        .arg(format!("{SUB_PRODUCT}:2.0:{}", image.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting otasim hub")?;
    let mut lines = BufReader::new(child.stdout.take().context("piped stdout")?).lines();
    let first = lines
        .next_line()
        .await?
        .context("otasim hub printed nothing")?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let addr = |key: &str| -> anyhow::Result<SocketAddr> {
        let v = first
            .split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .with_context(|| format!("no {key}= in {first:?}"))?;
        Ok(v.parse()?)
    };
    Ok(HubProcess {
        mqtt: addr("mqtt")?,
        api: addr("api")?,
        child,
    })
}

/// One HTTP request to the control API; answers status and body.
async fn api(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, String)> {
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
    Ok((status, body.to_owned()))
}

fn peak_rss_mib(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Connects every gateway; answers them ready and the time it took.
async fn connect_all(
    hub: &HubProcess,
    args: &Args,
    counters: &Arc<Counters>,
) -> anyhow::Result<(Vec<fleet::Ready>, Duration)> {
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut tasks = Vec::with_capacity(args.gateways);
    for g in 0..args.gateways {
        let gw = SimGateway {
            id: DeviceId::new(GW_PRODUCT, format!("gw{g}"))?,
            subdevices: (0..args.subdevices)
                .map(|s| DeviceId::new(SUB_PRODUCT, format!("s{g}_{s}")))
                .collect::<Result<_, _>>()?,
        };
        let (gate, counters, mqtt) = (gate.clone(), counters.clone(), hub.mqtt);
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let id = gw.id.clone();
            fleet::bring_up(mqtt, SECRET, gw, "1.0", counters)
                .await
                .with_context(|| format!("gateway {id}"))
        }));
    }
    let mut ready = Vec::with_capacity(tasks.len());
    for t in tasks {
        ready.push(t.await??);
    }
    Ok((ready, started.elapsed()))
}

/// Pushes one task to every subdevice and waits until each runs the new version.
async fn update_all(
    hub: &HubProcess,
    ready: Vec<fleet::Ready>,
    counters: &Arc<Counters>,
) -> anyhow::Result<(Duration, u64, u64)> {
    let before = counters.total();
    let started = Instant::now();
    let workers: Vec<_> = ready
        .into_iter()
        .map(|r| tokio::spawn(r.update("2.0")))
        .collect();
    let push = format!(
        r#"{{"product_id":"{SUB_PRODUCT}","version":"2.0","method":"versions","from_versions":["1.0"]}}"#
    );
    let (status, body) = api(hub.api, "POST", "/api/tasks", &push).await?;
    anyhow::ensure!(status == 201, "creating the task: {status} {body}");
    let task: serde_json::Value = serde_json::from_str(&body)?;
    for w in workers {
        w.await??;
    }
    let elapsed = started.elapsed();
    let id = task["task_id"].as_u64().context("task id")?;
    let (_, status) = api(hub.api, "GET", &format!("/api/tasks/{id}"), "").await?;
    let status: serde_json::Value = serde_json::from_str(&status)?;
    let succeeded = status["summary"]["succeeded"].as_u64().unwrap_or(0);
    Ok((elapsed, counters.total() - before, succeeded))
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

pub(super) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.gateways > 0 && args.subdevices > 0 && args.samples > 0);
    let dir = tempfile::tempdir()?;
    let hub = start_hub(dir.path(), &args).await?;
    let counters = Arc::new(Counters::default());
    let (ready, connect) = connect_all(&hub, &args, &counters).await?;
    let (update, messages, succeeded) = update_all(&hub, ready, &counters).await?;
    let hub_rss = peak_rss_mib(hub.child.id());
    let [otasim, mosquitto] = round_trips(&hub, dir.path(), args.samples).await?;
    let devices = args.gateways * args.subdevices;
    say!(
        "otasim bench hub: {} gateways x {} subdevices, {}-byte firmware, {} cores",
        args.gateways,
        args.subdevices,
        args.firmware_bytes,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    say!(
        "connect:   {:>8.2} s  (every gateway connected, {devices} subdevices online and versions reported)",
        connect.as_secs_f64()
    );
    say!(
        "update:    {:>8.2} s  ({succeeded} of {devices} succeeded under one task; {messages} MQTT publishes, {:.0} msg/s)",
        update.as_secs_f64(),
        messages as f64 / update.as_secs_f64()
    );
    let rss = |r: Option<f64>| r.map_or("n/a".to_owned(), |m| format!("{m:.1} MiB"));
    say!(
        "peak RSS:  hub process {}, bench clients {}",
        rss(hub_rss),
        rss(peak_rss_mib(None))
    );
    say!(
        "round trip, report_version to reply, {} samples each:",
        args.samples
    );
    say!("  {:<32} {:>9} {:>9}", "", "p50", "p99");
    for (name, t) in [
        ("otasim hub (report_version_rsp)", &otasim),
        ("mosquitto 2 (echo relay)", &mosquitto),
    ] {
        say!(
            "  {name:<32} {:>6.3} ms {:>6.3} ms",
            rtt::percentile_ms(t, 50.0),
            rtt::percentile_ms(t, 99.0)
        );
    }
    Ok(if succeeded as usize == devices {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
