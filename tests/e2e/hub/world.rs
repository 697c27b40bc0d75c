//! `otasim hub` alone as the whole world for our gateway: COS faults, firmware deletion and
//! the clock armed through the hub's control API with `otasim ctl`, and the COS requests read
//! back from the hub's own transcript (no second server).

use super::{ServedHub, gateway_id, get, light1, serve_hub, wait_api};
use crate::support::within;
use gateway::download::{CheckpointPolicy, DownloadConfig, RetryPolicy, Timeouts};
use gateway::{Gateway, GatewayConfig, GatewayOptions, HubAddress, SubdeviceConfig};
use serde_json::{Value, json};
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const FLEET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/python/fleet.toml");
const GATEWAY_SECRET: &str = "1RRdhkwmZ45wYXjuPfygeA==";
const SIZE: usize = 600_000;
const CUT_AT: u64 = 100_000;
const CHECKPOINT: u64 = 64 << 10;

/// Runs `otasim ctl --api ADDR ARGS...` and answers its stdout; it must succeed.
async fn ctl(hub: &ServedHub, args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_otasim"))
        .arg("ctl")
        .arg("--api")
        .arg(hub.api.to_string())
        .args(args)
        .output();
    let out = within("otasim ctl", out).await.expect("otasim ctl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "otasim ctl {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The id `otasim ctl faults add` printed (`armed N`).
async fn arm_cos(hub: &ServedHub, rule: Value) -> String {
    let out = ctl(hub, &["faults", "add", "--cos", &rule.to_string()]).await;
    out.trim()
        .strip_prefix("armed ")
        .unwrap_or_else(|| panic!("unexpected answer {out:?}"))
        .to_owned()
}

/// The light's update once it is final: `(state, code)`.
async fn final_update(hub: &ServedHub) -> (String, i64) {
    let device = wait_api(hub, "/api/devices/E69UADXUYY/light1", |d| {
        matches!(
            d["update"]["state"]["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled" | "timed_out")
        )
    })
    .await;
    let state = &device["update"]["state"];
    (
        state["state"].as_str().unwrap_or_default().to_owned(),
        state["code"].as_i64().unwrap_or(0),
    )
}

/// The light's COS requests from the hub's transcript, as `(seq, record)`.
async fn http_entries(hub: &ServedHub) -> Vec<(u64, Value)> {
    let (_, entries) = get(hub.api, "/api/transcript?device=E69UADXUYY/light1").await;
    entries
        .as_array()
        .expect("a transcript")
        .iter()
        .filter(|e| e["direction"] == "http")
        .map(|e| {
            let record = serde_json::from_str(e["payload"].as_str().expect("a payload"))
                .expect("an HTTP record");
            (e["seq"].as_u64().expect("a seq"), record)
        })
        .collect()
}

fn download() -> DownloadConfig {
    DownloadConfig {
        // Idle long enough that a test can act while a request stalls.
        timeouts: Timeouts::new(
            Duration::from_secs(5),
            Duration::from_secs(5),
            Duration::from_secs(3),
        )
        .expect("valid timeouts"),
        retry: RetryPolicy::new(
            NonZeroU32::new(3).expect("not zero"),
            Duration::from_secs(60),
            Duration::from_millis(10),
            Duration::from_millis(50),
        )
        .expect("valid retry policy"),
        checkpoint: CheckpointPolicy::EveryBytes(NonZeroU64::new(CHECKPOINT).expect("not zero")),
        write_buffer_bytes: NonZeroUsize::new(64 << 10).expect("not zero"),
        ..DownloadConfig::default()
    }
}

fn our_gateway(hub: &ServedHub, state: &Path) -> Gateway {
    let config = GatewayConfig {
        device: gateway_id(),
        secret: GATEWAY_SECRET.into(),
        hub: HubAddress {
            host: "127.0.0.1".into(),
            port: hub.mqtt.port(),
        },
        subdevices: vec![SubdeviceConfig {
            id: light1(),
            factory_version: "0.1".into(),
        }],
        state_dir: state.to_path_buf(),
        max_image_bytes: 64 << 20,
        keepalive: Duration::from_secs(30),
        download: download(),
    };
    Gateway::start_with(config, GatewayOptions::new()).expect("gateway starts")
}

/// One GET of `url` (`http://HOST:PORT/path?query`) on a fresh connection; the status.
async fn fetch_status(url: &str) -> u16 {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut tcp = tokio::net::TcpStream::connect(host)
        .await
        .expect("connect to COS");
    let head = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.expect("read");
    String::from_utf8_lossy(&raw)[9..12]
        .parse()
        .expect("a status")
}

fn write_image(dir: &Path, name: &str, seed: u8) -> String {
    let bytes: Vec<u8> = (0..SIZE)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write image");
    path.to_str().expect("a UTF-8 path").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_hub_alone_a_cut_resumes_from_the_checkpoint_and_403_404_and_bad_md5_are_armable()
 {
    let dir = tempfile::tempdir().expect("temp dir");
    let hub = serve_hub(&["--fleet", FLEET]).await;
    let v2 = write_image(dir.path(), "v2.bin", 1);
    let uploaded = ctl(&hub, &["firmware", "upload", "E69UADXUYY", "2.0", &v2]).await;
    assert!(uploaded.contains("600000 bytes"), "{uploaded}");
    let gw = our_gateway(&hub, &dir.path().join("state"));
    wait_api(&hub, "/api/devices/E69UADXUYY/light1", |d| {
        d["online"] == true && d["version"] == "0.1"
    })
    .await;

    // Every request for 2.0 is cut after 100 KB: three attempts cannot fetch 600 KB, so the
    // gateway gives up, its checkpoint on disk.
    let cut = arm_cos(
        &hub,
        json!({"when": {"object": "E69UADXUYY_2.0"},
               "verdict": {"kind": "cut_after", "bytes": CUT_AT}, "fires": "always"}),
    )
    .await;
    ctl(&hub, &["push", "E69UADXUYY", "2.0", "--devices", "light1"]).await;
    assert_eq!(final_update(&hub).await.0, "failed");
    let first = http_entries(&hub).await;
    assert!(
        !first.is_empty(),
        "the hub's transcript shows the COS requests"
    );
    for (_, r) in &first {
        assert_eq!(r["devices"], json!(["E69UADXUYY/light1"]), "{r}");
        assert_eq!(r["end"], "cut", "{r}");
        assert!(r["fault"]["verdict"]["kind"] == "cut_after", "{r}");
    }
    let listed = ctl(&hub, &["faults", "list", "--cos"]).await;
    assert!(listed.contains("cut_after"), "{listed}");

    // Disarmed and pushed again: the first request resumes from the checkpoint.
    ctl(&hub, &["faults", "remove", "--cos", &cut]).await;
    let last_seq = first.last().map(|(s, _)| *s).unwrap_or(0);
    ctl(&hub, &["push", "E69UADXUYY", "2.0", "--devices", "light1"]).await;
    assert_eq!(final_update(&hub).await.0, "succeeded");
    let resumed: Vec<Value> = http_entries(&hub)
        .await
        .into_iter()
        .filter(|(s, _)| *s > last_seq)
        .map(|(_, r)| r)
        .collect();
    let range = resumed[0]["range"].as_str().expect("a Range on the resume");
    let from: u64 = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected Range {range}"));
    assert!(
        (CHECKPOINT..=3 * CUT_AT).contains(&from),
        "resumed from {from}, checkpoint every {CHECKPOINT}, three cuts at {CUT_AT}"
    );
    assert_eq!(resumed[0]["status"], 206);
    assert_eq!(resumed.last().expect("a request")["end"], "complete");

    // 403, 404 and a wrong MD5, each armed through the hub and reported by the gateway.
    for (version, seed, rule, code) in [
        ("3.0", 3, json!({"kind": "status", "code": 403}), -3),
        ("4.0", 4, json!({"kind": "corrupt", "offset": 1000}), -4),
    ] {
        let file = write_image(dir.path(), &format!("{version}.bin"), seed);
        ctl(&hub, &["firmware", "upload", "E69UADXUYY", version, &file]).await;
        let object = format!("E69UADXUYY_{version}");
        arm_cos(
            &hub,
            json!({"when": {"object": object}, "verdict": rule, "fires": "always"}),
        )
        .await;
        ctl(
            &hub,
            &["push", "E69UADXUYY", version, "--devices", "light1"],
        )
        .await;
        assert_eq!(
            final_update(&hub).await,
            ("failed".to_owned(), code),
            "{version}"
        );
        ctl(&hub, &["faults", "clear", "--cos"]).await;
    }

    // 404: the firmware is deleted while the gateway's first request stalls; its retry finds
    // nothing.
    let v5 = write_image(dir.path(), "v5.bin", 5);
    ctl(&hub, &["firmware", "upload", "E69UADXUYY", "5.0", &v5]).await;
    arm_cos(
        &hub,
        json!({"when": {"object": "E69UADXUYY_5.0"},
               "verdict": {"kind": "stall_after", "bytes": 0}, "fires": "once"}),
    )
    .await;
    ctl(&hub, &["push", "E69UADXUYY", "5.0", "--devices", "light1"]).await;
    wait_api(&hub, "/api/cos/journal", |j| {
        j.as_array()
            .into_iter()
            .flatten()
            .any(|e| e["object"] == "E69UADXUYY_5.0")
    })
    .await;
    let deleted = ctl(&hub, &["firmware", "delete", "E69UADXUYY", "5.0"]).await;
    assert!(deleted.starts_with("deleted"), "{deleted}");
    assert_eq!(final_update(&hub).await, ("failed".to_owned(), -2));
    let statuses: Vec<u64> = http_entries(&hub)
        .await
        .iter()
        .filter(|(_, r)| r["object"] == "E69UADXUYY_5.0")
        .map(|(_, r)| r["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(statuses.last(), Some(&404), "{statuses:?}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_the_hub_clock_expires_signed_urls_and_deleted_firmware_is_404() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hub = serve_hub(&["--fleet", FLEET]).await;
    let file = write_image(dir.path(), "v2.bin", 2);
    ctl(&hub, &["firmware", "upload", "E69UADXUYY", "2.0", &file]).await;
    let gw = our_gateway(&hub, &dir.path().join("state"));
    wait_api(&hub, "/api/devices/E69UADXUYY/light1", |d| {
        d["online"] == true
    })
    .await;
    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_otasim"))
        .args(["ctl", "--api", &hub.api.to_string(), "--json", "watch"])
        .args(["--device", "E69UADXUYY/light1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("otasim ctl watch starts");
    let mut watched = BufReader::new(watch.stdout.take().expect("piped")).lines();
    let mut said = BufReader::new(watch.stderr.take().expect("piped")).lines();
    let first = within("ctl watch to subscribe", said.next_line()).await;
    assert!(
        first
            .expect("read")
            .is_some_and(|l| l.starts_with("watching ")),
        "ctl watch says when it is subscribed"
    );
    ctl(&hub, &["push", "E69UADXUYY", "2.0", "--devices", "light1"]).await;
    assert_eq!(final_update(&hub).await.0, "succeeded");
    let (mut saw_update, mut saw_http) = (false, false);
    within("ctl watch to show the update and its COS request", async {
        while !(saw_update && saw_http) {
            let line = watched
                .next_line()
                .await
                .expect("read")
                .expect("watch still running");
            let entry: Value = serde_json::from_str(&line).expect("JSON lines");
            saw_http |= entry["direction"] == "http";
            saw_update |= entry["payload"]
                .as_str()
                .is_some_and(|p| p.contains("update_firmware"));
        }
    })
    .await;
    drop(watch);
    let (_, out) = get(hub.api, "/api/transcript?device=E69UADXUYY/light1").await;
    let url = out
        .as_array()
        .expect("a transcript")
        .iter()
        .filter(|e| e["direction"] == "out")
        .filter_map(|e| serde_json::from_str::<Value>(e["payload"].as_str()?).ok())
        .find_map(|p| p["url"].as_str().map(str::to_owned))
        .expect("the update_firmware URL");
    assert_eq!(
        fetch_status(&url).await,
        200,
        "valid before the clock moves"
    );

    // Re-uploading other bytes under the same version is refused; asking to replace works.
    let other = write_image(dir.path(), "other.bin", 9);
    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_otasim"))
        .args(["ctl", "--api", &hub.api.to_string(), "firmware", "upload"])
        .args(["E69UADXUYY", "2.0", &other])
        .output();
    let refused = within("otasim ctl", refused).await.expect("runs");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("409"));
    ctl(&hub, &["firmware", "upload", "E69UADXUYY", "2.0", &file]).await;
    ctl(
        &hub,
        &[
            "firmware",
            "upload",
            "--replace",
            "E69UADXUYY",
            "2.0",
            &other,
        ],
    )
    .await;

    let advanced = ctl(&hub, &["clock", "advance", "2h"]).await;
    assert!(advanced.contains("7200000 ms from real time"), "{advanced}");
    assert_eq!(fetch_status(&url).await, 403, "expired on the moved clock");
    let (_, clock) = get(hub.api, "/api/clock").await;
    assert_eq!(clock["offset_ms"], 7_200_000);
    super::post(hub.api, "/api/clock", &json!({"offset_ms": 0})).await;
    assert_eq!(fetch_status(&url).await, 200, "valid again on real time");
    ctl(&hub, &["firmware", "delete", "E69UADXUYY", "2.0"]).await;
    assert_eq!(
        fetch_status(&url).await,
        404,
        "deleted firmware is NoSuchKey"
    );
    let statuses: Vec<u64> = http_entries(&hub)
        .await
        .iter()
        .map(|(_, r)| r["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(&statuses[statuses.len() - 4..], &[200, 403, 200, 404]);
    let status = ctl(&hub, &["status"]).await;
    assert!(status.contains("hub ok"), "{status}");
    assert!(status.contains("E69UADXUYY/light1"), "{status}");
    // Bad input through the hub's COS routes: clear errors naming the field, nothing armed.
    let (code, refused) = super::post(
        hub.api,
        "/api/cos/faults",
        &json!({"verdict": {"kind": "nope"}, "fires": "once"}),
    )
    .await;
    assert_eq!(
        (code, &refused["field"]),
        (400, &json!("rule")),
        "{refused}"
    );
    let (code, _) = super::http(
        hub.api,
        "DELETE",
        "/api/cos/faults/99",
        "application/json",
        b"",
    )
    .await;
    assert_eq!(code, 404);
    let (code, refused) = get(hub.api, "/api/cos/journal?since=-1").await;
    assert_eq!(
        (code, &refused["field"]),
        (400, &json!("since")),
        "{refused}"
    );
    let (code, _) = super::http(
        hub.api,
        "DELETE",
        "/api/firmware/E69UADXUYY/2.0",
        "application/json",
        b"",
    )
    .await;
    assert_eq!(code, 404, "already deleted");
    let (_, rules) = get(hub.api, "/api/cos/faults").await;
    assert_eq!(rules, json!([]));
    let (code, health) = get(hub.api, "/api/health").await;
    assert_eq!((code, &health["status"]), (200, &json!("ok")));
    gw.shutdown().await;
}
