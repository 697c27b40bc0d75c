//! End-to-end tests: the official COS XML SDK (`cos-python-sdk-v5` 1.9.33 from PyPI, pinned
//! with its dependencies in `target/py-cos-venv`) against a fake COS on loopback that holds one
//! SecretId/SecretKey pair. The SDK is pointed at the fake with `CosConfig(Domain="127.0.0.1:PORT",
//! Scheme="http")`; `tests/e2e/python/cos_sdk.py` drives it and prints what it saw.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fake_cos::{Cos, CosConfig, CosKey};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::python_sdk::venv_python;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/python/cos_sdk.py");
const SECRET_ID: &str = "AKIDfakecos0000000000000000000000000";
const SECRET_KEY: &str = "fakecosSecretKey000000000000000000";
const INSTALL: [&[&str]; 1] = [&[
    "--no-deps",
    "cos-python-sdk-v5==1.9.33",
    "requests==2.34.2",
    "urllib3==2.8.0",
    "certifi==2026.10.19.post1",
    "charset-normalizer==3.5.3",
    "idna==3.20",
    "six==1.17.0",
    "xmltodict==1.0.4",
    "crcmod==1.7",
    "pycryptodome==4.4.0",
]];

fn cos_python() -> PathBuf {
    venv_python("py-cos-venv", &INSTALL, "import qcloud_cos, requests")
}

async fn start() -> Cos {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let config = CosConfig {
        keys: vec![CosKey::new(SECRET_ID, SECRET_KEY).expect("valid pair")],
        ..CosConfig::default()
    };
    fake_cos::start(listener, config)
        .await
        .expect("start fake COS")
}

async fn phase(python: &Path, cos: &Cos, name: &str, url: Option<&str>) -> Value {
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(SCRIPT)
        .arg(name)
        .args(["--endpoint", &cos.local_addr().to_string()])
        .args(["--secret-id", SECRET_ID, "--secret-key", SECRET_KEY]);
    if let Some(url) = url {
        cmd.args(["--url", url]);
    }
    let out = cmd.kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .unwrap_or_else(|_| panic!("the COS SDK's {name} phase did not finish in 60 s"))
        .expect("python runs");
    assert!(
        out.status.success(),
        "the COS SDK's {name} phase failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cos_python_sdk_puts_heads_and_gets_ranges_with_q_sign_auth() {
    let python = tokio::task::spawn_blocking(cos_python)
        .await
        .expect("venv setup");
    let cos = start().await;
    let up = phase(&python, &cos, "upload", None).await;
    let info = cos
        .object_info("fw.bin")
        .expect("the SDK's PUT stored the object");
    assert_eq!(info.size, 70_000);
    assert_eq!(info.md5_hex, up["md5"], "{up}");
    assert_eq!(up["put_etag"], info.etag, "{up}");
    assert_eq!(up["head_etag"], info.etag, "{up}");
    assert_eq!(up["head_length"], 70_000, "{up}");
    for (spec, content_range) in [
        ("bytes=0-99", "bytes 0-99/70000"),
        ("bytes=65536-69999", "bytes 65536-69999/70000"),
        ("bytes=-10", "bytes 69990-69999/70000"),
        ("bytes=69990-", "bytes 69990-69999/70000"),
    ] {
        let got = &up["ranges"][spec];
        assert_eq!(got["content_range"], content_range, "{spec}: {up}");
        assert_eq!(got["md5"], up["expected"][spec], "{spec}: {up}");
    }
    assert_eq!(up["presigned"]["status"], 206, "{up}");
    assert_eq!(up["presigned"]["ok"], true, "{up}");
    let journal = cos.journal();
    let methods: Vec<&str> = journal.iter().map(|e| e.method.as_str()).collect();
    assert_eq!(
        methods,
        ["PUT", "HEAD", "GET", "GET", "GET", "GET", "GET"],
        "{journal:#?}"
    );
    assert!(journal.iter().all(|e| e.status < 300), "{journal:#?}");
    cos.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cos_python_sdk_is_refused_with_cos_error_codes() {
    let python = tokio::task::spawn_blocking(cos_python)
        .await
        .expect("venv setup");
    let cos = start().await;
    let refused = phase(&python, &cos, "refused", None).await;
    assert_eq!(refused["wrong_key"]["status"], 403, "{refused}");
    assert_eq!(
        refused["wrong_key"]["code"], "SignatureDoesNotMatch",
        "{refused}"
    );
    assert_eq!(refused["unknown_id"]["status"], 403, "{refused}");
    assert_eq!(
        refused["unknown_id"]["code"], "InvalidAccessKeyId",
        "{refused}"
    );
    assert!(
        cos.object_info("evil.bin").is_none(),
        "a refused PUT stored nothing"
    );

    cos.put_object("fw.bin", vec![7u8; 1000])
        .expect("valid name");
    // The SDK signs for 10,000 s from its own (real) clock.
    cos.advance_clock(Duration::from_secs(20_000));
    let expired = phase(&python, &cos, "expired", None).await;
    assert_eq!(expired["get"]["status"], 403, "{expired}");
    assert_eq!(expired["get"]["code"], "AccessDenied", "{expired}");
    assert_eq!(
        expired["get"]["message"], "Request has expired",
        "{expired}"
    );
    cos.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_put_url_from_rust_takes_an_upload_from_requests() {
    let python = tokio::task::spawn_blocking(cos_python)
        .await
        .expect("venv setup");
    let cos = start().await;
    let key = CosKey::new(SECRET_ID, SECRET_KEY).expect("valid pair");
    let url = cos
        .presigned_put_url("upload.bin", &key, Duration::from_secs(600))
        .expect("a configured key");
    let put = phase(&python, &cos, "put-url", Some(&url)).await;
    assert_eq!(put["status"], 200, "{put}");
    let info = cos.object_info("upload.bin").expect("stored");
    assert_eq!(put["etag"], info.etag, "{put}");
    assert_eq!(info.size, "uploaded through a presigned URL".len() as u64);

    let stranger = CosKey::new("AKIDother", "other").expect("valid pair");
    assert!(matches!(
        cos.presigned_put_url("upload.bin", &stranger, Duration::from_secs(600)),
        Err(fake_cos::CosError::UnknownKey(_))
    ));
    cos.shutdown().await;
}
