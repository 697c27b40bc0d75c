//! An embedded fake Tencent Cloud IoT Hub for offline OTA tests.
//!
//! rmqtt is the broker, embedded in-process; on top of it sits the Hub's logic: a device
//! registry with key auth (CONNACK 4 and 5 as the real Hub answers), topic ACLs, gateway
//! topology (`online`, `offline`, `bind`, ...), a firmware registry, console pushes by the three
//! methods, per-device update tracking, and a transcript of every MQTT message in and out.
//! Firmware bytes live in a [`FirmwareStore`] (fake COS, wired by the caller), so the hub does
//! not depend on any COS implementation.
//!
//! Beyond the seed: certificate auth on a second, mutual-TLS listener; a hub clock tests move;
//! a strict mode for the C SDK's limits; tasks with timeouts, retries, rate limits, start delays
//! and override; and misbehaviour on cue through [`HubFaultRule`]s.

mod acl;
pub mod api;
mod auth;
mod broker;
mod clock;
pub mod cluster;
mod core;
mod faults;
mod hooks;
mod http;
mod hub_cos;
mod ota;
mod registry;
mod services;
mod store;
mod strict;
mod tasks;
mod tls;
mod topology;
mod transcript;
#[cfg(test)]
mod unit;

pub use acl::TopicAccess;
pub use faults::{FaultId, Fires, HubFaultAction, HubFaultRule, InstalledFault, Milestone};
pub use http::{HttpRecord, HttpRequest, MAX_NAMED_DEVICES, RequestSink};
pub use registry::{DeviceKind, FirmwareInfo};
pub use store::{FirmwareStore, StoreError, StoredObject};
pub use tasks::{
    DeviceUpdate, PushMethod, PushRequest, RateLimit, TaskOptions, TaskRequest, TaskStatus,
    UpdateState,
};
pub use tls::{DeviceCert, ca_as_c_array};
pub use topology::{BIND_MAX_AGE_SECS, BIND_MAX_AHEAD_SECS};
pub use transcript::{
    Direction, MAX_CLIENT_ID_BYTES, MAX_PAYLOAD_BYTES, MAX_TOPIC_BYTES, TranscriptEntry,
    TranscriptLimits,
};

use crate::core::HubCore;
use broker::{Broker, BrokerConfig, FrontLimits, TlsListener};
use otasim_protocol::DeviceId;
use registry::DeviceRecord;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How the hub listens and signs.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The MQTT listener; `127.0.0.1:0` for an OS-assigned port.
    pub mqtt_addr: SocketAddr,
    /// How long a signed firmware URL stays valid.
    pub url_validity: Duration,
    /// The TLS port (`127.0.0.1:0` for an OS-assigned port; `None` for none): TLS 1.2 PSK for
    /// key-auth C SDK devices, server-certificate TLS for clients sending a password, and mutual
    /// TLS for certificate devices, all on one port.
    pub tls_addr: Option<SocketAddr>,
    /// Warn when a hub message would break a real C SDK device (see [`Hub::set_strict`]).
    pub strict: bool,
    /// How much transcript the hub keeps in memory (see [`Hub::transcript`]).
    pub transcript_limits: TranscriptLimits,
    /// How long a new connection on any MQTT listener has to send its whole CONNECT (TLS
    /// handshake included); slower ones are closed and recorded.
    pub connect_deadline: Duration,
    /// How many connections each MQTT listener holds at once; more are closed at accept.
    pub max_connections_per_listener: usize,
    /// Host names or IPs the TLS server certificate names besides
    /// `*.iotcloud.tencentdevices.com`, `localhost` and 127.0.0.1 (for example each product's
    /// `{pid}.iotcloud.tencentdevices.com`).
    pub tls_names: Vec<String>,
    /// The cluster this hub owns, if it is the owner node of one (see [`cluster`]).
    pub cluster: Option<cluster::ClusterConfig>,
}

/// The default CONNECT deadline: ample for any real client, short enough to shed idle sockets.
pub const DEFAULT_CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// The default cap of connections per MQTT listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

impl HubConfig {
    /// MQTT on loopback with an OS-assigned port, URLs valid for an hour, no TLS, not strict.
    pub fn loopback() -> Self {
        HubConfig {
            mqtt_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            url_validity: Duration::from_secs(3600),
            tls_addr: None,
            strict: false,
            transcript_limits: TranscriptLimits::DEFAULT,
            connect_deadline: DEFAULT_CONNECT_DEADLINE,
            max_connections_per_listener: DEFAULT_MAX_CONNECTIONS,
            tls_names: Vec::new(),
            cluster: None,
        }
    }

    /// [`HubConfig::loopback`] plus the TLS port on an OS-assigned loopback port.
    pub fn loopback_with_tls() -> Self {
        HubConfig {
            tls_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..Self::loopback()
        }
    }
}

