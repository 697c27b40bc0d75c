//! Downloader tests against a scripted server on loopback, with real files in temp dirs.

mod chaos;
mod faults;
mod https;
mod resume;
mod server;

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::Path;
use std::time::Duration;

use md5::{Digest, Md5};
use tokio_util::sync::CancellationToken;

use super::store::Checkpoint;
use super::*;
use server::{Reply, ScriptedServer};

/// The seed demo's image size.
const SIZE: usize = 29_972;

fn image(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// Fast backoff, generous waits, `attempts` requests at most.
fn config(attempts: u32) -> DownloadConfig {
    DownloadConfig {
        timeouts: Timeouts::new(
            Duration::from_secs(10),
            Duration::from_secs(10),
            Duration::from_secs(10),
        )
        .expect("valid timeouts"),
        retry: RetryPolicy::new(
            NonZeroU32::new(attempts).expect("at least one attempt"),
            Duration::from_secs(60),
            Duration::from_millis(1),
            Duration::from_millis(5),
        )
        .expect("valid retry policy"),
        checkpoint: CheckpointPolicy::EveryBytes(NonZeroU64::new(4096).expect("not zero")),
        write_buffer_bytes: NonZeroUsize::new(8192).expect("not zero"),
        ..DownloadConfig::default()
    }
}

/// Test fixture: a temp dir, an image and its spec for a server.
struct Fixture {
    dir: tempfile::TempDir,
    image: Vec<u8>,
}

impl Fixture {
    fn new(len: usize) -> Self {
        Fixture {
            dir: tempfile::tempdir().expect("temp dir"),
            image: image(len),
        }
    }

    fn spec(&self, server: &ScriptedServer) -> ImageSpec {
        ImageSpec {
            url: server.url(),
            file_size: self.image.len() as u64,
            md5: md5_of(&self.image),
        }
    }

    fn file(&self, ext: &str) -> std::path::PathBuf {
        self.dir
            .path()
            .join(format!("{}.{ext}", hex::encode(md5_of(&self.image))))
    }

    fn checkpoint(&self) -> Option<Checkpoint> {
        let text = std::fs::read(self.file("ckpt")).ok()?;
        Some(serde_json::from_slice(&text).expect("checkpoint is valid JSON"))
    }

    fn part_len(&self) -> u64 {
        std::fs::metadata(self.file("part")).map_or(0, |m| m.len())
    }

    async fn fetch(
        &self,
        server: &ScriptedServer,
        config: DownloadConfig,
    ) -> Result<DownloadOutcome, DownloadError> {
        let downloader = Downloader::new(self.dir.path(), config);
        downloader
            .fetch(&self.spec(server), |_| {}, &CancellationToken::new())
            .await
    }

    /// Asserts a verified image equal to ours, and no partial files left.
    fn assert_verified(&self, outcome: &DownloadOutcome) -> Downloaded {
        let DownloadOutcome::Verified(done) = outcome else {
            panic!("not verified: {outcome:?}")
        };
        assert_eq!(done.path, self.file("bin"));
        assert!(
            std::fs::read(&done.path).expect("image readable") == self.image,
            "image bytes differ"
        );
        assert!(
            !self.file("part").exists() && !self.file("ckpt").exists(),
            "partial files left"
        );
        done.clone()
    }
}

fn range_from(offset: u64, size: usize) -> Option<String> {
    Some(format!("bytes={offset}-{}", size - 1))
}

fn assert_no_image(dir: &Path) {
    let bins = std::fs::read_dir(dir)
        .expect("dir readable")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "bin"))
        })
        .count();
    assert_eq!(bins, 0, "a .bin was stored");
}

