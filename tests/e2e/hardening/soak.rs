//! The soak test: a normal update runs to success on the real `otasim hub` while hostile
//! clients do every attack of the hardening issue at once (forged wills, floods of CONNECTs
//! with 16 KB client ids and with one client id, wildcard publishes, poisonous task options,
//! cross-site writes and rebound Host names, event readers that never read, replayed binds,
//! idle sockets on the MQTT port that send 0 or 1 byte, and COS abuse on the hub's COS port:
//! 60 KB paths, Range tricks on a real signed URL, slowloris headers). Bounded in count and
//! time; loopback only. Afterwards the idle sockets were closed by the hub, its RSS is under a
//! stated bound, and every listener answers within a second.

use super::wire::{Connect, Raw, Will, credentials, publish_packet};
use super::{request, rss_kib};
use crate::hub::{GATEWAY_SECRET, connect_gateway, gateway_id, http, post, serve_hub};
use rumqttc::QoS;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How much the hub's RSS may grow over the whole soak.
const RSS_GROWTH_BOUND_KIB: u64 = 64 * 1024;

const FLEET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/python/fleet.toml");

async fn hostile_mqtt(mqtt: SocketAddr) {
    let gw = credentials(&gateway_id(), GATEWAY_SECRET);
    for i in 0..300usize {
        let id = format!("{i:06}{}", "x".repeat(16_000));
        let flood = Connect {
            client_id: &id,
            username: Some("u"),
            password: Some("p"),
            will: None,
            level: 4,
        };
        let (_raw, code) = Raw::connect(mqtt, &flood).await;
        assert!(
            matches!(code, Some(5) | None),
            "flood CONNECT {i}: {code:?}"
        );
        if i % 10 == 0 {
            let mut forged = Connect::device(&gw);
            forged.will = Some(Will {
                topic: "$ota/update/E69UADXUYY/light2",
                payload: br#"{"type":"update_firmware","file_size":1,"md5sum":"0","url":"http://127.0.0.1:9/x","version":"EVIL"}"#,
            });
            let (raw, code) = Raw::connect(mqtt, &forged).await;
            assert_eq!(code, Some(5), "forged will");
            raw.reset();
        }
    }
}

async fn wildcard_publishers(mqtt: SocketAddr) {
    let gw = credentials(&super::gw2(), super::GW2_SECRET);
    for _ in 0..20 {
        // One client id: each takes the session over, then breaks the protocol.
        let (mut raw, code) = Raw::connect(mqtt, &Connect::device(&gw)).await;
        if code == Some(0) {
            raw.send(&publish_packet("$ota/report/E69UADXUYY/#", b"{}"))
                .await;
            raw.until_closed().await;
        }
    }
}

async fn hostile_api(api: SocketAddr) {
    let own = api.to_string();
    for i in 0..50 {
        let poison = json!({"product_id":"E69UADXUYY","version":"V2","method":"devices","devices":["light1"],
                            "options":{"rate_limit":{"devices":1,"per_ms":u64::MAX},"retries":u32::MAX}});
        let a = request(
            api,
            "POST",
            "/api/tasks",
            &[("Host", &own), ("Content-Type", "application/json")],
            poison.to_string().as_bytes(),
        )
        .await;
        assert_eq!(a.status, 400, "{}", a.body);
        let a = request(
            api,
            "POST",
            "/api/firmware?product_id=E69UADXUYY&version=V2",
            &[
                ("Host", &own),
                ("Origin", "http://attacker.example"),
                ("Content-Type", "text/plain"),
            ],
            b"forged",
        )
        .await;
        assert_eq!(a.status, 403, "{}", a.body);
        let a = request(
            api,
            "POST",
            "/api/reset",
            &[("Host", "attacker.example")],
            b"",
        )
        .await;
        assert_eq!(a.status, 403, "{}", a.body);
        let clock = json!({"advance_ms": u64::MAX - i});
        let a = request(
            api,
            "POST",
            "/api/clock",
            &[("Host", &own), ("Content-Type", "application/json")],
            clock.to_string().as_bytes(),
        )
        .await;
        assert_eq!(a.status, 400, "{}", a.body);
    }
}

/// How many idle sockets the soak opens on the MQTT port: half send nothing, half one byte.
const IDLE_SOCKETS: usize = 400;
/// The hub's CONNECT deadline (`HubConfig::connect_deadline`'s default) and some slack.
const IDLE_CLOSED_WITHIN: Duration = Duration::from_secs(10 + 10);

/// Sockets that connect to the MQTT port and send 0 or 1 byte of a CONNECT, then wait.
async fn idle_sockets(mqtt: SocketAddr) -> Vec<tokio::net::TcpStream> {
    let mut out = Vec::new();
    for i in 0..IDLE_SOCKETS {
        let mut tcp = tokio::net::TcpStream::connect(mqtt)
            .await
            .expect("an idle socket connects");
        if i % 2 == 1 {
            tcp.write_all(&[0x10]).await.expect("one byte of a CONNECT");
        }
        out.push(tcp);
    }
    out
}