/// Why the hub refused an action.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The broker could not start.
    #[error("starting the broker: {0}")]
    Broker(String),
    /// A device or product is unknown.
    #[error("unknown device {0}")]
    UnknownDevice(String),
    /// No firmware of that product and version was uploaded.
    #[error("no firmware {version} for product {product_id}")]
    UnknownFirmware {
        /// The product.
        product_id: String,
        /// The version.
        version: String,
    },
    /// The firmware store refused the operation.
    #[error("firmware store: {0}")]
    Store(#[from] StoreError),
    /// That version was uploaded before with other bytes (devices may run the old image under
    /// that name); upload with `replace` to overwrite it.
    #[error(
        "firmware {version} of product {product_id} exists with other bytes (md5 {md5}); ask to replace it"
    )]
    FirmwareConflict {
        /// The product.
        product_id: String,
        /// The version.
        version: String,
        /// The MD5 of the bytes stored now.
        md5: String,
    },
    /// A push selected no device.
    #[error("the push selects no device")]
    NoTargets,
    /// The hub's certificates could not be made or written.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The hub was started without a TLS listener.
    #[error("the hub has no TLS listener")]
    NoTls,
    /// An argument is invalid.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// A device as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceStatus {
    /// The device.
    pub device: DeviceId,
    /// Gateway or subdevice.
    pub kind: DeviceKind,
    /// Its gateway, for a bound subdevice.
    pub bound_to: Option<DeviceId>,
    /// Connected (gateway) or online through its gateway (subdevice).
    pub online: bool,
    /// Whether it may connect (gateway) or be bound (subdevice).
    pub enabled: bool,
    /// The last version reported.
    pub version: Option<String>,
    /// Its current update, if any.
    pub update: Option<DeviceUpdate>,
}

fn device_status(state: &core::State, rec: &DeviceRecord) -> Option<DeviceStatus> {
    Some(DeviceStatus {
        device: rec.id.clone(),
        kind: rec.kind,
        bound_to: rec.bound_to.clone(),
        online: rec.online,
        enabled: rec.enabled,
        version: rec.version.clone(),
        update: state.updates.get(&rec.id).cloned(),
    })
}

/// A running fake hub.
pub struct Hub {
    core: Arc<HubCore>,
    broker: Broker,
    /// What every node's broker reaches the Hub through (the edges over the control API).
    owner: Arc<cluster::Owner>,
}

/// A broker's start error with its cause, as one line.
fn broker_error(e: broker::BrokerError) -> HubError {
    HubError::Broker(match std::error::Error::source(&e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    })
}

impl Hub {
    /// Starts the hub's broker on `config.mqtt_addr` (and `config.tls_addr`).
    pub async fn start(config: HubConfig, store: Arc<dyn FirmwareStore>) -> Result<Hub, HubError> {
        if config.max_connections_per_listener == 0 {
            return Err(HubError::Invalid {
                field: "max_connections_per_listener",
                reason: "must be at least 1".into(),
            });
        }
        if config.connect_deadline.is_zero() {
            return Err(HubError::Invalid {
                field: "connect_deadline",
                reason: "must be more than 0".into(),
            });
        }
        let ca = match config.tls_addr {
            Some(_) => Some(tls::HubCa::generate(&config.tls_names)?),
            None => None,
        };
        let tls = config
            .tls_addr
            .zip(ca.as_ref())
            .map(|(addr, ca)| TlsListener {
                addr,
                cert_pem: ca.server_cert_pem().to_owned(),
                key_pem: ca.server_key_pem().to_owned(),
                client_ca_pem: ca.ca_pem().to_owned(),
            });
        let limits = FrontLimits {
            connect_deadline: config.connect_deadline,
            max_connections: config.max_connections_per_listener,
        };
        if let Some(cluster) = &config.cluster {
            cluster.validate()?;
        }
        let core = Arc::new(HubCore::new(store, config.url_validity, config.strict, ca));
        *core.transcript() = transcript::Ring::new(config.transcript_limits);
        let node = config
            .cluster
            .as_ref()
            .map_or(cluster::SOLO_NODE, |c| c.node_id);
        let owner = Arc::new(cluster::Owner::new(Arc::clone(&core), node));
        let broker = Broker::start(
            BrokerConfig {
                mqtt_addr: config.mqtt_addr,
                tls,
                limits,
                cluster: config.cluster,
            },
            Arc::clone(&owner) as _,
        )
        .await
        .map_err(broker_error)?;
        core.attach(broker.handle());
        core.store()
            .attach(http::RequestSink::new(Arc::downgrade(&core)));
        core.spawn(tasks::schedule::run(Arc::clone(&core)));
        Ok(Hub {
            core,
            broker,
            owner,
        })
    }

