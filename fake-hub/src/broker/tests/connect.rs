//! CONNECT handling: every CONNECT reaches `authenticate`, whose verdict decides the CONNACK.

use rumqttc::{ConnectReturnCode, ConnectionError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::support::{
    DEADLINE, GATEWAY, GATEWAY_PASSWORD, LIGHT, LIGHT_PASSWORD, Seen, TestClient, TestHub, options,
};

async fn refused_code(hub: &TestHub, client_id: &str, password: Option<&str>) -> ConnectReturnCode {
    let mut client = TestClient::spawn(options(hub.addr(), client_id, password));
    match client.ended().await {
        ConnectionError::ConnectionRefused(code) => code,
        other => panic!("expected a refusing CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn wrong_password_gets_connack_bad_username_or_password() {
    let hub = TestHub::start().await;
    let code = refused_code(&hub, GATEWAY, Some("wrong")).await;
    assert_eq!(code, ConnectReturnCode::BadUserNamePassword);
    assert!(!hub.broker.handle().is_connected(GATEWAY));
    hub.broker.shutdown().await;
}

#[tokio::test]
async fn unknown_device_gets_connack_not_authorized() {
    let hub = TestHub::start().await;
    let code = refused_code(&hub, "NOSUCHPRODnobody", Some("whatever")).await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
    hub.broker.shutdown().await;
}

#[tokio::test]
async fn connect_without_username_reaches_authenticate() {
    let mut hub = TestHub::start().await;
    // The test hooks know the gateway and answer a missing password with "bad credentials".
    let code = refused_code(&hub, GATEWAY, None).await;
    assert_eq!(code, ConnectReturnCode::BadUserNamePassword);
    let seen = hub
        .expect("authenticate", |s| matches!(s, Seen::Authenticate(_)))
        .await;
    let Seen::Authenticate(info) = seen else {
        unreachable!("matched above")
    };
    assert_eq!(info.username, None);
    assert_eq!(info.password, None);
    hub.broker.shutdown().await;
}

#[tokio::test]
async fn accepted_connect_reports_its_fields_and_counts_as_connected() {
    let mut hub = TestHub::start().await;
    let client = TestClient::connect(hub.addr(), GATEWAY, GATEWAY_PASSWORD).await;

    let seen = hub
        .expect("authenticate", |s| matches!(s, Seen::Authenticate(_)))
        .await;
    let Seen::Authenticate(info) = seen else {
        unreachable!("matched above")
    };
    assert_eq!(info.client_id, GATEWAY);
    assert_eq!(
        info.username.as_deref(),
        Some("JR1WOKB7Q7gw_deng1;21010406;abcde;9223372036854775807")
    );
    assert_eq!(info.password.as_deref(), Some(GATEWAY_PASSWORD.as_bytes()));
    assert_eq!(info.protocol_level, 4);
    assert_eq!(info.keepalive_secs, 60);
    assert!(info.peer.ip().is_loopback());

    hub.expect("on_connected", |s| *s == Seen::Connected(GATEWAY.into()))
        .await;
    assert!(hub.broker.handle().is_connected(GATEWAY));
    drop(client);
    hub.broker.shutdown().await;
}

/// Builds an MQTT 3.1 (`MQIsdp`, level 3) CONNECT with username, password and clean session, as
/// the Python SDK's paho client sends it.
fn mqtt31_connect(client_id: &str, username: &str, password: &str) -> Vec<u8> {
    let mut body = vec![0, 6];
    body.extend_from_slice(b"MQIsdp");
    body.push(3); // protocol level
    body.push(0x80 | 0x40 | 0x02); // username, password, clean session
    body.extend_from_slice(&60u16.to_be_bytes());
    for field in [client_id, username, password] {
        body.extend_from_slice(&u16::try_from(field.len()).expect("short").to_be_bytes());
        body.extend_from_slice(field.as_bytes());
    }
    let mut packet = vec![0x10];
    let mut remaining = body.len();
    loop {
        let mut byte = u8::try_from(remaining % 128).expect("below 128");
        remaining /= 128;
        if remaining > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if remaining == 0 {
            break;
        }
    }
    packet.extend_from_slice(&body);
    packet
}

#[tokio::test]
async fn mqtt_3_1_client_is_accepted() {
    let mut hub = TestHub::start().await;
    let mut socket = TcpStream::connect(hub.addr()).await.expect("connects");
    socket.set_nodelay(true).expect("nodelay");
    let username = format!("{LIGHT};21010406;abcde;1700000000000");
    socket
        .write_all(&mqtt31_connect(LIGHT, &username, LIGHT_PASSWORD))
        .await
        .expect("CONNECT sent");

    let mut connack = [0u8; 4];
    tokio::time::timeout(DEADLINE, socket.read_exact(&mut connack))
        .await
        .expect("CONNACK in time")
        .expect("CONNACK read");
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "CONNACK accepted");

    let seen = hub
        .expect("authenticate", |s| matches!(s, Seen::Authenticate(_)))
        .await;
    let Seen::Authenticate(info) = seen else {
        unreachable!("matched above")
    };
    assert_eq!(info.protocol_level, 3);
    assert_eq!(info.client_id, LIGHT);
    hub.broker.shutdown().await;
}