#[tokio::test]
async fn fresh_download_stores_verified_image_named_by_md5() {
    let fx = Fixture::new(SIZE);
    let server = ScriptedServer::start(&fx.image, vec![]).await;
    let outcome = fx
        .fetch(&server, config(3))
        .await
        .expect("download succeeds");
    let done = fx.assert_verified(&outcome);
    assert_eq!(
        (done.attempts, done.restarts, done.reused, done.resumed_from),
        (1, 0, false, 0)
    );
    assert_eq!(done.bytes_fetched, SIZE as u64);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].range, range_from(0, SIZE));
    assert_eq!(seen[0].target, "/fw_V100R0001?sign=secret");
    assert_eq!(
        seen[0].host,
        server.url().split('/').nth(2).map(str::to_owned)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn empty_image_is_fetched_without_range() {
    let fx = Fixture::new(0);
    let server = ScriptedServer::start(&fx.image, vec![]).await;
    let outcome = fx
        .fetch(&server, config(1))
        .await
        .expect("download succeeds");
    fx.assert_verified(&outcome);
    assert_eq!(server.ranges(), vec![None]);
    server.shutdown().await;
}

#[tokio::test]
async fn finished_image_is_reused_without_a_request() {
    let fx = Fixture::new(SIZE);
    let server = ScriptedServer::start(&fx.image, vec![]).await;
    fx.fetch(&server, config(1))
        .await
        .expect("first download succeeds");
    let outcome = fx
        .fetch(&server, config(1))
        .await
        .expect("second call succeeds");
    let done = fx.assert_verified(&outcome);
    assert_eq!((done.reused, done.bytes_fetched), (true, 0));
    assert_eq!(server.seen().len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_finished_image_is_replaced_by_a_download() {
    let fx = Fixture::new(SIZE);
    std::fs::write(fx.file("bin"), b"not the image").expect("write stale image");
    let server = ScriptedServer::start(&fx.image, vec![]).await;
    let outcome = fx
        .fetch(&server, config(1))
        .await
        .expect("download succeeds");
    assert!(!fx.assert_verified(&outcome).reused);
    server.shutdown().await;
}

#[tokio::test]
async fn two_subdevices_on_one_image_share_one_download() {
    let fx = Fixture::new(SIZE);
    let server = ScriptedServer::start(&fx.image, vec![]).await;
    let downloader = Downloader::new(fx.dir.path(), config(1));
    let other = downloader.clone();
    let (spec, cancel) = (fx.spec(&server), CancellationToken::new());
    let (a, b) = tokio::join!(
        downloader.fetch(&spec, |_| {}, &cancel),
        other.fetch(&spec, |_| {}, &cancel)
    );
    let (a, b) = (
        fx.assert_verified(&a.expect("a ok")),
        fx.assert_verified(&b.expect("b ok")),
    );
    assert!(a.reused != b.reused, "exactly one of them downloads");
    assert_eq!(server.seen().len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn progress_reaches_file_size_and_never_goes_past_it() {
    let fx = Fixture::new(SIZE);
    let server = ScriptedServer::start(&fx.image, vec![]).await;
    let downloader = Downloader::new(fx.dir.path(), config(1));
    let mut reports = Vec::new();
    let spec = fx.spec(&server);
    downloader
        .fetch(&spec, |p| reports.push(p), &CancellationToken::new())
        .await
        .expect("ok");
    assert!(
        reports
            .windows(2)
            .all(|w| w[0].downloaded_bytes <= w[1].downloaded_bytes)
    );
    assert!(
        reports
            .iter()
            .all(|p| p.file_size == SIZE as u64 && p.downloaded_bytes <= p.file_size)
    );
    assert_eq!(
        reports.last().map(|p| p.downloaded_bytes),
        Some(SIZE as u64)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn non_http_urls_are_rejected_before_any_io() {
    let fx = Fixture::new(16);
    let downloader = Downloader::new(fx.dir.path().join("never-created"), config(1));
    for url in [
        "ftp://host/fw",
        "file:///etc/passwd",
        "https://host/fw?sign=s",
        "http://u:p@host/fw",
        "fw.bin",
    ] {
        let spec = ImageSpec {
            url: url.into(),
            file_size: 16,
            md5: md5_of(&fx.image),
        };
        let error = downloader
            .fetch(&spec, |_| {}, &CancellationToken::new())
            .await
            .expect_err(url);
        assert!(
            matches!(error, DownloadError::InvalidUrl { .. }),
            "{url}: {error}"
        );
        assert!(!error.to_string().contains("secret") && !error.to_string().contains("sign="));
        assert_eq!(error.kind(), FailureKind::UpgradeFailed);
    }
    assert!(!downloader.dir().exists());
}
