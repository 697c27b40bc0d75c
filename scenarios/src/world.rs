//! A world for one scenario: fake COS, fake hub and gateways, on loopback with their own ports
//! and temp directories, so scenarios run side by side.

use crate::plan::Plan;
use bytes::Bytes;
use fake_cos::{Cos, CosConfig};
use fake_hub::{FirmwareStore, Hub, HubConfig};
use gateway::{Gateway, GatewayConfig, GatewayEvent, HubAddress, SubdeviceConfig};
use otasim_protocol::DeviceId;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// Why a world could not be built (infrastructure, not a scenario failure).
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// A listener or temp directory could not be made.
    #[error("{what}: {source}")]
    Io {
        /// What was being set up.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A fake would not start.
    #[error("{0}")]
    Start(String),
}

/// Puts hub uploads on fake COS and signs URLs with it.
struct CosStore(Cos);

impl FirmwareStore for CosStore {
    fn put(&self, object: &str, bytes: Vec<u8>) -> Result<(), String> {
        self.0
            .put_object(object, Bytes::from(bytes))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn signed_url(&self, object: &str, valid_for: Duration) -> Result<String, String> {
        self.0
            .signed_url(object, valid_for)
            .map_err(|e| e.to_string())
    }
}

/// The running parts of one scenario.
pub struct World {
    /// The fake hub.
    pub hub: Hub,
    /// The fake COS.
    pub cos: Cos,
    gateways: BTreeMap<DeviceId, Gateway>,
    configs: BTreeMap<DeviceId, GatewayConfig>,
    events: Arc<Mutex<Vec<(DeviceId, GatewayEvent)>>>,
    _dir: tempfile::TempDir,
}

impl World {
    /// Starts COS and hub, registers the fleet, uploads firmware and installs COS faults; the
    /// gateways are configured but not started.
    pub async fn build(plan: &Plan) -> Result<World, WorldError> {
        let dir = tempfile::Builder::new()
            .prefix("otasim-")
            .tempdir()
            .map_err(|source| WorldError::Io {
                what: "temp dir",
                source,
            })?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| WorldError::Io {
                what: "cos listener",
                source,
            })?;
        let cos = fake_cos::start(listener, CosConfig::default())
            .await
            .map_err(|e| WorldError::Start(format!("fake-cos: {e}")))?;
        let hub = Hub::start(HubConfig::loopback(), Arc::new(CosStore(cos.clone())))
            .await
            .map_err(|e| WorldError::Start(format!("fake-hub: {e}")))?;
        for g in &plan.gateways {
            hub.add_gateway(&g.id, &g.secret);
        }
        for s in &plan.subdevices {
            hub.add_subdevice(&s.id, &s.secret, s.bound.then_some(&s.gateway), None);
        }
        for f in &plan.firmware {
            hub.upload_firmware(&f.product_id, &f.version, f.bytes())
                .map_err(|e| {
                    WorldError::Start(format!(
                        "uploading firmware {}/{}: {e}",
                        f.product_id, f.version
                    ))
                })?;
        }
        for rule in &plan.cos_faults {
            // Installed for the world's lifetime: the guard is forgotten on purpose.
            let guard = cos
                .add_rule(rule.clone())
                .map_err(|e| WorldError::Start(format!("cos fault: {e}")))?;
            std::mem::forget(guard);
        }
        let hub_addr = HubAddress {
            host: "127.0.0.1".into(),
            port: hub.local_addr().port(),
        };
        let configs = plan
            .gateways
            .iter()
            .map(|g| {
                let subdevices = plan
                    .subdevices
                    .iter()
                    .filter(|s| s.gateway == g.id)
                    .map(|s| SubdeviceConfig {
                        id: s.id.clone(),
                        factory_version: s.version.clone(),
                    })
                    .collect();
                let config = GatewayConfig {
                    device: g.id.clone(),
                    secret: g.secret.clone(),
                    hub: hub_addr.clone(),
                    subdevices,
                    state_dir: dir.path().join(g.id.client_id()),
                    max_image_bytes: 512 << 20,
                    keepalive: Duration::from_secs(60),
                    download: gateway::download::DownloadConfig::default(),
                };
                (g.id.clone(), config)
            })
            .collect();
        Ok(World {
            hub,
            cos,
            gateways: BTreeMap::new(),
            configs,
            events: Arc::default(),
            _dir: dir,
        })
    }

    /// Starts (or reboots, on the same state directory) every gateway that is not running.
    pub fn start_gateways(&mut self) -> Result<(), WorldError> {
        for (id, config) in &self.configs {
            if self.gateways.contains_key(id) {
                continue;
            }
            let gw = Gateway::start(config.clone())
                .map_err(|e| WorldError::Start(format!("gateway {id}: {e}")))?;
            let mut rx = gw.events();
            let events = Arc::clone(&self.events);
            let id2 = id.clone();
            tokio::spawn(async move {
                while let Ok(ev) = rx.recv().await {
                    events
                        .lock()
                        .expect("event log lock")
                        .push((id2.clone(), ev));
                }
            });
            self.gateways.insert(id.clone(), gw);
        }
        Ok(())
    }

    /// What the gateways did so far.
    pub fn gateway_events(&self) -> Vec<(DeviceId, GatewayEvent)> {
        self.events.lock().expect("event log lock").clone()
    }

    /// Stops everything and removes the temp directory.
    pub async fn shutdown(self) {
        for (_, gw) in self.gateways {
            gw.shutdown().await;
        }
        self.hub.shutdown().await;
        self.cos.shutdown().await;
    }
}
