//! The object store. Each object's bytes live in an unnamed file that only this process holds,
//! and only for reading: never in the process's heap, so a large object does not count against
//! the server's resident memory, and a connection can `sendfile(2)` a range of it straight into
//! its socket. No name and no writable descriptor remain once it is filled, so the bytes are
//! immutable for as long as any request holds them.
//!
//! The file is an `O_TMPFILE` in the temporary folder when that is a disk filesystem: its page
//! cache keeps large folios (ext4, xfs), which `sendfile` hands to the socket (and a loopback
//! receiver releases) at a fraction of the per-page cost of the 4 KiB pages of a memfd where
//! shared-memory huge pages are off (the common default); nginx serving a file from disk has the
//! same advantage. It takes disk space while held (a full disk fails the load, as a full memory
//! fails a memfd) and is gone when dropped, even after a crash. Where the
//! temporary folder is in memory (tmpfs) or takes no `O_TMPFILE`, the bytes go to a sealed memfd
//! (no write, grow or shrink), and where no memfd can be made either, they stay in memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};
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
    /// A read-only descriptor of an unnamed file (or sealed memfd) holding exactly the object.
    File(Arc<File>),
    /// The bytes themselves.
    Memory(Bytes),
}

/// Copy size when an object is loaded from a reader.
const LOAD_CHUNK: usize = 1 << 20;

impl Content {
    /// An unnamed, read-only file filled from `reader` (see the module's notes on which kind),
    /// with the length and MD5 of what was read.
    fn load(reader: &mut dyn Read) -> io::Result<(Content, u64, String)> {
        let fresh = match unnamed_disk_file(&std::env::temp_dir()) {
            Some(fresh) => fresh,
            None => Fresh::Memfd(memfd()?),
        };
        Self::fill(fresh, reader)
    }

    /// Fills `fresh` from `reader`, then closes it to writes.
    fn fill(fresh: Fresh, reader: &mut dyn Read) -> io::Result<(Content, u64, String)> {
        let mut writer = match &fresh {
            Fresh::Memfd(file) | Fresh::Unnamed { write: file, .. } => file,
        };
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
            writer.write_all(&buf[..n])?;
            size += n as u64;
        }
        let file = match fresh {
            Fresh::Memfd(file) => {
                rustix::fs::fcntl_add_seals(
                    &file,
                    SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
                )?;
                file
            }
            // Dropping the writable descriptor leaves only the read-only one.
            Fresh::Unnamed { read, .. } => read,
        };
        Ok((
            Content::File(Arc::new(file)),
            size,
            hex::encode(md5.finalize()),
        ))
    }
}

/// A file [`Content::fill`] writes.
enum Fresh {
    /// A memfd, sealed once filled.
    Memfd(File),
    /// An unnamed file's writable descriptor, and a read-only one of the same file.
    Unnamed { write: File, read: File },
}

fn memfd() -> io::Result<File> {
    let fd = rustix::fs::memfd_create(
        "fake-cos-object",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    Ok(File::from(fd))
}

/// An `O_TMPFILE` in `dir`, unless that folder is in memory anyway (where a sealed memfd is the
/// same pages with stronger guarantees), takes no unnamed files, or the file cannot be opened
/// again read-only (through `/proc/self/fd`).
fn unnamed_disk_file(dir: &std::path::Path) -> Option<Fresh> {
    use std::os::fd::AsRawFd;
    const TMPFS_MAGIC: u32 = 0x0102_1994;
    const RAMFS_MAGIC: u32 = 0x8584_58f6;
    // The magic numbers are 32-bit; `f_type`'s width and sign differ between platforms.
    let kind = rustix::fs::statfs(dir).ok()?.f_type as u32;
    if kind == TMPFS_MAGIC || kind == RAMFS_MAGIC {
        return None;
    }
    let flags = OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC;
    let write = File::from(rustix::fs::open(dir, flags, Mode::RUSR | Mode::WUSR).ok()?);
    let read = File::open(format!("/proc/self/fd/{}", write.as_raw_fd())).ok()?;
    Some(Fresh::Unnamed { write, read })
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
        let read = span.read(10, span.len()).expect("the file reads");
        assert_eq!(&read[..], &bytes[15..bytes.len() - 3]);
        let (file, at) = span.file().expect("held in a file");
        assert_eq!(at, 5);
        assert!(file.write_at(b"x", 0).is_err(), "closed against writes");
        assert!(file.set_len(0).is_err(), "closed against shrinking");
    }

    #[test]
    fn both_kinds_of_file_hold_the_bytes_read_only() {
        let bytes: Vec<u8> = (0..LOAD_CHUNK + 5).map(|i| (i % 253) as u8).collect();
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut kinds = vec![Fresh::Memfd(memfd().expect("a memfd"))];
        // Absent where the temporary folder is a tmpfs or takes no O_TMPFILE.
        kinds.extend(unnamed_disk_file(dir.path()));
        for fresh in kinds {
            let sealed = matches!(fresh, Fresh::Memfd(_));
            let (content, size, md5_hex) = Content::fill(fresh, &mut &bytes[..]).expect("filled");
            assert_eq!(size, bytes.len() as u64);
            assert_eq!(md5_hex, hex::encode(Md5::digest(&bytes)));
            let Content::File(file) = content else {
                panic!("a file");
            };
            let mut back = vec![0; bytes.len()];
            file.read_exact_at(&mut back, 0).expect("reads");
            assert_eq!(back, bytes, "sealed {sealed}");
            assert!(file.write_at(b"x", 0).is_err(), "sealed {sealed}");
            assert!(file.set_len(1).is_err(), "sealed {sealed}");
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("lists").count(),
            0,
            "no name is ever made"
        );
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
