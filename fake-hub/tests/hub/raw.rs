//! Raw MQTT packets for what rumqttc cannot express: MQTT 3.1 (`MQIsdp`), silent clients,
//! hand-made oversized packets, and MQTT over a TLS stream.

use crate::support::DEADLINE;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return;
        }
    }
}

fn string(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn packet(header: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![header];
    remaining_length(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// A clean-session CONNECT at `level` (3 for MQTT 3.1 `MQIsdp`, 4 for 3.1.1).
pub(crate) fn connect(
    level: u8,
    client_id: &str,
    username: Option<&str>,
    password: Option<&str>,
    keepalive: u16,
) -> Vec<u8> {
    let mut body = Vec::new();
    string(if level == 3 { b"MQIsdp" } else { b"MQTT" }, &mut body);
    body.push(level);
    let mut flags = 0x02;
    if username.is_some() {
        flags |= 0x80;
    }
    if password.is_some() {
        flags |= 0x40;
    }
    body.push(flags);
    body.extend_from_slice(&keepalive.to_be_bytes());
    string(client_id.as_bytes(), &mut body);
    if let Some(u) = username {
        string(u.as_bytes(), &mut body);
    }
    if let Some(p) = password {
        string(p.as_bytes(), &mut body);
    }
    packet(0x10, &body)
}

/// A QoS 0 PUBLISH.
pub(crate) fn publish(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    string(topic.as_bytes(), &mut body);
    body.extend_from_slice(payload);
    packet(0x30, &body)
}

/// Reads one packet: (first byte, body). `None` when the peer closed the connection.
pub(crate) async fn read_packet<S: AsyncRead + Unpin>(s: &mut S) -> Option<(u8, Vec<u8>)> {
    let read = async {
        let header = s.read_u8().await.ok()?;
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let b = s.read_u8().await.ok()?;
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        s.read_exact(&mut body).await.ok()?;
        Some((header, body))
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("a packet or a close within the deadline")
}

/// Sends a CONNECT and returns the CONNACK return code.
pub(crate) async fn connack<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, connect: &[u8]) -> u8 {
    s.write_all(connect).await.expect("CONNECT written");
    let (header, body) = read_packet(s).await.expect("a CONNACK");
    assert_eq!(header, 0x20, "CONNACK");
    body[1]
}

/// Waits until the peer closes the connection, skipping packets.
pub(crate) async fn closed<S: AsyncRead + Unpin>(s: &mut S) {
    while read_packet(s).await.is_some() {}
}

/// A clean-session MQTT 5 CONNECT with no properties.
pub(crate) fn connect5(client_id: &str, username: &str, password: &str) -> Vec<u8> {
    let mut body = Vec::new();
    string(b"MQTT", &mut body);
    body.extend_from_slice(&[5, 0xc2, 0, 60, 0]);
    string(client_id.as_bytes(), &mut body);
    string(username.as_bytes(), &mut body);
    string(password.as_bytes(), &mut body);
    packet(0x10, &body)
}

/// A PUBLISH at `qos` (packet id 1 when above 0), retained or not; `v5` adds the empty
/// property length MQTT 5 requires.
pub(crate) fn publish_with(
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    v5: bool,
) -> Vec<u8> {
    let mut body = Vec::new();
    string(topic.as_bytes(), &mut body);
    if qos > 0 {
        body.extend_from_slice(&1u16.to_be_bytes());
    }
    if v5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    packet(0x30 | (qos << 1) | u8::from(retain), &body)
}
