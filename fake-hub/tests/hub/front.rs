//! The listener front: TLS-PSK as the C SDK speaks it (TLS 1.2, `PSK-AES128-CBC-SHA`, identity =
//! client id, key = decoded secret, no password), the CONNECT deadline, the per-listener cap,
//! and the Hub's refusal of QoS 2 and retained publishes. PSK clients are OpenSSL: the library
//! through the `openssl` crate, and `openssl s_client` itself.

use crate::raw;
use crate::support::*;
use fake_hub::{Hub, HubConfig};
use openssl::ssl::{Ssl, SslContext, SslMethod, SslVersion};
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// The C SDK's username on a PSK connection: expiry `LONG_MAX`, no password.
fn sdk_username(client_id: &str) -> String {
    format!("{client_id};21010406;ZL7aS;{NEVER}")
}

fn key_of(secret: &str) -> Vec<u8> {
    otasim_protocol::device_key(secret).expect("base64 secret")
}

/// A TLS 1.2 PSK handshake offering only the C SDK's two suites.
async fn psk_stream(
    hub: &Hub,
    identity: &str,
    key: Vec<u8>,
) -> Result<SslStream<TcpStream>, openssl::ssl::Error> {
    let mut ctx = SslContext::builder(SslMethod::tls_client()).expect("context");
    ctx.set_max_proto_version(Some(SslVersion::TLS1_2))
        .expect("TLS 1.2");
    ctx.set_cipher_list("PSK-AES128-CBC-SHA:PSK-AES256-CBC-SHA:@SECLEVEL=0")
        .expect("PSK suites");
    let identity = identity.to_owned();
    ctx.set_psk_client_callback(move |_, _hint, id_out, key_out| {
        id_out[..identity.len()].copy_from_slice(identity.as_bytes());
        id_out[identity.len()] = 0;
        key_out[..key.len()].copy_from_slice(&key);
        Ok(key.len())
    });
    let ssl = Ssl::new(&ctx.build()).expect("ssl");
    let tcp = TcpStream::connect(hub.tls_addr().expect("TLS port"))
        .await
        .expect("tcp");
    let mut stream = SslStream::new(ssl, tcp).expect("stream");
    Pin::new(&mut stream).connect().await?;
    Ok(stream)
}

#[tokio::test]
async fn psk_handshake_with_the_device_secret_connects_without_a_password() {
    let hub = hub_with(HubConfig::loopback_with_tls()).await;
    let id = gw().client_id();
    let mut s = psk_stream(&hub, &id, key_of(GW_SECRET))
        .await
        .expect("handshake");
    assert_eq!(
        s.ssl().current_cipher().map(|c| c.name()),
        Some("PSK-AES128-CBC-SHA")
    );
    let connect = raw::connect(4, &id, Some(&sdk_username(&id)), None, 240);
    assert_eq!(raw::connack(&mut s, &connect).await, 0);
    wait_event(
        &hub,
        "connect",
        "Accept (mqtt level 4, tls-psk JR1WOKB7Q7gw_deng1",
    )
    .await;
    hub.shutdown().await;
}

#[tokio::test]
async fn psk_with_a_wrong_key_fails_the_handshake_and_the_transcript_says_why() {
    let hub = hub_with(HubConfig::loopback_with_tls()).await;
    let id = gw().client_id();
    assert!(
        psk_stream(&hub, &id, b"not the secret".to_vec())
            .await
            .is_err()
    );
    wait_event(
        &hub,
        "tls refused",
        "the client's key is not that device's secret",
    )
    .await;
    hub.shutdown().await;
}

