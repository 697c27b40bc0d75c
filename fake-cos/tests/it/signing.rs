//! Signed, expiring URLs.

use std::time::Duration;

use fake_cos::CosConfig;
use tokio::net::TcpListener;

use crate::client::{fixture, request};

#[tokio::test]
async fn forged_signature_is_403_signature_does_not_match() {
    let fx = fixture().await;
    let (path, query) = fx
        .target
        .split_once('?')
        .expect("signed target has a query");
    let t = query
        .split('&')
        .find(|p| p.starts_with("t="))
        .expect("t param");
    let forged = format!("{path}?sign={}&{t}", "ab".repeat(20));
    let resp = request(fx.cos.local_addr(), "GET", &forged, &[]).await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().contains("<Code>SignatureDoesNotMatch</Code>"));
    let head = request(fx.cos.local_addr(), "HEAD", &forged, &[]).await;
    assert_eq!(head.status(), 403);
    for entry in fx.cos.journal() {
        let error = entry
            .error
            .as_ref()
            .expect("the journal keeps the COS code");
        assert_eq!(error.code, "SignatureDoesNotMatch", "{}", entry.method);
        assert_eq!(error.refusal(), Some("signature mismatch"));
        assert!(
            entry
                .to_string()
                .contains("error=SignatureDoesNotMatch (signature mismatch)")
        );
    }
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn missing_signature_is_403() {
    let fx = fixture().await;
    let path = fx.target.split('?').next().expect("path");
    let resp = request(fx.cos.local_addr(), "GET", path, &[]).await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().contains("<Code>SignatureDoesNotMatch</Code>"));
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn url_expires_when_the_clock_moves_past_t() {
    let fx = fixture().await;
    let url = fx
        .cos
        .signed_url(&fx.info.name, Duration::from_secs(60))
        .expect("valid name");
    let target = url
        .split_once(&fx.cos.local_addr().to_string())
        .expect("host")
        .1
        .to_owned();
    let addr = fx.cos.local_addr();
    assert_eq!(request(addr, "GET", &target, &[]).await.status(), 200);
    fx.cos.advance_clock(Duration::from_secs(61));
    let resp = request(addr, "GET", &target, &[]).await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().contains("<Code>AccessDenied</Code>"));
    assert!(
        resp.text()
            .contains("<Message>Request has expired</Message>")
    );
    let journal = fx.cos.journal();
    assert_eq!(journal[0].error, None, "a 200 carries no COS error");
    let error = journal[1]
        .error
        .as_ref()
        .expect("the journal keeps the COS code");
    assert_eq!(
        (error.code.as_str(), error.message.as_str()),
        ("AccessDenied", "Request has expired")
    );
    assert_eq!(error.refusal(), Some("expired"));
    fx.cos.shutdown().await;
}

#[tokio::test]
async fn signed_url_uses_the_public_host_without_a_port() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let config = CosConfig {
        public_host: Some("127.0.0.1".into()),
        ..CosConfig::default()
    };
    let cos = fake_cos::start(listener, config).await.expect("start");
    let url = cos
        .signed_url("fw.bin", Duration::from_secs(60))
        .expect("valid name");
    assert!(url.starts_with("http://127.0.0.1/fw.bin?sign="), "{url}");
    assert_eq!(url.matches('/').count(), 3, "one path segment: {url}");
    cos.shutdown().await;
}

#[tokio::test]
async fn instances_have_different_secrets() {
    let a = fake_cos::start(
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        CosConfig::default(),
    );
    let b = fake_cos::start(
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        CosConfig::default(),
    );
    let (a, b) = (a.await.expect("start a"), b.await.expect("start b"));
    let query = |url: String| url.split_once('?').expect("query").1.to_owned();
    let one_hour = Duration::from_secs(3600);
    let (qa, qb) = (
        query(a.signed_url("fw.bin", one_hour).expect("valid")),
        query(b.signed_url("fw.bin", one_hour).expect("valid")),
    );
    // Same name and (almost surely) same expiry, different keys.
    assert_ne!(qa.split('&').next(), qb.split('&').next());
    a.shutdown().await;
    b.shutdown().await;
}
