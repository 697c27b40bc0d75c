//! End-to-end tests: `otasim hub` as a server and its control API, with a real HTTP client on
//! loopback and a rumqttc gateway.

use crate::support::{wait_for_files, within};
use otasim_protocol::{Credentials, DeviceId, SignMethod};
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub(crate) const GATEWAY_SECRET: &str = "1RRdhkwmZ45wYXjuPfygeA==";

/// One HTTP/1.1 request on a fresh connection; answers the status and the body as JSON
/// (`Value::Null` when empty, a string when not JSON).
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Value) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect to the API");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.expect("send head");
    tcp.write_all(body).await.expect("send body");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.expect("read response");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let status = head[9..12].parse().expect("a status code");
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()))
    };
    (status, value)
}

pub(crate) async fn get(api: SocketAddr, path: &str) -> (u16, Value) {
    http(api, "GET", path, "application/json", b"").await
}

/// Re-reads `path` from the API until `check` holds, within the deadline. It re-reads after each
/// line of the hub's event stream (`/api/events`: every transcript entry and device change),
/// subscribed before the first read so no change is missed, and after `QUIET` with none (a COS
/// journal entry, say, is not an event of its own).
pub(crate) async fn wait_api(hub: &ServedHub, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    const QUIET: Duration = Duration::from_millis(250);
    within(&format!("a condition on {path}"), async {
        let mut tcp = TcpStream::connect(hub.api)
            .await
            .expect("connect to the event stream");
        let head = format!("GET /api/events HTTP/1.1\r\nHost: {}\r\n\r\n", hub.api);
        tcp.write_all(head.as_bytes()).await.expect("subscribe");
        let mut events = BufReader::new(tcp).lines();
        loop {
            let (status, value) = get(hub.api, path).await;
            if status == 200 && check(&value) {
                return value;
            }
            if let Ok(line) = tokio::time::timeout(QUIET, events.next_line()).await {
                assert!(
                    line.expect("the event stream").is_some(),
                    "the event stream ended"
                );
            }
        }
    })
    .await
}

pub(crate) async fn post(api: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    http(
        api,
        "POST",
        path,
        "application/json",
        body.to_string().as_bytes(),
    )
    .await
}

/// `otasim hub` running as a child process, with its bound addresses.
pub(crate) struct ServedHub {
    pub(crate) _child: Child,
    pub(crate) mqtt: SocketAddr,
    pub(crate) cos: SocketAddr,
    pub(crate) api: SocketAddr,
    /// The TLS port, when started with `--tls-port`.
    pub(crate) tls: Option<SocketAddr>,
    /// The Cloud API (`cloud=` of the listening line).
    pub(crate) cloud: Option<SocketAddr>,
    /// HTTPS COS, when started with `--cos-tls-port`.
    pub(crate) cos_tls: Option<SocketAddr>,
}

/// Starts the real binary on free loopback ports and reads its `listening` line; no TLS
/// port unless `extra` asks for one (never the default 8883).
pub(crate) async fn serve_hub(extra: &[&str]) -> ServedHub {
    let no_tls: &[&str] = if extra.contains(&"--tls-port") {
        &[]
    } else {
        &["--tls-port", "off"]
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_otasim"))
        .args([
            "hub",
            "--mqtt-port",
            "0",
            "--cos-port",
            "0",
            "--api-port",
            "0",
        ])
        .args(no_tls)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("otasim binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = within("the listening line", lines.next_line())
        .await
        .expect("read stdout")
        .expect("otasim hub printed a line");
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let addrs: BTreeMap<&str, SocketAddr> = first
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .split(' ')
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("key=value");
            (k, v.parse().expect("an address"))
        })
        .collect();
    ServedHub {
        _child: child,
        mqtt: addrs["mqtt"],
        cos: addrs["cos"],
        api: addrs["api"],
        tls: addrs.get("tls").copied(),
        cloud: addrs.get("cloud").copied(),
        cos_tls: addrs.get("cos_tls").copied(),
    }
}

