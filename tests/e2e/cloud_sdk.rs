//! End-to-end tests: the Cloud API 3.0 of `otasim hub`, driven by the official Tencent Cloud SDK
//! for Python (`tencentcloud-sdk-python-iotcloud` 3.0.1459 and `-common` 3.1.195, installed into
//! `target/py-cloud-sdk-venv`) as a team's release pipeline: upload through COS, a push by each
//! of the console's three methods, our gateway (`otasim gateway`) updating four lights, and
//! the progress and statistics read back. Plus the API's answers to malformed calls, over raw
//! HTTP.

use crate::hub::{ServedHub, get, http, serve_hub};
use crate::python_sdk::venv_python;
use fake_hub::api::cloud::auth;
use otasim_protocol::{DeviceId, DeviceInfo};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const SCRIPT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/python");
const INSTALL: [&[&str]; 1] = [&[
    "tencentcloud-sdk-python-iotcloud==3.0.1459",
    "tencentcloud-sdk-python-common==3.1.195",
]];
const SECRET_ID: &str = "AKIDotasimE2E";
const SECRET_KEY: &str = "e2e-secret-key";
const LIGHTS: [(&str, &str); 4] = [
    ("light1", "0.1"),
    ("light2", "0.1"),
    ("light3", "0.2"),
    ("light4", "0.5"),
];

fn cloud_python() -> PathBuf {
    venv_python(
        "py-cloud-sdk-venv",
        &INSTALL,
        "import tencentcloud.iotcloud.v20210408.iotcloud_client, requests",
    )
}

async fn cloud_hub() -> (ServedHub, SocketAddr) {
    let fleet = Path::new(SCRIPT_DIR).join("cloud_fleet.toml");
    let hub = serve_hub(&[
        "--fleet",
        fleet.to_str().expect("a UTF-8 path"),
        "--cloud-port",
        "0",
    ])
    .await;
    let cloud = hub.cloud.expect("the listening line names the Cloud API");
    (hub, cloud)
}