#[tokio::test]
async fn psk_with_an_unknown_identity_fails_the_handshake() {
    let hub = hub_with(HubConfig::loopback_with_tls()).await;
    assert!(
        psk_stream(&hub, "NOSUCHPRODnobody", key_of(GW_SECRET))
            .await
            .is_err()
    );
    wait_event(&hub, "tls refused", "unknown identity \"NOSUCHPRODnobody\"").await;
    // A subdevice cannot connect directly, so it has no PSK either.
    assert!(
        psk_stream(&hub, &light(1).client_id(), key_of(SUB_SECRET))
            .await
            .is_err()
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn psk_connect_must_name_the_identity_in_client_id_and_username() {
    let hub = hub_with(HubConfig::loopback_with_tls()).await;
    hub.add_gateway(&light(9), GW_SECRET);
    let id = gw().client_id();
    let other = light(9).client_id();
    let mut s = psk_stream(&hub, &id, key_of(GW_SECRET))
        .await
        .expect("handshake");
    let connect = raw::connect(4, &id, Some(&sdk_username(&other)), None, 60);
    assert_eq!(raw::connack(&mut s, &connect).await, 4);
    wait_event(&hub, "connect", "username names E69UADXUYYlight9").await;
    let mut s = psk_stream(&hub, &id, key_of(GW_SECRET))
        .await
        .expect("handshake");
    let connect = raw::connect(4, &other, Some(&sdk_username(&other)), None, 60);
    assert_eq!(raw::connack(&mut s, &connect).await, 5);
    wait_event(
        &hub,
        "connect",
        "the TLS-PSK handshake proved JR1WOKB7Q7gw_deng1",
    )
    .await;
    hub.shutdown().await;
}

#[tokio::test]
async fn a_socket_that_never_completes_its_connect_is_closed_at_the_deadline() {
    let hub = hub_with(HubConfig {
        connect_deadline: Duration::from_millis(300),
        ..HubConfig::loopback_with_tls()
    })
    .await;
    for addr in [hub.local_addr(), hub.tls_addr().expect("TLS port")] {
        let mut s = TcpStream::connect(addr).await.expect("tcp");
        // One byte of a CONNECT, then silence: rmqtt alone would hold this forever.
        s.write_all(&[0x10]).await.expect("one byte");
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(DEADLINE, s.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "closed by the front: {read:?}"
        );
    }
    wait_event(
        &hub,
        "connection refused",
        "no complete CONNECT within 300 ms",
    )
    .await;
    hub.shutdown().await;
}

#[tokio::test]
async fn each_listener_holds_at_most_its_cap_of_connections() {
    let hub = hub_with(HubConfig {
        max_connections_per_listener: 2,
        ..HubConfig::loopback()
    })
    .await;
    let idle: Vec<TcpStream> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            v.push(TcpStream::connect(hub.local_addr()).await.expect("tcp"));
        }
        v
    };
    let mut third = TcpStream::connect(hub.local_addr())
        .await
        .expect("tcp accepted");
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(DEADLINE, third.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "third closed: {read:?}"
    );
    wait_event(
        &hub,
        "connection refused",
        "mqtt listener full (2 connections)",
    )
    .await;
    // Freeing the slots lets a real device in again, once the front has seen them close.
    drop(idle);
    let closed = |h: &Hub| {
        h.transcript()
            .iter()
            .filter(|e| e.payload.contains("closed before CONNECT"))
            .count()
            == 2
    };
    assert!(
        hub.wait_until(DEADLINE, closed).await,
        "both idle sockets seen closing"
    );
    let client = Client::gateway(&hub).await;
    drop(client);
    hub.shutdown().await;
}

#[tokio::test]
async fn a_first_packet_other_than_connect_is_refused() {
    let hub = hub().await;
    let mut s = TcpStream::connect(hub.local_addr()).await.expect("tcp");
    s.write_all(&raw::publish("x", b"y"))
        .await
        .expect("written");
    raw::closed(&mut s).await;
    wait_event(
        &hub,
        "connection refused",
        "first packet is not CONNECT (byte 0x30)",
    )
    .await;
    hub.shutdown().await;
}

fn gw_password_connect(level: u8) -> Vec<u8> {
    let c = otasim_protocol::Credentials::make(
        &gw(),
        GW_SECRET,
        "abcde",
        NEVER,
        otasim_protocol::SignMethod::HmacSha1,
    )
    .expect("credentials");
    if level == 5 {
        raw::connect5(&c.client_id, &c.username, &c.password)
    } else {
        raw::connect(
            level,
            &c.client_id,
            Some(&c.username),
            Some(&c.password),
            60,
        )
    }
}

fn report_topic() -> String {
    format!("$ota/report/{}/{}", gw().product_id(), gw().device_name())
}

