//! The fake hub's MQTT broker: rmqtt embedded behind a small interface.
//!
//! The hub's logic implements [`BrokerHooks`] and never sees an rmqtt type. rmqtt calls the hooks
//! from its connection tasks (authentication, subscribe and publish ACLs, connection events), and
//! the logic talks back through a [`BrokerHandle`] (hub-to-device publishes, kicking a client).
//!
//! Every [`Broker`] runs on its own tokio runtime on a dedicated thread: rmqtt has no stop API and
//! aborting its tasks leaves live connections up, so stopping means dropping that runtime, which
//! closes every socket it owns. That also keeps several brokers in one process independent.

mod connections;
mod fitter;
mod front;
mod handle;
mod hooks;
mod server;
mod takeover;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

pub(crate) use front::FrontLimits;
pub(crate) use handle::BrokerHandle;
pub(crate) use server::Broker;

/// What the hub's logic decides about a CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthVerdict {
    /// The device may connect (CONNACK 0).
    Accept,
    /// Wrong username or password (CONNACK 4).
    BadCredentials,
    /// Unknown or disabled device (CONNACK 5).
    NotAuthorized,
    /// Server unavailable (CONNACK 3). A hook cannot answer 3 in rmqtt; the glue accepts the
    /// credentials and then fails the connection's parameter negotiation, which rmqtt answers
    /// with code 3. A previous connection with the same client id is kicked first, as for any
    /// accepted CONNECT.
    ServerUnavailable,
}

/// A pause the hub's logic asks the broker to take before sending an acknowledgement.
pub(crate) type Hold = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A decision that may take a while: an edge node of a cluster asks the owner node.
pub(crate) type Later<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The parts of a CONNECT packet the hub's logic needs to authenticate a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectInfo {
    /// The MQTT client id (`{product_id}{device_name}` for the Tencent SDKs).
    pub(crate) client_id: String,
    /// The username, if the CONNECT carried one.
    pub(crate) username: Option<String>,
    /// The password bytes, if the CONNECT carried one.
    pub(crate) password: Option<Vec<u8>>,
    /// Protocol level: 3 for MQTT 3.1 (`MQIsdp`), 4 for 3.1.1, 5 for 5.0.
    pub(crate) protocol_level: u8,
    /// The keepalive the client asked for, in seconds.
    pub(crate) keepalive_secs: u16,
    /// The client's real address (unspecified `0.0.0.0:0` if the transport has none).
    pub(crate) peer: SocketAddr,
    /// The topic of the CONNECT's Last Will, if it carries one. The broker publishes the will
    /// when the connection dies, past the publish ACL, so it must be authorized here.
    pub(crate) will_topic: Option<String>,
    /// Another CONNECT with this client id still holds the broker's session lock: accepting
    /// this one would end in code 3 anyway (see `takeover`).
    pub(crate) taken: bool,
    /// The listener it came through and what that listener's handshake proved.
    pub(crate) transport: Transport,
}

/// How a connection reached the broker, and what its handshake proved about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transport {
    /// The plain MQTT listener.
    Plain,
    /// The TLS port with a server certificate only: the CONNECT's password is the proof.
    Tls,
    /// The TLS port with a pre-shared key: the handshake proved the device `identity` (its
    /// client id) holds its secret.
    TlsPsk {
        /// The PSK identity the client sent.
        identity: String,
    },
    /// The TLS port with a client certificate that chains to the hub's CA.
    TlsCert {
        /// The certificate's common name, if it has one.
        common_name: Option<String>,
    },
}

impl Transport {
    /// A short label for transcript events.
    pub(crate) fn label(&self) -> String {
        match self {
            Transport::Plain => "tcp".to_owned(),
            Transport::Tls => "tls".to_owned(),
            Transport::TlsPsk { identity } => format!("tls-psk {identity}"),
            Transport::TlsCert { common_name } => {
                format!("tls-cert {}", common_name.as_deref().unwrap_or("(no CN)"))
            }
        }
    }
}

