//! HTTPS with a certificate made at run time, checked by a rustls client that trusts its CA.

use std::sync::Arc;
use std::time::Duration;

use fake_cos::{ConnEnd, CosConfig, FaultRule, Fires, Selector, TlsIdentity, Verdict};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

use crate::client::{DEADLINE, FW_NAME, firmware};

fn connector(identity: &TlsIdentity) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(identity.ca_der().clone())
        .expect("CA certificate parses");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// GETs `target` over TLS; returns the raw bytes read and whether the stream ended cleanly.
async fn https_get(
    identity: &TlsIdentity,
    port: u16,
    target: &str,
    range: &str,
) -> (Vec<u8>, bool) {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = ServerName::try_from("localhost").expect("valid name");
    let mut tls = connector(identity)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nRange: {range}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let clean = loop {
        match tokio::time::timeout(DEADLINE, tls.read(&mut buf)).await {
            Err(_) => panic!("no end of TLS response within {DEADLINE:?}"),
            Ok(Ok(0)) => break true,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break false,
        }
    };
    (raw, clean)
}

fn split(raw: &[u8]) -> (String, &[u8]) {
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    (
        String::from_utf8_lossy(&raw[..at]).into_owned(),
        &raw[at + 4..],
    )
}

async fn tls_cos(identity: &TlsIdentity) -> (fake_cos::Cos, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let config = CosConfig {
        tls: Some(identity.clone()),
        ..CosConfig::default()
    };
    let cos = fake_cos::start(listener, config).await.expect("start");
    cos.put_object(FW_NAME, firmware(29_972))
        .expect("valid name");
    let url = cos
        .signed_url(FW_NAME, Duration::from_secs(60))
        .expect("url");
    let prefix = format!("https://{}", cos.local_addr());
    let target = url.strip_prefix(&prefix).expect("an https URL").to_owned();
    (cos, target)
}

#[tokio::test]
async fn https_serves_ranges_to_a_client_trusting_the_generated_ca() {
    let identity = TlsIdentity::generate(&[]).expect("certificate");
    let (cos, target) = tls_cos(&identity).await;
    let port = cos.local_addr().port();
    let (raw, clean) = https_get(&identity, port, &target, "bytes=100-29972").await;
    let (head, body) = split(&raw);
    assert!(head.starts_with("HTTP/1.1 206 "), "{head}");
    assert!(head.contains("\r\nContent-Length: 29872"), "{head}");
    assert!(
        head.contains("\r\nContent-Range: bytes 100-29971/29972"),
        "{head}"
    );
    assert_eq!(body, &firmware(29_972)[100..]);
    assert!(clean, "a complete response ends with close_notify");
    cos.shutdown().await;
}

#[tokio::test]
async fn https_cut_fault_delivers_exactly_n_body_bytes() {
    let identity = TlsIdentity::generate(&[]).expect("certificate");
    let (cos, target) = tls_cos(&identity).await;
    let rule = FaultRule {
        when: Selector::default(),
        verdict: Verdict::CutAfter { bytes: 7000 },
        fires: Fires::Once,
    };
    let _guard = cos.add_rule(rule).expect("valid rule");
    let (raw, _) = https_get(&identity, cos.local_addr().port(), &target, "bytes=0-29972").await;
    let (head, body) = split(&raw);
    assert!(head.starts_with("HTTP/1.1 206 "), "{head}");
    assert_eq!(body, &firmware(29_972)[..7000]);
    let entry = cos.journal().pop().expect("one request");
    assert_eq!((entry.end, entry.body_bytes_sent), (ConnEnd::Cut, 7000));
    cos.shutdown().await;
}

#[tokio::test]
async fn a_client_not_trusting_the_ca_fails_the_handshake_and_the_server_goes_on() {
    let identity = TlsIdentity::generate(&[]).expect("certificate");
    let other = TlsIdentity::generate(&[]).expect("another CA");
    let (cos, target) = tls_cos(&identity).await;
    let tcp = TcpStream::connect(cos.local_addr()).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("valid name");
    assert!(connector(&other).connect(name, tcp).await.is_err());
    let (raw, _) = https_get(&identity, cos.local_addr().port(), &target, "bytes=0-9").await;
    assert!(split(&raw).0.starts_with("HTTP/1.1 206 "));
    cos.shutdown().await;
}
