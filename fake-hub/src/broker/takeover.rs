//! One CONNECT per client id at a time, so the transcript says what each client got.
//!
//! rmqtt takes a per-client-id lock after authentication and answers CONNACK 3 to a CONNECT
//! that finds it taken, with no hook told: 500 simultaneous CONNECTs with one client id were
//! recorded as accepted while 453 of them got code 3. Here a CONNECT waits at authentication
//! until the previous one with its client id is connected (each then takes the session over,
//! as MQTT says), and one that still finds rmqtt's lock taken is refused with code 3 by the
//! hub itself, so the verdict recorded is the one sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::types::Id;
use tokio::sync::OwnedMutexGuard;

/// How long a CONNECT waits for the one before it with its client id.
const WAIT: Duration = Duration::from_secs(5);
/// How long an accepted CONNECT keeps its turn if it never reports connected (rmqtt failed it
/// after authentication).
const HOLD: Duration = Duration::from_secs(10);

type Key = (String, Option<SocketAddr>);

/// The turns of the CONNECTs being accepted.
#[derive(Default)]
pub(super) struct Takeover {
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    held: Mutex<HashMap<Key, OwnedMutexGuard<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Inserts and removes cannot leave a map half-updated.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn key(id: &Id) -> Key {
    (id.client_id.to_string(), id.remote_addr)
}

/// A CONNECT's turn: held until it is connected, or released when it is refused.
pub(super) struct Turn {
    guard: Option<OwnedMutexGuard<()>>,
    /// rmqtt's lock for the client id was still taken when the turn came.
    pub(super) busy: bool,
}

impl Takeover {
    /// Waits for the CONNECT's turn (at most [`WAIT`]), then looks at rmqtt's lock.
    pub(super) async fn turn(&self, scx: &ServerContext, id: &Id) -> Turn {
        let gate = lock(&self.gates)
            .entry(id.client_id.to_string())
            .or_default()
            .clone();
        let guard = tokio::time::timeout(WAIT, gate.lock_owned()).await.ok();
        let entry = scx.extends.shared().await.entry(id.clone());
        let busy = entry.try_lock().await.is_err();
        Turn { guard, busy }
    }

    /// The CONNECT was accepted: it keeps its turn until [`Takeover::connected`] (or [`HOLD`]).
    pub(super) fn accepted(self: &Arc<Self>, id: &Id, turn: Turn) {
        let Some(guard) = turn.guard else { return };
        let k = key(id);
        lock(&self.held).insert(k.clone(), guard);
        let me = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(HOLD).await;
            me.release(&k);
        });
    }

    /// The CONNECT was refused: the next one may go.
    pub(super) fn refused(&self, id: &Id, turn: Turn) {
        drop(turn);
        self.forget_gate(&id.client_id);
    }

    /// The connection is up: the next CONNECT with its client id may go.
    pub(super) fn connected(&self, id: &Id) {
        self.release(&key(id));
    }

    fn release(&self, k: &Key) {
        let guard = lock(&self.held).remove(k);
        drop(guard);
        self.forget_gate(&k.0);
    }

    /// Drops the client id's gate when nobody holds or waits for it, so that CONNECTs with
    /// ever new client ids leave nothing behind.
    fn forget_gate(&self, client_id: &str) {
        let mut gates = lock(&self.gates);
        if gates
            .get(client_id)
            .is_some_and(|g| Arc::strong_count(g) == 1)
        {
            gates.remove(client_id);
        }
    }
}
