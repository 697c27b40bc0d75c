use super::*;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

fn dev() -> DeviceId {
    DeviceId::new("E69UADXUYY", "light1").expect("valid id")
}

fn script(dir: &std::path::Path, body: &str) -> PathBuf {
    let path = dir.join("burn.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

async fn burn(burner: &CommandBurner, image: &std::path::Path) -> (Result<(), BurnError>, Vec<u8>) {
    let seen = Mutex::new(Vec::new());
    let progress = |p: u8| seen.lock().expect("progress lock").push(p);
    let result = burner
        .burn(BurnRequest {
            device: &dev(),
            image,
            version: "2.0",
            progress: &progress,
            cancel: &CancellationToken::new(),
        })
        .await;
    (result, seen.into_inner().expect("progress lock"))
}

#[tokio::test]
async fn command_gets_image_and_ids_and_success_adopts_the_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("args");
    let program = script(
        dir.path(),
        &format!(
            "echo \"$1 $2 $3 $4 $OTASIM_DEVICE_NAME\" > {}\necho 50\necho 100",
            out.display()
        ),
    );
    let burner = CommandBurner::new(program, dir.path().join("state"));
    burner.provision(&dev(), "1.0").expect("provision");
    let image = dir.path().join("img.bin");
    let (result, progress) = burn(&burner, &image).await;
    result.expect("exit 0 is success");
    let args = std::fs::read_to_string(out).expect("script ran");
    assert_eq!(
        args.trim(),
        format!("{} E69UADXUYY light1 2.0 light1", image.display())
    );
    assert_eq!(progress, vec![50, 100]);
    assert_eq!(burner.running_version(&dev()).as_deref(), Some("2.0"));
}

#[tokio::test]
async fn nonzero_exit_fails_with_the_stderr_tail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let program = script(dir.path(), "echo 'flash verify error' >&2\nexit 3");
    let burner = CommandBurner::new(program, dir.path().join("state"));
    burner.provision(&dev(), "1.0").expect("provision");
    let (result, _) = burn(&burner, &dir.path().join("img.bin")).await;
    let error = result.expect_err("exit 3 fails").to_string();
    assert!(error.contains("exit status: 3"), "{error}");
    assert!(error.contains("flash verify error"), "{error}");
    assert_eq!(burner.running_version(&dev()).as_deref(), Some("1.0"));
}

#[tokio::test]
async fn a_missing_program_fails_the_burn_without_panicking() {
    let dir = tempfile::tempdir().expect("temp dir");
    let burner = CommandBurner::new(dir.path().join("nope"), dir.path().join("state"));
    let (result, _) = burn(&burner, &dir.path().join("img.bin")).await;
    assert!(
        result
            .expect_err("no program")
            .to_string()
            .contains("cannot start")
    );
}

#[tokio::test]
async fn long_stderr_is_cut_to_its_tail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let program = script(
        dir.path(),
        "i=0; while [ $i -lt 300 ]; do echo \"line $i\" >&2; i=$((i+1)); done; exit 1",
    );
    let burner = CommandBurner::new(program, dir.path().join("state"));
    let (result, _) = burn(&burner, &dir.path().join("img.bin")).await;
    let error = result.expect_err("fails").to_string();
    assert!(
        error.contains("line 299") && !error.contains("line 1 "),
        "{error}"
    );
    assert!(error.len() < STDERR_TAIL_BYTES + 200, "{}", error.len());
}