/// Implemented by the hub logic; called from broker tasks, so it must not block long.
///
/// Calls for one connection arrive in the order the packets did; calls for different
/// connections may run concurrently. A hook may call [`BrokerHandle`] methods.
pub(crate) trait BrokerHooks: Send + Sync + 'static {
    /// Decides a CONNECT. Every CONNECT reaches it, with or without a username.
    fn authenticate(&self, info: &ConnectInfo) -> AuthVerdict;

    /// The pre-shared key of a TLS-PSK identity (a client id): the device's decoded secret, or
    /// `None` if no device with that client id may connect. Called inside the TLS handshake.
    fn psk_key(&self, _identity: &str) -> Option<Vec<u8>> {
        None
    }

    /// The listener front refused a connection before MQTT (deadline, cap, TLS failure);
    /// `who` is the PSK identity when there is one, else the peer address.
    fn on_transport_event(&self, _who: &str, _name: &str, _detail: &str) {}

    /// Decides one topic filter of a SUBSCRIBE; `false` answers SUBACK failure (0x80).
    /// An allowed filter is granted at the requested QoS (capped at 1).
    fn allow_subscribe(&self, client_id: &str, topic_filter: &str) -> bool;

    /// Decides a client PUBLISH; `false` drops it (not routed; QoS 1 is still acknowledged).
    fn allow_publish(&self, client_id: &str, topic: &str) -> bool;

    /// Every PUBLISH from a client that passed `allow_publish`, in arrival order per client,
    /// before it is routed to subscribers.
    fn on_publish(&self, client_id: &str, topic: &str, payload: &[u8], qos: u8);

    /// A PUBLISH that `allow_publish` refused (so the hub can record it).
    fn on_publish_refused(&self, client_id: &str, topic: &str, payload: &[u8]);

    /// A pause before the CONNACK of an accepted client, if the hub wants one.
    fn connack_hold(&self, _client_id: &str) -> Option<Hold> {
        None
    }

    /// A pause before the SUBACK for `topic_filter`, if the hub wants one.
    fn suback_hold(&self, _client_id: &str, _topic_filter: &str) -> Option<Hold> {
        None
    }

    /// A subscription was granted at `granted_qos` (called before the SUBACK is sent).
    fn on_subscribed(&self, _client_id: &str, _topic_filter: &str, _granted_qos: u8) {}

    /// A client was accepted (called just before its CONNACK is sent). A reconnect with the
    /// same client id calls it again, whether or not the old connection is gone yet.
    fn on_connected(&self, _client_id: &str) {}

    /// The client id's current connection ended. Not called when the broker itself shuts down.
    ///
    /// When a device reconnects with the same client id, rmqtt kicks the old connection while
    /// accepting the new one, in either order: if the old one's end comes first it is reported
    /// (reason `kicked`) before the new `on_connected`; if it comes after, it is not reported at
    /// all. Either way the last call for a client id tells whether it is connected.
    ///
    /// `reason` is one of `client_disconnect` (DISCONNECT received), `remote_close`,
    /// `keepalive_timeout`, `kicked`, `io_error`, `io_timeout`, `packet_too_large: ...`
    /// (over the listener's maximum packet size), or `protocol_error: ...` /
    /// `other: ...` with rmqtt's description.
    fn on_disconnected(&self, _client_id: &str, _reason: &str) {}

    /// A client broke the MQTT protocol in a way the codec lets through (a PUBLISH to a
    /// wildcard topic); the broker disconnects it.
    fn on_protocol_violation(&self, _client_id: &str, _detail: &str) {}

    /// The broker is about to publish a client's Last Will (its connection died). `true`
    /// delivers it; `false` diverts it to a topic nobody may subscribe to. The publish ACL
    /// never sees wills, so this is the only check at send time.
    fn on_will(&self, _client_id: &str, _topic: &str, _payload: &[u8]) -> bool {
        true
    }

    // The broker calls the decisions below, which answer later; by default they answer at once
    // from the calls above. An edge node of a cluster answers them by asking the owner.

    /// [`BrokerHooks::authenticate`], answered later.
    fn authenticate_later<'a>(&'a self, info: &'a ConnectInfo) -> Later<'a, AuthVerdict> {
        Box::pin(std::future::ready(self.authenticate(info)))
    }

    /// [`BrokerHooks::allow_subscribe`], answered later.
    fn allow_subscribe_later<'a>(
        &'a self,
        client_id: &'a str,
        topic_filter: &'a str,
    ) -> Later<'a, bool> {
        Box::pin(std::future::ready(
            self.allow_subscribe(client_id, topic_filter),
        ))
    }

    /// A client PUBLISH: [`BrokerHooks::allow_publish`], then [`BrokerHooks::on_publish`] or
    /// [`BrokerHooks::on_publish_refused`]; answers whether it is routed.
    fn publish_later<'a>(
        &'a self,
        client_id: &'a str,
        topic: &'a str,
        payload: &'a [u8],
        qos: u8,
    ) -> Later<'a, bool> {
        let allowed = self.allow_publish(client_id, topic);
        if allowed {
            self.on_publish(client_id, topic, payload, qos);
        } else {
            self.on_publish_refused(client_id, topic, payload);
        }
        Box::pin(std::future::ready(allowed))
    }

    /// [`BrokerHooks::on_will`], answered later.
    fn on_will_later<'a>(
        &'a self,
        client_id: &'a str,
        topic: &'a str,
        payload: &'a [u8],
    ) -> Later<'a, bool> {
        Box::pin(std::future::ready(self.on_will(client_id, topic, payload)))
    }
}

/// Where and how the broker listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrokerConfig {
    /// Plain MQTT listener address; `127.0.0.1:0` in tests, the bound port is in
    /// [`Broker::local_addr`].
    pub(crate) mqtt_addr: SocketAddr,
    /// The TLS port (PSK, server certificate and mutual TLS), if wanted.
    pub(crate) tls: Option<TlsListener>,
    /// The CONNECT deadline and connection cap of every listener.
    pub(crate) limits: FrontLimits,
    /// The cluster this broker joins, if any.
    pub(crate) cluster: Option<crate::cluster::ClusterConfig>,
}

/// The TLS port: its address and PEM material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsListener {
    /// Where to listen; `127.0.0.1:0` for an OS-assigned port.
    pub(crate) addr: SocketAddr,
    /// The server certificate chain, PEM.
    pub(crate) cert_pem: String,
    /// The server key, PEM.
    pub(crate) key_pem: String,
    /// The CA that client certificates must chain to, PEM.
    pub(crate) client_ca_pem: String,
}

/// Why a broker could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BrokerError {
    /// The broker's thread or tokio runtime could not be created.
    #[error("cannot start the broker runtime")]
    Runtime(#[source] io::Error),
    /// The TLS context could not be built from the hub's certificates.
    #[error("cannot set up TLS")]
    Tls(#[source] io::Error),
    /// The MQTT listener could not be bound.
    #[error("cannot bind the MQTT listener on {addr}")]
    Bind {
        /// The address from the configuration.
        addr: SocketAddr,
        /// What the OS or rmqtt said.
        #[source]
        source: io::Error,
    },
    /// The broker could not join its cluster.
    #[error("cannot join the cluster: {0}")]
    Cluster(String),
    /// The broker thread ended before reporting its listener (it panicked).
    #[error("the broker thread stopped before its listener was ready")]
    Stopped,
}
