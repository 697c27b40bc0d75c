//! The download under arbitrary fault scripts and gateway kills: every run ends with the exact
//! image burned, or a failure whose code one of the scripted faults explains. Never a wrong
//! image. Runs on a paused clock, so stalls and backoff cost no real time.
//!
//! `OTASIM_CHAOS_CASES` sets the number of cases (1,000 by default).

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use tokio::sync::Notify;

use super::*;
use crate::burner::{BurnRequest, Burner, SimulatedBurner};
use otasim_protocol::DeviceId;

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        4 => Just(Reply::Honest),
        3 => (0..24_000u64).prop_map(Reply::CutAfter),
        2 => (0..24_000u64).prop_map(Reply::StallAfter),
        1 => Just(Reply::Corrupt),
        2 => Just(Reply::FullIgnoringRange),
        1 => Just(Reply::WrongStart),
        1 => Just(Reply::Etag("v2")),
        1 => Just(Reply::Status(503)),
        1 => Just(Reply::Status(404)),
        1 => Just(Reply::Status(403)),
        1 => Just(Reply::Silent),
    ]
}

/// A run: the image size, the server's script, and after how many stored chunks each life of
/// the gateway is killed (the last life is never killed).
#[derive(Debug, Clone)]
struct Run {
    size: usize,
    script: Vec<Reply>,
    kills: Vec<usize>,
}

fn run() -> impl Strategy<Value = Run> {
    (
        1..24_000usize,
        prop::collection::vec(reply(), 0..6),
        prop::collection::vec(1..12usize, 0..3),
    )
        .prop_map(|(size, script, kills)| Run {
            size,
            script,
            kills,
        })
}

fn chaos_config() -> DownloadConfig {
    DownloadConfig {
        timeouts: Timeouts::new(
            Duration::from_secs(5),
            Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .expect("valid timeouts"),
        retry: RetryPolicy::new(
            NonZeroU32::new(4).expect("not zero"),
            Duration::from_secs(600),
            Duration::from_millis(100),
            Duration::from_secs(2),
        )
        .expect("valid retry policy"),
        checkpoint: CheckpointPolicy::EveryBytes(NonZeroU64::new(8192).expect("not zero")),
        write_buffer_bytes: NonZeroUsize::new(4096).expect("not zero"),
        ..DownloadConfig::default()
    }
}

/// One life of the gateway: the download until it ends, or until `kill_after` stored chunks.
async fn life(
    downloader: &Downloader,
    spec: &ImageSpec,
    kill_after: Option<usize>,
) -> Option<Result<DownloadOutcome, DownloadError>> {
    let chunks = AtomicUsize::new(0);
    let kill = Notify::new();
    let progress = |_| {
        if Some(chunks.fetch_add(1, Ordering::Relaxed) + 1) == kill_after {
            kill.notify_one();
        }
    };
    let cancel = CancellationToken::new();
    tokio::select! {
        // The kill drops the download wherever it is, as a power cut would.
        _ = kill.notified() => None,
        result = downloader.fetch(spec, progress, &cancel) => Some(result),
    }
}

/// After a kill: waits for the dead life's file jobs, then garbles whatever the data file
/// holds past its checkpoint, as unsynced bytes may be after a power cut.
async fn power_cut(downloader: &Downloader, fx: &Fixture, md5: [u8; 16]) {
    let _quiet = downloader.lock_for(md5).lock_owned().await;
    let durable = fx.checkpoint().map_or(0, |c| c.durable_bytes);
    let len = fx.part_len();
    if len > durable {
        let mut data = std::fs::read(fx.file("part")).expect("read data file");
        data[durable as usize..].fill(0xAA);
        std::fs::write(fx.file("part"), data).expect("garble data file");
    }
}

/// Whether a scripted fault explains a failure of this kind.
fn explained(kind: FailureKind, script: &[Reply]) -> bool {
    script.iter().any(|r| match kind {
        FailureKind::FileNotExist => *r == Reply::Status(404),
        FailureKind::SignatureExpired => *r == Reply::Status(403),
        FailureKind::Md5Mismatch => *r == Reply::Corrupt,
        FailureKind::DownloadTimeout => matches!(r, Reply::StallAfter(_) | Reply::Silent),
        FailureKind::UpgradeFailed => *r != Reply::Honest,
    })
}

/// A fixture on tmpfs where there is one: the kills are simulated, so real fsyncs only cost time.
fn fixture(size: usize) -> Fixture {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    };
    Fixture {
        dir: dir.expect("temp dir"),
        image: image(size),
    }
}

async fn check(run: Run) -> Result<(), TestCaseError> {
    let fx = fixture(run.size);
    let server = ScriptedServer::start(&fx.image, run.script.clone()).await;
    let spec = fx.spec(&server);
    let downloader = Downloader::new(fx.dir.path(), chaos_config());
    let mut kills = run.kills.iter().copied();
    let outcome = loop {
        match life(&downloader, &spec, kills.next()).await {
            Some(outcome) => break outcome,
            None => power_cut(&downloader, &fx, spec.md5).await,
        }
    };
    server.shutdown().await;
    match outcome {
        Ok(DownloadOutcome::Verified(done)) => {
            let burner = SimulatedBurner::new(fx.dir.path().join("flash"));
            let device = DeviceId::new("E69UADXUYY", "light1").expect("id");
            let request = BurnRequest {
                device: &device,
                image: &done.path,
                version: "2.0",
                progress: &|_| {},
                cancel: &CancellationToken::new(),
            };
            burner.burn(request).await.expect("burn works");
            let flash =
                std::fs::read(burner.flash_dir(&device).join("image.bin")).expect("flash readable");
            prop_assert!(flash == fx.image, "a wrong image was burned");
        }
        Ok(DownloadOutcome::Cancelled { .. }) => prop_assert!(false, "nobody cancelled"),
        Err(error) => {
            prop_assert!(
                run.script.iter().any(|r| *r != Reply::Honest),
                "an honest server and kills alone must end verified: {error}"
            );
            prop_assert!(
                explained(error.kind(), &run.script),
                "{error} ({:?}) is not explained by {:?}",
                error.kind(),
                run.script
            );
            let bin = fx.file("bin");
            prop_assert!(
                !bin.exists() || std::fs::read(&bin).expect("bin readable") == fx.image,
                "a wrong image was stored as finished"
            );
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("OTASIM_CHAOS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn download_under_faults_and_kills_burns_the_exact_image_or_fails_with_an_explained_code(
        run in run()
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        rt.block_on(check(run))?;
    }
}
