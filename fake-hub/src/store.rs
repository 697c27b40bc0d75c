//! Where firmware images live: the Hub puts uploads there and signs a URL per push.
//!
//! The seam between the hub and its COS. The hub never depends on a COS implementation: the
//! caller wires one in (fake COS in `otasim hub` and the scenarios). Besides storing and
//! signing, a store can delete objects, follow the hub's clock, take COS fault rules and show
//! its request journal; those are optional, with defaults that say the store cannot.
//!
//! COS fault rules and journal entries cross the seam as JSON: their format is the COS's own
//! (for fake COS, the `FaultRule` and `JournalEntry` of its admin API), so the hub passes them
//! through unchanged and the same rule text works on `otasim cos` and `otasim hub`.

use crate::http::RequestSink;
use std::time::Duration;

/// Why the firmware store refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object name is not one the store accepts.
    #[error("invalid object name {object:?}: {reason}")]
    InvalidName {
        /// The name.
        object: String,
        /// Why it is refused.
        reason: String,
    },
    /// A COS fault rule is malformed or invalid; `field` names the part at fault.
    #[error("invalid COS fault rule: {reason}")]
    InvalidRule {
        /// Why, naming the field.
        reason: String,
    },
    /// This store does not offer the operation (a test store, say).
    #[error("the firmware store cannot {0}")]
    Unsupported(&'static str),
    /// The store failed for its own reasons.
    #[error("firmware store: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Object storage for firmware (COS in the real cloud; `fake-cos` here, wired by the caller).
pub trait FirmwareStore: Send + Sync + 'static {
    /// Stores `bytes` as `object`, replacing any previous content.
    fn put(&self, object: &str, bytes: Vec<u8>) -> Result<(), StoreError>;

    /// A URL a device can download `object` from until `valid_for` has passed.
    fn signed_url(&self, object: &str, valid_for: Duration) -> Result<String, StoreError>;

    /// Removes `object`; `Ok(false)` if it was not stored. Signed URLs for it then get 404.
    fn delete(&self, _object: &str) -> Result<bool, StoreError> {
        Err(StoreError::Unsupported("delete objects"))
    }

    /// The hub's wall clock moved: it is now `offset_ms` from real time. A store that signs
    /// expiring URLs judges them on this clock from now on.
    fn set_clock_offset_ms(&self, _offset_ms: i64) {}

    /// Installs a COS fault rule (the store's own JSON format) after the others; its id.
    fn add_fault(&self, _rule: serde_json::Value) -> Result<u64, StoreError> {
        Err(StoreError::Unsupported("take fault rules"))
    }

    /// The installed COS fault rules in decision order, as the store shows them.
    fn faults(&self) -> Vec<serde_json::Value> {
        Vec::new()
    }

    /// Removes a COS fault rule; false if it was not installed.
    fn remove_fault(&self, _id: u64) -> bool {
        false
    }

    /// Removes every COS fault rule; how many there were.
    fn clear_faults(&self) -> usize {
        0
    }

    /// The requests numbered above `seq`, in arrival order, as the store journals them.
    fn journal_since(&self, _seq: u64) -> Result<Vec<serde_json::Value>, StoreError> {
        Err(StoreError::Unsupported("keep a request journal"))
    }

    /// Called once when the hub starts: the store hands every request it has answered to
    /// `sink`, so the hub's transcript shows HTTP beside MQTT. The default records nothing.
    fn attach(&self, _sink: RequestSink) {}

    /// A URL a client can PUT `object` to until `valid_for` has passed (the Cloud API's
    /// `GetCOSURL`). The default: this store takes no uploads by URL.
    fn signed_put_url(&self, _object: &str, _valid_for: Duration) -> Result<String, StoreError> {
        Err(StoreError::Unsupported("take uploads by URL"))
    }

    /// The size and MD5 of a stored object, if it exists (the Cloud API's `UploadFirmware`
    /// checks what was PUT). The default: the store cannot tell.
    fn stat(&self, _object: &str) -> Option<StoredObject> {
        None
    }
}

/// What a [`FirmwareStore`] holds under a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Size in bytes.
    pub size_bytes: u64,
    /// Lower-case hex MD5 of the content.
    pub md5: String,
}
