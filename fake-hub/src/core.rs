//! The Hub's state and the plumbing every concern shares: the lock, the clocks, the transcript,
//! publishing to devices.
//!
//! The hub's rules are steps on [`State`]: a driver (a broker hook, an API call, the task
//! scheduler) takes the lock with [`HubCore::lock`], applies one event, and the rules leave
//! what must happen outside in [`State::out`] as [`Out`]s: transcript entries, publishes,
//! `update_firmware` commands to sign, kicks. Dropping the [`Step`] releases the lock first,
//! then records, publishes and notifies, so no I/O and no call into the caller's firmware
//! store runs under the lock. The concerns live beside it: `auth` (CONNECT), `hooks` (the
//! broker hooks), `ota` (reports and commands), `topology` (gateway operations), `tasks/`
//! (tasks), `faults` (misbehaviour on cue), `strict` (C SDK limits).

use crate::broker::{BrokerHandle, Hold};
use crate::clock::HubClock;
use crate::faults::FaultBook;
use crate::registry::Registry;
use crate::store::FirmwareStore;
use crate::tasks::{DeviceUpdate, PushRequest, TaskOptions};
use crate::tls::HubCa;
use crate::transcript::{Direction, TranscriptEntry};
use otasim_protocol::{DeviceId, Topic, UpdateFirmware};
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
    /// Every device that has had an update under the task (current or past), so the task's
    /// devices are found without a search of the fleet.
    pub(crate) devices: BTreeSet<DeviceId>,
}

/// Everything the hub decides on, under one lock. A step takes the lock, applies one event and
/// leaves what must happen outside in [`State::out`]; [`Step`] does it after releasing the lock.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) registry: Registry,
    pub(crate) tasks: BTreeMap<u64, TaskRecord>,
    /// The current (latest) update of each device.
    pub(crate) updates: BTreeMap<DeviceId, DeviceUpdate>,
    /// Finished, cancelled or superseded updates, for history, by task, oldest first.
    pub(crate) past_updates: BTreeMap<u64, Vec<DeviceUpdate>>,
    /// When each current update is next due (start, timeout or retry), by due time.
    pub(crate) timers: BTreeSet<(Duration, DeviceId)>,
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
    /// What the step under way leaves to do once the lock is released.
    pub(crate) out: Effects,
}

/// One thing a step leaves to do outside the lock, in order.
pub(crate) enum Out {
    /// A transcript entry.
    Record {
        direction: Direction,
        client_id: String,
        topic: String,
        payload: String,
    },
    /// A hub publish: checked against the C SDK's limits (strict mode), recorded, published.
    Publish {
        client_id: String,
        topic: String,
        payload: Vec<u8>,
        qos: u8,
    },
    /// `update_firmware` for `device`, with a URL for `object` signed when it goes out (the
    /// caller's store is never called under the lock).
    UpdateFirmware(UpdateFirmwareOut),
    /// Disconnect a client.
    Kick(String),
    /// Run a task on the broker's runtime (a delayed reply).
    Spawn(Hold),
}

/// An `update_firmware` decided under the lock, sent after it.
pub(crate) struct UpdateFirmwareOut {
    pub(crate) device: DeviceId,
    pub(crate) object: String,
    pub(crate) command: UpdateFirmware,
    /// The URL a fault put in place of the signed one.
    pub(crate) url: Option<String>,
    /// The bytes a fault sends instead of the command.
    pub(crate) raw: Option<Vec<u8>>,
    pub(crate) copies: u32,
}

/// What a step leaves to do: [`Out`]s in order, then wake the scheduler and the waiters.
#[derive(Default)]
pub(crate) struct Effects {
    pub(crate) items: Vec<Out>,
    /// The earliest timer moved earlier: the scheduler must look again.
    pub(crate) wake: bool,
    /// Something waiters may be waiting for changed.
    pub(crate) bump: bool,
}

impl Effects {
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty() && !self.wake && !self.bump
    }

    pub(crate) fn record(
        &mut self,
        direction: Direction,
        client_id: &str,
        topic: &str,
        payload: String,
    ) {
        self.items.push(Out::Record {
            direction,
            client_id: client_id.to_owned(),
            topic: topic.to_owned(),
            payload,
        });
    }

    pub(crate) fn event(&mut self, client_id: &str, name: &str, detail: String) {
        self.record(Direction::Event, client_id, name, detail);
    }

    pub(crate) fn publish(&mut self, client_id: String, topic: String, payload: Vec<u8>, qos: u8) {
        self.items.push(Out::Publish {
            client_id,
            topic,
            payload,
            qos,
        });
    }
}

impl State {
    /// Makes `update` the device's current update; the one it replaces goes to history.
    pub(crate) fn put_update(&mut self, update: DeviceUpdate) {
        let id = update.device.clone();
        if let Some(task) = self.tasks.get_mut(&update.task_id) {
            task.devices.insert(id.clone());
        }
        self.set_timer(&id, None, update.wake_at);
        if let Some(old) = self.updates.insert(id.clone(), update) {
            if let Some(due) = old.wake_at {
                self.timers.remove(&(due, id));
            }
            self.past_updates.entry(old.task_id).or_default().push(old);
        }
    }