    /// The MQTT listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.broker.local_addr()
    }

    /// What every node's broker reaches the Hub through.
    pub(crate) fn owner(&self) -> &cluster::Owner {
        &self.owner
    }

    /// Registers a gateway with its base64 secret.
    pub fn add_gateway(&self, id: &DeviceId, secret: &str) {
        self.add(id, secret, DeviceKind::Gateway, None, None);
    }

    /// Registers a subdevice, bound to `gateway` if given, running `version` if known.
    pub fn add_subdevice(
        &self,
        id: &DeviceId,
        secret: &str,
        gateway: Option<&DeviceId>,
        version: Option<&str>,
    ) {
        self.add(
            id,
            secret,
            DeviceKind::Subdevice,
            gateway.cloned(),
            version.map(str::to_owned),
        );
    }

    fn add(
        &self,
        id: &DeviceId,
        secret: &str,
        kind: DeviceKind,
        bound_to: Option<DeviceId>,
        version: Option<String>,
    ) {
        self.core.lock().registry.add(DeviceRecord {
            id: id.clone(),
            secret: secret.to_owned(),
            kind,
            bound_to,
            enabled: true,
            version,
            online: false,
        });
        self.core.bump();
    }

    /// Uploads a firmware image: computes size and MD5 and puts it in the store. Uploading a
    /// version again with the same bytes changes nothing; with other bytes it is refused with
    /// [`HubError::FirmwareConflict`] (see [`Hub::upload_firmware_replacing`]).
    pub fn upload_firmware(
        &self,
        product_id: &str,
        version: &str,
        bytes: Vec<u8>,
    ) -> Result<FirmwareInfo, HubError> {
        hub_cos::upload(self, product_id, version, bytes, false)
    }

    /// The uploaded firmware, by product and version.
    pub fn firmware(&self) -> Vec<FirmwareInfo> {
        self.core.lock().registry.all_firmware()
    }

    /// Pushes an update as the console does, with default options; returns the task id.
    /// Devices with a pending update under another task are skipped and listed in the task
    /// (see [`Hub::create_task`] to override them).
    pub fn push(&self, request: PushRequest) -> Result<u64, HubError> {
        tasks::create::push(&self.core, request.into())
    }

    /// A device's state.
    pub fn device(&self, id: &DeviceId) -> Option<DeviceStatus> {
        let state = self.core.lock();
        device_status(&state, state.registry.get(id)?)
    }

    /// Every device's state, ordered by id: one snapshot, taken under one lock.
    pub fn devices(&self) -> Vec<DeviceStatus> {
        let state = self.core.lock();
        state
            .registry
            .devices()
            .filter_map(|rec| device_status(&state, rec))
            .collect()
    }

    /// Every task, oldest first: one snapshot, taken under one lock.
    pub fn tasks(&self) -> Vec<TaskStatus> {
        let state = self.core.lock();
        state
            .tasks
            .keys()
            .filter_map(|id| tasks::create::status_of(&state, *id))
            .collect()
    }

    /// A task and its devices.
    pub fn task(&self, id: u64) -> Option<TaskStatus> {
        tasks::create::status_of(&self.core.lock(), id)
    }

    /// The transcript as kept: every entry unless more were recorded than
    /// [`HubConfig::transcript_limits`] keeps, then the newest. Seqs count from 0 over the
    /// hub's whole life, so `seq` of the first entry says how many were dropped.
    pub fn transcript(&self) -> Vec<TranscriptEntry> {
        self.core.transcript().all()
    }

    /// Up to `limit` kept entries with `seq >= since`, oldest first: a page of the transcript
    /// that copies only what it returns.
    pub fn transcript_since(&self, since: u64, limit: usize) -> Vec<TranscriptEntry> {
        self.core.transcript().page(since, limit, |_| true)
    }

    /// A page as [`Hub::transcript_since`], of the entries `keep` accepts (run under the
    /// transcript's lock: keep it cheap).
    pub(crate) fn transcript_page(
        &self,
        since: u64,
        limit: usize,
        keep: impl FnMut(&TranscriptEntry) -> bool,
    ) -> Vec<TranscriptEntry> {
        self.core.transcript().page(since, limit, keep)
    }

    /// The seq the next transcript entry will get (how many were ever recorded).
    pub fn transcript_next_seq(&self) -> u64 {
        self.core.transcript().next_seq()
    }

    /// Transcript entries as they happen.
    pub fn watch_transcript(&self) -> broadcast::Receiver<TranscriptEntry> {
        self.core.live()
    }

    /// Disconnects a client, as the Hub does when it drops a device.
    pub fn kick(&self, client_id: &str) {
        self.core.kick(client_id);
    }

    /// Waits until `check` holds on the hub, re-checking on every change, for at most `timeout`.
    /// Returns whether it held.
    pub async fn wait_until(&self, timeout: Duration, mut check: impl FnMut(&Hub) -> bool) -> bool {
        let mut rev = self.core.revision();
        let wait = async {
            loop {
                if check(self) {
                    return;
                }
                if rev.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok() && check(self)
    }

    /// Stops the broker; every connection is closed and the port freed.
    pub async fn shutdown(self) {
        self.broker.shutdown().await;
    }
}
