//! Test hooks that record what the broker reports, and an rumqttc client that waits on packets.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::broker::{AuthVerdict, Broker, BrokerConfig, BrokerHandle, BrokerHooks, ConnectInfo};

/// How long any single expected event may take.
pub(super) const DEADLINE: Duration = Duration::from_secs(10);

/// A gateway known to the test hooks, and its password.
pub(super) const GATEWAY: &str = "JR1WOKB7Q7gw_deng1";
pub(super) const GATEWAY_PASSWORD: &str = "good-password";
/// A second known device.
pub(super) const LIGHT: &str = "E69UADXUYYlight1";
pub(super) const LIGHT_PASSWORD: &str = "light-password";

/// Topics and filters the test hooks refuse.
pub(super) const FORBIDDEN_FILTER: &str = "$ota/update/OTHERPROD1/intruder";
pub(super) const FORBIDDEN_TOPIC: &str = "$ota/report/OTHERPROD1/intruder";

/// What the broker told the hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seen {
    Authenticate(ConnectInfo),
    Connected(String),
    Disconnected {
        client_id: String,
        reason: String,
    },
    Subscribed {
        client_id: String,
        filter: String,
        qos: u8,
    },
    Published {
        client_id: String,
        topic: String,
        payload: Vec<u8>,
        qos: u8,
    },
    Refused {
        client_id: String,
        topic: String,
        payload: Vec<u8>,
    },
}

/// Payload prefix that makes the test hooks answer from inside `on_publish`, the way the hub
/// answers `report_version`: the rest of the payload goes to the matching `$ota/update` topic.
pub(super) const ECHO_PREFIX: &[u8] = b"echo:";

/// Hooks with fixed credentials and refusals that report every call on a channel.
pub(super) struct RecordingHooks {
    passwords: HashMap<&'static str, &'static str>,
    forbidden: HashSet<&'static str>,
    seen: mpsc::UnboundedSender<Seen>,
    /// Set once the broker is started (the hooks exist before the broker does).
    handle: OnceLock<BrokerHandle>,
}

impl RecordingHooks {
    fn record(&self, seen: Seen) {
        // The receiver may be gone at the end of a test; nothing to record then.
        let _ = self.seen.send(seen);
    }
}

impl BrokerHooks for RecordingHooks {
    fn authenticate(&self, info: &ConnectInfo) -> AuthVerdict {
        self.record(Seen::Authenticate(info.clone()));
        match self.passwords.get(info.client_id.as_str()) {
            None => AuthVerdict::NotAuthorized,
            Some(expected) if info.password.as_deref() == Some(expected.as_bytes()) => {
                AuthVerdict::Accept
            }
            Some(_) => AuthVerdict::BadCredentials,
        }
    }

    fn allow_subscribe(&self, _client_id: &str, topic_filter: &str) -> bool {
        !self.forbidden.contains(topic_filter)
    }

    fn allow_publish(&self, _client_id: &str, topic: &str) -> bool {
        !self.forbidden.contains(topic)
    }

    fn on_publish(&self, client_id: &str, topic: &str, payload: &[u8], qos: u8) {
        if let (Some(rest), Some(handle)) = (payload.strip_prefix(ECHO_PREFIX), self.handle.get()) {
            handle.publish(
                &topic.replace("$ota/report/", "$ota/update/"),
                rest.to_vec(),
                1,
            );
        }
        self.record(Seen::Published {
            client_id: client_id.to_owned(),
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            qos,
        });
    }

    fn on_publish_refused(&self, client_id: &str, topic: &str, payload: &[u8]) {
        self.record(Seen::Refused {
            client_id: client_id.to_owned(),
            topic: topic.to_owned(),
            payload: payload.to_vec(),
        });
    }

    fn on_subscribed(&self, client_id: &str, topic_filter: &str, granted_qos: u8) {
        self.record(Seen::Subscribed {
            client_id: client_id.to_owned(),
            filter: topic_filter.to_owned(),
            qos: granted_qos,
        });
    }

    fn on_connected(&self, client_id: &str) {
        self.record(Seen::Connected(client_id.to_owned()));
    }

    fn on_disconnected(&self, client_id: &str, reason: &str) {
        self.record(Seen::Disconnected {
            client_id: client_id.to_owned(),
            reason: reason.to_owned(),
        });
    }
}