/// Every idle socket is closed by the hub: reading gives the end (or a reset), not a timeout.
async fn closed_by_the_hub(sockets: Vec<tokio::net::TcpStream>, opened: tokio::time::Instant) {
    use tokio::io::AsyncReadExt;
    let deadline = opened + IDLE_CLOSED_WITHIN;
    for (i, mut tcp) in sockets.into_iter().enumerate() {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout_at(deadline, tcp.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "idle socket {i} still open {IDLE_CLOSED_WITHIN:?} after it connected: {read:?}"
        );
    }
}

/// Slowloris on COS: headers a byte at a time, never finished. Each connection must be closed
/// by COS's header deadline (10 s) while the byte-a-second drip goes on; bounded at 20 s.
async fn slowloris(cos: SocketAddr, n: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        tasks.spawn(async move {
            let mut tcp = tokio::net::TcpStream::connect(cos)
                .await
                .expect("connect to COS");
            tcp.write_all(b"GET /E69UADXUYY_V2 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await
                .expect("the start of a header");
            // The attack's own pace, a byte a second: not a wait for anything.
            let mut drip = tokio::time::interval(Duration::from_secs(1));
            drip.tick().await;
            for _ in 0..20 {
                drip.tick().await;
                if tcp.write_all(b"a").await.is_err() {
                    return true;
                }
            }
            false
        });
    }
    while let Some(closed) = tasks.join_next().await {
        assert!(
            closed.expect("a slowloris client"),
            "COS kept a slowloris header open 20 s"
        );
    }
}

/// COS abuse on the hub's COS port: huge paths with a Range, then Range tricks on the real
/// signed URL of the normal update's command, each answered (never a 5xx, never a hang).
async fn cos_abuse(cos: SocketAddr, url: tokio::sync::oneshot::Receiver<String>) {
    let huge = format!("/{}", "a".repeat(60_000));
    for _ in 0..300 {
        let a = request(
            cos,
            "GET",
            &huge,
            &[("Host", "127.0.0.1"), ("Range", "bytes=0-")],
            b"",
        )
        .await;
        assert!((400..500).contains(&a.status), "60 KB path: {}", a.status);
    }
    let Ok(url) = url.await else { return };
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
        .expect("a signed URL with a path");
    let many = vec!["0-0"; 2000].join(",");
    let tricks = [
        "bytes=0-99".to_owned(),
        "bytes=-0".to_owned(),
        "bytes=4999-0".to_owned(),
        "bytes=99999999999999999999999-".to_owned(),
        "bytes=18446744073709551615-18446744073709551615".to_owned(),
        "bytes=-18446744073709551615".to_owned(),
        "bytes=5000-".to_owned(),
        "bytes=0-1,2-3".to_owned(),
        format!("bytes={many}"),
        "items=0-1".to_owned(),
        "bytes=\u{0}".to_owned(),
    ];
    for _ in 0..20 {
        for t in &tricks {
            let a = request(
                cos,
                "GET",
                &path,
                &[("Host", "127.0.0.1"), ("Range", t)],
                b"",
            )
            .await;
            assert!(
                matches!(a.status, 200 | 206 | 400 | 416),
                "Range {:.60}: {}",
                t,
                a.status
            );
        }
    }
    let a = request(
        cos,
        "GET",
        &path,
        &[("Host", "127.0.0.1"), ("Range", "bytes=0-99")],
        b"",
    )
    .await;
    assert_eq!(
        (a.status, a.body.len()),
        (206, 100),
        "a plain Range still works"
    );
}

/// Event streams that are never read (kept open until the soak ends).
async fn never_reading(api: SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut out = Vec::new();
    for _ in 0..n {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut tcp = socket.connect(api).await.unwrap();
        let head = format!("GET /api/events HTTP/1.1\r\nHost: {api}\r\n\r\n");
        tcp.write_all(head.as_bytes()).await.unwrap();
        out.push(tcp);
    }
    out
}

