//! A world for one scenario: fake COS, fake hub and gateways, on loopback with their own ports
//! and temp directories, so scenarios run side by side.

use crate::CosStore;
use crate::burner::ScenarioBurner;
use crate::happened::Happened;
use crate::plan::{GatewayRun, Plan};
use fake_cos::{Cos, CosConfig, FaultRule, Verdict};
use fake_hub::{Hub, HubConfig};
use gateway::{Gateway, GatewayConfig, GatewayEvent, GatewayOptions, HubAddress, SubdeviceConfig};
use otasim_protocol::DeviceId;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

mod external;
use external::{Placeholders, spawn_external};

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

/// Something the runner did or saw besides MQTT, placed in the transcript's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Note {
    /// How many transcript entries existed when it happened.
    pub after_seq: u64,
    /// Milliseconds since the hub started (approximate for HTTP requests).
    pub at_ms: f64,
    /// `step`, `http` or `gateway`.
    pub kind: String,
    /// What happened.
    pub text: String,
    /// For `http`: the COS journal's request number.
    pub cos_seq: Option<u64>,
}

enum Running {
    Builtin(Gateway),
    External(tokio::process::Child),
}

struct Slot {
    config: GatewayConfig,
    run: GatewayRun,
    burner: Arc<ScenarioBurner>,
    running: Option<Running>,
    max_concurrent: Option<std::num::NonZeroUsize>,
    quota_bytes: Option<u64>,
    /// Factory versions, for the external command's placeholders.
    versions: Vec<(DeviceId, String)>,
}

/// Where a world listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ports {
    /// OS-assigned loopback ports: worlds run side by side.
    #[default]
    Loopback,
    /// Fixed ports on loopback, for gateways that cannot be told a port (the C SDK dials 1883
    /// and downloads from port 80; URLs then carry no port). One such world at a time.
    Fixed {
        /// The MQTT port (1883 for the SDKs).
        mqtt: u16,
        /// The COS port (80 for the SDKs).
        cos: u16,
    },
}

impl Ports {
    /// The SDKs' own ports: MQTT 1883, COS 80.
    pub const SDK: Ports = Ports::Fixed {
        mqtt: 1883,
        cos: 80,
    };
}

/// Held while a fixed-port world exists: such worlds run one at a time.
static FIXED_PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the world's observers share.
#[derive(Default)]
struct Log {
    events: Mutex<Vec<(DeviceId, GatewayEvent)>>,
    notes: Mutex<Vec<Note>>,
    transcript_len: AtomicU64,
}

/// The running parts of one scenario.
pub struct World {
    /// The fake hub.
    pub hub: Arc<Hub>,
    /// The fake COS.
    pub cos: Cos,
    slots: BTreeMap<DeviceId, Slot>,
    log: Arc<Log>,
    started: Instant,
    watchers: Vec<tokio::task::JoinHandle<()>>,
    time_scale: f64,
    /// The plan's burn timeout for built-in gateways (their default, scaled, if unset).
    burn_timeout: Option<Duration>,
    /// The `raw_publish` steps' connections, by identity, while the hub keeps them open.
    pub(crate) raw_clients: BTreeMap<DeviceId, crate::raw_client::RawClient>,
    _fixed: Option<tokio::sync::MutexGuard<'static, ()>>,
    _dir: tempfile::TempDir,
}

/// A `wrong_url` may name this world's COS as `{cos}` (its `ip:port`, OS-assigned), so a
/// scenario can send a real COS URL with, say, a signature that does not match.
pub(crate) fn with_cos_address(
    mut rule: fake_hub::HubFaultRule,
    cos: std::net::SocketAddr,
) -> fake_hub::HubFaultRule {
    if let fake_hub::HubFaultAction::WrongUrl { url } = &mut rule.action {
        *url = url.replace("{cos}", &cos.to_string());
    }
    rule
}

fn start_err(what: &str) -> impl FnOnce(String) -> WorldError + '_ {
    move |e| WorldError::Start(format!("{what}: {e}"))
}

impl World {
    /// Starts COS and hub, registers the fleet, uploads firmware (under the plan's seed) and
    /// installs COS faults; the gateways are configured but not started.
    pub async fn build(plan: &Plan) -> Result<World, WorldError> {
        World::build_on(plan, Ports::Loopback).await
    }