    /// Moves the device's timer from `before` to `after`.
    pub(crate) fn set_timer(
        &mut self,
        device: &DeviceId,
        before: Option<Duration>,
        after: Option<Duration>,
    ) {
        if before == after {
            return;
        }
        if let Some(due) = before {
            self.timers.remove(&(due, device.clone()));
        }
        if let Some(due) = after {
            let earliest = self.timers.first().map(|(at, _)| *at);
            if earliest.is_none_or(|e| due < e) {
                self.out.wake = true;
            }
            self.timers.insert((due, device.clone()));
        }
    }

    /// Every update of the task, current first, then past ones oldest first.
    pub(crate) fn task_updates(&self, task_id: u64) -> Vec<&DeviceUpdate> {
        let Some(task) = self.tasks.get(&task_id) else {
            return Vec::new();
        };
        let current = task
            .devices
            .iter()
            .filter_map(|d| self.updates.get(d))
            .filter(|u| u.task_id == task_id);
        current
            .chain(self.past_updates.get(&task_id).into_iter().flatten())
            .collect()
    }
}

pub(crate) struct HubCore {
    state: Mutex<State>,
    /// The transcript, under its own lock: entries are recorded after a step releases the
    /// state, so a reader of the transcript never waits for the hub's decisions.
    transcript: Mutex<crate::transcript::Ring>,
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
    /// Effects of steps that released the state lock, in the order they were decided.
    pending: Mutex<std::collections::VecDeque<Effects>>,
    /// Held while carrying out effects, so they go out one step at a time, in order.
    draining: Mutex<()>,
    /// Without a broker (unit tests of the rules), what the hub would have published.
    #[cfg(test)]
    pub(crate) published: Mutex<Vec<(String, Vec<u8>)>>,
}

/// The state lock held for one step; dropping it releases the lock, then does what the step
/// left in [`State::out`] (records, publishes, notifies), in order.
pub(crate) struct Step<'a> {
    core: &'a HubCore,
    guard: Option<MutexGuard<'a, State>>,
}

impl std::ops::Deref for Step<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.guard
            .as_deref()
            .expect("a step holds its guard until dropped")
    }
}

impl std::ops::DerefMut for Step<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.guard
            .as_deref_mut()
            .expect("a step holds its guard until dropped")
    }
}

impl Drop for Step<'_> {
    fn drop(&mut self) {
        let Some(mut guard) = self.guard.take() else {
            return;
        };
        let effects = std::mem::take(&mut guard.out);
        if effects.is_empty() {
            return;
        }
        // Queued while the state is still held, so effects are carried out in the order the
        // steps decided them; carried out once it is released.
        lock_or_recover(&self.core.pending).push_back(effects);
        drop(guard);
        self.core.drain();
    }
}

