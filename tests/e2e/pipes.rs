//! `otasim ... | head`: a closed stdout ends nothing badly. Each command runs as a real process
//! whose stdout is a pipe closed before it writes; it must finish with the exit status of its
//! outcome and no panic text.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn into_closed_pipe(args: &[&str]) -> (std::process::ExitStatus, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_otasim"))
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("otasim starts");
    // The reader goes away at once, as `head -n 0` would.
    drop(child.stdout.take());
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    // stderr closes when the process ends: that is the condition waited on.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(reader.join().unwrap_or_default());
    });
    let stderr = rx
        .recv_timeout(Duration::from_secs(180))
        .unwrap_or_else(|_| panic!("otasim {args:?} did not end into a closed pipe"));
    let status = child.wait().expect("reaped");
    (status, stderr)
}

#[test]
fn broken_pipes_end_quietly_with_the_outcome_as_exit_status() {
    let cases: [&[&str]; 5] = [
        &["demo", "--json"],
        &["demo"],
        &["list"],
        &["run", "scenarios/catalog/happy-one-subdevice.toml"],
        &["replay", "7", "scenarios/catalog/several-cuts.toml"],
    ];
    for args in cases {
        let (status, stderr) = into_closed_pipe(args);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "otasim {args:?} into a closed pipe printed: {stderr}"
        );
        assert!(
            status.success(),
            "otasim {args:?} into a closed pipe exited with {status}: {stderr}"
        );
    }
}
