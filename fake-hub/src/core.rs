//! The Hub's state and the plumbing every concern shares: the lock, the clocks, the transcript,
//! publishing to devices. The concerns live beside it: `auth` (CONNECT), `hub_hooks` (the broker
//! hooks), `ota` (reports and commands), `topology` (gateway operations), `tasks_*` (tasks),
//! `faults` (misbehaviour on cue), `strict` (C SDK limits).

use crate::broker::{BrokerHandle, Hold};
use crate::clock::HubClock;
use crate::faults::FaultBook;
use crate::registry::Registry;
use crate::store::FirmwareStore;
use crate::tasks::{DeviceUpdate, PushRequest, TaskOptions};
use crate::tls::HubCa;
use crate::transcript::{Direction, TranscriptEntry};
use otasim_protocol::{DeviceId, Topic};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, watch};
use tracing::warn;

/// A task as the hub keeps it.
#[derive(Debug, Clone)]
pub(crate) struct TaskRecord {
    pub(crate) request: PushRequest,
    pub(crate) options: TaskOptions,
    /// Devices skipped because another task was pending on them, with that task's id.
    pub(crate) skipped: BTreeMap<String, u64>,
    pub(crate) cancelled: bool,
}

/// Everything the hub knows, under one lock. Hooks hold it only briefly and never across an await.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) registry: Registry,
    pub(crate) transcript: crate::transcript::Ring,
    pub(crate) tasks: BTreeMap<u64, TaskRecord>,
    /// The current (latest) update of each device.
    pub(crate) updates: BTreeMap<DeviceId, DeviceUpdate>,
    /// Finished, cancelled or superseded updates, for history.
    pub(crate) past_updates: Vec<DeviceUpdate>,
    pub(crate) next_task_id: u64,
    pub(crate) faults: FaultBook,
    /// Granted subscriptions per client id (for the strict-mode limit).
    pub(crate) subscriptions: BTreeMap<String, BTreeSet<String>>,
    /// CONNACK holds decided at CONNECT, by client id (made then, so an early release counts).
    pub(crate) connack_holds: BTreeMap<String, Hold>,
    /// SUBACK holds decided at SUBSCRIBE, by client id and filter.
    pub(crate) suback_holds: BTreeMap<(String, String), Hold>,
    /// Bind signatures already used, as (timestamp, subdevice, random): each binds once.
    pub(crate) used_binds: BTreeSet<(i64, DeviceId, i64)>,
    /// Custom topics each product declares, with their permission.
    pub(crate) custom_topics: crate::acl::CustomTopics,
}

pub(crate) struct HubCore {
    state: Mutex<State>,
    pub(crate) clock: HubClock,
    broker: OnceLock<BrokerHandle>,
    me: OnceLock<Weak<HubCore>>,
    store: Arc<dyn FirmwareStore>,
    pub(crate) url_validity: Duration,
    live: broadcast::Sender<TranscriptEntry>,
    revision: watch::Sender<u64>,
    strict: AtomicBool,
    /// Bumped by `release_held`; a hold without a duration waits for it to change.
    release: watch::Sender<u64>,
    /// Wakes the task scheduler when timers may have changed.
    pub(crate) wake: Notify,
    pub(crate) ca: Option<HubCa>,
    /// The latest firmware URL signed for each device, to name the device of a COS request.
    pub(crate) issued: crate::http::Issued,
}

impl HubCore {
    pub(crate) fn new(
        store: Arc<dyn FirmwareStore>,
        url_validity: Duration,
        strict: bool,
        ca: Option<HubCa>,
    ) -> Self {
        HubCore {
            state: Mutex::default(),
            clock: HubClock::new(),
            broker: OnceLock::new(),
            me: OnceLock::new(),
            store,
            url_validity,
            live: broadcast::channel(4096).0,
            revision: watch::channel(0).0,
            strict: AtomicBool::new(strict),
            release: watch::channel(0).0,
            wake: Notify::new(),
            ca,
            issued: crate::http::Issued::default(),
        }
    }

