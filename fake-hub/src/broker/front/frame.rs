//! Just enough MQTT framing for the listener front: when a packet has fully arrived (the fixed
//! header's type nibble and variable-length "remaining length"), the CONNECT's protocol level
//! and client id, and a PUBLISH's QoS, retain flag and topic.

/// The MQTT packet type of CONNECT, in the high nibble of the first byte.
const CONNECT_TYPE: u8 = 1;

/// What the bytes received so far say about the first packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstPacket {
    /// More bytes are needed.
    Partial,
    /// A whole CONNECT of this many bytes (header included) is at the start of the buffer.
    Complete(usize),
    /// The first packet is not a CONNECT: a protocol violation.
    NotConnect(u8),
    /// The packet is larger than `max` bytes, or its length is not valid MQTT.
    TooLarge,
}

/// Looks at the start of a connection's bytes; `max` bounds the CONNECT's total size.
pub(crate) fn first_packet(buf: &[u8], max: usize) -> FirstPacket {
    match buf.first() {
        None => FirstPacket::Partial,
        Some(&first) if first >> 4 != CONNECT_TYPE => FirstPacket::NotConnect(first),
        Some(_) => packet_len(buf, max),
    }
}

/// The total length of the packet at the start of `buf` once it is all there (any type).
/// Never [`FirstPacket::NotConnect`].
pub(crate) fn packet_len(buf: &[u8], max: usize) -> FirstPacket {
    if buf.is_empty() {
        return FirstPacket::Partial;
    }
    let mut remaining: usize = 0;
    // At most four length bytes (MQTT 3.1.1 section 2.2.3).
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return FirstPacket::Partial;
        };
        remaining |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let total = 1 + (i + 1) + remaining;
            return if total > max {
                FirstPacket::TooLarge
            } else if buf.len() >= total {
                FirstPacket::Complete(total)
            } else {
                FirstPacket::Partial
            };
        }
    }
    FirstPacket::TooLarge
}

/// The length of the fixed header (type byte and remaining-length bytes) of a whole packet.
fn header_len(packet: &[u8]) -> Option<usize> {
    (1..=4)
        .find(|i| packet.get(*i).is_some_and(|b| b & 0x80 == 0))
        .map(|i| i + 1)
}

/// An MQTT string (two length bytes, then UTF-8) at `at`; returns it and the offset after it.
fn string_at(packet: &[u8], at: usize) -> Option<(String, usize)> {
    let len = usize::from(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]));
    let bytes = packet.get(at + 2..at + 2 + len)?;
    Some((String::from_utf8_lossy(bytes).into_owned(), at + 2 + len))
}

/// A variable byte integer at `at` (MQTT 5 property lengths); returns it and the offset after it.
fn varint_at(packet: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for i in 0..4 {
        let b = *packet.get(at + i)?;
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, at + i + 1));
        }
    }
    None
}

/// What the front needs from a whole CONNECT: its protocol level and client id.
pub(crate) fn connect_summary(packet: &[u8]) -> Option<(u8, String)> {
    let (_, after_name) = string_at(packet, header_len(packet)?)?;
    let level = *packet.get(after_name)?;
    // Flags (1 byte) and keepalive (2 bytes), then MQTT 5 properties.
    let mut at = after_name + 4;
    if level == 5 {
        let (props, after) = varint_at(packet, at)?;
        at = after.checked_add(props)?;
    }
    let (client_id, _) = string_at(packet, at)?;
    Some((level, client_id))
}

/// A whole PUBLISH as the front judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublishHead {
    pub(crate) qos: u8,
    pub(crate) retain: bool,
    pub(crate) topic: String,
    /// The application payload (empty if the packet is too short to have one).
    pub(crate) payload: Vec<u8>,
}

