//! A hub with the seed demo's devices, and rumqttc device clients that wait on packets.

use fake_hub::{FirmwareStore, Hub, HubConfig};
use otasim_protocol::{
    Credentials, DeviceId, GatewayDevice, GatewayRequest, OperationType, SignMethod, Topic,
};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long any single expected event may take.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);
pub(crate) const GW_SECRET: &str = "1RRdhkwmZ45wYXjuPfygeA==";
pub(crate) const SUB_SECRET: &str = "c2VjcmV0c2VjcmV0MTI=";
pub(crate) const NEVER: u64 = 9_223_372_036_854_775_807;

/// Signs URLs with a counter, so every URL is fresh.
#[derive(Default)]
pub(crate) struct CountingStore {
    signed: AtomicU64,
}

impl FirmwareStore for CountingStore {
    fn put(&self, _object: &str, _bytes: Vec<u8>) -> Result<(), fake_hub::StoreError> {
        Ok(())
    }

    fn signed_url(
        &self,
        object: &str,
        _valid_for: Duration,
    ) -> Result<String, fake_hub::StoreError> {
        let n = self.signed.fetch_add(1, Ordering::SeqCst);
        Ok(format!("http://127.0.0.1/{object}?sign={n}"))
    }
}

pub(crate) fn gw() -> DeviceId {
    DeviceId::new("JR1WOKB7Q7", "gw_deng1").expect("valid id")
}

pub(crate) fn light(n: u32) -> DeviceId {
    DeviceId::new("E69UADXUYY", format!("light{n}")).expect("valid id")
}

/// A hub with the gateway, light1..3 bound to it (running 0.1) and light4 unbound, and
/// firmware 1.0 for the lights.
pub(crate) async fn hub_with(config: HubConfig) -> Hub {
    let hub = Hub::start(config, Arc::new(CountingStore::default()))
        .await
        .expect("hub starts");
    hub.add_gateway(&gw(), GW_SECRET);
    for n in 1..=3 {
        hub.add_subdevice(&light(n), SUB_SECRET, Some(&gw()), Some("0.1"));
    }
    hub.add_subdevice(&light(4), SUB_SECRET, None, Some("0.1"));
    hub.upload_firmware("E69UADXUYY", "1.0", b"firmware image 1.0".to_vec())
        .expect("upload");
    hub
}

pub(crate) async fn hub() -> Hub {
    hub_with(HubConfig::loopback()).await
}

/// MQTT 3.1.1 options with key auth that never expires.
pub(crate) fn options(addr: SocketAddr, device: &DeviceId, secret: &str) -> MqttOptions {
    options_signed(addr, device, secret, NEVER, SignMethod::HmacSha1)
}

pub(crate) fn options_signed(
    addr: SocketAddr,
    device: &DeviceId,
    secret: &str,
    expiry: u64,
    method: SignMethod,
) -> MqttOptions {
    let c = Credentials::make(device, secret, "abcde", expiry, method).expect("credentials");
    let mut o = MqttOptions::new(c.client_id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(60));
    o.set_clean_session(true);
    o.set_credentials(c.username, c.password);
    o.set_max_packet_size(64 * 1024, 64 * 1024);
    o
}

#[derive(Debug)]
pub(crate) enum Incoming {
    Packet(Packet),
    Ended(ConnectionError),
}

