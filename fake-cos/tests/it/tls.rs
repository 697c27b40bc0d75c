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

/// A CA of someone else's (the fake hub's, say), and a certificate it issued for COS names.
fn issued_elsewhere() -> TlsIdentity {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let names = vec![
        "*.cos.ap-guangzhou.myqcloud.com".to_owned(),
        "localhost".to_owned(),
    ];
    let cert = CertificateParams::new(names)
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("cert");
    TlsIdentity::from_pem(&cert.pem(), &key.serialize_pem(), &ca_cert.pem()).expect("valid")
}

#[tokio::test]
async fn an_extra_https_listener_with_a_given_certificate_serves_the_same_instance() {
    let identity = issued_elsewhere();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let cos = fake_cos::start(listener, CosConfig::default())
        .await
        .expect("start");
    let bytes = firmware(29_972);
    cos.put_object(FW_NAME, bytes.clone()).expect("valid name");
    let https = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let https_addr = cos.serve_https(https, &identity).expect("serves HTTPS");
    let plain = cos
        .signed_url(FW_NAME, Duration::from_secs(60))
        .expect("signs");
    assert!(
        plain.starts_with(&format!("http://{}/", cos.local_addr())),
        "{plain}"
    );
    cos.sign_https_urls(https_addr.to_string());
    let url = cos
        .signed_url(FW_NAME, Duration::from_secs(60))
        .expect("signs");
    let target = url
        .strip_prefix(&format!("https://{https_addr}"))
        .unwrap_or_else(|| panic!("an https URL to the HTTPS listener: {url}"));
    let (raw, clean) = https_get(&identity, https_addr.port(), target, "bytes=100-199").await;
    let (head, body) = split(&raw);
    assert!(clean, "the response ends with close_notify");
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(
        head.contains("Content-Range: bytes 100-199/29972"),
        "{head}"
    );
    assert_eq!(body, &bytes[100..200]);
    let journal = cos.journal();
    assert_eq!(journal.len(), 1, "one journal for both listeners");
    assert_eq!(journal[0].range.as_deref(), Some("bytes=100-199"));
    cos.shutdown().await;
}
