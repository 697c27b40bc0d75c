//! The files of one image under the download directory, keyed by its MD5 (never by the cloud's
//! version string): `{md5}.part` data, `{md5}.ckpt` checkpoint, `{md5}.bin` verified image.
//!
//! Write order keeps the checkpoint behind the data: append, flush + `sync_data`, then write
//! the checkpoint to a temporary file, sync it, rename it over the old one and sync the
//! directory. On resume the data file is cut back to the checkpoint (a crash may leave unsynced
//! bytes past it) and that prefix is hashed again to rebuild the MD5 state.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedMutexGuard;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::download::error::DownloadError;

const HASH_READ_BYTES: usize = 256 << 10;

/// Paths of one image's files.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub(crate) dir: PathBuf,
    pub(crate) part: PathBuf,
    pub(crate) ckpt: PathBuf,
    ckpt_tmp: PathBuf,
    pub(crate) bin: PathBuf,
}

impl Paths {
    pub(crate) fn new(dir: &Path, md5: &[u8; 16]) -> Self {
        let stem = hex::encode(md5);
        Paths {
            dir: dir.to_path_buf(),
            part: dir.join(format!("{stem}.part")),
            ckpt: dir.join(format!("{stem}.ckpt")),
            ckpt_tmp: dir.join(format!("{stem}.ckpt.tmp")),
            bin: dir.join(format!("{stem}.bin")),
        }
    }
}

/// The checkpoint file's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Checkpoint {
    pub(crate) md5: String,
    pub(crate) file_size: u64,
    pub(crate) durable_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) etag: Option<String>,
}

/// What a previous run left that can be continued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resumable {
    pub(crate) durable_bytes: u64,
    pub(crate) etag: Option<String>,
}

/// Hashes a whole file, or its first `limit` bytes; returns the hasher and the bytes hashed.
fn hash_prefix(path: &Path, limit: u64) -> io::Result<(Md5, u64)> {
    let mut file = fs::File::open(path)?.take(limit);
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; HASH_READ_BYTES];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((hasher, total));
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

/// Exclusive use of one image's files, and the tracker its file jobs run on. Every blocking
/// file job holds a clone, so when a download future is dropped mid-job the next download of
/// the image waits for the orphaned job instead of racing it on the same files, and the
/// tracker's owner can wait for it too.
pub(crate) struct ImageGuard {
    _guard: OwnedMutexGuard<()>,
    tasks: TaskTracker,
}

impl ImageGuard {
    pub(crate) fn new(guard: OwnedMutexGuard<()>, tasks: TaskTracker) -> Self {
        ImageGuard {
            _guard: guard,
            tasks,
        }
    }

    /// Keeps the tracker from counting as done while held (for work on threads of our own).
    pub(crate) fn token(&self) -> tokio_util::task::task_tracker::TaskTrackerToken {
        self.tasks.token()
    }

    /// Runs `job` on a tracked blocking thread.
    pub(crate) fn spawn_blocking<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.tasks.spawn_blocking(job)
    }
}

/// The lock of one image, shared by its jobs.
pub(crate) type ImageLock = Arc<ImageGuard>;

/// Runs a file job on a blocking thread, holding the image lock until it ends.
pub(crate) async fn blocking<T: Send + 'static>(
    lock: &ImageLock,
    job: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let held = Arc::clone(lock);
    let job = move || {
        let out = job();
        drop(held);
        out
    };
    lock.spawn_blocking(job)
        .await
        .expect("file job does not panic")
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    // Directory fsync makes a rename durable on Unix; other platforms cannot open a directory.
    if cfg!(unix) {
        fs::File::open(dir)?.sync_all()
    } else {
        Ok(())
    }
}

pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Returns the finished image if `{md5}.bin` exists with the right size and MD5; deletes a
/// wrong one, and any partial files left beside a right one.
pub(crate) async fn reuse_finished(
    paths: &Paths,
    md5: [u8; 16],
    file_size: u64,
    lock: &ImageLock,
) -> Result<bool, DownloadError> {
    let p = paths.clone();
    let job = move || -> io::Result<bool> {
        let len = match fs::metadata(&p.bin) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if len == file_size && <[u8; 16]>::from(hash_prefix(&p.bin, len)?.0.finalize()) == md5 {
            remove_if_present(&p.part)?;
            remove_if_present(&p.ckpt)?;
            return Ok(true);
        }
        warn!(path = %p.bin.display(), len, "finished image is wrong, deleting it");
        remove_if_present(&p.bin)?;
        Ok(false)
    };
    blocking(lock, job)
        .await
        .map_err(DownloadError::io("check finished image", &paths.bin))
}

/// Reads the checkpoint; anything missing, unreadable or for another image means "from 0".
fn load_checkpoint(paths: &Paths, md5_hex: &str, file_size: u64) -> Option<Resumable> {
    let text = fs::read(&paths.ckpt).ok()?;
    match serde_json::from_slice::<Checkpoint>(&text) {
        Ok(c) if c.md5 == md5_hex && c.file_size == file_size && c.durable_bytes <= file_size => {
            Some(Resumable {
                durable_bytes: c.durable_bytes,
                etag: c.etag,
            })
        }
        Ok(c) => {
            warn!(?c, "checkpoint is for another image, starting over");
            None
        }
        Err(error) => {
            warn!(%error, path = %paths.ckpt.display(), "unreadable checkpoint, starting over");
            None
        }
    }
}

/// Opens the data file for this image, continuing the checkpointed prefix when there is one:
/// returns the file positioned at its end and the MD5 state of its content.
pub(crate) fn open_data_file(
    paths: &Paths,
    md5_hex: &str,
    file_size: u64,
) -> io::Result<(fs::File, Md5, Resumable)> {
    fs::create_dir_all(&paths.dir)?;
    let found = load_checkpoint(paths, md5_hex, file_size);
    let data_len = fs::metadata(&paths.part).map(|m| m.len()).unwrap_or(0);
    let resumable = match found {
        // Bytes past the checkpoint were never synced: they are dropped, not trusted.
        Some(r) if r.durable_bytes <= data_len => r,
        Some(r) => {
            warn!(
                durable = r.durable_bytes,
                data_len, "data file shorter than its checkpoint"
            );
            Resumable {
                durable_bytes: 0,
                etag: None,
            }
        }
        None => Resumable {
            durable_bytes: 0,
            etag: None,
        },
    };
    let mut file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&paths.part)?;
    file.set_len(resumable.durable_bytes)?;
    io::Seek::seek(&mut file, io::SeekFrom::End(0))?;
    file.sync_data()?;
    let (hasher, hashed) = hash_prefix(&paths.part, resumable.durable_bytes)?;
    if hashed != resumable.durable_bytes {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "data file shrank while hashing",
        ));
    }
    Ok((file, hasher, resumable))
}

/// Replaces the checkpoint atomically. No directory sync: if the rename is lost in a crash,
/// the older checkpoint is found, which is behind the data and so still safe.
pub(crate) fn write_checkpoint(paths: &Paths, ckpt: &Checkpoint) -> io::Result<()> {
    let json = serde_json::to_vec(ckpt).expect("a checkpoint always serializes");
    let mut tmp = fs::File::create(&paths.ckpt_tmp)?;
    io::Write::write_all(&mut tmp, &json)?;
    tmp.sync_all()?;
    fs::rename(&paths.ckpt_tmp, &paths.ckpt)
}
