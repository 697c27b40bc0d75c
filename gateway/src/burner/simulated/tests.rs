use super::*;
use crate::burner::BurnRequest;
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

fn dev() -> DeviceId {
    DeviceId::new("E69UADXUYY", "light1").expect("valid id")
}

struct Bench {
    dir: tempfile::TempDir,
    image: PathBuf,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let image = dir.path().join("img");
        std::fs::write(&image, b"firmware").expect("write image");
        Bench { dir, image }
    }

    fn burner(&self, behaviour: SimulatedBurn) -> SimulatedBurner {
        let mut burner = SimulatedBurner::new(self.dir.path().join("flash"));
        burner.provision(&dev(), "0.1").expect("provision");
        burner.set_behaviour(dev(), behaviour);
        burner
    }

    async fn burn(&self, burner: &SimulatedBurner) -> (Result<(), BurnError>, Vec<u8>) {
        let seen = Mutex::new(Vec::new());
        let progress = |p: u8| seen.lock().expect("progress lock").push(p);
        let result = burner
            .burn(BurnRequest {
                device: &dev(),
                image: &self.image,
                version: "1.0",
                progress: &progress,
                cancel: &CancellationToken::new(),
            })
            .await;
        (result, seen.into_inner().expect("progress lock"))
    }
}

#[tokio::test]
async fn simulated_burn_writes_flash_and_adopts_the_version() {
    let bench = Bench::new();
    let burner = bench.burner(SimulatedBurn::succeed());
    let (result, progress) = bench.burn(&burner).await;
    result.expect("burn works");
    assert_eq!(burner.running_version(&dev()).as_deref(), Some("1.0"));
    assert_eq!(progress.first(), Some(&0));
    assert_eq!(progress.last(), Some(&100));
    assert!(progress.windows(2).all(|w| w[0] < w[1]));
    let flash = std::fs::read(burner.flash_dir(&dev()).join("image.bin")).expect("flash");
    assert_eq!(flash, b"firmware");
    burner.provision(&dev(), "0.1").expect("provision again");
    assert_eq!(burner.running_version(&dev()).as_deref(), Some("1.0"));
}

#[tokio::test(start_paused = true)]
async fn failing_burn_stops_at_its_percent_and_keeps_the_old_version() {
    let bench = Bench::new();
    let burner = bench.burner(SimulatedBurn::FailAt {
        percent: 40,
        duration_ms: 1000,
    });
    let (result, progress) = bench.burn(&burner).await;
    let error = result.expect_err("burn fails");
    assert!(error.to_string().contains("failed at 40%"), "{error}");
    assert_eq!(progress.last(), Some(&30));
    assert_eq!(burner.running_version(&dev()).as_deref(), Some("0.1"));
    assert!(!burner.flash_dir(&dev()).join("image.bin").exists());
}

#[tokio::test]
async fn offline_subdevice_fails_the_burn_saying_so() {
    let bench = Bench::new();
    let burner = bench.burner(SimulatedBurn::OfflineAt {
        percent: 60,
        duration_ms: 0,
    });
    let (result, _) = bench.burn(&burner).await;
    let error = result.expect_err("burn fails");
    assert!(matches!(error, BurnError::Offline { percent: 60, .. }));
    assert!(error.to_string().contains("went offline at 60%"), "{error}");
}

#[tokio::test]
async fn lying_subdevice_reports_its_own_version_after_the_burn() {
    let bench = Bench::new();
    let burner = bench.burner(SimulatedBurn::WrongVersion {
        reports: "0.9".into(),
        duration_ms: 0,
    });
    let (result, _) = bench.burn(&burner).await;
    result.expect("the burn itself works");
    assert_eq!(burner.running_version(&dev()).as_deref(), Some("0.9"));
}

#[tokio::test]
async fn burning_a_missing_image_is_an_error_not_a_panic() {
    let mut bench = Bench::new();
    bench.image = bench.dir.path().join("nope");
    let burner = bench.burner(SimulatedBurn::succeed());
    let (result, _) = bench.burn(&burner).await;
    assert!(matches!(result, Err(BurnError::Io { .. })));
}

#[test]
fn behaviours_parse_from_toml_and_reject_bad_fields() {
    let b: SimulatedBurn =
        toml::from_str("kind = \"fail_at\"\npercent = 50\nduration_ms = 200").expect("parses");
    assert_eq!(
        b,
        SimulatedBurn::FailAt {
            percent: 50,
            duration_ms: 200
        }
    );
    let err = toml::from_str::<SimulatedBurn>("kind = \"succeed\"\npercnt = 5").expect_err("typo");
    assert!(err.to_string().contains("percnt"), "{err}");
    let over = SimulatedBurn::OfflineAt {
        percent: 101,
        duration_ms: 0,
    };
    assert!(
        over.validate()
            .expect_err("over 100")
            .starts_with("percent")
    );
}