thread_local! {
    /// This thread is carrying out effects: a step it takes meanwhile (a correction after a
    /// store refused to sign) queues its own, and the loop already running does them.
    static DRAINING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Clears [`DRAINING`] however the drain ends.
struct Draining;

impl Drop for Draining {
    fn drop(&mut self) {
        DRAINING.with(|d| d.set(false));
    }
}

fn lock_or_recover<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding it; should one ever, the hub keeps serving (a poisoned
    // lock made every later call fail, and every CONNECT get code 3) and says so.
    m.lock().unwrap_or_else(|poisoned| {
        warn!("hub lock poisoned by a panic: serving on");
        poisoned.into_inner()
    })
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
            transcript: Mutex::default(),
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
            pending: Mutex::default(),
            draining: Mutex::default(),
            #[cfg(test)]
            published: Mutex::default(),
        }
    }

    pub(crate) fn attach(self: &Arc<Self>, broker: BrokerHandle) {
        let attached = self.broker.set(broker).is_ok() && self.me.set(Arc::downgrade(self)).is_ok();
        assert!(attached, "the core is attached once, at start");
    }

    /// Takes the state lock for one step (see [`Step`]).
    pub(crate) fn lock(&self) -> Step<'_> {
        Step {
            core: self,
            guard: Some(lock_or_recover(&self.state)),
        }
    }

    /// The transcript, for reading: the effects of every step already decided are recorded
    /// first, so what a reader saw in the state is in the transcript too.
    pub(crate) fn transcript(&self) -> MutexGuard<'_, crate::transcript::Ring> {
        self.drain();
        lock_or_recover(&self.transcript)
    }

    /// Queues effects decided without the state lock (a record of an event that changes no
    /// state) behind those already decided, and carries them out.
    pub(crate) fn emit(&self, effects: Effects) {
        lock_or_recover(&self.pending).push_back(effects);
        self.drain();
    }

    /// Records an event that decides nothing, in order with the steps' effects.
    pub(crate) fn emit_record(
        &self,
        direction: Direction,
        client_id: &str,
        topic: &str,
        payload: String,
    ) {
        let mut effects = Effects::default();
        effects.record(direction, client_id, topic, payload);
        self.emit(effects);
    }

    /// Carries out queued effects in order, one drainer at a time; returns once the queue
    /// was empty (so this caller's own effects are done, by it or by the drainer before it).
    fn drain(&self) {
        if DRAINING.with(std::cell::Cell::get) {
            return;
        }
        let _turn = lock_or_recover(&self.draining);
        DRAINING.with(|d| d.set(true));
        let _reset = Draining;
        loop {
            let next = lock_or_recover(&self.pending).pop_front();
            let Some(effects) = next else { break };
            self.apply(effects);
        }
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

    /// Does what a step left to do, outside the state lock.
    fn apply(&self, effects: Effects) {
        let Effects { items, wake, bump } = effects;
        for out in items {
            match out {
                Out::Record {
                    direction,
                    client_id,
                    topic,
                    payload,
                } => self.record_now(direction, &client_id, &topic, payload),
                Out::Publish {
                    client_id,
                    topic,
                    payload,
                    qos,
                } => self.publish_now(&client_id, &topic, payload, qos),
                Out::UpdateFirmware(cmd) => self.send_update_now(cmd),
                Out::Kick(client_id) => self.kick(&client_id),
                Out::Spawn(task) => self.spawn(task),
            }
        }
        if wake {
            self.wake.notify_one();
        }
        if bump {
            self.bump();
        }
    }

    /// Appends to the transcript now (only while carrying out effects, in their order), tells
    /// live readers and waiters.
    fn record_now(&self, direction: Direction, client_id: &str, topic: &str, payload: String) {
        use crate::transcript::{
            MAX_CLIENT_ID_BYTES, MAX_PAYLOAD_BYTES, MAX_TOPIC_BYTES, truncated,
        };
        // Whatever a peer sends is kept at a bounded size: 5,000 CONNECTs with 16 KB client
        // ids must not cost 80 MB. What the hub itself sends is kept whole (it is bounded by
        // the hub's packet limit, and scenarios judge its commands by their content).
        let client_id = truncated(client_id, MAX_CLIENT_ID_BYTES);
        let topic = truncated(topic, MAX_TOPIC_BYTES);
        let payload = if direction != Direction::Out && payload.len() > MAX_PAYLOAD_BYTES {
            truncated(&payload, MAX_PAYLOAD_BYTES)
        } else {
            payload
        };
        let entry = {
            let mut transcript = lock_or_recover(&self.transcript);
            // The time is read under the transcript's lock, so times never go back along seqs.
            let at = self.elapsed();
            transcript
                .push(|seq| TranscriptEntry {
                    seq,
                    at,
                    direction,
                    client_id,
                    topic,
                    payload,
                })
                .clone()
        };
        let _ = self.live.send(entry);
        // Waiters on the transcript re-check; the watch never takes the state lock.
        self.bump();
    }

    /// Records an entry when the step ends.
    pub(crate) fn record(
        &self,
        state: &mut State,
        direction: Direction,
        client_id: &str,
        topic: &str,
        payload: String,
    ) {
        state.out.record(direction, client_id, topic, payload);
    }

    /// Records a connection or hub event (`connect`, `fault`, `strict`, `malformed`, ...).
    pub(crate) fn event(&self, state: &mut State, client_id: &str, name: &str, detail: String) {
        state.out.event(client_id, name, detail);
    }

    /// Publishes to a device's topic and records it, when the step ends.
    pub(crate) fn send(&self, state: &mut State, topic: &Topic, payload: Vec<u8>, qos: u8) {
        self.send_to(state, topic.device(), &topic.to_string(), payload, qos);
    }

    /// Publishes on any topic of `device`'s space and records it, when the step ends.
    pub(crate) fn send_to(
        &self,
        state: &mut State,
        device: &DeviceId,
        topic_text: &str,
        payload: Vec<u8>,
        qos: u8,
    ) {
        state
            .out
            .publish(device.client_id(), topic_text.to_owned(), payload, qos);
    }

    /// Publishes to any topic (the Cloud API's PublishMessage), recorded under `client_id`,
    /// when the step ends.
    pub(crate) fn send_text(
        &self,
        state: &mut State,
        client_id: &str,
        topic: &str,
        payload: Vec<u8>,
        qos: u8,
    ) {
        state
            .out
            .publish(client_id.to_owned(), topic.to_owned(), payload, qos);
    }

    /// Checks, records and publishes a hub message now (outside the state lock).
    pub(crate) fn publish_now(&self, client_id: &str, topic: &str, payload: Vec<u8>, qos: u8) {
        if self.strict() {
            for detail in crate::strict::publish_warnings(topic, payload.len()) {
                crate::strict::warn(client_id, &detail);
                self.record_now(Direction::Event, client_id, "strict", detail);
            }
        }
        let text = String::from_utf8_lossy(&payload).into_owned();
        self.record_now(Direction::Out, client_id, topic, text);
        match self.broker.get() {
            Some(b) => b.publish(topic, payload, qos),
            #[cfg(test)]
            None => crate::core::lock_or_recover(&self.published).push((topic.to_owned(), payload)),
            #[cfg(not(test))]
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
