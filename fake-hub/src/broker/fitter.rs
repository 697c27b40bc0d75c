//! Connection parameter negotiation, wrapped so the hub can answer a CONNECT with code 3.
//!
//! rmqtt lets an authentication hook answer only CONNACK 4 or 5. Its handshake answers code 3
//! (server unavailable) when the connection's keepalive negotiation fails, which happens after
//! authentication and before the CONNACK: failing it on purpose for one client id is the closest
//! honest way to refuse a CONNECT with code 3 from the hub's logic.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rmqtt::fitter::{DefaultFitter, Fitter, FitterManager};
use rmqtt::types::{CodecPublish, ConnectInfo, Disconnect, FitterType, Id, ListenerConfig};

/// Client ids whose next CONNECT is to be answered with code 3.
#[derive(Default)]
pub(super) struct Unavailable {
    pending: Mutex<HashSet<String>>,
}

impl Unavailable {
    /// Marks the client id's CONNECT, already authenticated, for a code 3 answer.
    pub(super) fn mark(&self, client_id: &str) {
        self.lock().insert(client_id.to_owned());
    }

    fn take(&self, client_id: &str) -> bool {
        self.lock().remove(client_id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // Inserts and removes cannot leave the set half-updated.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Creates rmqtt's default fitter, or one that fails negotiation for a marked client id.
pub(super) struct HubFitterManager {
    pub(super) unavailable: Arc<Unavailable>,
}

impl FitterManager for HubFitterManager {
    fn create(&self, conn_info: Arc<ConnectInfo>, id: Id, cfg: ListenerConfig) -> FitterType {
        let refuse = self.unavailable.take(&id.client_id);
        Arc::new(HubFitter {
            inner: DefaultFitter::new(conn_info, id, cfg),
            refuse,
        })
    }
}

struct HubFitter {
    inner: DefaultFitter,
    refuse: bool,
}

impl Fitter for HubFitter {
    fn keep_alive(&self, keep_alive: &mut u16) -> rmqtt::Result<u16> {
        if self.refuse {
            return Err(rmqtt::Error::msg(
                "the hub refuses this CONNECT: server unavailable",
            ));
        }
        self.inner.keep_alive(keep_alive)
    }

    fn max_mqueue_len(&self) -> usize {
        self.inner.max_mqueue_len()
    }

    fn mqueue_rate_limit(&self) -> (std::num::NonZeroU32, Duration) {
        self.inner.mqueue_rate_limit()
    }

    fn max_inflight(&self) -> std::num::NonZeroU16 {
        self.inner.max_inflight()
    }

    fn session_expiry_interval(&self, d: Option<&Disconnect>) -> Duration {
        self.inner.session_expiry_interval(d)
    }

    fn message_expiry_interval(&self, publish: &CodecPublish) -> Duration {
        self.inner.message_expiry_interval(publish)
    }

    fn max_client_topic_aliases(&self) -> u16 {
        self.inner.max_client_topic_aliases()
    }

    fn max_server_topic_aliases(&self) -> u16 {
        self.inner.max_server_topic_aliases()
    }
}