/// A gateway made of a rumqttc client: what it receives arrives on `inbox`.
pub(crate) struct RawGateway {
    pub(crate) client: AsyncClient,
    pub(crate) inbox: mpsc::UnboundedReceiver<(String, Value)>,
}

pub(crate) async fn connect_gateway(mqtt: SocketAddr, id: &DeviceId, secret: &str) -> RawGateway {
    let creds = Credentials::make(id, secret, "abcde", u64::MAX >> 1, SignMethod::HmacSha1)
        .expect("valid secret");
    let mut options = MqttOptions::new(&creds.client_id, mqtt.ip().to_string(), mqtt.port());
    options.set_credentials(creds.username, creds.password);
    options.set_keep_alive(Duration::from_secs(60));
    let (client, mut event_loop) = AsyncClient::new(options, 64);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    event_loop.set_network_options(network);
    let (tx, inbox) = mpsc::unbounded_channel();
    let (up_tx, mut up) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = event_loop.poll().await {
            match event {
                Event::Incoming(Packet::ConnAck(_)) => {
                    let _ = up_tx.send(());
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    let _ = tx.send((p.topic.clone(), v));
                }
                _ => {}
            }
        }
    });
    within("CONNACK", up.recv()).await.expect("connected");
    RawGateway { client, inbox }
}

impl RawGateway {
    /// Publishes JSON at QoS 1.
    pub(crate) async fn send(&self, topic: &str, body: Value) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, body.to_string())
            .await
            .expect("publish queued");
    }

    /// The next message on `topic` whose JSON `type` is `kind`.
    pub(crate) async fn expect(&mut self, topic: &str, kind: &str) -> Value {
        within(&format!("{kind} on {topic}"), async {
            loop {
                let (t, v) = self.inbox.recv().await.expect("gateway connection open");
                if t == topic && v["type"] == kind {
                    return v;
                }
            }
        })
        .await
    }
}

/// Waits until the JSON-lines file at `path`, written by the `otasim hub` process, has a line
/// for which `check` holds; returns all lines then.
async fn wait_for_line(path: &Path, check: impl Fn(&Value) -> bool) -> Vec<Value> {
    let dir = path
        .parent()
        .expect("the transcript file is in a directory");
    wait_for_files("a transcript line", dir, || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // A line being written may be incomplete; only whole lines count.
        let lines: Vec<Value> = text
            .lines()
            .map_while(|l| serde_json::from_str(l).ok())
            .collect();
        lines.iter().any(&check).then_some(lines)
    })
    .await
}

pub(crate) fn light1() -> DeviceId {
    DeviceId::new("E69UADXUYY", "light1").expect("valid id")
}

pub(crate) fn gateway_id() -> DeviceId {
    DeviceId::new("JR1WOKB7Q7", "gw_deng1").expect("valid id")
}

