//! The data file being written, and the MD5 of everything stored in it.
//!
//! Three things run side by side over one pass of the data, with no copy of it: the socket
//! read (the caller), the hash (its own blocking thread, fed the received `Bytes` through a
//! bounded channel, so it stays in file order and a slow hash holds the reader back), and the
//! disk (a blocking thread writing the gathered chunks, one batch in flight). Nothing is synced
//! here except on [`PartFile::checkpoint`] and at the end.

use std::fs;
use std::io::{self, IoSlice, Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use md5::{Digest, Md5};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::download::error::DownloadError;

/// How many write buffers may fill while the writer thread is busy (syncing) before reading
/// waits for it.
const BUSY_BUFFERS: usize = 16;
/// Chunks queued for the hash thread before the reader waits for it.
const HASH_QUEUE: usize = 64;
use crate::download::plan::CheckpointRecord;
use crate::download::store::{
    Checkpoint, ImageLock, Paths, Resumable, blocking, open_data_file, remove_if_present, sync_dir,
    write_checkpoint,
};

/// The data file, owned by whichever thread is writing.
struct Sink {
    file: fs::File,
}

type Flight = JoinHandle<(Sink, Vec<Bytes>, io::Result<()>)>;

/// Where the sink is: here, or on a blocking thread with a batch.
enum Slot {
    Idle(Sink),
    Busy(Flight),
    /// Only while a job is being handed over, or after a failed one.
    Gone,
}

/// The MD5 of the stored bytes, computed on its own thread. A plain thread rather than the
/// runtime's blocking pool, which it would hold for a whole download; it holds a token of the
/// download's task tracker instead, so whoever waits for the tracker waits for it too.
struct HashThread {
    chunks: mpsc::Sender<Bytes>,
    digest: oneshot::Receiver<Md5>,
}

impl HashThread {
    fn start(lock: &ImageLock, mut hasher: Md5) -> io::Result<Self> {
        let (chunks, mut rx) = mpsc::channel::<Bytes>(HASH_QUEUE);
        let (done, digest) = oneshot::channel();
        let token = lock.token();
        std::thread::Builder::new()
            .name("otasim-md5".into())
            .spawn(move || {
                let _tracked = token;
                while let Some(chunk) = rx.blocking_recv() {
                    hasher.update(&chunk);
                }
                // Nobody waits when the download was dropped.
                let _ = done.send(hasher);
            })?;
        Ok(HashThread { chunks, digest })
    }

    /// Queues a chunk; waits while the hash thread is `HASH_QUEUE` chunks behind.
    async fn update(&self, chunk: Bytes) {
        // The thread only ends when this sender is dropped, so the send cannot fail.
        let _ = self.chunks.send(chunk).await;
    }

    /// The MD5 of everything queued.
    async fn finish(self) -> [u8; 16] {
        drop(self.chunks);
        let hasher = self.digest.await.expect("the hash thread does not panic");
        hasher.finalize().into()
    }
}

/// Writes every chunk, gathered into as few system calls as the kernel allows.
fn write_chunks(file: &mut fs::File, chunks: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The `{md5}.part` file of one image.
pub(crate) struct PartFile {
    paths: Paths,
    md5_hex: String,
    file_size: u64,
    slot: Slot,
    hash: HashThread,
    /// Chunks received and hashed, not yet handed to the writer.
    buffer: Vec<Bytes>,
    buffered_bytes: usize,
    buffer_limit: usize,
    lock: ImageLock,
}

impl PartFile {
    /// Opens (or creates) the data file and returns what can be resumed.
    pub(crate) async fn open(
        paths: &Paths,
        md5: [u8; 16],
        file_size: u64,
        buffer_limit: usize,
        lock: ImageLock,
    ) -> Result<(Self, Resumable), DownloadError> {
        let md5_hex = hex::encode(md5);
        let (p, m) = (paths.clone(), md5_hex.clone());
        let (file, hasher, resumable) = blocking(&lock, move || open_data_file(&p, &m, file_size))
            .await
            .map_err(DownloadError::io("open data file", &paths.part))?;
        let part = PartFile {
            paths: paths.clone(),
            md5_hex,
            file_size,
            slot: Slot::Idle(Sink { file }),
            hash: HashThread::start(&lock, hasher)
                .map_err(DownloadError::io("start the hash thread", &paths.part))?,
            buffer: Vec::new(),
            buffered_bytes: 0,
            buffer_limit,
            lock,
        };
        Ok((part, resumable))
    }

    /// Wraps a blocking job so that it keeps the image locked until it ends.
    fn holding<T>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> impl FnOnce() -> T + Send + 'static {
        let lock = Arc::clone(&self.lock);
        move || {
            let out = job();
            drop(lock);
            out
        }
    }

    fn part_path(&self) -> PathBuf {
        self.paths.part.clone()
    }

    /// Stores body bytes; a full buffer is handed to the writer thread.
    pub(crate) async fn append(&mut self, data: Bytes) -> Result<(), DownloadError> {
        self.buffered_bytes += data.len();
        self.hash.update(data.clone()).await;
        self.buffer.push(data);
        // While the writer thread syncs, keep reading into a deeper buffer rather than wait.
        let writer_busy = matches!(&self.slot, Slot::Busy(flight) if !flight.is_finished());
        let limit = if writer_busy {
            self.buffer_limit * BUSY_BUFFERS
        } else {
            self.buffer_limit
        };
        if self.buffered_bytes >= limit {
            self.submit().await?;
        }
        Ok(())
    }

    /// Waits for the writer thread and returns the sink with the buffer it used.
    async fn land(&mut self) -> Result<(Sink, Option<Vec<Bytes>>), DownloadError> {
        match std::mem::replace(&mut self.slot, Slot::Gone) {
            Slot::Idle(sink) => Ok((sink, None)),
            Slot::Busy(flight) => {
                let (sink, used, result) = flight.await.expect("write job does not panic");
                result.map_err(DownloadError::io("write data file", self.part_path()))?;
                Ok((sink, Some(used)))
            }
            Slot::Gone => Err(DownloadError::Io {
                op: "write data file",
                path: self.part_path(),
                source: io::Error::other("an earlier write failed"),
            }),
        }
    }

    /// Takes the gathered chunks, leaving an empty list (the spare one, to reuse its room).
    fn take_buffer(&mut self, spare: Option<Vec<Bytes>>) -> Vec<Bytes> {
        let mut next = spare.unwrap_or_default();
        next.clear();
        self.buffered_bytes = 0;
        std::mem::replace(&mut self.buffer, next)
    }

    /// Hands the gathered chunks to a blocking thread that writes them.
    async fn submit(&mut self) -> Result<(), DownloadError> {
        let (mut sink, spare) = self.land().await?;
        if self.buffer.is_empty() {
            self.slot = Slot::Idle(sink);
            return Ok(());
        }
        let full = self.take_buffer(spare);
        self.slot = Slot::Busy(self.lock.spawn_blocking(self.holding(move || {
            let result = write_chunks(&mut sink.file, &full);
            (sink, full, result)
        })));
        Ok(())
    }

    /// Writes everything stored, then runs `job` on the idle sink on a blocking thread.
    async fn with_sink<T: Send + 'static>(
        &mut self,
        op: &'static str,
        job: impl FnOnce(&mut Sink) -> io::Result<T> + Send + 'static,
    ) -> Result<T, DownloadError> {
        self.submit().await?;
        let (mut sink, _) = self.land().await?;
        let (sink, result) = self
            .lock
            .spawn_blocking(self.holding(move || {
                let result = job(&mut sink);
                (sink, result)
            }))
            .await
            .expect("file job does not panic");
        self.slot = Slot::Idle(sink);
        result.map_err(DownloadError::io(op, self.part_path()))
    }

    /// Makes every stored byte durable, then records `record` as the checkpoint.
    pub(crate) async fn checkpoint(
        &mut self,
        record: CheckpointRecord,
    ) -> Result<(), DownloadError> {
        self.with_sink("sync data file", |sink| sink.file.sync_data())
            .await?;
        let ckpt = Checkpoint {
            md5: self.md5_hex.clone(),
            file_size: self.file_size,
            durable_bytes: record.durable_bytes,
            etag: record.etag,
        };
        let paths = self.paths.clone();
        blocking(&self.lock, move || write_checkpoint(&paths, &ckpt))
            .await
            .map_err(DownloadError::io("write checkpoint", &self.paths.ckpt))?;
        debug!(durable = record.durable_bytes, "checkpoint written");
        Ok(())
    }

    /// Like [`PartFile::checkpoint`] without waiting: the writer thread writes what is
    /// buffered, syncs the data file and only then replaces the checkpoint, while the caller
    /// reads on. A failure surfaces at the next write, sync or finish.
    pub(crate) async fn checkpoint_behind(
        &mut self,
        record: CheckpointRecord,
    ) -> Result<(), DownloadError> {
        let (mut sink, spare) = self.land().await?;
        let full = self.take_buffer(spare);
        let ckpt = Checkpoint {
            md5: self.md5_hex.clone(),
            file_size: self.file_size,
            durable_bytes: record.durable_bytes,
            etag: record.etag,
        };
        let paths = self.paths.clone();
        self.slot = Slot::Busy(self.lock.spawn_blocking(self.holding(move || {
            let result = write_chunks(&mut sink.file, &full)
                .and_then(|()| sink.file.sync_data())
                .and_then(|()| write_checkpoint(&paths, &ckpt));
            (sink, full, result)
        })));
        debug!(
            durable = record.durable_bytes,
            "checkpoint handed to the writer"
        );
        Ok(())
    }

    /// Waits for the writer thread (a checkpoint handed over may still be syncing) and
    /// reports its failure, if any.
    pub(crate) async fn settle(&mut self) -> Result<(), DownloadError> {
        let (sink, _) = self.land().await?;
        self.slot = Slot::Idle(sink);
        Ok(())
    }

    /// Forgets the stored prefix: empties the data file and records a zero checkpoint before
    /// any new byte is written, so an old checkpoint can never vouch for new data.
    pub(crate) async fn reset(&mut self, etag: Option<String>) -> Result<(), DownloadError> {
        self.buffer.clear();
        self.buffered_bytes = 0;
        let fresh = HashThread::start(&self.lock, Md5::new())
            .map_err(DownloadError::io("start the hash thread", self.part_path()))?;
        // The old thread ends with its sender; what it hashed is forgotten.
        drop(std::mem::replace(&mut self.hash, fresh));
        let empty = |sink: &mut Sink| {
            sink.file.set_len(0)?;
            sink.file.rewind()
        };
        self.with_sink("truncate data file", empty).await?;
        self.checkpoint(CheckpointRecord {
            durable_bytes: 0,
            etag,
        })
        .await
    }

    /// Syncs the complete image, checks its MD5 and renames it to `{md5}.bin`. A wrong image is
    /// deleted with its checkpoint, so the next download starts from 0.
    pub(crate) async fn finish(mut self, expected: [u8; 16]) -> Result<PathBuf, DownloadError> {
        self.with_sink("sync data file", |sink| sink.file.sync_all())
            .await?;
        // Close the file before renaming or deleting it; keep the lock for those jobs.
        let PartFile {
            paths,
            lock,
            slot,
            hash,
            ..
        } = self;
        drop(slot);
        let actual = hash.finish().await;
        let p = paths.clone();
        if actual != expected {
            let delete = move || {
                remove_if_present(&p.part)?;
                remove_if_present(&p.ckpt)
            };
            blocking(&lock, delete)
                .await
                .map_err(DownloadError::io("delete wrong image", &paths.part))?;
            let (expected, actual) = (hex::encode(expected), hex::encode(actual));
            return Err(DownloadError::Md5Mismatch { expected, actual });
        }
        let store = move || {
            fs::rename(&p.part, &p.bin)?;
            sync_dir(&p.dir)?;
            remove_if_present(&p.ckpt)
        };
        blocking(&lock, store)
            .await
            .map_err(DownloadError::io("store finished image", &paths.bin))?;
        Ok(paths.bin)
    }
}