/// An rumqttc client whose event loop runs in a task and reports incoming packets.
pub(crate) struct Client {
    pub(crate) client: AsyncClient,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    task: JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn drive(mut event_loop: EventLoop, tx: mpsc::UnboundedSender<Incoming>) {
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(p)) => {
                if tx.send(Incoming::Packet(p)).is_err() {
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

impl Client {
    pub(crate) fn spawn(options: MqttOptions) -> Client {
        let (client, mut event_loop) = AsyncClient::new(options, 64);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        event_loop.set_network_options(network);
        let (tx, incoming) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(event_loop, tx));
        Client {
            client,
            incoming,
            task,
        }
    }

    /// Connects and waits for CONNACK 0.
    pub(crate) async fn connect(options: MqttOptions) -> Client {
        let mut c = Self::spawn(options);
        c.expect("CONNACK", |p| matches!(p, Packet::ConnAck(_)))
            .await;
        c
    }

    /// The gateway, connected.
    pub(crate) async fn gateway(hub: &Hub) -> Client {
        Self::connect(options(hub.local_addr(), &gw(), GW_SECRET)).await
    }

    /// The next packet matching `pred`; panics on a deadline or a connection end.
    pub(crate) async fn expect(&mut self, what: &str, pred: impl Fn(&Packet) -> bool) -> Packet {
        let wait = async {
            loop {
                match self.incoming.recv().await {
                    Some(Incoming::Packet(p)) if pred(&p) => return p,
                    Some(Incoming::Packet(_)) => {}
                    Some(Incoming::Ended(e)) => panic!("connection ended waiting for {what}: {e}"),
                    None => panic!("event loop gone waiting for {what}"),
                }
            }
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .unwrap_or_else(|_| panic!("no {what} within {DEADLINE:?}"))
    }

    /// Whether no packet has arrived yet (nothing is waiting to be read).
    pub(crate) fn nothing_yet(&mut self) -> bool {
        self.incoming.try_recv().is_err()
    }

    /// Waits until the connection ends; returns why.
    pub(crate) async fn ended(&mut self) -> ConnectionError {
        let wait = async {
            loop {
                match self.incoming.recv().await {
                    Some(Incoming::Ended(e)) => return e,
                    Some(_) => {}
                    None => panic!("event loop gone"),
                }
            }
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .unwrap_or_else(|_| panic!("connection still up after {DEADLINE:?}"))
    }

    /// Subscribes and returns the SUBACK's return codes.
    pub(crate) async fn subscribe(
        &mut self,
        filter: &str,
        qos: QoS,
    ) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client
            .subscribe(filter, qos)
            .await
            .expect("SUBSCRIBE queued");
        match self
            .expect("SUBACK", |p| matches!(p, Packet::SubAck(_)))
            .await
        {
            Packet::SubAck(ack) => ack.return_codes,
            _ => unreachable!("matched above"),
        }
    }

    pub(crate) async fn publish(&self, topic: &str, payload: Value) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
            .await
            .expect("PUBLISH queued");
    }

    pub(crate) async fn publish_raw(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("PUBLISH queued");
    }

    /// The next PUBLISH on `topic` whose JSON matches `pred`.
    pub(crate) async fn expect_json(
        &mut self,
        topic: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let p = self
            .expect(topic, |p| match p {
                Packet::Publish(p) => {
                    p.topic == topic
                        && serde_json::from_slice::<Value>(&p.payload).is_ok_and(|v| pred(&v))
                }
                _ => false,
            })
            .await;
        match p {
            Packet::Publish(p) => serde_json::from_slice(&p.payload).expect("matched as JSON"),
            _ => unreachable!("matched above"),
        }
    }

    /// Sends a gateway operation about one device and returns the reply's first result.
    pub(crate) async fn operation(&mut self, kind: OperationType, device: GatewayDevice) -> i64 {
        let name = serde_json::to_value(kind).expect("serializes");
        let request = GatewayRequest::single(kind, device);
        self.publish_raw(&Topic::GatewayOperation(gw()).to_string(), request.encode())
            .await;
        let reply = self
            .expect_json(&Topic::GatewayOperationResult(gw()).to_string(), |v| {
                v["type"] == name
            })
            .await;
        reply["payload"]["devices"][0]["result"]
            .as_i64()
            .expect("an integer result")
    }

    /// Subscribes to the gateway's result topic, then brings `sub` online.
    pub(crate) async fn online(&mut self, sub: &DeviceId) {
        let result = Topic::GatewayOperationResult(gw()).to_string();
        self.subscribe(&result, QoS::AtLeastOnce).await;
        let code = self
            .operation(OperationType::Online, GatewayDevice::named(sub))
            .await;
        assert_eq!(code, 0, "online {sub}");
    }
}

/// The gateway connected, subscribed to its results and `sub`'s OTA topic, with `sub` online.
pub(crate) async fn gateway_with_online(hub: &Hub, sub: &DeviceId) -> Client {
    let mut gw = Client::gateway(hub).await;
    gw.online(sub).await;
    gw.subscribe(&Topic::OtaUpdate(sub.clone()).to_string(), QoS::AtLeastOnce)
        .await;
    gw
}

/// Whether the transcript has an event `name` whose detail contains `needle`.
pub(crate) fn has_event(hub: &Hub, name: &str, needle: &str) -> bool {
    hub.transcript().iter().any(|e| {
        e.direction == fake_hub::Direction::Event && e.topic == name && e.payload.contains(needle)
    })
}

/// Waits until the transcript has that event.
pub(crate) async fn wait_event(hub: &Hub, name: &str, needle: &str) {
    assert!(
        hub.wait_until(DEADLINE, |h| has_event(h, name, needle))
            .await,
        "no {name} event containing {needle:?}: {:#?}",
        hub.transcript()
    );
}

pub(crate) fn report_version(version: &str) -> Value {
    serde_json::json!({"type": "report_version", "report": {"version": version}})
}

pub(crate) fn progress(state: &str, version: &str, code: &str) -> Value {
    serde_json::json!({"type": "report_progress", "report": {"progress": {"state": state, "percent": "100", "result_code": code, "result_msg": ""}, "version": version}})
}