const FLEET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/python/fleet.toml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_hub_updates_a_gateway_subdevice_and_writes_the_transcript_as_json_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let transcript = dir.path().join("transcript.jsonl");
    let hub = serve_hub(&[
        "--fleet",
        FLEET,
        "--transcript",
        transcript.to_str().unwrap(),
    ])
    .await;
    let image = vec![7u8; 5000];
    let (status, fw) = http(
        hub.api,
        "POST",
        "/api/firmware?product_id=E69UADXUYY&version=V2",
        "application/octet-stream",
        &image,
    )
    .await;
    assert_eq!(status, 201, "{fw}");
    assert_eq!(fw["size_bytes"], 5000);
    let mut gw = connect_gateway(hub.mqtt, &gateway_id(), GATEWAY_SECRET).await;
    let (op, result) = (
        "$gateway/operation/JR1WOKB7Q7/gw_deng1",
        "$gateway/operation/result/JR1WOKB7Q7/gw_deng1",
    );
    gw.client.subscribe(result, QoS::AtLeastOnce).await.unwrap();
    let online = json!({"type":"online","payload":{"devices":[{"product_id":"E69UADXUYY","device_name":"light1"}]}});
    gw.send(op, online).await;
    let reply = gw.expect(result, "online").await;
    assert_eq!(reply["payload"]["devices"][0]["result"], 0);
    let (update, report) = (
        "$ota/update/E69UADXUYY/light1",
        "$ota/report/E69UADXUYY/light1",
    );
    gw.client.subscribe(update, QoS::AtLeastOnce).await.unwrap();
    gw.send(
        report,
        json!({"type":"report_version","report":{"version":"0.1"}}),
    )
    .await;
    gw.expect(update, "report_version_rsp").await;
    let push =
        json!({"product_id":"E69UADXUYY","version":"V2","method":"devices","devices":["light1"]});
    let (status, created) = post(hub.api, "/api/tasks", &push).await;
    assert_eq!(status, 201, "{created}");
    let cmd = gw.expect(update, "update_firmware").await;
    assert_eq!(cmd["md5sum"], fw["md5"]);
    let url = cmd["url"].as_str().expect("a url");
    assert!(url.starts_with(&format!("http://{}/", hub.cos)), "{url}");
    for state in ["burning", "done"] {
        let progress = json!({"type":"report_progress","report":{"progress":{"state":state,"result_code":"0","result_msg":""},"version":"V2"}});
        gw.send(report, progress).await;
    }
    gw.send(
        report,
        json!({"type":"report_version","report":{"version":"V2"}}),
    )
    .await;
    let lines = wait_for_line(&transcript, |l| {
        l["topic"] == report
            && serde_json::from_str::<Value>(l["payload"].as_str().unwrap_or_default())
                .is_ok_and(|p| p["type"] == "report_version" && p["report"]["version"] == "V2")
    })
    .await;
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "no gaps");
    assert!(lines.iter().any(|l| l["direction"] == "out"
        && l["topic"] == update
        && l["payload"].as_str().unwrap().contains("update_firmware")));
    let task_id = created["task_id"].as_u64().unwrap();
    // The hub answers report_version and settles the update under one lock, so once the answer
    // for V2 is here, the API (which takes the same lock) shows the final state.
    loop {
        let rsp = gw.expect(update, "report_version_rsp").await;
        if rsp["version"] == "V2" {
            break;
        }
    }
    let (_, done) = get(hub.api, &format!("/api/tasks/{task_id}")).await;
    assert_eq!(done["summary"]["succeeded"], 1, "{done}");
    assert_eq!(
        done["devices"]["E69UADXUYY/light1"]["state"]["state"],
        "succeeded"
    );
    let (_, light) = get(hub.api, "/api/devices/E69UADXUYY/light1").await;
    assert_eq!(light["version"], "V2");
    assert_eq!(light["online"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_file_errors_name_the_field_and_the_command_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        (
            "[[gateway]]\nproduct_id = \"P1\"\ndevice_name = \"g\"\nsecret = \"c2VjcmV0\"\ncolour = 1\n",
            "colour",
        ),
        (
            "[[subdevice]]\nproduct_id = \"P1\"\ndevice_name = \"s\"\nsecret = \"x\"\ngateway = \"P1/nope\"\n",
            "subdevice[0].gateway",
        ),
        (
            "[[gateway]]\nproduct_id = \"P/1\"\ndevice_name = \"g\"\nsecret = \"x\"\n",
            "gateway[0]",
        ),
    ];
    for (i, (text, field)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("fleet{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_otasim"))
            .args([
                "hub",
                "--mqtt-port",
                "0",
                "--cos-port",
                "0",
                "--api-port",
                "0",
            ])
            .arg("--fleet")
            .arg(&path)
            .output();
        let out = within("otasim hub to refuse the fleet", out).await.unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(field), "{field} not in {stderr}");
    }
}

mod api;
mod fleet;
mod https_cos;
mod topics;
mod world;