    /// [`World::build`] on the given ports; a fixed-port world waits for the one before it.
    pub async fn build_on(plan: &Plan, ports: Ports) -> Result<World, WorldError> {
        let io = |what| move |source| WorldError::Io { what, source };
        let fixed = match ports {
            Ports::Loopback => None,
            Ports::Fixed { .. } => Some(FIXED_PORTS.lock().await),
        };
        let (mqtt_port, cos_port) = match ports {
            Ports::Loopback => (0, 0),
            Ports::Fixed { mqtt, cos } => (mqtt, cos),
        };
        let dir = tempfile::Builder::new()
            .prefix("otasim-")
            .tempdir()
            .map_err(io("temp dir"))?;
        let listener = TcpListener::bind(("127.0.0.1", cos_port))
            .await
            .map_err(|e| {
                WorldError::Start(format!("binding the COS port 127.0.0.1:{cos_port}: {e}"))
            })?;
        let cos = fake_cos::start(listener, CosConfig::default())
            .await
            .map_err(|e| WorldError::Start(format!("fake-cos: {e}")))?;
        let started = Instant::now();
        let mut config = HubConfig::loopback();
        config.mqtt_addr.set_port(mqtt_port);
        let hub = Hub::start(config, Arc::new(CosStore(cos.clone())))
            .await
            .map_err(|e| WorldError::Start(format!("fake-hub on MQTT port {mqtt_port}: {e}")))?;
        for g in &plan.gateways {
            hub.add_gateway(&g.id, &g.secret);
        }
        for s in &plan.subdevices {
            hub.add_subdevice(&s.id, &s.secret, s.bound.then_some(&s.gateway), None);
        }
        for (i, rule) in plan.hub_faults.iter().enumerate() {
            hub.add_fault(with_cos_address(rule.clone(), cos.local_addr()))
                .map_err(|e| start_err("hub fault")(format!("hub_faults[{i}]: {e}")))?;
        }
        for f in &plan.firmware {
            hub.upload_firmware(&f.product_id, &f.version, f.bytes_with(plan.seed))
                .map_err(|e| {
                    start_err("uploading firmware")(format!("{}/{}: {e}", f.product_id, f.version))
                })?;
        }
        let mut world = World {
            hub: Arc::new(hub),
            cos,
            slots: BTreeMap::new(),
            log: Arc::default(),
            started,
            watchers: Vec::new(),
            time_scale: plan.time_scale,
            burn_timeout: plan.burn_timeout,
            raw_clients: BTreeMap::new(),
            _fixed: fixed,
            _dir: dir,
        };
        for rule in &plan.cos_faults {
            world.add_cos_fault(rule.clone(), None)?;
        }
        world.configure(plan)?;
        world.watch();
        Ok(world)
    }

    fn configure(&mut self, plan: &Plan) -> Result<(), WorldError> {
        let hub_addr = HubAddress {
            host: "127.0.0.1".into(),
            port: self.hub.local_addr().port(),
        };
        for g in &plan.gateways {
            let subs: Vec<_> = plan
                .subdevices
                .iter()
                .filter(|s| s.gateway == g.id)
                .collect();
            let state_dir = self._dir.path().join(g.id.client_id());
            let devices: Vec<_> = subs
                .iter()
                .map(|s| (s.id.clone(), s.version.clone(), s.burner.clone()))
                .collect();
            let burner =
                ScenarioBurner::new(&state_dir.join("flash"), &devices).map_err(|source| {
                    WorldError::Io {
                        what: "simulated flash",
                        source,
                    }
                })?;
            let config = GatewayConfig {
                device: g.id.clone(),
                secret: g.secret.clone(),
                hub: hub_addr.clone(),
                subdevices: subs
                    .iter()
                    .map(|s| SubdeviceConfig {
                        id: s.id.clone(),
                        factory_version: s.version.clone(),
                    })
                    .collect(),
                state_dir,
                max_image_bytes: g.max_image_bytes,
                keepalive: Duration::from_secs(60),
                download: plan.download_config(),
            };
            self.slots.insert(
                g.id.clone(),
                Slot {
                    config,
                    run: g.run.clone(),
                    burner: Arc::new(burner),
                    running: None,
                    max_concurrent: g.max_concurrent,
                    quota_bytes: g.quota_bytes,
                    versions: subs
                        .iter()
                        .map(|s| (s.id.clone(), s.version.clone()))
                        .collect(),
                },
            );
        }
        Ok(())
    }

