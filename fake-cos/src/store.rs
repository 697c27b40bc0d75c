//! The object store. Each object's bytes live in a sealed, unnamed in-memory file (a Linux
//! memfd): never on a disk and never in the process's heap, so a large object does not count
//! against the server's resident memory, and a connection can `sendfile(2)` a range of it
//! straight into its socket. The seals (no write, grow or shrink) make the bytes immutable for
//! as long as any request holds them. Where no memfd can be made, the bytes stay in memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use rustix::fs::{MemfdFlags, SealFlags};
use serde::Serialize;
use tracing::warn;

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

/// Where an object's bytes are.
#[derive(Debug, Clone)]
pub(crate) enum Content {
    /// A sealed memfd holding exactly the object.
    File(Arc<File>),
    /// The bytes themselves.
    Memory(Bytes),
}

/// Copy size when an object is loaded from a reader.
const LOAD_CHUNK: usize = 1 << 20;

impl Content {
    /// A sealed memfd filled from `reader`, with the length and MD5 of what was read.
    fn load(reader: &mut dyn Read) -> io::Result<(Content, u64, String)> {
        let fd = rustix::fs::memfd_create(
            "fake-cos-object",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = File::from(fd);
        let (mut md5, mut size) = (Md5::new(), 0u64);
        let mut buf = vec![0u8; LOAD_CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            md5.update(&buf[..n]);
            file.write_all(&buf[..n])?;
            size += n as u64;
        }
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
        )?;
        Ok((
            Content::File(Arc::new(file)),
            size,
            hex::encode(md5.finalize()),
        ))
    }
}

/// Bytes `start..end` of one object's content.
#[derive(Debug, Clone)]
pub(crate) struct Span {
    content: Content,
    start: u64,
    end: u64,
}

impl Span {
    /// All of `bytes`, e.g. a body a fault has rewritten.
    pub(crate) fn memory(bytes: Bytes) -> Self {
        let end = bytes.len() as u64;
        Self {
            content: Content::Memory(bytes),
            start: 0,
            end,
        }
    }

    /// How many bytes the span holds.
    pub(crate) fn len(&self) -> u64 {
        self.end - self.start
    }

    /// The span's file and the file offset of its first byte, if it is in one.
    pub(crate) fn file(&self) -> Option<(&File, u64)> {
        match &self.content {
            Content::File(file) => Some((file, self.start)),
            Content::Memory(_) => None,
        }
    }

    /// Bytes `from..to` of the span (offsets relative to its start, `to <= len()`).
    pub(crate) fn read(&self, from: u64, to: u64) -> io::Result<Bytes> {
        debug_assert!(from <= to && to <= self.len());
        let (at, stop) = (self.start + from, self.start + to);
        match &self.content {
            Content::Memory(bytes) => Ok(bytes.slice(to_usize(at)..to_usize(stop))),
            Content::File(file) => {
                let mut buf = BytesMut::zeroed(to_usize(stop - at));
                file.read_exact_at(&mut buf, at)?;
                Ok(buf.freeze())
            }
        }
    }
}

fn to_usize(offset: u64) -> usize {
    usize::try_from(offset).expect("object offsets fit usize on the platforms served")
}

/// One stored object: its metadata and its bytes.
#[derive(Debug)]
pub(crate) struct StoredObject {
    pub(crate) info: ObjectInfo,
    content: Content,
}

fn info(name: &ObjectName, size: u64, md5_hex: String, now: SystemTime) -> ObjectInfo {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    ObjectInfo {
        name: name.to_string(),
        size,
        etag: format!("\"{md5_hex}\""),
        md5_hex,
        last_modified: UNIX_EPOCH + Duration::from_secs(secs),
    }
}

impl StoredObject {
    pub(crate) fn new(name: &ObjectName, bytes: Bytes, now: SystemTime) -> Self {
        match Content::load(&mut &bytes[..]) {
            Ok((content, size, md5_hex)) => Self {
                info: info(name, size, md5_hex, now),
                content,
            },
            Err(error) => {
                warn!(%error, object = %name, "no memfd for the object; keeping it in memory");
                let md5_hex = hex::encode(Md5::digest(&bytes));
                Self {
                    info: info(name, bytes.len() as u64, md5_hex, now),
                    content: Content::Memory(bytes),
                }
            }
        }
    }

    /// An object read from `reader` (a file being served), never held whole in memory.
    pub(crate) fn load(
        name: &ObjectName,
        reader: &mut dyn Read,
        now: SystemTime,
    ) -> io::Result<Self> {
        let (content, size, md5_hex) = Content::load(reader)?;
        Ok(Self {
            info: info(name, size, md5_hex, now),
            content,
        })
    }

    /// `source`'s bytes stored as `name` (new Last-Modified), as a re-upload would; shares
    /// the immutable content rather than copying it.
    pub(crate) fn copy_of(name: &ObjectName, source: &StoredObject, now: SystemTime) -> Self {
        Self {
            info: info(name, source.info.size, source.info.md5_hex.clone(), now),
            content: source.content.clone(),
        }
    }

    /// Bytes `start..end` of the object (`end <= size`).
    pub(crate) fn span(&self, start: u64, end: u64) -> Span {
        debug_assert!(start <= end && end <= self.info.size);
        Span {
            content: self.content.clone(),
            start,
            end,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> ObjectName {
        ObjectName::parse("fw.bin").expect("valid name")
    }

    #[test]
    fn stored_bytes_read_back_exactly_and_cannot_be_changed() {
        let bytes: Vec<u8> = (0..3 * LOAD_CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let object = StoredObject::new(&name(), Bytes::from(bytes.clone()), SystemTime::now());
        assert_eq!(object.info.size, bytes.len() as u64);
        assert_eq!(object.info.md5_hex, hex::encode(Md5::digest(&bytes)));
        let span = object.span(5, bytes.len() as u64 - 3);
        let read = span.read(10, span.len()).expect("memfd reads");
        assert_eq!(&read[..], &bytes[15..bytes.len() - 3]);
        let (file, at) = span.file().expect("held in a memfd");
        assert_eq!(at, 5);
        assert!(file.write_at(b"x", 0).is_err(), "sealed against writes");
    }

    #[test]
    fn a_copy_shares_the_bytes_under_a_new_name() {
        let object = StoredObject::new(&name(), Bytes::from_static(b"abcdef"), SystemTime::now());
        let other = ObjectName::parse("other.bin").expect("valid name");
        let copy = StoredObject::copy_of(&other, &object, SystemTime::now());
        assert_eq!(copy.info.name, "other.bin");
        assert_eq!(copy.info.etag, object.info.etag);
        assert_eq!(&copy.span(1, 4).read(0, 3).expect("reads")[..], b"bcd");
    }
}
