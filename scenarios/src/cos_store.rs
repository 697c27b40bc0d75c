//! The glue between the two fakes, which know nothing of each other: fake COS as the hub's
//! [`FirmwareStore`]. [`CosStore`] stores, signs, deletes and takes COS fault rules;
//! [`HubCos`] also makes COS part of the hub's world, as `otasim hub` runs it: one clock (the
//! hub's moves URL expiry) and every COS request in the hub's transcript.

use bytes::Bytes;
use fake_cos::{ConnEnd, Cos, CosError, FaultRule, JournalEntry, RuleId};
use fake_hub::{FirmwareStore, HttpRequest, RequestSink, StoreError, StoredObject};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Puts hub uploads on fake COS and signs URLs with it; the hub's COS fault rules and journal
/// are fake COS's own (`FaultRule`, `JournalEntry`), so a rule for `otasim cos` works here too.
/// The COS clock and journal stay its own: see [`HubCos`] for one world.
pub struct CosStore(pub Cos);

fn store_error(e: CosError) -> StoreError {
    match e {
        CosError::InvalidObjectName { name, reason } => StoreError::InvalidName {
            object: name,
            reason: reason.to_owned(),
        },
        e @ CosError::InvalidRule { .. } => StoreError::InvalidRule {
            reason: e.to_string(),
        },
        other => StoreError::Backend(Box::new(other)),
    }
}

fn json(value: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).expect("fake COS types always serialize")
}

impl FirmwareStore for CosStore {
    fn put(&self, object: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.0
            .put_object(object, Bytes::from(bytes))
            .map(|_| ())
            .map_err(store_error)
    }

    fn signed_url(&self, object: &str, valid_for: Duration) -> Result<String, StoreError> {
        self.0.signed_url(object, valid_for).map_err(store_error)
    }

    fn delete(&self, object: &str) -> Result<bool, StoreError> {
        Ok(self.0.delete_object(object))
    }

    fn add_fault(&self, rule: serde_json::Value) -> Result<u64, StoreError> {
        let rule: FaultRule =
            serde_json::from_value(rule).map_err(|e| StoreError::InvalidRule {
                reason: e.to_string(),
            })?;
        let guard = self.0.add_rule(rule).map_err(store_error)?;
        Ok(guard.keep().get())
    }

    fn faults(&self) -> Vec<serde_json::Value> {
        self.0.rules().into_iter().map(json).collect()
    }

    fn remove_fault(&self, id: u64) -> bool {
        self.0.remove_rule(RuleId::new(id))
    }

    fn clear_faults(&self) -> usize {
        let n = self.0.rules().len();
        self.0.clear_rules();
        n
    }

    fn journal_since(&self, seq: u64) -> Result<Vec<serde_json::Value>, StoreError> {
        Ok(self.0.journal_since(seq).into_iter().map(json).collect())
    }

    fn signed_put_url(&self, object: &str, valid_for: Duration) -> Result<String, StoreError> {
        let key = upload_key()?;
        self.0.add_key(key.clone());
        self.0
            .presigned_put_url(object, &key, valid_for)
            .map_err(store_error)
    }

    fn stat(&self, object: &str) -> Option<StoredObject> {
        self.0.object_info(object).map(|o| StoredObject {
            size_bytes: o.size,
            md5: o.md5_hex,
        })
    }
}

/// The COS key the hub signs upload URLs with (the Cloud API's `GetCOSURL`): made once per
/// process, from the standard library's random hasher seed, and never shown to clients.
fn upload_key() -> Result<fake_cos::CosKey, StoreError> {
    use std::hash::{BuildHasher, RandomState};
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let secret = SECRET.get_or_init(|| {
        let state = RandomState::new();
        format!("{:016x}{:016x}", state.hash_one(1u8), state.hash_one(2u8))
    });
    fake_cos::CosKey::new("AKIDotasimHubUploads", secret.as_str()).map_err(store_error)
}

/// [`CosStore`] as part of the hub's world: the COS clock follows the hub's (so
/// `POST /api/clock` expires URLs), and every answered COS request goes into the hub's
/// transcript. The forwarding task stops when the store is dropped or the hub is gone.
pub struct HubCos {
    store: CosStore,
    forwarder: Mutex<Option<JoinHandle<()>>>,
    sink: Mutex<Option<RequestSink>>,
}

impl HubCos {
    /// Fake COS as the hub's own.
    pub fn new(cos: Cos) -> Self {
        HubCos {
            store: CosStore(cos),
            forwarder: Mutex::new(None),
            sink: Mutex::new(None),
        }
    }

    /// A TLS identity for COS issued by the hub's CA (its server certificate, which names
    /// [`fake_hub::HubConfig::tls_names`]), once the hub has started with a TLS port.
    pub fn hub_tls_identity(&self) -> Option<Result<fake_cos::TlsIdentity, CosError>> {
        let sink = self
            .sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()?;
        let (cert, key, ca) = sink.tls_server_pem()?;
        Some(fake_cos::TlsIdentity::from_pem(&cert, &key, &ca))
    }
}

