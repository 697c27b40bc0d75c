//! Where firmware images live: the Hub puts uploads there and signs a URL per push.

use std::time::Duration;

/// Object storage for firmware (COS in the real cloud; `fake-cos` here, wired by the caller).
pub trait FirmwareStore: Send + Sync + 'static {
    /// Stores `bytes` as `object`, replacing any previous content.
    fn put(&self, object: &str, bytes: Vec<u8>) -> Result<(), String>;

    /// A URL a device can download `object` from until `valid_for` has passed.
    fn signed_url(&self, object: &str, valid_for: Duration) -> Result<String, String>;
}
