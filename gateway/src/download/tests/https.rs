//! HTTPS downloads: a rustls TLS terminator with an rcgen CA in front of the scripted server.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::tls::TlsSettings;

/// A CA (PEM) and a server identity for 127.0.0.1 signed by it.
fn pki() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("server params");
    let cert = server.signed_by(&key, &issuer).expect("server cert");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (ca_cert.pem(), cert.der().clone(), key)
}

/// Terminates TLS on a loopback port and relays each connection to `backend`.
async fn tls_proxy(
    backend: String,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> (u16, tokio::task::JoinHandle<()>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, backend) = (acceptor.clone(), backend.clone());
            tokio::spawn(async move {
                // A refused handshake is what some tests want; the client reports it.
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (port, task)
}

async fn https_fixture() -> (
    Fixture,
    ScriptedServer,
    String,
    String,
    tokio::task::JoinHandle<()>,
) {
    let fx = Fixture::new(SIZE);
    let server = ScriptedServer::start(&fx.image, vec![]).await;
    let plain = server.url();
    let authority = plain.split('/').nth(2).expect("authority").to_owned();
    let (ca, cert, key) = pki();
    let (port, proxy) = tls_proxy(authority.clone(), cert, key).await;
    let url = plain.replace(
        &format!("http://{authority}"),
        &format!("https://127.0.0.1:{port}"),
    );
    (fx, server, url, ca, proxy)
}

#[tokio::test]
async fn https_image_is_downloaded_and_verified_against_the_configured_ca() {
    let (fx, server, url, ca, proxy) = https_fixture().await;
    let tls = TlsSettings::new(ca).client_config().expect("client config");
    let downloader = Downloader::new(fx.dir.path(), config(2)).with_tls(tls);
    let spec = ImageSpec {
        url,
        file_size: SIZE as u64,
        md5: md5_of(&fx.image),
    };
    let outcome = downloader
        .fetch(&spec, |_| {}, &CancellationToken::new())
        .await
        .expect("download succeeds");
    fx.assert_verified(&outcome);
    assert_eq!(server.ranges(), vec![range_from(0, SIZE)]);
    proxy.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn https_server_signed_by_another_ca_fails_at_once_saying_tls() {
    let (fx, server, url, _ca, proxy) = https_fixture().await;
    let (other_ca, _, _) = pki();
    let tls = TlsSettings::new(other_ca)
        .client_config()
        .expect("client config");
    let downloader = Downloader::new(fx.dir.path(), config(5)).with_tls(tls);
    let spec = ImageSpec {
        url,
        file_size: SIZE as u64,
        md5: md5_of(&fx.image),
    };
    let error = downloader
        .fetch(&spec, |_| {}, &CancellationToken::new())
        .await
        .expect_err("untrusted server");
    assert!(matches!(error, DownloadError::Tls { .. }), "{error:?}");
    assert_eq!(error.kind(), FailureKind::UpgradeFailed);
    assert!(
        error.to_string().contains("tls handshake with 127.0.0.1"),
        "{error}"
    );
    assert!(server.seen().is_empty(), "nothing reached the server");
    assert_no_image(fx.dir.path());
    proxy.abort();
    server.shutdown().await;
}
