//! The in-memory object store: objects never touch the filesystem.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use md5::{Digest, Md5};
use serde::Serialize;

use crate::name::ObjectName;

/// What the store knows about one object, as a test or the Hub's `update_firmware` needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectInfo {
    /// The object name, the single path segment of its URL.
    pub name: String,
    /// Size in bytes (the `file_size` of `update_firmware`).
    pub size: u64,
    /// Lower-case hex MD5 of the content (the `md5sum` of `update_firmware`).
    pub md5_hex: String,
    /// The `ETag` header value, quoted as COS sends it: `"<md5_hex>"`.
    pub etag: String,
    /// When the object was stored, on the instance clock, in whole seconds.
    pub last_modified: SystemTime,
}

/// One stored object: its metadata and its bytes.
#[derive(Debug)]
pub(crate) struct StoredObject {
    pub(crate) info: ObjectInfo,
    pub(crate) bytes: Bytes,
}

impl StoredObject {
    pub(crate) fn new(name: &ObjectName, bytes: Bytes, now: SystemTime) -> Self {
        let md5_hex = hex::encode(Md5::digest(&bytes));
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let info = ObjectInfo {
            name: name.to_string(),
            size: bytes.len() as u64,
            etag: format!("\"{md5_hex}\""),
            md5_hex,
            last_modified: UNIX_EPOCH + Duration::from_secs(secs),
        };
        Self { info, bytes }
    }
}

/// Objects by name, ordered so listings are repeatable.
#[derive(Debug, Default)]
pub(crate) struct Store {
    objects: Mutex<BTreeMap<ObjectName, Arc<StoredObject>>>,
}

impl Store {
    pub(crate) fn put(&self, name: ObjectName, object: StoredObject) -> Arc<StoredObject> {
        let object = Arc::new(object);
        self.lock().insert(name, Arc::clone(&object));
        object
    }

    pub(crate) fn get(&self, name: &ObjectName) -> Option<Arc<StoredObject>> {
        self.lock().get(name).cloned()
    }

    pub(crate) fn delete(&self, name: &ObjectName) -> bool {
        self.lock().remove(name).is_some()
    }

    pub(crate) fn list(&self) -> Vec<ObjectInfo> {
        self.lock().values().map(|o| o.info.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ObjectName, Arc<StoredObject>>> {
        self.objects
            .lock()
            .expect("store lock is never held across a panic")
    }
}
