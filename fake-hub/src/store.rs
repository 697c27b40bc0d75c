//! Where firmware images live: the Hub puts uploads there and signs a URL per push.

use std::time::Duration;

/// Object storage for firmware (COS in the real cloud; `fake-cos` here, wired by the caller).
pub trait FirmwareStore: Send + Sync + 'static {
    /// Stores `bytes` as `object`, replacing any previous content.
    fn put(&self, object: &str, bytes: Vec<u8>) -> Result<(), String>;

    /// A URL a device can download `object` from until `valid_for` has passed.
    fn signed_url(&self, object: &str, valid_for: Duration) -> Result<String, String>;

    /// A URL a client can PUT `object` to until `valid_for` has passed (the Cloud API's
    /// `GetCOSURL`). The default: this store takes no uploads by URL.
    fn signed_put_url(&self, object: &str, valid_for: Duration) -> Result<String, String> {
        let _ = valid_for;
        Err(format!(
            "this firmware store takes no uploads by URL (object {object})"
        ))
    }

    /// The size and MD5 of a stored object, if it exists (the Cloud API's `UploadFirmware`
    /// checks what was PUT). The default: the store cannot tell.
    fn stat(&self, object: &str) -> Option<StoredObject> {
        let _ = object;
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
