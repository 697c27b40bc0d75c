//! Real clients we did not write against `otasim hub`'s TLS port: paho-mqtt (pinned 1.5.1, in
//! the Python SDK's virtualenv under `target/`) over server-certificate TLS with username and
//! password, checking the host name `{pid}.iotcloud.tencentdevices.com` against the CA the hub
//! wrote with `--ca-file`; it subscribes to every topic of the device's space (all granted) and
//! to a foreign one (refused), and gets answers on `$sys/operation` and `$shadow/operation`.

use crate::hub::serve_hub;
use crate::python_sdk::sdk_python;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/python/paho_tls.py");
const FLEET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/python/fleet.toml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_over_server_certificate_tls_checks_the_product_host_name_and_gets_its_topics() {
    let python = tokio::task::spawn_blocking(sdk_python)
        .await
        .expect("venv setup");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("hub-ca.pem");
    let ca_arg = ca.to_str().expect("utf-8 temp path");
    let hub = serve_hub(&["--fleet", FLEET, "--tls-port", "0", "--ca-file", ca_arg]).await;
    let c_array = std::fs::read_to_string(dir.path().join("hub-ca.pem.c")).expect("C array");
    assert!(c_array.starts_with("static const char *iot_https_ca_crt = {"));
    let tls = hub.tls.expect("a tls= address on the listening line");
    let out = tokio::process::Command::new(&python)
        .arg(Path::new(SCRIPT))
        .args(["--port", &tls.port().to_string(), "--ca", ca_arg])
        .args(["--product-id", "JR1WOKB7Q7", "--device-name", "gw_deng1"])
        .args(["--secret", "1RRdhkwmZ45wYXjuPfygeA=="])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("paho finished within 60 s")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "paho failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(result["connack"], 0, "{result}");
    assert_eq!(result["finished"], true, "{result}");
    let granted = result["granted"].as_object().expect("grants");
    for (topic, qos) in granted {
        let foreign = topic.starts_with("OTHERPROD1/");
        assert_eq!(qos == 128, foreign, "{topic}: granted {qos}");
    }
    assert_eq!(granted.len(), 9);
    let time = &result["messages"]["$sys/operation/result/JR1WOKB7Q7/gw_deng1"];
    assert_eq!(time["type"], "get");
    assert!(
        time["time"].as_i64().is_some_and(|t| t > 1_600_000_000),
        "{time}"
    );
    let shadow = &result["messages"]["$shadow/operation/result/JR1WOKB7Q7/gw_deng1"];
    assert_eq!(shadow["clientToken"], "JR1WOKB7Q7-1");
    assert_eq!(
        (
            shadow["result"].as_i64(),
            shadow["payload"]["version"].as_i64()
        ),
        (Some(0), Some(0))
    );
}