    pub(crate) fn attach(self: &Arc<Self>, broker: BrokerHandle) {
        let attached = self.broker.set(broker).is_ok() && self.me.set(Arc::downgrade(self)).is_ok();
        assert!(attached, "the core is attached once, at start");
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding it; should one ever, the hub keeps serving (a poisoned
        // lock made every later call fail, and every CONNECT get code 3) and says so.
        self.state.lock().unwrap_or_else(|poisoned| {
            warn!("hub state lock poisoned by a panic: serving on");
            poisoned.into_inner()
        })
    }

    pub(crate) fn store(&self) -> &dyn FirmwareStore {
        self.store.as_ref()
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.clock.elapsed()
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

    pub(crate) fn strict(&self) -> bool {
        self.strict.load(Ordering::SeqCst)
    }

    pub(crate) fn set_strict(&self, on: bool) {
        self.strict.store(on, Ordering::SeqCst);
    }

    pub(crate) fn record(
        &self,
        state: &mut State,
        direction: Direction,
        client_id: &str,
        topic: &str,
        payload: String,
    ) {
        use crate::transcript::{
            MAX_CLIENT_ID_BYTES, MAX_PAYLOAD_BYTES, MAX_TOPIC_BYTES, truncated,
        };
        // Whatever a peer sends is kept at a bounded size: 5,000 CONNECTs with 16 KB client
        // ids must not cost 80 MB. What the hub itself sends is kept whole (it is bounded by
        // the hub's packet limit, and scenarios judge its commands by their content).
        let at = self.elapsed();
        let entry = state.transcript.push(|seq| TranscriptEntry {
            seq,
            at,
            direction,
            client_id: truncated(client_id, MAX_CLIENT_ID_BYTES),
            topic: truncated(topic, MAX_TOPIC_BYTES),
            payload: if direction != Direction::Out && payload.len() > MAX_PAYLOAD_BYTES {
                truncated(&payload, MAX_PAYLOAD_BYTES)
            } else {
                payload
            },
        });
        let _ = self.live.send(entry.clone());
        // Waiters on the transcript re-check; the watch never takes the state lock.
        self.bump();
    }

    /// Records a connection or hub event (`connect`, `fault`, `strict`, `malformed`, ...).
    pub(crate) fn event(&self, state: &mut State, client_id: &str, name: &str, detail: String) {
        self.record(state, Direction::Event, client_id, name, detail);
    }

    /// Publishes to a device's topic and records it.
    pub(crate) fn send(&self, state: &mut State, topic: &Topic, payload: Vec<u8>, qos: u8) {
        self.send_to(state, topic.device(), &topic.to_string(), payload, qos);
    }

    /// Publishes on any topic of `device`'s space and records it.
    pub(crate) fn send_to(
        &self,
        state: &mut State,
        device: &DeviceId,
        topic_text: &str,
        payload: Vec<u8>,
        qos: u8,
    ) {
        let client_id = device.client_id();
        crate::strict::check_publish(self, state, &client_id, topic_text, payload.len());
        let text = String::from_utf8_lossy(&payload).into_owned();
        self.record(state, Direction::Out, &client_id, topic_text, text);
        match self.broker.get() {
            Some(b) => b.publish(topic_text, payload, qos),
            None => warn!("hub publish before the broker is attached"),
        }
    }

    /// Publishes to any topic (the Cloud API's PublishMessage), recorded under `client_id`.
    pub(crate) fn send_text(
        &self,
        state: &mut State,
        client_id: &str,
        topic: &str,
        payload: Vec<u8>,
        qos: u8,
    ) {
        crate::strict::check_publish(self, state, client_id, topic, payload.len());
        let text = String::from_utf8_lossy(&payload).into_owned();
        self.record(state, Direction::Out, client_id, topic, text);
        match self.broker.get() {
            Some(b) => b.publish(topic, payload, qos),
            None => warn!("hub publish before the broker is attached"),
        }
    }

    pub(crate) fn kick(&self, client_id: &str) {
        if let Some(b) = self.broker.get() {
            b.kick(client_id);
        }
    }

    /// Runs `task` on the broker's runtime (it stops with the hub).
    pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Some(b) = self.broker.get() {
            b.spawn(Box::pin(task));
        }
    }

    /// This core, for tasks that outlive a hook call.
    pub(crate) fn me(&self) -> Option<Arc<HubCore>> {
        self.me.get().and_then(Weak::upgrade)
    }

    /// A pause of `ms` milliseconds, or until [`HubCore::release_held`] when `ms` is unset.
    pub(crate) fn hold(&self, ms: Option<u64>) -> Hold {
        match ms {
            // Built lazily: a timer must be created on the runtime that polls it.
            Some(ms) => {
                Box::pin(async move { tokio::time::sleep(Duration::from_millis(ms)).await })
            }
            None => {
                let mut release = self.release.subscribe();
                Box::pin(async move {
                    // An error means the hub is gone: nothing to wait for.
                    let _ = release.changed().await;
                })
            }
        }
    }

    /// Ends every hold that waits for a release.
    pub(crate) fn release_held(&self) {
        self.release.send_modify(|g| *g += 1);
    }
}
