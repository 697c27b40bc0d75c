//! `otasim hub --cos-tls-port`: HTTPS downloads under the hub's own CA, checked by curl
//! (trusting only the `--ca-file` CA, for the COS host names the real Hub's URLs use) and by
//! our gateway trusting the same CA.

use super::{ServedHub, gateway_id, get, http, light1, post, serve_hub, wait_api};
use gateway::{Gateway, GatewayConfig, GatewayOptions, HubAddress, SubdeviceConfig, TlsSettings};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const FLEET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/python/fleet.toml");
const GATEWAY_SECRET: &str = "1RRdhkwmZ45wYXjuPfygeA==";
const SIZE: usize = 70_000;

fn image() -> Vec<u8> {
    (0..SIZE).map(|i| (i * 31 % 251) as u8).collect()
}

/// The light's update state once it is final.
async fn final_state(hub: &ServedHub) -> String {
    let device = wait_api(hub, "/api/devices/E69UADXUYY/light1", |d| {
        matches!(
            d["update"]["state"]["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        )
    })
    .await;
    device["update"]["state"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn our_gateway(hub: &ServedHub, state: &Path, ca_pem: &str) -> Gateway {
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
        download: gateway::download::DownloadConfig::default(),
    };
    let mut options = GatewayOptions::new();
    options.https_ca = Some(TlsSettings::new(ca_pem.as_bytes().to_vec()));
    Gateway::start_with(config, options).expect("gateway starts")
}

/// `curl -r RANGE URL` with `extra` arguments: its exit code and the body.
async fn curl(url: &str, range: &str, extra: &[&str]) -> (Option<i32>, Vec<u8>) {
    let out = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10", "-r", range])
        .args(extra)
        .arg(url)
        .output()
        .await
        .expect("curl runs");
    (out.status.code(), out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs curl"]
async fn https_cos_under_the_hub_ca_serves_curl_and_our_gateway() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("hub-ca.pem");
    let ca_arg = ca.to_str().expect("a UTF-8 path");
    let hub = serve_hub(&[
        "--fleet",
        FLEET,
        "--tls-port",
        "0",
        "--cos-tls-port",
        "0",
        "--cos-url-scheme",
        "https",
        "--ca-file",
        ca_arg,
    ])
    .await;
    let cos_tls = hub.cos_tls.expect("a cos_tls= address");
    let bytes = image();
    let (status, fw) = http(
        hub.api,
        "POST",
        "/api/firmware?product_id=E69UADXUYY&version=V2",
        "application/octet-stream",
        &bytes,
    )
    .await;
    assert_eq!(status, 201, "{fw}");
    let ca_pem = std::fs::read_to_string(&ca).expect("--ca-file written");
    let gw = our_gateway(&hub, &dir.path().join("state"), &ca_pem);
    let push =
        json!({"product_id":"E69UADXUYY","version":"V2","method":"devices","devices":["light1"]});
    wait_api(&hub, "/api/devices/E69UADXUYY/light1", |d| {
        d["online"] == true
    })
    .await;
    let (status, created) = post(hub.api, "/api/tasks", &push).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        final_state(&hub).await,
        "succeeded",
        "our gateway over https"
    );
    gw.shutdown().await;

    let (_, out) = get(hub.api, "/api/transcript?device=E69UADXUYY/light1").await;
    let url = out
        .as_array()
        .expect("a transcript")
        .iter()
        .filter(|e| e["direction"] == "out")
        .filter_map(|e| serde_json::from_str::<Value>(e["payload"].as_str()?).ok())
        .find_map(|p| p["url"].as_str().map(str::to_owned))
        .expect("the update_firmware URL");
    assert!(url.starts_with(&format!("https://{cos_tls}/")), "{url}");

    let (code, body) = curl(&url, "1000-1999", &["--cacert", ca_arg]).await;
    assert_eq!(code, Some(0));
    assert!(body == bytes[1000..2000], "the asked range, byte for byte");
    // The name a real Hub URL carries, resolved to the hub: the certificate names it.
    let cos_name = "ota-1255858890.cos.ap-guangzhou.myqcloud.com";
    let named = url.replace(&cos_tls.ip().to_string(), cos_name);
    let resolve = format!("{cos_name}:{}:127.0.0.1", cos_tls.port());
    let (code, body) = curl(
        &named,
        "69000-",
        &["--cacert", ca_arg, "--resolve", &resolve],
    )
    .await;
    assert_eq!(code, Some(0));
    assert!(body == bytes[69_000..]);
    let (code, _) = curl(&url, "0-9", &[]).await;
    assert_eq!(
        code,
        Some(60),
        "without the hub's CA the certificate is not trusted"
    );
}