    /// Follows the transcript's length and stamps every COS request with it, so HTTP lands in
    /// the right place of the timeline.
    fn watch(&mut self) {
        let mut live = self.hub.watch_transcript();
        let log = Arc::clone(&self.log);
        self.watchers.push(tokio::spawn(async move {
            while let Ok(e) = live.recv().await {
                log.transcript_len.fetch_max(e.seq + 1, Ordering::SeqCst);
            }
        }));
        let (cos, log, started) = (self.cos.clone(), Arc::clone(&self.log), self.started);
        self.watchers.push(tokio::spawn(async move {
            let mut seen = 0u64;
            let _ = cos
                .wait_journal(Duration::from_secs(24 * 3600), |journal| {
                    for j in journal {
                        if j.seq > seen {
                            seen = j.seq;
                            let text = format!("{} {}", j.method, j.path);
                            log.note_at(started, "http", text, Some(j.seq));
                        }
                    }
                    false
                })
                .await;
        }));
    }

    /// Records a runner action in the timeline.
    pub fn note(&self, kind: &str, text: impl Into<String>) {
        self.log.note_at(self.started, kind, text.into(), None);
    }

    /// Runner actions and HTTP requests, in order.
    pub fn notes(&self) -> Vec<Note> {
        self.log.notes.lock().expect("notes lock").clone()
    }

    /// Installs a COS fault for the rest of the world's life. In a redirect's `location`,
    /// `{signed:OBJECT}` becomes a fresh signed URL of OBJECT.
    pub fn add_cos_fault(
        &self,
        mut rule: FaultRule,
        window: Option<Duration>,
    ) -> Result<(), WorldError> {
        if let Verdict::Redirect { location, .. } = &mut rule.verdict
            && let Some(object) = location
                .strip_prefix("{signed:")
                .and_then(|s| s.strip_suffix('}'))
        {
            *location = self
                .cos
                .signed_url(object, Duration::from_secs(3600))
                .map_err(|e| start_err("redirect target")(e.to_string()))?;
        }
        let guard = self
            .cos
            .add_rule(rule)
            .map_err(|e| start_err("cos fault")(e.to_string()))?;
        match window {
            // Installed for the world's lifetime: the guard is forgotten on purpose.
            None => std::mem::forget(guard),
            // The window is the fault's own length, not a wait for something to happen.
            Some(w) => {
                let log = Arc::clone(&self.log);
                let started = self.started;
                tokio::spawn(async move {
                    tokio::time::sleep(w).await;
                    drop(guard);
                    log.note_at(started, "step", "cos fault window closed".into(), None);
                });
            }
        }
        Ok(())
    }

    /// Starts (or reboots, on the same state directory) every gateway that is not running.
    pub fn start_gateways(&mut self) -> Result<(), WorldError> {
        let ids: Vec<DeviceId> = self.slots.keys().cloned().collect();
        for id in ids {
            self.start_gateway(&id)?;
        }
        Ok(())
    }

    /// Starts one gateway, or reboots it on the same disk after [`World::kill_gateway`].
    pub fn start_gateway(&mut self, id: &DeviceId) -> Result<(), WorldError> {
        let hub_addr = self.hub.local_addr();
        let Some(slot) = self.slots.get_mut(id) else {
            return Err(WorldError::Start(format!("no gateway {id}")));
        };
        if slot.running.is_some() || slot.run == GatewayRun::Raw {
            return Ok(());
        }
        let running = match &slot.run {
            GatewayRun::Builtin => {
                let burner: Arc<dyn gateway::Burner> = slot.burner.clone();
                let mut options = GatewayOptions::new();
                if let Some(n) = slot.max_concurrent {
                    options.max_concurrent = n;
                }
                options.storage_quota_bytes = slot.quota_bytes;
                let scaled = |d: Duration| d.mul_f64(self.time_scale).max(Duration::from_millis(1));
                options.burn_timeout = self.burn_timeout.unwrap_or(scaled(options.burn_timeout));
                options.online_retry = scaled(options.online_retry);
                let gw = Gateway::start_with_burner(slot.config.clone(), options, burner)
                    .map_err(|e| WorldError::Start(format!("gateway {id}: {e}")))?;
                let mut rx = gw.events();
                let (log, id2) = (Arc::clone(&self.log), id.clone());
                tokio::spawn(async move {
                    while let Ok(ev) = rx.recv().await {
                        log.events
                            .lock()
                            .expect("event log lock")
                            .push((id2.clone(), ev));
                    }
                });
                Running::Builtin(gw)
            }
            GatewayRun::Command { program, args } => {
                let place = Placeholders {
                    hub: hub_addr,
                    cos: self.cos.local_addr(),
                    time_scale: self.time_scale,
                    versions: &slot.versions,
                };
                Running::External(spawn_external(&slot.config, program, args, &place)?)
            }
            GatewayRun::Raw => return Ok(()),
        };
        slot.running = Some(running);
        self.note("gateway", format!("{id} started"));
        Ok(())
    }