/// The normal update: light1 goes from 0.1 to V2 through the gateway, and its task succeeds;
/// the command's signed URL goes to `url`.
async fn normal_update(
    mqtt: SocketAddr,
    api: SocketAddr,
    url: tokio::sync::oneshot::Sender<String>,
) {
    let (status, fw) = http(
        api,
        "POST",
        "/api/firmware?product_id=E69UADXUYY&version=V2",
        "application/octet-stream",
        &[7u8; 5000],
    )
    .await;
    assert_eq!(status, 201, "{fw}");
    let mut gw = connect_gateway(mqtt, &gateway_id(), GATEWAY_SECRET).await;
    let (op, result) = (
        "$gateway/operation/JR1WOKB7Q7/gw_deng1",
        "$gateway/operation/result/JR1WOKB7Q7/gw_deng1",
    );
    let (update, report) = (
        "$ota/update/E69UADXUYY/light1",
        "$ota/report/E69UADXUYY/light1",
    );
    gw.client.subscribe(result, QoS::AtLeastOnce).await.unwrap();
    gw.send(op, json!({"type":"online","payload":{"devices":[{"product_id":"E69UADXUYY","device_name":"light1"}]}})).await;
    gw.expect(result, "online").await;
    gw.client.subscribe(update, QoS::AtLeastOnce).await.unwrap();
    gw.send(
        report,
        json!({"type":"report_version","report":{"version":"0.1"}}),
    )
    .await;
    gw.expect(update, "report_version_rsp").await;
    let push =
        json!({"product_id":"E69UADXUYY","version":"V2","method":"devices","devices":["light1"]});
    let (status, created) = post(api, "/api/tasks", &push).await;
    assert_eq!(status, 201, "{created}");
    let cmd = gw.expect(update, "update_firmware").await;
    assert_eq!(
        cmd["md5sum"], fw["md5"],
        "the real command, not a forged one"
    );
    let _ = url.send(cmd["url"].as_str().expect("a URL").to_owned());
    for state in ["burning", "done"] {
        gw.send(report, json!({"type":"report_progress","report":{"progress":{"state":state,"result_code":"0","result_msg":""},"version":"V2"}})).await;
    }
    gw.send(
        report,
        json!({"type":"report_version","report":{"version":"V2"}}),
    )
    .await;
    loop {
        if gw.expect(update, "report_version_rsp").await["version"] == "V2" {
            break;
        }
    }
    let task = created["task_id"].as_u64().unwrap();
    let (_, done) = crate::hub::get(api, &format!("/api/tasks/{task}")).await;
    assert_eq!(done["summary"]["succeeded"], 1, "{done}");
}

/// Each listener accepts a connection and answers within a second.
async fn answers_within_a_second(what: &str, fut: impl std::future::Future<Output = bool>) {
    let ok = tokio::time::timeout(Duration::from_secs(1), fut).await;
    assert_eq!(ok, Ok(true), "{what} did not answer within a second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_update_succeeds_while_every_attack_runs_and_the_hub_stays_bounded() {
    let hub = serve_hub(&["--fleet", FLEET, "--quiet"]).await;
    let pid = hub._child.id().expect("the hub runs");
    let gw2 = json!({"product_id":"GW2PROD000","device_name":"gw2","secret":super::GW2_SECRET});
    let (status, answer) = post(hub.api, "/api/gateways", &gw2).await;
    assert_eq!(status, 201, "{answer}");
    let before = rss_kib(pid);
    let readers = never_reading(hub.api, 8).await;
    let idle_opened = tokio::time::Instant::now();
    let idle = idle_sockets(hub.mqtt).await;
    let (url_tx, url_rx) = tokio::sync::oneshot::channel();
    let attacks = [
        tokio::spawn(hostile_mqtt(hub.mqtt)),
        tokio::spawn(wildcard_publishers(hub.mqtt)),
        tokio::spawn(hostile_api(hub.api)),
        tokio::spawn(cos_abuse(hub.cos, url_rx)),
        tokio::spawn(slowloris(hub.cos, 40)),
    ];
    normal_update(hub.mqtt, hub.api, url_tx).await;
    for a in attacks {
        a.await.expect("an attack ran to its end");
    }
    closed_by_the_hub(idle, idle_opened).await;
    let after = rss_kib(pid);
    eprintln!(
        "soak: hub RSS {before} KiB before, {after} KiB after (bound: +{RSS_GROWTH_BOUND_KIB} KiB)"
    );
    assert!(
        after < before + RSS_GROWTH_BOUND_KIB,
        "RSS grew from {before} to {after} KiB"
    );
    let gw = credentials(&gateway_id(), GATEWAY_SECRET);
    answers_within_a_second("MQTT", async {
        Raw::connect(hub.mqtt, &Connect::device(&gw)).await.1 == Some(0)
    })
    .await;
    let own = hub.api.to_string();
    answers_within_a_second("the control API", async {
        request(hub.api, "GET", "/api/devices", &[("Host", &own)], b"")
            .await
            .status
            == 200
    })
    .await;
    answers_within_a_second("COS", async {
        let a = request(
            hub.cos,
            "GET",
            "/missing-object",
            &[("Host", "127.0.0.1")],
            b"",
        )
        .await;
        (400..500).contains(&a.status)
    })
    .await;
    drop(readers);
}