/// `otasim gateway` for the fleet's gateway and lights, with their factory versions.
fn spawn_gateway(dir: &Path, mqtt: SocketAddr) -> tokio::process::Child {
    let gateway = DeviceId::new("JR1WOKB7Q7", "gw_deng1").expect("valid id");
    let subs: Vec<DeviceId> = LIGHTS
        .iter()
        .map(|(n, _)| DeviceId::new("E69UADXUYY", *n).expect("valid id"))
        .collect();
    let info = DeviceInfo::key_gateway(&gateway, crate::hub::GATEWAY_SECRET, &subs);
    std::fs::write(dir.join("device_info.json"), info.to_json()).expect("device_info.json");
    let subdevs: String = LIGHTS
        .iter()
        .map(|(n, v)| {
            format!(
                "[[subdevice]]\nproduct_id = \"E69UADXUYY\"\ndevice_name = \"{n}\"\n\
                 factory_version = \"{v}\"\n\n"
            )
        })
        .collect();
    std::fs::write(dir.join("subdevs.toml"), subdevs).expect("subdevs.toml");
    let log = std::fs::File::create(dir.join("gateway.log")).expect("log file");
    tokio::process::Command::new(env!("CARGO_BIN_EXE_otasim"))
        .arg("gateway")
        .arg("--device-info")
        .arg(dir.join("device_info.json"))
        .arg("--subdevices")
        .arg(dir.join("subdevs.toml"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--hub")
        .arg(mqtt.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("otasim gateway starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_cloud_sdk_releases_firmware_by_the_three_methods_through_our_gateway() {
    let python = tokio::task::spawn_blocking(cloud_python)
        .await
        .expect("venv setup");
    let (hub, cloud) = cloud_hub().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let _gateway = spawn_gateway(dir.path(), hub.mqtt);
    let image: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let image_path = dir.path().join("light-1.0.bin");
    std::fs::write(&image_path, &image).expect("image");

    let run = tokio::process::Command::new(&python)
        .arg(Path::new(SCRIPT_DIR).join("cloud_release.py"))
        .args(["--endpoint", &cloud.to_string()])
        .args(["--secret-id", SECRET_ID, "--secret-key", SECRET_KEY])
        .arg("--image")
        .arg(&image_path)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the release script finished in 240 s")
        .expect("python runs");
    let gateway_log = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "the release script failed:\n{}\n{}\ngateway log:\n{gateway_log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Value = serde_json::from_slice(&out.stdout).expect("a JSON summary");

    assert_eq!(s["md5_mismatch"], "InvalidParameterValue", "{s}");
    assert_eq!(s["again"], "InvalidParameterValue.FirmwareAlreadyExist");
    let md5 = format!("{:x}", md5_of(&image));
    assert_eq!(s["firmware"], json!({"md5": md5, "name": "light 1.0"}));
    let tasks = &s["tasks"];
    let expect_task = |name: &str| match name {
        "light4" => &tasks["versions"],
        "light3" => &tasks["devices"],
        _ => &tasks["devices_and_versions"],
    };
    for (name, from) in LIGHTS {
        let d = &s["devices"][name];
        assert_eq!(&d["task"], expect_task(name), "{name}: {s}");
        assert_eq!(d["status"], 6, "{name} succeeded: {s}");
        assert_eq!(d["dst"], "1.0");
        assert_eq!(d["ori"], from);
        assert_eq!(d["percent"], 100);
    }
    assert_eq!(
        s["statistics"],
        json!({"success": 4, "failure": 0, "upgrading": 0})
    );
    assert_eq!(s["distribution"], json!({"6": 2}));
    assert_eq!(
        s["task"],
        json!({"mode": "originalVersion", "original": "0.5", "status": 2})
    );
    assert_eq!(
        s["versions"],
        json!(["1.0"]),
        "the refused 1.1 was not registered"
    );
    assert_eq!(s["wrong_key"], "AuthFailure.SignatureFailure");
    assert_eq!(s["unknown_id"], "AuthFailure.SecretIdNotFound");
    assert_eq!(s["not_simulated"], "UnsupportedOperation");

    // One store: the control API sees the Cloud API's firmware and tasks.
    let (_, firmware) = get(hub.api, "/api/firmware").await;
    assert!(
        firmware
            .as_array()
            .expect("a list")
            .iter()
            .any(|f| f["version"] == "1.0" && f["md5"] == md5.as_str()),
        "{firmware}"
    );
    let id = tasks["devices_and_versions"].as_u64().expect("a task id");
    let (status, task) = get(hub.api, &format!("/api/tasks/{id}")).await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["summary"], json!({"succeeded": 2}), "{task}");
}

fn md5_of(bytes: &[u8]) -> impl std::fmt::LowerHex {
    use md5::Digest as _;
    md5::Md5::digest(bytes)
}

/// A signed Cloud API call over raw HTTP; answers the `Response` object.
async fn signed(cloud: SocketAddr, action: &str, version: &str, body: &[u8]) -> Value {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let date = auth::utc_date(ts);
    let host = cloud.to_string();
    let canonical = auth::canonical_request(
        "POST",
        "/",
        "",
        &[
            ("content-type".into(), "application/json".into()),
            ("host".into(), host.clone()),
        ],
        &auth::sha256_hex(body),
    );
    let signature = auth::sign(SECRET_KEY, &date, auth::SERVICE, ts, &canonical);
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nX-TC-Action: {action}\r\nX-TC-Version: {version}\r\n\
         X-TC-Timestamp: {ts}\r\nX-TC-Region: ap-guangzhou\r\nAuthorization: TC3-HMAC-SHA256 \
         Credential={SECRET_ID}/{date}/iotcloud/tc3_request, SignedHeaders=content-type;host, \
         Signature={signature}\r\n\r\n",
        body.len()
    );
    let (status, value) = raw(cloud, head.as_bytes(), body).await;
    assert_eq!(status, 200, "API errors are HTTP 200: {value}");
    value["Response"].clone()
}

async fn raw(addr: SocketAddr, head: &[u8], body: &[u8]) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(head).await.expect("head");
    tcp.write_all(body).await.expect("body");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.expect("response");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json\r\n"),
        "the SDK reads errors only from application/json: {head}"
    );
    let status = head[9..12].parse().expect("a status");
    (status, serde_json::from_str(body).expect("a JSON body"))
}