    /// What happened so far, in one snapshot, for the judge and the reports.
    pub fn snapshot(&self, plan: &Plan) -> Happened {
        let transcript = self.hub.transcript();
        let journal = self.cos.journal();
        let notes = self.notes();
        let http = notes.iter().filter_map(|n| n.cos_seq.map(|s| (s, n)));
        Happened {
            cos_seen_ms: http.clone().map(|(s, n)| (s, n.at_ms)).collect(),
            cos_after_seq: http.map(|(s, n)| (s, n.after_seq)).collect(),
            devices: plan
                .subdevices
                .iter()
                .filter_map(|s| Some((s.id.clone(), self.hub.device(&s.id)?)))
                .collect(),
            tasks: self.hub.tasks(),
            events: self.gateway_events(),
            transcript,
            journal,
        }
    }

    /// New concurrency or quota for a built-in gateway, from its next start on.
    pub fn configure_gateway(
        &mut self,
        id: &DeviceId,
        max_concurrent: Option<std::num::NonZeroUsize>,
        quota_bytes: Option<u64>,
    ) -> Result<(), WorldError> {
        let slot = self
            .slots
            .get_mut(id)
            .ok_or_else(|| WorldError::Start(format!("no gateway {id}")))?;
        if max_concurrent.is_some() {
            slot.max_concurrent = max_concurrent;
        }
        if quota_bytes.is_some() {
            slot.quota_bytes = quota_bytes;
        }
        self.note(
            "step",
            format!("{id} configured: max_concurrent {max_concurrent:?}, quota {quota_bytes:?} (from its next start)"),
        );
        Ok(())
    }

    /// Another program takes `bytes` of the gateway's images directory (a partial file the
    /// quota counts and never evicts).
    pub fn fill_disk(&self, id: &DeviceId, bytes: u64) -> Result<(), WorldError> {
        let slot = self
            .slots
            .get(id)
            .ok_or_else(|| WorldError::Start(format!("no gateway {id}")))?;
        let dir = slot.config.state_dir.join("images");
        let io = |source| WorldError::Io {
            what: "filling the gateway's disk",
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let file = std::fs::File::create(dir.join("otasim-filler.part")).map_err(io)?;
        file.set_len(bytes).map_err(io)?;
        self.note("step", format!("{id}'s disk filled with {bytes} bytes"));
        Ok(())
    }

    /// Cuts a gateway's power: aborted wherever it is, its disk kept for a reboot.
    pub async fn kill_gateway(&mut self, id: &DeviceId) {
        let running = self.slots.get_mut(id).and_then(|s| s.running.take());
        match running {
            Some(Running::Builtin(gw)) => gw.kill().await,
            Some(Running::External(mut child)) => {
                let _ = child.kill().await;
            }
            None => return,
        }
        self.note("gateway", format!("{id} killed"));
    }

    /// The broker drops the gateway's connection.
    pub fn kick(&self, id: &DeviceId) {
        self.hub.kick(&id.client_id());
        self.note("step", format!("broker kicks {id}"));
    }

    /// What the built-in gateways did so far.
    pub fn gateway_events(&self) -> Vec<(DeviceId, GatewayEvent)> {
        self.log.events.lock().expect("event log lock").clone()
    }

    /// Stops everything and removes the temp directory.
    pub async fn shutdown(self) {
        for (_, slot) in self.slots {
            match slot.running {
                Some(Running::Builtin(gw)) => gw.shutdown().await,
                Some(Running::External(mut child)) => {
                    let _ = child.kill().await;
                }
                None => {}
            }
        }
        for w in self.watchers {
            w.abort();
        }
        // A served world (`otasim demo --serve`) may still share the hub with the control API;
        // the last holder's drop stops the broker then.
        if let Ok(hub) = Arc::try_unwrap(self.hub) {
            hub.shutdown().await;
        }
        self.cos.shutdown().await;
    }
}

impl Log {
    fn note_at(&self, started: Instant, kind: &str, text: String, cos_seq: Option<u64>) {
        let note = Note {
            after_seq: self.transcript_len.load(Ordering::SeqCst),
            at_ms: started.elapsed().as_secs_f64() * 1000.0,
            kind: kind.to_owned(),
            text,
            cos_seq,
        };
        self.notes.lock().expect("notes lock").push(note);
    }
}
