//! Simulated gateways: each brings its subdevices online, reports their versions, and answers
//! `update_firmware` as a well-behaved gateway does (download, progress, done, new version).

use super::client::{Client, Counters, Login};
use anyhow::Context as _;
use otasim_protocol::DeviceId;
use rumqttc::QoS;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// One simulated gateway and its subdevices.
pub(super) struct SimGateway {
    pub(super) id: DeviceId,
    pub(super) subdevices: Vec<DeviceId>,
}

/// A gateway connected, with every subdevice online, subscribed and its version reported.
pub(super) struct Ready {
    client: Client,
    subdevices: Vec<DeviceId>,
}

fn operation(kind: &str, sub: &DeviceId) -> Value {
    json!({"type": kind, "payload": {"devices": [
        {"product_id": sub.product_id(), "device_name": sub.device_name()}]}})
}

fn progress(state: &str, version: &str, percent: Option<&str>) -> Value {
    let mut p = json!({"state": state, "result_code": "0", "result_msg": ""});
    if let Some(pct) = percent {
        p["percent"] = json!(pct);
    }
    json!({"type": "report_progress", "report": {"progress": p, "version": version}})
}

/// Connects `gw` and gets every subdevice to the point where a task can reach it.
pub(super) async fn bring_up(
    mqtt: SocketAddr,
    secret: &str,
    gw: SimGateway,
    version: &str,
    counters: Arc<Counters>,
) -> anyhow::Result<Ready> {
    let mut client = Client::connect(mqtt, Login::Device(&gw.id, secret), counters).await?;
    let result_topic = format!("$gateway/operation/result/{}", gw.id);
    client.subscribe(&result_topic).await?;
    let op_topic = format!("$gateway/operation/{}", gw.id);
    for sub in &gw.subdevices {
        client
            .publish(&op_topic, QoS::AtMostOnce, &operation("online", sub))
            .await?;
    }
    let mut pending: BTreeSet<String> = gw.subdevices.iter().map(|s| s.to_string()).collect();
    while !pending.is_empty() {
        let (topic, v) = client.next().await?;
        if topic == result_topic && v["type"] == "online" {
            let d = &v["payload"]["devices"][0];
            anyhow::ensure!(d["result"] == 0, "online refused: {v}");
            pending.remove(&format!(
                "{}/{}",
                d["product_id"].as_str().unwrap_or_default(),
                d["device_name"].as_str().unwrap_or_default()
            ));
        }
    }
    for sub in &gw.subdevices {
        client.subscribe(&format!("$ota/update/{sub}")).await?;
    }
    let report = json!({"type": "report_version", "report": {"version": version}});
    for sub in &gw.subdevices {
        client
            .publish(&format!("$ota/report/{sub}"), QoS::AtLeastOnce, &report)
            .await?;
    }
    wait_for_versions(&mut client, &gw.subdevices, version).await?;
    Ok(Ready {
        client,
        subdevices: gw.subdevices,
    })
}

/// Waits for `report_version_rsp` of `version` on every subdevice's update topic.
async fn wait_for_versions(
    client: &mut Client,
    subdevices: &[DeviceId],
    version: &str,
) -> anyhow::Result<()> {
    let mut pending: BTreeSet<String> = subdevices
        .iter()
        .map(|s| format!("$ota/update/{s}"))
        .collect();
    while !pending.is_empty() {
        let (topic, v) = client.next().await?;
        if v["type"] == "report_version_rsp" && v["version"] == version {
            pending.remove(&topic);
        }
    }
    Ok(())
}

impl Ready {
    /// Answers every `update_firmware` until each subdevice runs `target`, downloading under
    /// a permit of `downloads`.
    pub(super) async fn update(
        mut self,
        target: &'static str,
        downloads: Arc<Semaphore>,
    ) -> anyhow::Result<()> {
        let mut pending: BTreeSet<String> = self
            .subdevices
            .iter()
            .map(|s| format!("$ota/update/{s}"))
            .collect();
        while !pending.is_empty() {
            let (topic, v) = self.client.next().await?;
            match v["type"].as_str() {
                Some("update_firmware") if v["version"] == target => {
                    self.install(&topic, &v, &downloads).await?;
                }
                Some("report_version_rsp") if v["version"] == target => {
                    pending.remove(&topic);
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn install(&self, topic: &str, cmd: &Value, downloads: &Semaphore) -> anyhow::Result<()> {
        let report = topic.replacen("$ota/update/", "$ota/report/", 1);
        let version = cmd["version"].as_str().unwrap_or_default();
        let send = |body: Value| {
            let report = report.clone();
            async move { self.client.publish(&report, QoS::AtLeastOnce, &body).await }
        };
        send(progress("downloading", version, Some("0"))).await?;
        let url = cmd["url"].as_str().context("update_firmware without url")?;
        let size = cmd["file_size"]
            .as_u64()
            .context("update_firmware without file_size")?;
        let got = {
            let _permit = downloads.acquire().await?;
            download(url).await?
        };
        anyhow::ensure!(got == size, "downloaded {got} bytes of {size} from {url}");
        send(progress("downloading", version, Some("100"))).await?;
        send(progress("burning", version, None)).await?;
        send(progress("done", version, None)).await?;
        send(json!({"type": "report_version", "report": {"version": version}})).await
    }
}

/// GETs `url` (plain HTTP) and answers the body's length.
async fn download(url: &str) -> anyhow::Result<u64> {
    let rest = url.strip_prefix("http://").context("not an http:// url")?;
    let (host, path) = rest.split_once('/').context("url without a path")?;
    let mut tcp = TcpStream::connect(host)
        .await
        .with_context(|| format!("connecting to {host}"))?;
    tcp.set_nodelay(true)?;
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("response without a header end")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200"),
        "{url}: {}",
        head.lines().next().unwrap_or("")
    );
    Ok((raw.len() - split - 4) as u64)
}
