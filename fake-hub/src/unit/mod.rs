//! Unit tests of the hub's rules without a broker: a [`Kit`] is a hub core with no broker
//! attached, driven through the same hooks the broker calls, on the hub's own clock moved by
//! the test. What the hub would publish is kept and read back; nothing listens on a socket.

mod auth;
mod cluster;
mod ota;
mod tasks;
mod topology;

use crate::broker::{AuthVerdict, BrokerHooks, ConnectInfo, Transport};
use crate::core::HubCore;
use crate::registry::{DeviceKind, DeviceRecord, FirmwareInfo};
use crate::store::{FirmwareStore, StoreError};
use crate::transcript::{Direction, TranscriptEntry};
use otasim_protocol::{Credentials, DeviceId, SignMethod};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub(crate) const GW_SECRET: &str = "Z3ctc2VjcmV0LWZvci10ZXN0cw==";
pub(crate) const SUB_SECRET: &str = "c3ViLXNlY3JldC1mb3ItdGVzdHM=";

/// Signs a URL as a string of the object and validity; never touches the network.
struct PaperStore;

impl FirmwareStore for PaperStore {
    fn put(&self, _object: &str, _bytes: Vec<u8>) -> Result<(), StoreError> {
        Ok(())
    }

    fn signed_url(&self, object: &str, valid_for: Duration) -> Result<String, StoreError> {
        Ok(format!(
            "http://cos.invalid/{object}?valid={}",
            valid_for.as_secs()
        ))
    }
}

pub(crate) fn id(product: &str, name: &str) -> DeviceId {
    DeviceId::new(product, name).expect("a valid id")
}

pub(crate) fn gw() -> DeviceId {
    id("JR1WOKB7Q6", "gw1")
}

pub(crate) fn sub(n: u32) -> DeviceId {
    id("E69UADXUYY", &format!("light{n}"))
}

/// A hub core without a broker.
pub(crate) struct Kit {
    pub(crate) core: Arc<HubCore>,
}

impl Kit {
    pub(crate) fn new() -> Kit {
        Kit {
            core: Arc::new(HubCore::new(
                Arc::new(PaperStore),
                Duration::from_secs(3600),
                false,
                None,
            )),
        }
    }

    fn add(&self, id: &DeviceId, secret: &str, kind: DeviceKind, bound_to: Option<DeviceId>) {
        self.core.lock().registry.add(DeviceRecord {
            id: id.clone(),
            secret: secret.to_owned(),
            kind,
            bound_to,
            enabled: true,
            version: Some("1.0".into()),
            online: false,
        });
    }

    pub(crate) fn gateway(&self, id: &DeviceId) {
        self.add(id, GW_SECRET, DeviceKind::Gateway, None);
    }

    pub(crate) fn subdevice(&self, id: &DeviceId, bound_to: Option<&DeviceId>) {
        self.add(id, SUB_SECRET, DeviceKind::Subdevice, bound_to.cloned());
    }

    pub(crate) fn firmware(&self, product_id: &str, version: &str) {
        self.core.lock().registry.put_firmware(FirmwareInfo {
            product_id: product_id.into(),
            version: version.into(),
            size_bytes: 4096,
            md5: "0123456789abcdef0123456789abcdef".into(),
            object: format!("{product_id}_{version}"),
        });
    }

    /// The gateway's connection is up.
    pub(crate) fn connected(&self, gateway: &DeviceId) {
        self.core.on_connected(&gateway.client_id());
    }

    /// A publish from `client` that the ACL allowed (answers whether it did).
    pub(crate) fn publish(&self, client: &DeviceId, topic: &str, payload: &Value) -> bool {
        let client_id = client.client_id();
        if !self.core.allow_publish(&client_id, topic) {
            return false;
        }
        let bytes = payload.to_string().into_bytes();
        self.core.on_publish(&client_id, topic, &bytes, 1);
        true
    }

    /// A gateway operation: answers the result of each device in the reply, in order.
    pub(crate) fn operation(&self, gateway: &DeviceId, kind: &str, devices: Value) -> Vec<i64> {
        let topic = format!("$gateway/operation/{gateway}");
        let sent = serde_json::json!({"type": kind, "payload": {"devices": devices}});
        assert!(
            self.publish(gateway, &topic, &sent),
            "the ACL refused {topic}"
        );
        let reply_topic = format!("$gateway/operation/result/{gateway}");
        let replies: Vec<Value> = self
            .take_published()
            .into_iter()
            .filter(|(t, _)| *t == reply_topic)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(replies.len(), 1, "one reply to {kind}: {replies:?}");
        replies[0]["payload"]["devices"]
            .as_array()
            .map(|ds| ds.iter().filter_map(|d| d["result"].as_i64()).collect())
            .unwrap_or_default()
    }

    /// Brings `subs` (bound to `gateway`) online through it.
    pub(crate) fn online(&self, gateway: &DeviceId, subs: &[DeviceId]) {
        for s in subs {
            let named =
                serde_json::json!([{"product_id": s.product_id(), "device_name": s.device_name()}]);
            assert_eq!(self.operation(gateway, "online", named), [0], "online {s}");
        }
    }

    /// What the hub published since the last call, as (topic, JSON).
    pub(crate) fn take_published(&self) -> Vec<(String, Value)> {
        std::mem::take(&mut *self.core.published.lock().expect("not poisoned"))
            .into_iter()
            .map(|(t, p)| (t, serde_json::from_slice(&p).unwrap_or(Value::Null)))
            .collect()
    }

    pub(crate) fn transcript(&self) -> Vec<TranscriptEntry> {
        self.core.transcript().all()
    }

    /// Events of `name` in the transcript, by detail.
    pub(crate) fn events(&self, name: &str) -> Vec<String> {
        self.transcript()
            .into_iter()
            .filter(|e| e.direction == Direction::Event && e.topic == name)
            .map(|e| e.payload)
            .collect()
    }

    /// Moves the hub's clocks forward by `ms`.
    pub(crate) fn advance_ms(&self, ms: u64) {
        self.core.clock.advance(Duration::from_millis(ms));
    }

    /// Runs the scheduler once, as its loop does when woken.
    pub(crate) fn tick(&self) -> Option<Duration> {
        crate::tasks::schedule::tick(&self.core)
    }

    /// A CONNECT as the SDKs make it for `device`, over plain TCP.
    pub(crate) fn connect_info(
        &self,
        device: &DeviceId,
        secret: &str,
        expiry: u64,
        method: SignMethod,
    ) -> ConnectInfo {
        let creds = Credentials::make(device, secret, "unit", expiry, method).expect("credentials");
        ConnectInfo {
            client_id: creds.client_id,
            username: Some(creds.username),
            password: Some(creds.password.into_bytes()),
            protocol_level: 4,
            keepalive_secs: 60,
            peer: std::net::SocketAddr::from(([127, 0, 0, 1], 5000)),
            will_topic: None,
            taken: false,
            transport: Transport::Plain,
        }
    }

    pub(crate) fn authenticate(&self, info: &ConnectInfo) -> AuthVerdict {
        self.core.authenticate(info)
    }
}
