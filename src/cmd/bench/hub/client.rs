//! A lightweight MQTT client for the benchmark: rumqttc with TCP_NODELAY, its incoming
//! publishes on a channel, and a count of messages both ways.

use anyhow::Context as _;
use otasim_protocol::{Credentials, DeviceId, SignMethod};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, NetworkOptions, Packet, QoS};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Publishes sent and received by every client of a run.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) sent: AtomicU64,
    pub(super) received: AtomicU64,
}

impl Counters {
    pub(super) fn total(&self) -> u64 {
        self.sent.load(Ordering::Relaxed) + self.received.load(Ordering::Relaxed)
    }
}

/// One connected client.
pub(super) struct Client {
    client: AsyncClient,
    inbox: mpsc::UnboundedReceiver<(String, Value)>,
    counters: Arc<Counters>,
}

/// How a client logs in.
pub(super) enum Login<'a> {
    /// Key auth as the SDKs do it.
    Device(&'a DeviceId, &'a str),
    /// No credentials (mosquitto with anonymous access).
    Anonymous(&'a str),
}

impl Client {
    /// Connects, retrying a refused or failed CONNECT a few times.
    pub(super) async fn connect(
        addr: SocketAddr,
        login: Login<'_>,
        counters: Arc<Counters>,
    ) -> anyhow::Result<Client> {
        let mut last = None;
        for _ in 0..5 {
            match Self::try_connect(addr, &login, counters.clone()).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    async fn try_connect(
        addr: SocketAddr,
        login: &Login<'_>,
        counters: Arc<Counters>,
    ) -> anyhow::Result<Client> {
        let mut options = match login {
            Login::Device(id, secret) => {
                let creds = Credentials::make(id, secret, "bench", 1 << 62, SignMethod::HmacSha1)?;
                let mut o = MqttOptions::new(&creds.client_id, addr.ip().to_string(), addr.port());
                o.set_credentials(creds.username, creds.password);
                o
            }
            Login::Anonymous(client_id) => {
                MqttOptions::new(*client_id, addr.ip().to_string(), addr.port())
            }
        };
        options.set_keep_alive(Duration::from_secs(240));
        options.set_max_packet_size(64 << 10, 64 << 10);
        let (client, mut event_loop) = AsyncClient::new(options, 256);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        network.set_connection_timeout(30);
        event_loop.set_network_options(network);
        let (tx, inbox) = mpsc::unbounded_channel();
        let (up_tx, up) = oneshot::channel();
        let recv_counters = counters.clone();
        tokio::spawn(async move {
            let mut up_tx = Some(up_tx);
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        if let Some(t) = up_tx.take() {
                            let _ = t.send(Ok(ack.code));
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        recv_counters.received.fetch_add(1, Ordering::Relaxed);
                        let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        if tx.send((p.topic, v)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(t) = up_tx.take() {
                            let _ = t.send(Err(e.to_string()));
                        }
                        return;
                    }
                }
            }
        });
        let code = up
            .await
            .context("the client task ended before CONNACK")?
            .map_err(|e| anyhow::anyhow!("connecting to {addr}: {e}"))?;
        anyhow::ensure!(
            code == ConnectReturnCode::Success,
            "CONNACK {code:?} from {addr}"
        );
        Ok(Client {
            client,
            inbox,
            counters,
        })
    }

    /// Publishes JSON.
    pub(super) async fn publish(&self, topic: &str, qos: QoS, body: &Value) -> anyhow::Result<()> {
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        self.client
            .publish(topic, qos, false, body.to_string())
            .await
            .context("publish")
    }

    /// Subscribes at QoS 1.
    pub(super) async fn subscribe(&self, filter: &str) -> anyhow::Result<()> {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .context("subscribe")
    }

    /// The next incoming publish.
    pub(super) async fn next(&mut self) -> anyhow::Result<(String, Value)> {
        self.inbox.recv().await.context("the connection closed")
    }
}
