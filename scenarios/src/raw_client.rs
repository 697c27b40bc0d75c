//! The raw MQTT client of `raw_publish` steps: a device misbehaving at the protocol level
//! (QoS 2, retain, MQTT 5), one connection per identity, kept across steps until the hub
//! closes it. Packets are written with rumqttc's codecs, read by their fixed header, and each
//! PUBLISH is followed by a PINGREQ so that a live connection always answers.

use crate::plan::{MqttLevel, RawAnswer, RawPublish};
use bytes::{Buf as _, BytesMut};
use otasim_protocol::{Credentials, DeviceId, SignMethod};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long the hub may take to answer a CONNECT or a PINGREQ.
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);
/// The largest packet read back (the hub's own are far smaller).
const MAX_PACKET: usize = 1 << 20;

/// One raw connection.
pub(crate) struct RawClient {
    stream: TcpStream,
    level: MqttLevel,
    buf: BytesMut,
    next_pkid: u16,
}

/// One packet read: its type (the high nibble of the fixed header) and its body.
struct Packet {
    kind: u8,
    body: Vec<u8>,
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl RawClient {
    /// Connects with `device`'s credentials; `Ok(Err(code))` when the hub refuses the CONNECT.
    pub(crate) async fn connect(
        addr: SocketAddr,
        device: &DeviceId,
        secret: &str,
        level: MqttLevel,
    ) -> Result<Result<RawClient, u8>, String> {
        let creds = Credentials::make(
            device,
            secret,
            "rawcl",
            u64::MAX >> 1,
            SignMethod::HmacSha256,
        )
        .map_err(|e| format!("credentials of {device}: {e}"))?;
        let stream = TcpStream::connect(addr)
            .await
            .map_err(io_err("connecting the raw client"))?;
        stream.set_nodelay(true).map_err(io_err("TCP_NODELAY"))?;
        let mut out = BytesMut::new();
        match level {
            MqttLevel::V311 => {
                let mut c = rumqttc::mqttbytes::v4::Connect::new(creds.client_id.clone());
                c.keep_alive = 60;
                c.login = Some(rumqttc::mqttbytes::v4::Login::new(
                    creds.username.clone(),
                    creds.password.clone(),
                ));
                c.write(&mut out)
                    .map_err(|e| format!("encoding CONNECT: {e:?}"))?;
            }
            MqttLevel::V5 => {
                use rumqttc::v5::mqttbytes::v5::{Connect, Login};
                let c = Connect {
                    keep_alive: 60,
                    client_id: creds.client_id.clone(),
                    clean_start: true,
                    properties: None,
                };
                let login = Some(Login::new(creds.username.clone(), creds.password.clone()));
                c.write(&None, &login, &mut out)
                    .map_err(|e| format!("encoding CONNECT: {e:?}"))?;
            }
        }
        let mut client = RawClient {
            stream,
            level,
            buf: BytesMut::new(),
            next_pkid: 1,
        };
        client
            .stream
            .write_all(&out)
            .await
            .map_err(io_err("sending CONNECT"))?;
        let connack = tokio::time::timeout(ANSWER_DEADLINE, client.read_packet())
            .await
            .map_err(|_| format!("no CONNACK in {ANSWER_DEADLINE:?}"))?;
        match connack {
            Some(p) if p.kind == 2 && p.body.len() >= 2 => match p.body[1] {
                0 => Ok(Ok(client)),
                code => Ok(Err(code)),
            },
            Some(p) => Err(format!("expected CONNACK, got packet type {}", p.kind)),
            None => Err("the hub closed the connection before CONNACK".into()),
        }
    }

    /// The protocol version it speaks.
    pub(crate) fn level(&self) -> MqttLevel {
        self.level
    }

    /// Publishes, then pings, and answers what came back; after `Closed` or `Disconnect` the
    /// client is spent.
    pub(crate) async fn publish(&mut self, p: &RawPublish) -> Result<RawAnswer, String> {
        let pkid = if p.qos == 0 { 0 } else { self.next_pkid };
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        let mut out = BytesMut::new();
        match self.level {
            MqttLevel::V311 => {
                let qos = match p.qos {
                    0 => rumqttc::QoS::AtMostOnce,
                    1 => rumqttc::QoS::AtLeastOnce,
                    _ => rumqttc::QoS::ExactlyOnce,
                };
                let mut m = rumqttc::mqttbytes::v4::Publish::new(&p.topic, qos, p.payload.clone());
                m.retain = p.retain;
                m.pkid = pkid;
                m.write(&mut out)
                    .map(drop)
                    .map_err(|e| format!("encoding PUBLISH: {e:?}"))?;
            }
            MqttLevel::V5 => {
                use rumqttc::v5::mqttbytes::QoS;
                let qos = match p.qos {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    _ => QoS::ExactlyOnce,
                };
                let mut m = rumqttc::v5::mqttbytes::v5::Publish::new(
                    p.topic.clone(),
                    qos,
                    p.payload.clone().into_bytes(),
                    None,
                );
                m.retain = p.retain;
                m.pkid = pkid;
                m.write(&mut out)
                    .map(drop)
                    .map_err(|e| format!("encoding PUBLISH: {e:?}"))?;
            }
        }
        out.extend_from_slice(&[0xC0, 0x00]); // PINGREQ
        if self.stream.write_all(&out).await.is_err() {
            return Ok(RawAnswer::Closed);
        }
        let (mut puback, mut pubrec) = (None, false);
        let answer = tokio::time::timeout(ANSWER_DEADLINE, async {
            loop {
                let Some(packet) = self.read_packet().await else {
                    return RawAnswer::Closed;
                };
                match packet.kind {
                    4 => puback = Some(packet.body.get(2).copied().unwrap_or(0)),
                    5 => pubrec = true,
                    13 => {
                        return match (puback, pubrec) {
                            (_, true) => RawAnswer::Pubrec,
                            (Some(code), _) => RawAnswer::Puback(code),
                            (None, false) => RawAnswer::Accepted,
                        };
                    }
                    14 => return RawAnswer::Disconnect(packet.body.first().copied().unwrap_or(0)),
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| format!("neither an answer nor a PINGRESP in {ANSWER_DEADLINE:?}"))?;
        Ok(answer)
    }

    /// The next whole packet, or `None` once the connection ends (or sends garbage).
    async fn read_packet(&mut self) -> Option<Packet> {
        loop {
            if let Some((len_bytes, body_len)) = remaining_length(&self.buf) {
                let total = 1 + len_bytes + body_len;
                if body_len > MAX_PACKET {
                    return None;
                }
                if self.buf.len() >= total {
                    let kind = self.buf[0] >> 4;
                    self.buf.advance(1 + len_bytes);
                    let body = self.buf.split_to(body_len).to_vec();
                    return Some(Packet { kind, body });
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// The fixed header's remaining length: (bytes it takes, value), once it is all there.
fn remaining_length(buf: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, b) in buf.iter().skip(1).take(4).enumerate() {
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some((i + 1, value));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::remaining_length;

    #[test]
    fn remaining_lengths_decode_as_mqtt_spells_them() {
        assert_eq!(remaining_length(&[0x20]), None);
        assert_eq!(remaining_length(&[0x20, 0x02]), Some((1, 2)));
        assert_eq!(remaining_length(&[0x30, 0xC1, 0x02]), Some((2, 321)));
        assert_eq!(
            remaining_length(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F]),
            Some((4, 268_435_455))
        );
        assert_eq!(remaining_length(&[0x30, 0xFF, 0xFF]), None);
    }
}
