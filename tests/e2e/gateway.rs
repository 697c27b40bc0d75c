//! End-to-end tests: our gateway against fake hub and fake COS on loopback, in process and as
//! the `otasim gateway` process. The rig below is shared by the families in `gateway/`.

mod burners;
mod limits;
mod process;
mod resilience;
mod shutdown;
mod tls;

use crate::support::within;
use fake_cos::{Cos, CosConfig};
use fake_hub::{Hub, HubConfig, PushMethod, PushRequest, UpdateState};
use gateway::download::{CheckpointPolicy, DownloadConfig, RetryPolicy, Timeouts};
use gateway::{Gateway, GatewayConfig, GatewayEvent, GatewayOptions, HubAddress, SubdeviceConfig};
use otasim_protocol::DeviceId;
use scenarios::CosStore;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

const GATEWAY_PID: &str = "JR1WOKB7Q7";
const SUB_PID: &str = "E69UADXUYY";
const SECRET: &str = "1RRdhkwmZ45wYXjuPfygeA==";

/// Deterministic image bytes.
fn image(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Fake hub and fake COS with one gateway and `subs` lights bound to it, all at 0.1.
struct Rig {
    hub: Hub,
    cos: Cos,
    dir: tempfile::TempDir,
    gateway: DeviceId,
    subs: Vec<DeviceId>,
}

impl Rig {
    async fn start(subs: usize) -> Rig {
        Self::start_with(subs, HubConfig::loopback(), CosConfig::default()).await
    }

    async fn start_with(subs: usize, hub: HubConfig, cos: CosConfig) -> Rig {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind cos");
        let cos = fake_cos::start(listener, cos).await.expect("fake cos");
        let hub = Hub::start(hub, Arc::new(CosStore(cos.clone())))
            .await
            .expect("fake hub");
        let gateway = DeviceId::new(GATEWAY_PID, "gw_deng1").expect("gateway id");
        hub.add_gateway(&gateway, SECRET);
        let subs: Vec<DeviceId> = (1..=subs)
            .map(|i| DeviceId::new(SUB_PID, format!("light{i}")).expect("sub id"))
            .collect();
        for sub in &subs {
            hub.add_subdevice(sub, SECRET, Some(&gateway), Some("0.1"));
        }
        let dir = tempfile::tempdir().expect("temp dir");
        Rig {
            hub,
            cos,
            dir,
            gateway,
            subs,
        }
    }

    fn upload(&self, version: &str, bytes: Vec<u8>) {
        self.hub
            .upload_firmware(SUB_PID, version, bytes)
            .expect("upload firmware");
    }

    fn object(version: &str) -> String {
        format!("{SUB_PID}_{version}")
    }

    fn config(&self) -> GatewayConfig {
        GatewayConfig {
            device: self.gateway.clone(),
            secret: SECRET.into(),
            hub: HubAddress {
                host: "127.0.0.1".into(),
                port: self.hub.local_addr().port(),
            },
            subdevices: self
                .subs
                .iter()
                .map(|id| SubdeviceConfig {
                    id: id.clone(),
                    factory_version: "0.1".into(),
                })
                .collect(),
            state_dir: self.dir.path().join("state"),
            max_image_bytes: 64 << 20,
            keepalive: Duration::from_secs(30),
            download: fast_download(),
        }
    }

    /// Starts the gateway in process and waits until every subdevice is online.
    async fn gateway(
        &self,
        options: GatewayOptions,
    ) -> (Gateway, broadcast::Receiver<GatewayEvent>) {
        let gw = Gateway::start_with(self.config(), options).expect("gateway starts");
        let events = gw.events();
        self.wait_online().await;
        (gw, events)
    }

    async fn wait_online(&self) {
        let subs = self.subs.clone();
        let online = self
            .hub
            .wait_until(crate::support::DEADLINE, |hub| {
                subs.iter().all(|s| {
                    hub.device(s)
                        .is_some_and(|d| d.online && d.version.as_deref().is_some())
                })
            })
            .await;
        assert!(online, "subdevices did not come online");
    }

    fn push(&self, version: &str, devices: &[DeviceId]) -> u64 {
        let request = PushRequest {
            product_id: SUB_PID.into(),
            version: version.into(),
            method: PushMethod::Devices {
                devices: devices.iter().map(|d| d.device_name().to_owned()).collect(),
            },
        };
        self.hub.push(request).expect("push")
    }

    /// Waits until `device`'s update is final and returns its state.
    async fn final_state(&self, device: &DeviceId) -> UpdateState {
        let done = self
            .hub
            .wait_until(crate::support::DEADLINE, |hub| {
                hub.device(device)
                    .and_then(|d| d.update)
                    .is_some_and(|u| u.state.is_final())
            })
            .await;
        assert!(
            done,
            "update of {device} did not end: {:?}",
            self.hub.device(device)
        );
        self.hub
            .device(device)
            .and_then(|d| d.update)
            .expect("update present")
            .state
    }

    /// The `report_progress` states the hub received from `device`, in order.
    fn reported_states(&self, device: &DeviceId) -> Vec<String> {
        let topic = format!("$ota/report/{device}");
        self.hub
            .transcript()
            .iter()
            .filter(|e| e.topic == topic)
            .filter_map(|e| e.json())
            .filter(|v| v["type"] == "report_progress")
            .map(|v| {
                v["report"]["progress"]["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    /// GET requests fake COS journaled for an object.
    fn requests(&self, object: &str) -> Vec<fake_cos::JournalEntry> {
        self.cos
            .journal()
            .into_iter()
            .filter(|e| e.object.as_deref() == Some(object))
            .collect()
    }

    async fn shutdown(self) {
        self.hub.shutdown().await;
        self.cos.shutdown().await;
    }
}

/// Short idle timeout and backoff, small checkpoints: faults resolve quickly.
fn fast_download() -> DownloadConfig {
    DownloadConfig {
        timeouts: Timeouts::new(
            Duration::from_secs(5),
            Duration::from_secs(5),
            Duration::from_millis(500),
        )
        .expect("valid timeouts"),
        retry: RetryPolicy::new(
            NonZeroU32::new(6).expect("not zero"),
            Duration::from_secs(60),
            Duration::from_millis(10),
            Duration::from_millis(50),
        )
        .expect("valid retry policy"),
        checkpoint: CheckpointPolicy::EveryBytes(NonZeroU64::new(64 << 10).expect("not zero")),
        write_buffer_bytes: NonZeroUsize::new(64 << 10).expect("not zero"),
        ..DownloadConfig::default()
    }
}

/// Receives events until `until` says stop; returns them all.
async fn collect_events(
    rx: &mut broadcast::Receiver<GatewayEvent>,
    what: &str,
    mut until: impl FnMut(&[GatewayEvent]) -> bool,
) -> Vec<GatewayEvent> {
    let mut seen = Vec::new();
    within(what, async {
        while !until(&seen) {
            match rx.recv().await {
                Ok(e) => seen.push(e),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    })
    .await;
    seen
}

/// `(code, message)` of a failed update.
fn failure(state: &UpdateState) -> (i32, String) {
    match state {
        UpdateState::Failed { code, message } => (*code, message.clone()),
        other => panic!("expected a failed update, got {other:?}"),
    }
}