/// A broker on `127.0.0.1:0` with [`RecordingHooks`], and the channel of what they saw.
pub(super) struct TestHub {
    pub(super) broker: Broker,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl TestHub {
    pub(super) async fn start() -> TestHub {
        Self::start_on("127.0.0.1:0".parse().expect("literal address")).await
    }

    pub(super) async fn start_on(mqtt_addr: SocketAddr) -> TestHub {
        let (tx, seen) = mpsc::unbounded_channel();
        let hooks = RecordingHooks {
            passwords: HashMap::from([(GATEWAY, GATEWAY_PASSWORD), (LIGHT, LIGHT_PASSWORD)]),
            forbidden: HashSet::from([FORBIDDEN_FILTER, FORBIDDEN_TOPIC]),
            seen: tx,
            handle: OnceLock::new(),
        };
        let hooks = Arc::new(hooks);
        let broker = Broker::start(
            BrokerConfig {
                mqtt_addr,
                tls: None,
                limits: crate::broker::FrontLimits {
                    connect_deadline: std::time::Duration::from_secs(10),
                    max_connections: 1024,
                },
                cluster: None,
            },
            hooks.clone(),
        )
        .await
        .expect("broker starts");
        assert!(hooks.handle.set(broker.handle()).is_ok(), "handle set once");
        TestHub { broker, seen }
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.broker.local_addr()
    }

    /// The first hook call matching `pred`, skipping others; panics after [`DEADLINE`].
    pub(super) async fn expect(&mut self, what: &str, pred: impl Fn(&Seen) -> bool) -> Seen {
        let wait = async {
            loop {
                match self.seen.recv().await {
                    Some(seen) if pred(&seen) => return seen,
                    Some(_) => {}
                    None => panic!("hooks dropped while waiting for {what}"),
                }
            }
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .unwrap_or_else(|_| panic!("no {what} within {DEADLINE:?}"))
    }
}

/// What a test client's event loop reported.
#[derive(Debug)]
pub(super) enum Incoming {
    Packet(Packet),
    /// The DISCONNECT packet was written.
    SentDisconnect,
    /// The event loop stopped with this error (it is not polled again).
    Ended(ConnectionError),
}

/// An rumqttc client whose event loop runs in a task and reports incoming packets.
pub(super) struct TestClient {
    pub(super) client: AsyncClient,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    task: JoinHandle<()>,
}

impl Drop for TestClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// MQTT 3.1.1 options with TCP_NODELAY, credentials and a clean session.
pub(super) fn options(addr: SocketAddr, client_id: &str, password: Option<&str>) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(60));
    options.set_clean_session(true);
    if let Some(password) = password {
        options.set_credentials(
            format!("{client_id};21010406;abcde;9223372036854775807"),
            password,
        );
    }
    options
}

impl TestClient {
    /// Starts the client's event loop; the first report is its CONNACK or connection error.
    pub(super) fn spawn(options: MqttOptions) -> TestClient {
        let (client, mut event_loop) = AsyncClient::new(options, 64);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        event_loop.set_network_options(network);
        let (tx, incoming) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(event_loop, tx));
        TestClient {
            client,
            incoming,
            task,
        }
    }

    /// Connects and waits for a successful CONNACK.
    pub(super) async fn connect(addr: SocketAddr, client_id: &str, password: &str) -> TestClient {
        let mut client = Self::spawn(options(addr, client_id, Some(password)));
        client
            .expect("CONNACK", |i| {
                matches!(i, Incoming::Packet(Packet::ConnAck(_)))
            })
            .await;
        client
    }

    /// The next report matching `pred`, skipping others; panics after [`DEADLINE`].
    pub(super) async fn expect(
        &mut self,
        what: &str,
        pred: impl Fn(&Incoming) -> bool,
    ) -> Incoming {
        let wait = async {
            loop {
                match self.incoming.recv().await {
                    Some(incoming) if pred(&incoming) => return incoming,
                    Some(Incoming::Ended(e)) => panic!("connection ended waiting for {what}: {e}"),
                    Some(_) => {}
                    None => panic!("event loop gone while waiting for {what}"),
                }
            }
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .unwrap_or_else(|_| panic!("no {what} within {DEADLINE:?}"))
    }

    /// Sends DISCONNECT and closes the socket, as real clients do (neither rumqttc nor rmqtt
    /// closes the connection after a DISCONNECT by itself).
    pub(super) async fn disconnect(mut self) {
        self.client.disconnect().await.expect("DISCONNECT queued");
        self.expect("DISCONNECT written", |i| {
            matches!(i, Incoming::SentDisconnect)
        })
        .await;
        // Dropping aborts the event loop task, which closes the socket.
    }

    /// Waits until the connection ends, skipping packets; returns why.
    pub(super) async fn ended(&mut self) -> ConnectionError {
        let wait = async {
            loop {
                match self.incoming.recv().await {
                    Some(Incoming::Ended(e)) => return e,
                    Some(_) => {}
                    None => panic!("event loop gone without reporting its end"),
                }
            }
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .unwrap_or_else(|_| panic!("connection still up after {DEADLINE:?}"))
    }
}

/// Polls until the first error: rumqttc would reconnect on the next poll, which tests never want.
async fn drive(mut event_loop: EventLoop, tx: mpsc::UnboundedSender<Incoming>) {
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(packet)) => {
                if tx.send(Incoming::Packet(packet)).is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                if tx.send(Incoming::SentDisconnect).is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(_)) => {}
            Err(e) => {
                let _ = tx.send(Incoming::Ended(e));
                return;
            }
        }
    }
}
