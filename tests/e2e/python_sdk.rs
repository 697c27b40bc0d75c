//! End-to-end tests: the official Tencent IoT Hub Python SDK (`tencent-iot-device` 1.0.0 from
//! PyPI) as a gateway against `otasim hub`. The SDK speaks MQTT 3.1, writes its expiry in
//! milliseconds and treats a QoS 0 grant on `$ota/update` as failure; the script
//! `tests/e2e/python/sdk_gateway.py` drives it, and this test checks what the hub recorded.
//!
//! Needs `python3` with `venv` and PyPI: the SDK is installed once into `target/py-sdk-venv`
//! and reused. Without them the test fails and says what is missing.

use crate::hub::{get, http, serve_hub};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SCRIPT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/python");
const INSTALL: [&[&str]; 2] = [
    &["--no-deps", "tencent-iot-device==1.0.0", "paho-mqtt==1.5.1"],
    &["pycryptodome"],
];

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn run(what: &str, cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The virtualenv's python with the SDK installed, made on first use.
pub(crate) fn sdk_python() -> PathBuf {
    venv_python(
        "py-sdk-venv",
        &INSTALL,
        "import hub.hub, paho.mqtt.client, Crypto",
    )
}

/// The python of a virtualenv `target/{dir}` with each of `install` (pip arguments, pinned
/// versions) installed, made on first use and reused while `probe` (Python code) runs.
pub(crate) fn venv_python(dir: &str, install: &[&[&str]], probe: &str) -> PathBuf {
    let venv = target_dir().join(dir);
    let python = venv.join("bin").join("python");
    let ready = || {
        Command::new(&python)
            .args(["-c", probe])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready() {
        return python;
    }
    let host = Command::new("python3").arg("--version").output();
    assert!(
        host.is_ok_and(|o| o.status.success()),
        "python3 is not installed: the Python SDK tests need python3 with venv (Debian: \
         apt-get install -y python3 python3-venv)"
    );
    run(
        "creating the virtualenv (needs python3-venv)",
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
    );
    for args in install {
        run(
            "pip install from PyPI (is PyPI reachable?)",
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(*args),
        );
    }
    assert!(
        ready(),
        "the packages are installed but do not import: {probe}"
    );
    python
}

async fn phase(python: &Path, name: &str, mqtt: &str, api: &str, workdir: &Path) {
    let out = tokio::process::Command::new(python)
        .arg(Path::new(SCRIPT_DIR).join("sdk_gateway.py"))
        .args([name, "--mqtt", mqtt, "--api", api, "--workdir"])
        .arg(workdir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .unwrap_or_else(|_| panic!("the SDK's {name} phase did not finish in 90 s"))
        .expect("python runs");
    assert!(
        out.status.success(),
        "the SDK's {name} phase failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn payload(e: &Value) -> Value {
    serde_json::from_str(e["payload"].as_str().unwrap_or_default()).unwrap_or(Value::Null)
}

/// The hub's replies on the gateway's result topic, as `(type, device_name, result)`.
fn gateway_replies(transcript: &[Value]) -> Vec<(String, String, i64)> {
    transcript
        .iter()
        .filter(|e| {
            e["direction"] == "out" && e["topic"] == "$gateway/operation/result/JR1WOKB7Q7/gw_deng1"
        })
        .flat_map(|e| {
            let p = payload(e);
            let kind = p["type"].as_str().unwrap_or_default().to_owned();
            let devices = p["payload"]["devices"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            devices.into_iter().map(move |d| {
                let name = d["device_name"].as_str().unwrap_or_default().to_owned();
                (kind.clone(), name, d["result"].as_i64().unwrap_or(0))
            })
        })
        .collect()
}

/// Light1's messages after its second `update_firmware`: the resumed attempt.
fn after_second_command(transcript: &[Value]) -> Vec<Value> {
    let update = "$ota/update/E69UADXUYY/light1";
    let commands: Vec<usize> = transcript
        .iter()
        .enumerate()
        .filter(|(_, e)| e["topic"] == update && payload(e)["type"] == "update_firmware")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(commands.len(), 2, "one command per attempt");
    transcript[commands[1]..]
        .iter()
        .filter(|e| e["topic"] == "$ota/report/E69UADXUYY/light1")
        .map(payload)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_gateway_binds_resumes_an_update_and_reports_an_md5_failure() {
    let python = tokio::task::spawn_blocking(sdk_python)
        .await
        .expect("venv setup");
    let fleet = Path::new(SCRIPT_DIR).join("fleet.toml");
    let hub = serve_hub(&["--fleet", fleet.to_str().unwrap()]).await;
    let image: Vec<u8> = (0..40_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let path = "/api/firmware?product_id=E69UADXUYY&version=V2";
    let (status, fw) = http(hub.api, "POST", path, "application/octet-stream", &image).await;
    assert_eq!(status, 201, "{fw}");
    let workdir = tempfile::tempdir().expect("temp dir");
    let (mqtt, api) = (hub.mqtt.to_string(), hub.api.to_string());
    phase(&python, "first", &mqtt, &api, workdir.path()).await;
    phase(&python, "second", &mqtt, &api, workdir.path()).await;

    let (_, transcript) = get(hub.api, "/api/transcript").await;
    let transcript = transcript.as_array().expect("a list").clone();
    let connects: Vec<&Value> = transcript
        .iter()
        .filter(|e| e["topic"] == "connect" && e["client_id"] == "JR1WOKB7Q7gw_deng1")
        .collect();
    assert_eq!(connects.len(), 2, "one connection per phase");
    for c in connects {
        let detail = c["payload"].as_str().unwrap();
        assert!(
            detail.starts_with("Accept") && detail.contains("level 3"),
            "{detail}"
        );
    }
    assert!(
        transcript.iter().all(|e| e["topic"] != "suback failure"),
        "a subscription was refused"
    );
    let replies = gateway_replies(&transcript);
    for (kind, name) in [
        ("bind", "light2"),
        ("online", "light1"),
        ("online", "light2"),
        ("offline", "light2"),
        ("unbind", "light2"),
        ("describe_sub_devices", "light1"),
    ] {
        assert!(
            replies
                .iter()
                .any(|(k, n, r)| k == kind && n == name && *r == 0),
            "no successful {kind} of {name} in {replies:?}"
        );
    }
    let resumed = after_second_command(&transcript);
    let first_progress = resumed
        .iter()
        .find(|p| p["report"]["progress"]["state"] == "downloading")
        .expect("progress after the second command");
    let percent: u32 = first_progress["report"]["progress"]["percent"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .expect("percent as a string");
    assert!(percent > 0, "the download restarted from 0: {resumed:?}");

    let (_, light1) = get(hub.api, "/api/devices/E69UADXUYY/light1").await;
    assert_eq!(light1["version"], "V2");
    assert_eq!(light1["update"]["state"]["state"], "succeeded", "{light1}");
    let (_, light2) = get(hub.api, "/api/devices/E69UADXUYY/light2").await;
    assert_eq!(light2["bound_to"], Value::Null, "{light2}");
    assert_eq!(light2["update"]["state"]["state"], "failed", "{light2}");
    assert_eq!(light2["update"]["state"]["code"], -4, "{light2}");
}
