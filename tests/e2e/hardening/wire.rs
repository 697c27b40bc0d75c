//! A raw MQTT client for attacks: hand-encoded packets that a well-behaved client library
//! refuses to send (wills on foreign topics, QoS 3, wildcard publishes, MQTT 5 with a will).

use crate::support::within;
use otasim_protocol::{Credentials, DeviceId, SignMethod};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A Last Will: topic and payload.
pub(crate) struct Will<'a> {
    pub(crate) topic: &'a str,
    pub(crate) payload: &'a [u8],
}

/// What a CONNECT carries.
pub(crate) struct Connect<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) username: Option<&'a str>,
    pub(crate) password: Option<&'a str>,
    pub(crate) will: Option<Will<'a>>,
    /// 4 for MQTT 3.1.1, 5 for MQTT 5.
    pub(crate) level: u8,
}

impl<'a> Connect<'a> {
    /// Key-auth credentials of `device`, MQTT 3.1.1, no will.
    pub(crate) fn device(creds: &'a Credentials) -> Self {
        Connect {
            client_id: &creds.client_id,
            username: Some(&creds.username),
            password: Some(&creds.password),
            will: None,
            level: 4,
        }
    }
}

/// Credentials that do not expire, as the C SDK makes them.
pub(crate) fn credentials(device: &DeviceId, secret: &str) -> Credentials {
    Credentials::make(device, secret, "hostl", u64::MAX >> 1, SignMethod::HmacSha1)
        .expect("a base64 secret")
}

fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("an MQTT string is at most 64 KB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A packet: fixed header byte, remaining length, body.
pub(crate) fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// The CONNECT packet.
pub(crate) fn connect_packet(c: &Connect<'_>) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, b"MQTT");
    body.push(c.level);
    let mut flags = 0x02; // clean session
    if c.will.is_some() {
        flags |= 0x04 | 0x08; // will, QoS 1
    }
    if c.username.is_some() {
        flags |= 0x80;
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    body.push(flags);
    body.extend_from_slice(&60u16.to_be_bytes());
    if c.level == 5 {
        body.push(0); // no properties
    }
    string(&mut body, c.client_id.as_bytes());
    if let Some(w) = &c.will {
        if c.level == 5 {
            body.push(0); // no will properties
        }
        string(&mut body, w.topic.as_bytes());
        string(&mut body, w.payload);
    }
    if let Some(u) = c.username {
        string(&mut body, u.as_bytes());
    }
    if let Some(p) = c.password {
        string(&mut body, p.as_bytes());
    }
    packet(0x10, &body)
}

/// A SUBSCRIBE of one filter with the raw options byte (QoS in its low two bits).
pub(crate) fn subscribe_packet(packet_id: u16, filter: &str, options: u8) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    string(&mut body, filter.as_bytes());
    body.push(options);
    packet(0x82, &body)
}

/// A QoS 0 PUBLISH.
pub(crate) fn publish_packet(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, topic.as_bytes());
    body.extend_from_slice(payload);
    packet(0x30, &body)
}

/// A raw connection.
pub(crate) struct Raw {
    pub(crate) tcp: TcpStream,
}

impl Raw {
    /// Connects, sends the CONNECT and returns the CONNACK's return code (3.1.1) or reason code
    /// (5), or `None` when the connection closed without one.
    pub(crate) async fn connect(addr: SocketAddr, c: &Connect<'_>) -> (Raw, Option<u8>) {
        let mut tcp = TcpStream::connect(addr).await.expect("connect to MQTT");
        tcp.set_nodelay(true).expect("nodelay");
        tcp.write_all(&connect_packet(c))
            .await
            .expect("send CONNECT");
        let mut raw = Raw { tcp };
        let code = raw.connack().await;
        (raw, code)
    }

    async fn connack(&mut self) -> Option<u8> {
        let (first, body) = self.read_packet().await?;
        (first >> 4 == 2 && body.len() >= 2).then(|| body[1])
    }

    /// The next packet (first byte, body), or `None` when the connection closed.
    pub(crate) async fn read_packet(&mut self) -> Option<(u8, Vec<u8>)> {
        within("an MQTT packet or the end of the connection", async {
            let mut first = [0u8; 1];
            self.tcp.read_exact(&mut first).await.ok()?;
            let (mut len, mut shift) = (0usize, 0);
            loop {
                let mut b = [0u8; 1];
                self.tcp.read_exact(&mut b).await.ok()?;
                len |= usize::from(b[0] & 0x7f) << shift;
                shift += 7;
                if b[0] & 0x80 == 0 {
                    break;
                }
            }
            let mut body = vec![0; len];
            self.tcp.read_exact(&mut body).await.ok()?;
            Some((first[0], body))
        })
        .await
    }

    /// Sends raw bytes; false when the connection is already gone.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> bool {
        self.tcp.write_all(bytes).await.is_ok()
    }

    /// Reads until the hub closes the connection; the packets read before.
    pub(crate) async fn until_closed(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut seen = Vec::new();
        while let Some(p) = self.read_packet().await {
            seen.push(p);
        }
        seen
    }

    /// Resets the connection (RST, no DISCONNECT): the broker publishes the will.
    pub(crate) fn reset(self) {
        // SO_LINGER 0 is exactly what is wanted here: the close sends RST, like a power cut,
        // and blocking on drop cannot happen with a zero linger.
        #[allow(deprecated)]
        let _ = self.tcp.set_linger(Some(std::time::Duration::ZERO));
        drop(self.tcp);
    }
}
