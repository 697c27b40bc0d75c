//! Stops that wait: after `kill().await` (a power cut) nothing in the state directory changes,
//! and a reboot on the same disk is its only writer.

use super::{Rig, image};
use fake_cos::{ConnEnd, FaultRule, Fires, Selector, Verdict};
use gateway::{Gateway, GatewayError, GatewayOptions};
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SIZE: usize = 4 << 20;

/// Every file under `dir` with its length and MD5.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, String)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read state dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                let digest = hex::encode(Md5::digest(&bytes));
                out.insert(path, (bytes.len() as u64, digest));
            }
        }
    }
    out
}

fn throttle(rig: &Rig, object: &str) -> fake_cos::RuleGuard {
    rig.cos
        .add_rule(FaultRule {
            when: Selector {
                object: Some(object.into()),
                ..Selector::default()
            },
            verdict: Verdict::Throttle {
                bytes_per_sec: 1 << 20,
            },
            fires: Fires::Always,
        })
        .expect("throttle rule")
}

#[tokio::test(flavor = "multi_thread")]
async fn no_file_in_the_state_directory_changes_after_kill_returns() {
    let rig = Rig::start(2).await;
    rig.upload("2.0", image(SIZE, 5));
    let object = Rig::object("2.0");
    let _slow = throttle(&rig, &object);
    let (gw, _events) = rig.gateway(GatewayOptions::new()).await;
    rig.push("2.0", &rig.subs);
    rig.cos
        .wait_journal(crate::support::DEADLINE, |journal| {
            journal.iter().any(|e| {
                e.object.as_deref() == Some(object.as_str()) && e.body_bytes_sent >= 1 << 20
            })
        })
        .await
        .expect("a quarter of the image sent");
    gw.kill().await;
    let state = rig.config().state_dir;
    let before = snapshot(&state);
    assert!(
        before
            .keys()
            .any(|p| p.extension().is_some_and(|e| e == "part")),
        "the download had started: {before:?}"
    );
    // A download still running after the kill would keep this connection open and write on.
    rig.cos
        .wait_journal(crate::support::DEADLINE, |journal| {
            journal
                .iter()
                .filter(|e| e.object.as_deref() == Some(object.as_str()))
                .all(|e| e.end != ConnEnd::InProgress)
        })
        .await
        .expect("the killed gateway's connection closes");
    assert_eq!(
        snapshot(&state),
        before,
        "files changed after kill returned"
    );
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reboot_on_the_same_disk_never_runs_beside_the_old_gateway() {
    let rig = Rig::start(1).await;
    rig.upload("2.0", image(SIZE, 6));
    let object = Rig::object("2.0");
    let slow = throttle(&rig, &object);
    let (gw, _events) = rig.gateway(GatewayOptions::new()).await;
    rig.push("2.0", &rig.subs);
    rig.cos
        .wait_journal(crate::support::DEADLINE, |journal| {
            journal
                .iter()
                .any(|e| e.object.as_deref() == Some(object.as_str()) && e.body_bytes_sent > 0)
        })
        .await
        .expect("the download started");
    let second = Gateway::start_with(rig.config(), GatewayOptions::new());
    assert!(
        matches!(second, Err(GatewayError::StateDirInUse { .. })),
        "a second gateway on a disk in use must not start"
    );
    gw.kill().await;
    drop(slow);
    let rebooted = Gateway::start_with(rig.config(), GatewayOptions::new()).expect("reboot");
    let sub = rig.subs[0].clone();
    assert_eq!(
        rig.final_state(&sub).await,
        fake_hub::UpdateState::Succeeded,
        "the rebooted gateway resumes and verifies the image alone"
    );
    rebooted.shutdown().await;
    rig.shutdown().await;
}
