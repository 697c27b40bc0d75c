//! Certificate auth on the mutual-TLS listener: the client certificate's CN names the device.

use crate::raw;
use crate::support::*;
use fake_hub::{DeviceCert, Hub, HubConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

fn connector(hub: &Hub, cert: Option<&DeviceCert>) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca = hub.ca_pem().expect("the hub has a CA");
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).expect("CA PEM"))
        .expect("CA accepted");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match cert {
        Some(c) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).expect("cert PEM")],
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).expect("key PEM"),
            )
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

async fn tls_stream(hub: &Hub, cert: Option<&DeviceCert>) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(hub.tls_addr().expect("TLS listener")).await?;
    let name = ServerName::try_from("localhost").expect("valid name");
    connector(hub, cert).connect(name, tcp).await
}

fn cert_connect() -> Vec<u8> {
    let client_id = gw().client_id();
    let username = format!("{client_id};21010406;abcde;{NEVER}");
    raw::connect(4, &client_id, Some(&username), None, 60)
}

#[tokio::test]
async fn device_certificate_connects_over_mutual_tls() {
    let hub = hub_with(HubConfig::loopback_with_tls()).await;
    let cert = hub.issue_device_cert(&gw()).expect("cert");
    let mut s = tls_stream(&hub, Some(&cert)).await.expect("TLS handshake");
    assert_eq!(raw::connack(&mut s, &cert_connect()).await, 0);
    wait_event(&hub, "connect", "Accept (mqtt level 4, tls").await;
    hub.shutdown().await;
}

#[tokio::test]
async fn certificate_naming_another_device_gets_connack_5() {
    let hub = hub_with(HubConfig::loopback_with_tls()).await;
    let cert = hub.issue_cert_with_cn(&light(1).client_id()).expect("cert");
    let mut s = tls_stream(&hub, Some(&cert)).await.expect("TLS handshake");
    assert_eq!(raw::connack(&mut s, &cert_connect()).await, 5);
    hub.shutdown().await;
}

#[tokio::test]
async fn client_without_certificate_authenticates_with_its_password() {
    let hub = hub_with(HubConfig::loopback_with_tls()).await;
    // Server-certificate TLS, as the Python SDK does key auth on 8883: no password, code 4.
    let mut s = tls_stream(&hub, None).await.expect("TLS handshake");
    assert_eq!(raw::connack(&mut s, &cert_connect()).await, 4);
    wait_event(&hub, "connect", "key auth needs a username and a password").await;
    let creds = otasim_protocol::Credentials::make(
        &gw(),
        GW_SECRET,
        "abcde",
        NEVER,
        otasim_protocol::SignMethod::HmacSha1,
    )
    .expect("credentials");
    let connect = raw::connect(
        4,
        &creds.client_id,
        Some(&creds.username),
        Some(&creds.password),
        60,
    );
    let mut s = tls_stream(&hub, None).await.expect("TLS handshake");
    assert_eq!(raw::connack(&mut s, &connect).await, 0);
    wait_event(&hub, "connect", "Accept (mqtt level 4, tls,").await;
    hub.shutdown().await;
}

#[tokio::test]
async fn certificate_from_another_ca_fails_the_handshake() {
    let hub = hub_with(HubConfig::loopback_with_tls()).await;
    let other = hub_with(HubConfig::loopback_with_tls()).await;
    let foreign = other.issue_device_cert(&gw()).expect("cert");
    let tcp = TcpStream::connect(hub.tls_addr().expect("TLS listener"))
        .await
        .expect("tcp");
    let name = ServerName::try_from("localhost").expect("valid name");
    // The server certificate is trusted, the client's is not: the handshake (or, in TLS 1.3,
    // the first read after it) fails and no CONNACK ever comes.
    if let Ok(mut s) = connector(&hub, Some(&foreign)).connect(name, tcp).await {
        use tokio::io::AsyncWriteExt;
        let _ = s.write_all(&cert_connect()).await;
        assert!(raw::read_packet(&mut s).await.is_none(), "no CONNACK");
    }
    wait_event(&hub, "tls refused", "TLS handshake failed").await;
    other.shutdown().await;
    hub.shutdown().await;
}

#[tokio::test]
async fn server_certificate_names_every_host_devices_dial() {
    let hub = hub_with(HubConfig {
        tls_names: vec!["E69UADXUYY.iotcloud.tencentdevices.com".to_owned()],
        ..HubConfig::loopback_with_tls()
    })
    .await;
    for host in [
        "JR1WOKB7Q7.iotcloud.tencentdevices.com",
        "E69UADXUYY.iotcloud.tencentdevices.com",
        "localhost",
    ] {
        let tcp = TcpStream::connect(hub.tls_addr().expect("TLS listener"))
            .await
            .expect("tcp");
        let name = ServerName::try_from(host.to_owned()).expect("valid name");
        connector(&hub, None)
            .connect(name, tcp)
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
    }
    let tcp = TcpStream::connect(hub.tls_addr().expect("TLS listener"))
        .await
        .expect("tcp");
    let name = ServerName::try_from("example.com").expect("valid name");
    assert!(connector(&hub, None).connect(name, tcp).await.is_err());
    let c_array = fake_hub::ca_as_c_array(&hub.ca_pem().expect("CA"));
    assert!(c_array.starts_with("static const char *iot_https_ca_crt = {"));
    hub.shutdown().await;
}

#[tokio::test]
async fn hub_without_tls_has_no_ca_and_issues_no_certificates() {
    let hub = hub().await;
    assert!(hub.tls_addr().is_none());
    assert!(hub.ca_pem().is_none());
    assert!(hub.issue_device_cert(&gw()).is_err());
    hub.shutdown().await;
}