#[tokio::test]
async fn qos_2_publish_disconnects_an_mqtt_3_client_and_is_never_processed() {
    let hub = hub().await;
    for level in [3, 4] {
        let mut s = TcpStream::connect(hub.local_addr()).await.expect("tcp");
        assert_eq!(raw::connack(&mut s, &gw_password_connect(level)).await, 0);
        let payload = br#"{"type":"report_version","report":{"version":"9.9"}}"#;
        s.write_all(&raw::publish_with(
            &report_topic(),
            payload,
            2,
            false,
            false,
        ))
        .await
        .expect("written");
        // No PUBREC: the connection just ends.
        assert!(raw::read_packet(&mut s).await.is_none(), "level {level}");
    }
    wait_event(
        &hub,
        "publish refused",
        "QoS 2 PUBLISH (the Hub offers QoS 0 and 1)",
    )
    .await;
    assert_eq!(
        hub.device(&gw()).and_then(|d| d.version),
        None,
        "never processed"
    );
    assert!(
        hub.transcript()
            .iter()
            .any(|e| e.direction == fake_hub::Direction::Refused && e.topic == report_topic())
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn mqtt_5_gets_disconnect_0x9b_for_qos_2_and_0x9a_for_retain() {
    let hub = hub().await;
    for (qos, retain, code) in [(2u8, false, 0x9bu8), (1, true, 0x9a), (0, true, 0x9a)] {
        let mut s = TcpStream::connect(hub.local_addr()).await.expect("tcp");
        assert_eq!(raw::connack(&mut s, &gw_password_connect(5)).await, 0);
        let payload = br#"{"type":"report_version","report":{"version":"0.2"}}"#;
        s.write_all(&raw::publish_with(
            &report_topic(),
            payload,
            qos,
            retain,
            true,
        ))
        .await
        .expect("written");
        let (header, body) = raw::read_packet(&mut s).await.expect("a DISCONNECT");
        assert_eq!((header, body[0]), (0xe0, code), "qos {qos} retain {retain}");
        assert!(raw::read_packet(&mut s).await.is_none(), "then closed");
    }
    wait_event(&hub, "publish refused", "DISCONNECT reason 0x9A").await;
    wait_event(&hub, "publish refused", "DISCONNECT reason 0x9B").await;
    assert_eq!(
        hub.device(&gw()).and_then(|d| d.version),
        None,
        "never processed"
    );
    hub.shutdown().await;
}

/// `openssl s_client` exactly as a user would run it against the TLS port, with the CONNECT
/// on its standard input; returns what it printed on standard output.
async fn s_client(hub: &Hub, identity: &str, key_hex: &str, input: &[u8]) -> Vec<u8> {
    let addr = hub.tls_addr().expect("TLS port");
    let mut child = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-tls1_2"])
        .args(["-cipher", "PSK-AES128-CBC-SHA:@SECLEVEL=0"])
        .args(["-psk_identity", identity, "-psk", key_hex])
        .args(["-quiet", "-ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl runs (apt-get install openssl)");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).await.expect("CONNECT to s_client");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    let read = async {
        // A CONNACK is four bytes; a failed handshake ends the output.
        while out.len() < 4 {
            match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(DEADLINE, read).await;
    drop(stdin);
    let _ = child.kill().await;
    out
}

#[tokio::test]
#[ignore = "needs openssl (the command-line tool)"]
async fn openssl_s_client_with_the_device_psk_gets_connack_0() {
    let hub = hub_with(HubConfig::loopback_with_tls()).await;
    let id = gw().client_id();
    let connect = raw::connect(4, &id, Some(&sdk_username(&id)), None, 240);
    let out = s_client(&hub, &id, &hex::encode(key_of(GW_SECRET)), &connect).await;
    assert_eq!(out, [0x20, 0x02, 0x00, 0x00], "CONNACK 0 from s_client");
    wait_event(&hub, "connect", "Accept (mqtt level 4, tls-psk").await;
    let out = s_client(&hub, &id, &hex::encode(b"wrong key bytes!"), &connect).await;
    assert!(out.is_empty(), "no CONNACK with a wrong key: {out:?}");
    wait_event(
        &hub,
        "tls refused",
        "the client's key is not that device's secret",
    )
    .await;
    hub.shutdown().await;
}
