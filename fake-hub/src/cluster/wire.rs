//! What an edge node sends the owner, and what it answers: JSON over one ordered HTTP stream.
//!
//! Every hook call an edge's broker makes becomes one [`Call`]. Calls travel in batches, in the
//! order the edge's broker made them, and the owner applies each batch in order, so a device's
//! CONNECT, SUBSCRIBEs and PUBLISHes reach the Hub's logic as they would on one node.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

use crate::broker::{AuthVerdict, ConnectInfo, Transport};

/// The path of the batch stream on the owner's control API.
pub(crate) const BATCH_PATH: &str = "/api/cluster/v1/batch";
/// The path an edge waits on while the owner holds an acknowledgement (a fault's delay).
pub(crate) const HOLD_PATH: &str = "/api/cluster/v1/hold";
/// The most calls in one batch (a batch is one HTTP request).
pub(crate) const MAX_BATCH: usize = 512;
/// The largest batch body the owner reads: [`MAX_BATCH`] calls of at most a 16 KB payload each,
/// base64-encoded, with room for the fields.
pub(crate) const MAX_BATCH_BYTES: usize = MAX_BATCH * 24 * 1024;

/// A batch of calls from one edge node.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Batch {
    /// The edge's node id (as in the cluster's peer list).
    pub(crate) node: u64,
    /// The calls, in the order the edge's broker made them.
    pub(crate) calls: Vec<Call>,
}

/// One hook call of an edge's broker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub(crate) enum Call {
    /// A CONNECT to decide.
    Authenticate(Connect),
    /// One SUBSCRIBE filter to decide.
    Subscribe {
        client_id: String,
        topic_filter: String,
    },
    /// A PUBLISH to decide and, if allowed, hand to the Hub's logic.
    Publish {
        client_id: String,
        topic: String,
        /// The payload, base64 on the wire.
        #[serde(with = "base64_bytes")]
        payload: Vec<u8>,
        qos: u8,
    },
    /// A Last Will about to be sent: deliver or divert.
    Will {
        client_id: String,
        topic: String,
        #[serde(with = "base64_bytes")]
        payload: Vec<u8>,
    },
    /// A granted subscription.
    Subscribed {
        client_id: String,
        topic_filter: String,
        granted_qos: u8,
    },
    /// A client was accepted.
    Connected { client_id: String },
    /// A client's connection ended.
    Disconnected { client_id: String, reason: String },
    /// A client broke the protocol in a way the codec lets through.
    Violation { client_id: String, detail: String },
    /// The edge's listener front refused a connection before MQTT.
    TransportEvent {
        who: String,
        name: String,
        detail: String,
    },
}

/// The parts of a CONNECT the owner decides on (see [`ConnectInfo`]).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Connect {
    pub(crate) client_id: String,
    pub(crate) username: Option<String>,
    /// The password, base64 on the wire (it may be any bytes).
    #[serde(with = "base64_opt_bytes")]
    pub(crate) password: Option<Vec<u8>>,
    pub(crate) protocol_level: u8,
    pub(crate) keepalive_secs: u16,
    pub(crate) peer: SocketAddr,
    pub(crate) will_topic: Option<String>,
    pub(crate) taken: bool,
}

impl Connect {
    pub(crate) fn from_info(info: &ConnectInfo) -> Connect {
        Connect {
            client_id: info.client_id.clone(),
            username: info.username.clone(),
            password: info.password.clone(),
            protocol_level: info.protocol_level,
            keepalive_secs: info.keepalive_secs,
            peer: info.peer,
            will_topic: info.will_topic.clone(),
            taken: info.taken,
        }
    }

    /// The connect as the owner's logic sees it; an edge serves plain MQTT only.
    pub(crate) fn into_info(self) -> ConnectInfo {
        ConnectInfo {
            client_id: self.client_id,
            username: self.username,
            password: self.password,
            protocol_level: self.protocol_level,
            keepalive_secs: self.keepalive_secs,
            peer: self.peer,
            will_topic: self.will_topic,
            taken: self.taken,
            transport: Transport::Plain,
        }
    }
}

/// The owner's answer to one call, in the batch's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub(crate) enum Answer {
    /// The CONNECT's verdict, and whether the owner holds its CONNACK for a while.
    Verdict {
        verdict: Verdict,
        connack_hold: bool,
    },
    /// Allowed or not (subscribe, publish, will), and for a subscription whether the owner
    /// holds its SUBACK for a while.
    Allow { allow: bool, hold: bool },
    /// Recorded (for calls that decide nothing).
    Done,
}

/// [`AuthVerdict`] on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    Accept,
    BadCredentials,
    NotAuthorized,
    ServerUnavailable,
}

impl From<AuthVerdict> for Verdict {
    fn from(v: AuthVerdict) -> Verdict {
        match v {
            AuthVerdict::Accept => Verdict::Accept,
            AuthVerdict::BadCredentials => Verdict::BadCredentials,
            AuthVerdict::NotAuthorized => Verdict::NotAuthorized,
            AuthVerdict::ServerUnavailable => Verdict::ServerUnavailable,
        }
    }
}

impl From<Verdict> for AuthVerdict {
    fn from(v: Verdict) -> AuthVerdict {
        match v {
            Verdict::Accept => AuthVerdict::Accept,
            Verdict::BadCredentials => AuthVerdict::BadCredentials,
            Verdict::NotAuthorized => AuthVerdict::NotAuthorized,
            Verdict::ServerUnavailable => AuthVerdict::ServerUnavailable,
        }
    }
}

/// A held acknowledgement an edge waits on.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "ack", rename_all = "snake_case")]
pub(crate) enum Hold {
    Connack {
        client_id: String,
    },
    Suback {
        client_id: String,
        topic_filter: String,
    },
}

/// Bytes as base64 in JSON: a payload that is not base64 refuses the whole batch at parse.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <&str>::deserialize(d)?;
        STANDARD
            .decode(text)
            .map_err(|e| serde::de::Error::custom(format!("not base64: {e}")))
    }
}

/// [`base64_bytes`] for an optional field.
mod base64_opt_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => super::base64_bytes::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::base64_bytes")] Vec<u8>);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(b)| b))
    }
}
