//! Which connection is current for each client id.
//!
//! When a client reconnects with the same id, rmqtt kicks the old connection while the new one is
//! being accepted, and the old one's "disconnected" hook can run before or after the new one's
//! "connected" hook. Remembering the current connection's rmqtt id lets the glue drop the stale
//! disconnect instead of telling the hub that a connected device went offline.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rmqtt::types::Id;

/// The current connection of every connected client id.
#[derive(Default)]
pub(super) struct Connections {
    current: Mutex<HashMap<String, Id>>,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Id>> {
        // A panic elsewhere while holding this lock cannot leave the map half-updated.
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `id` as the current connection of its client id.
    pub(super) fn connected(&self, id: &Id) {
        self.lock().insert(id.client_id.to_string(), id.clone());
    }

    /// Forgets `id` if it is still the current connection of its client id; says whether it was.
    pub(super) fn disconnected(&self, id: &Id) -> bool {
        let mut current = self.lock();
        match current.get(id.client_id.as_ref() as &str) {
            Some(cur) if cur == id => {
                current.remove(id.client_id.as_ref() as &str);
                true
            }
            _ => false,
        }
    }

    /// Whether the client id has a live connection.
    pub(super) fn is_connected(&self, client_id: &str) -> bool {
        self.lock().contains_key(client_id)
    }

    /// Forgets every connection (the broker is stopping and will not report them).
    pub(super) fn clear(&self) {
        self.lock().clear();
    }
}
