//! The control API in-process: bad input, registration, uploads, tasks, the transcript and
//! the live event stream, over a raw HTTP client on loopback.

use super::{GATEWAY_SECRET, connect_gateway, gateway_id, get, http, light1, post};
use crate::support::within;
use fake_hub::{FirmwareStore, Hub, HubConfig};
use otasim_protocol::DeviceId;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Keeps uploads in memory; URLs point nowhere (the API tests download nothing).
#[derive(Default)]
struct MemStore(Mutex<BTreeMap<String, usize>>);

impl FirmwareStore for MemStore {
    fn put(&self, object: &str, bytes: Vec<u8>) -> Result<(), fake_hub::StoreError> {
        self.0.lock().unwrap().insert(object.into(), bytes.len());
        Ok(())
    }

    fn signed_url(
        &self,
        object: &str,
        _valid_for: Duration,
    ) -> Result<String, fake_hub::StoreError> {
        Ok(format!("http://127.0.0.1:9/{object}"))
    }
}

/// A hub and its API in this process.
async fn hub_with_api() -> (Arc<Hub>, fake_hub::api::ApiServer) {
    let hub = Hub::start(HubConfig::loopback(), Arc::new(MemStore::default()))
        .await
        .expect("hub starts");
    let hub = Arc::new(hub);
    hub.add_gateway(&gateway_id(), GATEWAY_SECRET);
    hub.add_subdevice(&light1(), "s1", Some(&gateway_id()), Some("0.1"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = fake_hub::api::serve(listener, hub.clone()).expect("api serves");
    (hub, api)
}

/// Method, path, body, expected status, expected `field`.
type Case = (
    &'static str,
    &'static str,
    Vec<u8>,
    u16,
    Option<&'static str>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refuses_bad_input_with_json_errors_and_changes_nothing() {
    let (hub, api) = hub_with_api().await;
    let addr = api.local_addr();
    hub.upload_firmware("E69UADXUYY", "V2", vec![1; 10])
        .unwrap();
    let cases: Vec<Case> = vec![
        ("POST", "/api/tasks", b"{not json".to_vec(), 400, None),
        ("POST", "/api/tasks", br#"{"product_id":"E69UADXUYY","version":"V2","method":"devices","devices":["ghost"]}"#.to_vec(), 400, Some("devices")),
        ("POST", "/api/tasks", br#"{"product_id":"E69UADXUYY","version":"V2","method":"devices","devices":["light1"],"colour":1}"#.to_vec(), 400, Some("colour")),
        ("POST", "/api/tasks", br#"{"product_id":"E69UADXUYY","version":"V9","method":"devices","devices":["light1"]}"#.to_vec(), 400, Some("version")),
        ("POST", "/api/gateways", br#"{"product_id":"JR1WOKB7Q7","device_name":"gw_deng1","secret":"eA=="}"#.to_vec(), 409, Some("device_name")),
        ("POST", "/api/gateways", br#"{"product_id":"JR1/WOKB7Q7","device_name":"g","secret":"eA=="}"#.to_vec(), 400, Some("product_id")),
        ("POST", "/api/subdevices", br#"{"product_id":"E69UADXUYY","device_name":"l9","secret":"x","gateway":"E69UADXUYY/light1"}"#.to_vec(), 400, Some("gateway")),
        ("POST", "/api/firmware?product_id=E69UADXUYY", b"x".to_vec(), 400, Some("version")),
        ("POST", "/api/topology/bind", br#"{"gateway":"JR1WOKB7Q7/gw_deng1","subdevice":"E69UADXUYY/ghost"}"#.to_vec(), 400, Some("subdevice")),
        ("GET", "/api/tasks/77", vec![], 404, Some("id")),
        ("POST", "/api/tasks/77/cancel", vec![], 404, Some("id")),
        ("GET", "/api/transcript?device=nope", vec![], 400, Some("device")),
        ("GET", "/api/nowhere", vec![], 404, None),
        ("POST", "/api/tasks", vec![b' '; 3 << 20], 413, None),
    ];
    for (method, path, body, want, field) in cases {
        let (status, answer) = http(addr, method, path, "application/json", &body).await;
        assert_eq!(status, want, "{method} {path}: {answer}");
        assert!(answer["error"].is_string(), "{method} {path}: {answer}");
        assert_eq!(answer["field"].as_str(), field, "{method} {path}: {answer}");
    }
    assert!(hub.tasks().is_empty(), "a refused push created a task");
    assert_eq!(
        hub.devices().len(),
        2,
        "a refused registration added a device"
    );
    assert!(hub.device(&light1()).unwrap().update.is_none());
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_registers_devices_uploads_by_form_and_cancels_a_task() {
    let (hub, api) = hub_with_api().await;
    let addr = api.local_addr();
    let (status, sub) = post(
        addr,
        "/api/subdevices",
        &json!({"product_id":"E69UADXUYY","device_name":"light2","secret":"s2","gateway":"JR1WOKB7Q7/gw_deng1","version":"0.1"}),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["bound_to"]["device_name"], "gw_deng1");
    let boundary = "XbOuNdArY";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"product_id\"\r\n\r\nE69UADXUYY\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\nV3\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"fw.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\nhello firmware\r\n--{boundary}--\r\n"
    );
    let ctype = format!("multipart/form-data; boundary={boundary}");
    let (status, fw) = http(addr, "POST", "/api/firmware/form", &ctype, form.as_bytes()).await;
    assert_eq!(status, 201, "{fw}");
    assert_eq!(fw["size_bytes"], 14);
    assert_eq!(fw["md5"], "5d99b396caab4bfae4e25207b62b30e2");
    let (_, list) = get(addr, "/api/firmware").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let push = json!({"product_id":"E69UADXUYY","version":"V3","method":"versions","from_versions":["0.1"],"options":{"retries":1}});
    let (status, created) = post(addr, "/api/tasks", &push).await;
    assert_eq!(status, 201, "{created}");
    let id = created["task_id"].as_u64().unwrap();
    let (_, task) = get(addr, &format!("/api/tasks/{id}")).await;
    assert_eq!(task["devices"].as_object().unwrap().len(), 2, "{task}");
    let (status, cancelled) = http(
        addr,
        "POST",
        &format!("/api/tasks/{id}/cancel"),
        "application/json",
        b"",
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert!(hub.task(id).unwrap().is_finished());
    let (status, again) = http(
        addr,
        "POST",
        &format!("/api/tasks/{id}/cancel"),
        "application/json",
        b"",
    )
    .await;
    assert_eq!(status, 409, "a finished task cannot be cancelled: {again}");
    assert_eq!(again["field"], "id", "{again}");
    let (_, tasks) = get(addr, "/api/tasks").await;
    assert_eq!(tasks.as_array().unwrap().len(), 1);
    api.shutdown().await;
}

/// Reads server-sent events from a raw connection: `(event, data)` pairs.
struct EventReader(tokio::io::Lines<BufReader<TcpStream>>);

/// An SSE event name and what its data must satisfy.
type Want<'a> = (&'a str, &'a dyn Fn(&Value) -> bool);

impl EventReader {
    async fn open(addr: SocketAddr) -> EventReader {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let head = format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        tcp.write_all(head.as_bytes()).await.expect("send");
        EventReader(BufReader::new(tcp).lines())
    }

    /// The next event named `name` whose data satisfies `check`.
    async fn until(&mut self, name: &str, check: impl Fn(&Value) -> bool) {
        self.until_all(&[(name, &check)]).await;
    }

    /// Reads events until each `(name, check)` pair has been met by one of them, in any order:
    /// transcript entries and device changes travel on one stream but are not ordered
    /// against each other.
    async fn until_all(&mut self, wants: &[Want<'_>]) {
        let names: Vec<String> = wants.iter().map(|(n, _)| n.to_string()).collect();
        within(&format!("SSE events {names:?}"), async {
            let mut met = vec![false; wants.len()];
            let mut current = String::new();
            while !met.iter().all(|m| *m) {
                let line = self
                    .0
                    .next_line()
                    .await
                    .expect("read")
                    .expect("stream open");
                // Chunked framing puts sizes on their own lines; event lines are never hex-only.
                if let Some(name) = line.strip_prefix("event: ") {
                    current = name.to_owned();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    let v: Value = serde_json::from_str(data).expect("data is JSON");
                    for (i, (name, check)) in wants.iter().enumerate() {
                        met[i] |= current == *name && check(&v);
                    }
                }
            }
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_device_changes_and_transcript_entries_live() {
    let (hub, api) = hub_with_api().await;
    let mut events = EventReader::open(api.local_addr()).await;
    events
        .until("device", |d| d["device"]["device_name"] == "light1")
        .await;
    let gw2 = DeviceId::new("JR1WOKB7Q7", "gw2").unwrap();
    hub.add_gateway(&gw2, GATEWAY_SECRET);
    events
        .until("device", |d| {
            d["device"]["device_name"] == "gw2" && d["online"] == false
        })
        .await;
    let _gw = connect_gateway(hub.local_addr(), &gw2, GATEWAY_SECRET).await;
    let connected = |e: &Value| e["client_id"] == "JR1WOKB7Q7gw2" && e["topic"] == "connect";
    let online = |d: &Value| d["device"]["device_name"] == "gw2" && d["online"] == true;
    events
        .until_all(&[("transcript", &connected), ("device", &online)])
        .await;
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_filters_by_sequence_and_device() {
    let (hub, api) = hub_with_api().await;
    let addr = api.local_addr();
    let gw = connect_gateway(hub.local_addr(), &gateway_id(), GATEWAY_SECRET).await;
    let online = json!({"type":"online","payload":{"devices":[{"product_id":"E69UADXUYY","device_name":"light1"}]}});
    gw.send("$gateway/operation/JR1WOKB7Q7/gw_deng1", online)
        .await;
    assert!(
        hub.wait_until(crate::support::DEADLINE, |h| h
            .device(&light1())
            .is_some_and(|d| d.online))
            .await
    );
    gw.send(
        "$ota/report/E69UADXUYY/light1",
        json!({"type":"report_version","report":{"version":"0.1"}}),
    )
    .await;
    let version_reported = |h: &Hub| {
        h.transcript()
            .iter()
            .any(|e| e.topic == "$ota/update/E69UADXUYY/light1")
    };
    assert!(
        hub.wait_until(crate::support::DEADLINE, version_reported)
            .await
    );
    let (_, all) = get(addr, "/api/transcript").await;
    let all = all.as_array().unwrap().clone();
    assert!(all.len() >= 4, "{all:?}");
    let (_, tail) = get(addr, "/api/transcript?since=2").await;
    assert_eq!(tail.as_array().unwrap()[..], all[2..]);
    let (_, light) = get(addr, "/api/transcript?device=E69UADXUYY/light1").await;
    let topics: Vec<&str> = light
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["topic"].as_str().unwrap())
        .collect();
    assert_eq!(
        topics,
        [
            "$ota/report/E69UADXUYY/light1",
            "$ota/update/E69UADXUYY/light1"
        ]
    );
    let (_, gateway) = get(addr, "/api/transcript?device=JR1WOKB7Q7/gw_deng1").await;
    assert!(
        gateway
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["client_id"] == "JR1WOKB7Q7gw_deng1")
    );
    assert!(
        gateway
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["topic"] == "connect")
    );
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_changes_bindings_installs_faults_and_resets() {
    let (hub, api) = hub_with_api().await;
    let addr = api.local_addr();
    let binding = json!({"gateway": "JR1WOKB7Q7/gw_deng1", "subdevice": "E69UADXUYY/light1"});
    let (status, light) = post(addr, "/api/topology/unbind", &binding).await;
    assert_eq!((status, &light["bound_to"]), (200, &Value::Null), "{light}");
    let (status, light) = post(addr, "/api/topology/bind", &binding).await;
    assert_eq!(status, 200, "{light}");
    assert_eq!(light["bound_to"]["device_name"], "gw_deng1");
    let (status, light) = post(
        addr,
        "/api/devices/E69UADXUYY/light1/enabled",
        &json!({"enabled": false}),
    )
    .await;
    assert_eq!((status, &light["enabled"]), (200, &json!(false)), "{light}");
    let rule = json!({
        "when": {"on": "connect", "client_id": "JR1WOKB7Q7gw_deng1"},
        "action": {"do": "refuse_connect", "code": 3},
        "fires": "once"
    });
    let (status, created) = post(addr, "/api/faults", &rule).await;
    assert_eq!(status, 201, "{created}");
    let mut bad = rule.clone();
    bad["action"]["do"] = json!("explode");
    let (status, answer) = post(addr, "/api/faults", &bad).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(hub.faults().len(), 1);
    let (status, answer) = post(
        addr,
        "/api/clock",
        &json!({"advance_ms": 1, "offset_ms": 1}),
    )
    .await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("advance_ms"))
    );
    let (status, clock) = post(addr, "/api/clock", &json!({"offset_ms": -5000})).await;
    assert_eq!(
        (status, &clock["offset_ms"]),
        (200, &json!(-5000)),
        "{clock}"
    );
    let (status, report) = post(addr, "/api/reset", &json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["faults_removed"], 1);
    assert!(hub.faults().is_empty());
    let (status, _) = http(
        addr,
        "POST",
        "/api/clients/nobody/kick",
        "application/json",
        b"",
    )
    .await;
    assert_eq!(status, 204);
    api.shutdown().await;
}
