//! The `otasim gateway` process, SIGKILLed mid-download and restarted on the same disk.

use super::{Rig, SECRET, image};
use crate::support::wait_for_files;
use fake_cos::{FaultRule, Fires, Selector, Verdict};
use fake_hub::UpdateState;
use otasim_protocol::DeviceInfo;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const SIZE: usize = 4 << 20;
const STALL_AT: u64 = 3 << 20;

fn spawn_gateway(rig: &Rig, state: &Path, log: &str) -> Child {
    let info = DeviceInfo::key_gateway(&rig.gateway, SECRET, &rig.subs);
    let info_path = rig.dir.path().join("device_info.json");
    std::fs::write(&info_path, info.to_json()).expect("write device_info.json");
    let log = std::fs::File::create(rig.dir.path().join(log)).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_otasim"))
        .arg("gateway")
        .arg("--device-info")
        .arg(&info_path)
        .arg("--state-dir")
        .arg(state)
        .arg("--hub")
        .arg(format!("127.0.0.1:{}", rig.hub.local_addr().port()))
        .arg("--checkpoint-bytes")
        .arg("65536")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("start otasim gateway")
}

/// The durable bytes of the one checkpoint under `images`, if there is one.
fn durable_bytes(images: &Path) -> Option<u64> {
    let entries = std::fs::read_dir(images).ok()?;
    let ckpt: PathBuf = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "ckpt"))?;
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(ckpt).ok()?).ok()?;
    json["durable_bytes"].as_u64()
}

/// Waits until the other process's checkpoint under `state` covers `bytes`.
async fn wait_checkpoint(state: &Path, bytes: u64) -> u64 {
    let images = state.join("images");
    wait_for_files(&format!("a checkpoint of {bytes} bytes"), state, || {
        durable_bytes(&images).filter(|d| *d >= bytes)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_process_killed_mid_download_resumes_and_fetches_less_than_the_image() {
    let rig = Rig::start(1).await;
    let bytes = image(SIZE, 7);
    rig.upload("2.0", bytes.clone());
    let object = Rig::object("2.0");
    // The first request stalls after 3 MiB for good: the kill lands while it hangs there.
    let _stall = rig
        .cos
        .add_rule(FaultRule {
            when: Selector {
                object: Some(object.clone()),
                attempt: Some(1),
                ..Selector::default()
            },
            verdict: Verdict::StallAfter {
                bytes: STALL_AT,
                for_ms: None,
            },
            fires: Fires::Once,
        })
        .expect("stall rule");
    let state = rig.dir.path().join("state");
    let mut first = spawn_gateway(&rig, &state, "first.log");
    rig.wait_online().await;
    let sub = rig.subs[0].clone();
    rig.push("2.0", std::slice::from_ref(&sub));
    let durable = wait_checkpoint(&state, 1 << 20).await;
    first.kill().expect("SIGKILL the gateway");
    first.wait().expect("reap the gateway");
    let before = rig.requests(&object).len();
    assert_eq!(before, 1, "one request before the kill");

    let mut second = spawn_gateway(&rig, &state, "second.log");
    let end = rig.final_state(&sub).await;
    second.kill().expect("stop the gateway");
    second.wait().expect("reap the gateway");
    assert_eq!(
        end,
        UpdateState::Succeeded,
        "{:?}",
        rig.reported_states(&sub)
    );
    let flash = std::fs::read(
        state
            .join("flash")
            .join(sub.product_id())
            .join(sub.device_name())
            .join("image.bin"),
    )
    .expect("flash image");
    assert!(flash == bytes, "the burned image is the uploaded one");
    let after: Vec<_> = rig.requests(&object).into_iter().skip(before).collect();
    let fetched: u64 = after.iter().map(|e| e.body_bytes_sent).sum();
    assert!(
        fetched < SIZE as u64,
        "restart fetched {fetched} bytes of {SIZE} (checkpoint was at {durable})"
    );
    assert!(
        after
            .iter()
            .all(|e| e.range.as_deref() != Some(&format!("bytes=0-{}", SIZE - 1))),
        "restart asked from byte 0: {after:?}"
    );
    rig.shutdown().await;
}