fn code(response: &Value) -> &str {
    assert!(response["RequestId"].is_string(), "{response}");
    response["Error"]["Code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_cloud_calls_get_the_api_error_codes_as_json() {
    let (_hub, cloud) = cloud_hub().await;
    let post = |ct: &str| {
        format!(
            "POST / HTTP/1.1\r\nHost: {cloud}\r\nConnection: close\r\nContent-Type: {ct}\r\n\
             Content-Length: 2\r\n\r\n"
        )
    };
    for (method, expected) in [
        ("GET", "UnsupportedOperation"),
        ("PUT", "UnsupportedProtocol"),
        ("DELETE", "UnsupportedProtocol"),
    ] {
        let (status, v) = http(cloud, method, "/", "application/json", b"{}").await;
        assert_eq!(status, 200);
        assert_eq!(code(&v["Response"]), expected, "{method}: {v}");
    }
    let (_, v) = raw(cloud, post("text/plain").as_bytes(), b"{}").await;
    assert_eq!(code(&v["Response"]), "UnsupportedOperation", "{v}");
    let (_, v) = raw(cloud, post("application/json").as_bytes(), b"{}").await;
    assert_eq!(code(&v["Response"]), "MissingParameter", "{v}");
    let big = vec![b' '; (1 << 20) + 1];
    let (_, v) = http(cloud, "POST", "/", "application/json", &big).await;
    assert_eq!(code(&v["Response"]), "RequestSizeLimitExceeded", "{v}");

    let ok = signed(
        cloud,
        "GetAllVersion",
        "2021-04-08",
        br#"{"ProductId":"E69UADXUYY"}"#,
    )
    .await;
    assert_eq!(ok["Version"], json!([]), "{ok}");
    for (action, version, body, expected) in [
        (
            "GetAllVersion",
            "2021-04-08",
            &b"{not json"[..],
            "InvalidParameter",
        ),
        ("GetAllVersion", "2021-04-08", b"[1]", "InvalidParameter"),
        ("GetAllVersion", "2021-04-08", b"{}", "MissingParameter"),
        (
            "GetAllVersion",
            "2021-04-08",
            br#"{"ProductId":7}"#,
            "InvalidParameter",
        ),
        (
            "GetAllVersion",
            "2021-04-08",
            br#"{"ProductId":"E69UADXUYY","Extra":1}"#,
            "UnknownParameter",
        ),
        (
            "GetAllVersion",
            "2021-04-08",
            br#"{"ProductId":"NOPRODUCT1"}"#,
            "ResourceNotFound.ProductNotExist",
        ),
        ("GetAllVersion", "2018-06-14", b"{}", "NoSuchVersion"),
        ("NoSuchThing", "2021-04-08", b"{}", "InvalidAction"),
        ("CreateProduct", "2021-04-08", b"{}", "UnsupportedOperation"),
        (
            "GetCOSURL",
            "2021-04-08",
            br#"{"ProductId":"E69UADXUYY","FirmwareVersion":"2.0","FileSize":-1}"#,
            "InvalidParameterValue",
        ),
        (
            "DescribeDevices",
            "2021-04-08",
            br#"{"ProductId":"E69UADXUYY","Limit":100000}"#,
            "InvalidParameterValue",
        ),
        (
            "BatchUpdateFirmware",
            "2021-04-08",
            br#"{"ProductId":"E69UADXUYY","FirmwareVersion":"9.9","DeviceNames":["light1"]}"#,
            "ResourceNotFound.FirmwareNotExist",
        ),
    ] {
        let r = signed(cloud, action, version, body).await;
        assert_eq!(
            code(&r),
            expected,
            "{action} {}: {r}",
            String::from_utf8_lossy(body)
        );
    }
}