impl Drop for HubCos {
    fn drop(&mut self) {
        let task = self
            .forwarder
            .get_mut()
            .map(Option::take)
            .unwrap_or_else(|poisoned| poisoned.into_inner().take());
        if let Some(task) = task {
            task.abort();
        }
    }
}

impl FirmwareStore for HubCos {
    fn put(&self, object: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.store.put(object, bytes)
    }

    fn signed_url(&self, object: &str, valid_for: Duration) -> Result<String, StoreError> {
        self.store.signed_url(object, valid_for)
    }

    fn delete(&self, object: &str) -> Result<bool, StoreError> {
        self.store.delete(object)
    }

    fn set_clock_offset_ms(&self, offset_ms: i64) {
        self.store.0.clock().set_offset_ms(offset_ms);
    }

    fn add_fault(&self, rule: serde_json::Value) -> Result<u64, StoreError> {
        self.store.add_fault(rule)
    }

    fn faults(&self) -> Vec<serde_json::Value> {
        self.store.faults()
    }

    fn remove_fault(&self, id: u64) -> bool {
        self.store.remove_fault(id)
    }

    fn clear_faults(&self) -> usize {
        self.store.clear_faults()
    }

    fn journal_since(&self, seq: u64) -> Result<Vec<serde_json::Value>, StoreError> {
        self.store.journal_since(seq)
    }

    fn signed_put_url(&self, object: &str, valid_for: Duration) -> Result<String, StoreError> {
        self.store.signed_put_url(object, valid_for)
    }

    fn stat(&self, object: &str) -> Option<StoredObject> {
        self.store.stat(object)
    }

    fn attach(&self, sink: RequestSink) {
        *self
            .sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sink.clone());
        let live = self.store.0.subscribe_journal();
        let task = tokio::spawn(forward(self.store.0.clone(), live, sink));
        let mut slot = self
            .forwarder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = slot.replace(task) {
            old.abort();
        }
    }
}

/// Whether an entry's answer is over (a stall may still go on, so it is not).
fn finished(e: &JournalEntry) -> bool {
    !matches!(e.end, ConnEnd::InProgress | ConnEnd::Stalled)
}

fn request(e: &JournalEntry) -> HttpRequest {
    HttpRequest {
        cos_seq: e.seq,
        client: e.client.to_string(),
        method: e.method.clone(),
        object: e.object.clone(),
        range: e.range.clone(),
        status: e.status,
        bytes_sent: e.body_bytes_sent,
        fault: e.fault.as_ref().map(json),
        end: json(e.end).as_str().unwrap_or("unknown").to_owned(),
        error_code: e.error.as_ref().map(|r| r.code.clone()),
        error_message: e.error.as_ref().map(|r| r.message.clone()),
    }
}

/// Request numbers already recorded, kept small: everything at or below `floor` is done.
#[derive(Default)]
struct Forwarded {
    floor: u64,
    above: BTreeSet<u64>,
}

impl Forwarded {
    /// True the first time `seq` is seen.
    fn first(&mut self, seq: u64) -> bool {
        if seq <= self.floor || !self.above.insert(seq) {
            return false;
        }
        while self.above.remove(&(self.floor + 1)) {
            self.floor += 1;
        }
        true
    }
}

/// Records each request once, when its answer is over; after a lag, catches up from the
/// journal itself so the transcript misses nothing.
async fn forward(cos: Cos, mut live: broadcast::Receiver<JournalEntry>, sink: RequestSink) {
    let mut seen = Forwarded::default();
    loop {
        let batch = match live.recv().await {
            Ok(e) => vec![e],
            Err(broadcast::error::RecvError::Lagged(_)) => cos.journal_since(seen.floor),
            Err(broadcast::error::RecvError::Closed) => return,
        };
        for e in batch.iter().filter(|e| finished(e)) {
            if seen.first(e.seq) && !sink.record(request(e)) {
                return;
            }
        }
        if sink.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Forwarded;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_arrival_order_with_repeats_forwards_each_request_once(
            order in (1u64..40).prop_flat_map(|n| {
                let all: Vec<u64> = (1..=n).collect();
                (Just(n), Just(all).prop_shuffle(), proptest::collection::vec(1..=n, 0..20))
            })
        ) {
            let (n, shuffled, repeats) = order;
            let mut seen = Forwarded::default();
            let mut forwarded = Vec::new();
            for seq in shuffled.iter().chain(repeats.iter()) {
                if seen.first(*seq) {
                    forwarded.push(*seq);
                }
            }
            forwarded.sort_unstable();
            prop_assert_eq!(forwarded, (1..=n).collect::<Vec<_>>());
            prop_assert_eq!(seen.floor, n);
            prop_assert!(seen.above.is_empty());
        }
    }

    #[test]
    fn each_request_is_forwarded_once_in_any_order() {
        let mut seen = Forwarded::default();
        assert!(seen.first(2));
        assert!(seen.first(1));
        assert!(!seen.first(2));
        assert!(!seen.first(1));
        assert_eq!((seen.floor, seen.above.len()), (2, 0));
        assert!(seen.first(4));
        assert_eq!((seen.floor, seen.above.len()), (2, 1));
    }
}
