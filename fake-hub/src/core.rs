//! The Hub's logic behind the broker hooks: auth, ACL, topology, OTA and the transcript.

use crate::broker::{AuthVerdict, BrokerHandle, BrokerHooks, ConnectInfo};
use crate::registry::{DeviceKind, Registry};
use crate::store::FirmwareStore;
use crate::tasks::{DeviceUpdate, PushRequest};
use crate::transcript::{Direction, TranscriptEntry};
use otasim_protocol::{
    Credentials, DeviceId, DeviceOtaMessage, HubOtaMessage, Topic, UpdateFirmware,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

/// Everything the hub knows, under one lock. Hooks hold it only briefly and never across an await.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) registry: Registry,
    pub(crate) transcript: Vec<TranscriptEntry>,
    pub(crate) tasks: BTreeMap<u64, PushRequest>,
    /// The current (latest) update of each device.
    pub(crate) updates: BTreeMap<DeviceId, DeviceUpdate>,
    /// Finished or superseded updates, for history.
    pub(crate) past_updates: Vec<DeviceUpdate>,
    pub(crate) next_task_id: u64,
}

pub(crate) struct HubCore {
    state: Mutex<State>,
    started: Instant,
    broker: OnceLock<BrokerHandle>,
    store: Arc<dyn FirmwareStore>,
    url_validity: Duration,
    live: broadcast::Sender<TranscriptEntry>,
    revision: watch::Sender<u64>,
}

impl HubCore {
    pub(crate) fn new(store: Arc<dyn FirmwareStore>, url_validity: Duration) -> Self {
        HubCore {
            state: Mutex::default(),
            started: Instant::now(),
            broker: OnceLock::new(),
            store,
            url_validity,
            live: broadcast::channel(4096).0,
            revision: watch::channel(0).0,
        }
    }

    pub(crate) fn attach(&self, broker: BrokerHandle) {
        self.broker
            .set(broker)
            .ok()
            .expect("the broker is attached once, at start");
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("hub state lock: no code panics while holding it")
    }

