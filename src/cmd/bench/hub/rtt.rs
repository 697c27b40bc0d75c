//! MQTT round trips: a device publishes `report_version` and waits for the reply on its update
//! topic; from otasim's hub (`report_version_rsp`) and from mosquitto with an echo relay.

use super::client::{Client, Counters, Login};
use anyhow::Context as _;
use rumqttc::QoS;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

const REQUEST: &str = "$ota/report/BENCHRTT01/dev";
const REPLY: &str = "$ota/update/BENCHRTT01/dev";

/// Round trips from `client`, which is subscribed to [`REPLY`]; the reply names the version sent.
pub(super) async fn measure(
    client: &mut Client,
    warmup: usize,
    samples: usize,
) -> anyhow::Result<Vec<Duration>> {
    sync(client).await?;
    let mut times = Vec::with_capacity(samples);
    for i in 0..warmup + samples {
        let version = format!("r{i}");
        let started = Instant::now();
        let body = json!({"type": "report_version", "report": {"version": version}});
        client.publish(REQUEST, QoS::AtLeastOnce, &body).await?;
        loop {
            let (topic, v) = tokio::time::timeout(Duration::from_secs(10), client.next())
                .await
                .context("no reply within 10 s")??;
            if topic == REPLY && (v["version"] == version || v["report"]["version"] == version) {
                break;
            }
        }
        if i >= warmup {
            times.push(started.elapsed());
        }
    }
    Ok(times)
}

/// Publishes until a reply comes back: every subscription on the path is then in place.
async fn sync(client: &mut Client) -> anyhow::Result<()> {
    for k in 0..50 {
        let version = format!("sync{k}");
        let body = json!({"type": "report_version", "report": {"version": version}});
        client.publish(REQUEST, QoS::AtLeastOnce, &body).await?;
        let reply = tokio::time::timeout(Duration::from_millis(300), async {
            loop {
                let (topic, v) = client.next().await?;
                if topic == REPLY && (v["version"] == version || v["report"]["version"] == version)
                {
                    return anyhow::Ok(());
                }
            }
        });
        if let Ok(r) = reply.await {
            return r;
        }
    }
    anyhow::bail!("no reply to 50 probes on {REQUEST}")
}

/// The topics the round trip uses, for a fleet file: device `BENCHRTT01/dev`.
pub(super) fn device() -> otasim_protocol::DeviceId {
    otasim_protocol::DeviceId::new("BENCHRTT01", "dev").expect("a valid id")
}

/// A mosquitto on a loopback port with a generated config; killed on drop.
pub(super) struct Mosquitto {
    _child: Child,
    pub(super) addr: SocketAddr,
}

impl Mosquitto {
    pub(super) async fn start(dir: &Path) -> anyhow::Result<Mosquitto> {
        let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 set_tcp_nodelay true\nlog_dest none\nmax_inflight_messages 100\n"
            ),
        )?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting mosquitto (Debian: apt-get install -y mosquitto)")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).await.is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "mosquitto did not listen on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Mosquitto {
            _child: child,
            addr,
        })
    }
}

/// An echo relay on mosquitto: every request is republished, unchanged, on the reply topic.
pub(super) async fn echo_relay(addr: SocketAddr) -> anyhow::Result<()> {
    let counters = Arc::new(Counters::default());
    let mut relay = Client::connect(addr, Login::Anonymous("bench-relay"), counters).await?;
    relay.subscribe(REQUEST).await?;
    tokio::spawn(async move {
        while let Ok((topic, body)) = relay.next().await {
            if topic == REQUEST && relay.publish(REPLY, QoS::AtLeastOnce, &body).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// A device client on mosquitto subscribed to the reply topic.
pub(super) async fn mosquitto_device(addr: SocketAddr) -> anyhow::Result<Client> {
    let counters = Arc::new(Counters::default());
    let client = Client::connect(addr, Login::Anonymous("bench-device"), counters).await?;
    client.subscribe(REPLY).await?;
    Ok(client)
}

/// The `p`-th percentile (0-100) of sorted `times`, in milliseconds.
pub(super) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}