/// The QoS, retain flag, topic and payload of a whole packet if it is a PUBLISH, for a client
/// of protocol `level`.
pub(crate) fn publish_head(packet: &[u8], level: u8) -> Option<PublishHead> {
    let first = *packet.first()?;
    if first >> 4 != 3 {
        return None;
    }
    let qos = (first >> 1) & 0x03;
    let (topic, mut at) = string_at(packet, header_len(packet)?)?;
    if qos > 0 {
        at += 2;
    }
    if level == 5 {
        at = varint_at(packet, at)
            .and_then(|(props, after)| after.checked_add(props))
            .unwrap_or(packet.len());
    }
    Some(PublishHead {
        qos,
        retain: first & 0x01 == 1,
        topic,
        payload: packet.get(at..).unwrap_or_default().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_len(mut n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut b = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                b |= 0x80;
            }
            out.push(b);
            if n == 0 {
                return out;
            }
        }
    }

    #[test]
    fn a_connect_is_complete_only_with_all_its_bytes() {
        let mut packet = vec![0x10];
        packet.extend(encode_len(3));
        packet.extend([1, 2, 3]);
        assert_eq!(first_packet(&packet[..4], 100), FirstPacket::Partial);
        assert_eq!(first_packet(&packet, 100), FirstPacket::Complete(5));
        packet.push(0xe0);
        assert_eq!(first_packet(&packet, 100), FirstPacket::Complete(5));
    }

    #[test]
    fn other_packets_and_oversized_lengths_are_refused() {
        assert_eq!(first_packet(&[0x30, 0], 100), FirstPacket::NotConnect(0x30));
        assert_eq!(
            first_packet(&[0x10, 0xff, 0xff, 0xff, 0xff], 100),
            FirstPacket::TooLarge
        );
        assert_eq!(
            first_packet(&[0x10, 0x80, 0x01], 100),
            FirstPacket::TooLarge
        );
        assert_eq!(first_packet(&[], 100), FirstPacket::Partial);
    }

    fn connect(level: u8, client_id: &str) -> Vec<u8> {
        let name: &[u8] = if level == 3 { b"MQIsdp" } else { b"MQTT" };
        let mut body = Vec::new();
        body.extend((name.len() as u16).to_be_bytes());
        body.extend(name);
        body.extend([level, 0x02, 0, 60]);
        if level == 5 {
            body.extend([3, 0x21, 0, 10]);
        }
        body.extend((client_id.len() as u16).to_be_bytes());
        body.extend(client_id.as_bytes());
        let mut p = vec![0x10];
        p.extend(encode_len(body.len()));
        p.extend(body);
        p
    }

    #[test]
    fn connect_summary_reads_level_and_client_id_of_every_version() {
        for level in [3, 4, 5] {
            let p = connect(level, "JR1WOKB7Q7gw_deng1");
            assert_eq!(
                connect_summary(&p),
                Some((level, "JR1WOKB7Q7gw_deng1".to_owned()))
            );
        }
    }

    #[test]
    fn publish_head_reads_qos_retain_and_topic() {
        let p = [0x35, 8, 0, 3, b'a', b'/', b'b', 0, 1, b'x'];
        assert_eq!(
            publish_head(&p, 4),
            Some(PublishHead {
                qos: 2,
                retain: true,
                topic: "a/b".to_owned(),
                payload: b"x".to_vec(),
            })
        );
        assert_eq!(publish_head(&[0x82, 0], 4), None);
    }

    proptest! {
        #[test]
        fn summaries_of_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = connect_summary(&bytes);
            let _ = publish_head(&bytes, 4);
            let _ = publish_head(&bytes, 5);
            let _ = packet_len(&bytes, 1024);
        }

        #[test]
        fn any_length_is_framed_exactly(len in 0usize..300_000, max in 0usize..300_000, cut in 0usize..8) {
            let mut head = vec![0x10];
            head.extend(encode_len(len));
            let total = head.len() + len;
            let have = head.len().saturating_sub(cut).max(1);
            let got = first_packet(&head[..have], max);
            if have < head.len() {
                prop_assert_eq!(got, FirstPacket::Partial);
            } else if total > max {
                prop_assert_eq!(got, FirstPacket::TooLarge);
            } else if len == 0 {
                prop_assert_eq!(got, FirstPacket::Complete(total));
            } else {
                prop_assert_eq!(got, FirstPacket::Partial);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = first_packet(&bytes, 1024);
        }
    }
}