    pub(crate) fn store(&self) -> &dyn FirmwareStore {
        self.store.as_ref()
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub(crate) fn live(&self) -> broadcast::Receiver<TranscriptEntry> {
        self.live.subscribe()
    }

    pub(crate) fn revision(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// Signals waiters that something changed.
    pub(crate) fn bump(&self) {
        self.revision.send_modify(|r| *r += 1);
    }

    pub(crate) fn record(
        &self,
        state: &mut State,
        direction: Direction,
        client_id: &str,
        topic: &str,
        payload: String,
    ) {
        let entry = TranscriptEntry {
            seq: state.transcript.len() as u64,
            at: self.elapsed(),
            direction,
            client_id: client_id.to_owned(),
            topic: topic.to_owned(),
            payload,
        };
        let _ = self.live.send(entry.clone());
        state.transcript.push(entry);
    }

    /// Publishes to a device's topic and records it.
    pub(crate) fn send(&self, state: &mut State, topic: &Topic, payload: Vec<u8>, qos: u8) {
        let client_id = topic.device().client_id();
        let text = String::from_utf8_lossy(&payload).into_owned();
        self.record(state, Direction::Out, &client_id, &topic.to_string(), text);
        match self.broker.get() {
            Some(b) => b.publish(&topic.to_string(), payload, qos),
            None => warn!("hub publish before the broker is attached"),
        }
    }

    pub(crate) fn kick(&self, client_id: &str) {
        if let Some(b) = self.broker.get() {
            b.kick(client_id);
        }
    }

    /// Sends `update_firmware` for `update` with a freshly signed URL.
    pub(crate) fn send_update(&self, state: &mut State, device: &DeviceId) {
        let Some(update) = state.updates.get(device) else {
            return;
        };
        let target = update.target_version.clone();
        let Some(fw) = state
            .registry
            .firmware(device.product_id(), &target)
            .cloned()
        else {
            return warn!(%device, version = %target, "firmware vanished from the registry");
        };
        let url = match self.store.signed_url(&fw.object, self.url_validity) {
            Ok(url) => url,
            Err(e) => {
                return warn!(%device, object = %fw.object, error = %e, "cannot sign a firmware url");
            }
        };
        let cmd = UpdateFirmware {
            file_size: fw.size_bytes as i64,
            md5sum: fw.md5.clone(),
            url,
            version: fw.version.clone(),
        };
        if let Some(u) = state.updates.get_mut(device) {
            u.commands_sent += 1;
        }
        let payload = HubOtaMessage::UpdateFirmware(cmd).encode();
        self.send(state, &Topic::OtaUpdate(device.clone()), payload, 1);
    }

    fn on_ota_report(&self, state: &mut State, device: &DeviceId, payload: &[u8]) {
        let msg = match DeviceOtaMessage::parse(payload) {
            Ok(m) => m,
            Err(e) => return debug!(%device, error = %e, "ignoring malformed ota report"),
        };
        let at = self.elapsed();
        match msg {
            DeviceOtaMessage::ReportVersion { version } => {
                if let Some(rec) = state.registry.get_mut(device) {
                    rec.version = Some(version.clone());
                }
                let rsp = HubOtaMessage::ReportVersionRsp {
                    result_code: 0,
                    result_msg: "success".into(),
                    version: version.clone(),
                };
                self.send(state, &Topic::OtaUpdate(device.clone()), rsp.encode(), 1);
                let resend = state
                    .updates
                    .get_mut(device)
                    .is_some_and(|u| u.on_version(&version, at));
                if resend {
                    self.send_update(state, device);
                }
            }
            DeviceOtaMessage::ReportProgress(report) => {
                if let Some(u) = state.updates.get_mut(device) {
                    u.on_progress(&report, at);
                }
            }
        }
    }

    fn acts_for(&self, state: &State, client_id: &str, topic: &str) -> Option<Topic> {
        let client = state.registry.by_client_id(client_id)?;
        let topic: Topic = topic.parse().ok()?;
        state
            .registry
            .may_act_for(client, topic.device())
            .then_some(topic)
    }
}

impl BrokerHooks for HubCore {
    fn authenticate(&self, info: &ConnectInfo) -> AuthVerdict {
        let mut state = self.lock();
        let verdict = verdict(&state, info, SystemTime::now());
        let detail = format!("{verdict:?}");
        self.record(
            &mut state,
            Direction::Event,
            &info.client_id,
            "connect",
            detail,
        );
        if verdict != AuthVerdict::Accept {
            info!(client_id = %info.client_id, ?verdict, "connect refused");
        }
        verdict
    }

    fn allow_subscribe(&self, client_id: &str, topic_filter: &str) -> bool {
        let mut state = self.lock();
        let ok = matches!(
            self.acts_for(&state, client_id, topic_filter),
            Some(Topic::OtaUpdate(_) | Topic::GatewayOperationResult(_))
        );
        let event = if ok { "subscribe" } else { "suback failure" };
        self.record(
            &mut state,
            Direction::Event,
            client_id,
            event,
            topic_filter.to_owned(),
        );
        ok
    }

    fn allow_publish(&self, client_id: &str, topic: &str) -> bool {
        let state = self.lock();
        matches!(
            self.acts_for(&state, client_id, topic),
            Some(Topic::OtaReport(_) | Topic::GatewayOperation(_))
        )
    }

    fn on_publish(&self, client_id: &str, topic: &str, payload: &[u8], _qos: u8) {
        let mut state = self.lock();
        self.record(
            &mut state,
            Direction::In,
            client_id,
            topic,
            String::from_utf8_lossy(payload).into_owned(),
        );
        match topic.parse::<Topic>() {
            Ok(Topic::OtaReport(device)) => self.on_ota_report(&mut state, &device, payload),
            Ok(Topic::GatewayOperation(gateway)) => {
                crate::topology::on_request(self, &mut state, &gateway, payload)
            }
            _ => {}
        }
        drop(state);
        self.bump();
    }

    fn on_publish_refused(&self, client_id: &str, topic: &str, payload: &[u8]) {
        let mut state = self.lock();
        self.record(
            &mut state,
            Direction::Refused,
            client_id,
            topic,
            String::from_utf8_lossy(payload).into_owned(),
        );
    }

    fn on_connected(&self, client_id: &str) {
        let mut state = self.lock();
        let id = state.registry.by_client_id(client_id).map(|d| d.id.clone());
        if let Some(rec) = id.as_ref().and_then(|id| state.registry.get_mut(id)) {
            rec.online = true;
        }
        drop(state);
        self.bump();
    }

    fn on_disconnected(&self, client_id: &str, reason: &str) {
        let mut state = self.lock();
        self.record(
            &mut state,
            Direction::Event,
            client_id,
            "disconnect",
            reason.to_owned(),
        );
        if let Some(id) = state.registry.by_client_id(client_id).map(|d| d.id.clone()) {
            // A gateway's subdevices go offline with it.
            for rec in state.registry.devices_mut() {
                if rec.id == id || rec.bound_to.as_ref() == Some(&id) {
                    rec.online = false;
                }
            }
        }
        drop(state);
        self.bump();
    }
}

/// The Hub's answer to a CONNECT: code 5 for unknown or disabled devices and subdevices (which
/// cannot connect directly), code 4 for bad or expired credentials.
fn verdict(state: &State, info: &ConnectInfo, now: SystemTime) -> AuthVerdict {
    let Some(rec) = state.registry.by_client_id(&info.client_id) else {
        return AuthVerdict::NotAuthorized;
    };
    if !rec.enabled || rec.kind == DeviceKind::Subdevice {
        return AuthVerdict::NotAuthorized;
    }
    let (Some(username), Some(password)) = (&info.username, &info.password) else {
        return AuthVerdict::BadCredentials;
    };
    let password = String::from_utf8_lossy(password);
    match Credentials::verify(&info.client_id, username, &password, &rec.secret) {
        Ok(u) => {
            let now = now
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            match u.expiry_unix_secs() {
                Some(expiry) if expiry < now => AuthVerdict::BadCredentials,
                _ => AuthVerdict::Accept,
            }
        }
        Err(e) => {
            debug!(client_id = %info.client_id, error = %e, "bad credentials");
            AuthVerdict::BadCredentials
        }
    }
}
