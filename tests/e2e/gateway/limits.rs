//! Many subdevices at once: one shared download, the concurrency limit, the storage quota.

use super::{Rig, collect_events, failure, image};
use fake_hub::UpdateState;
use gateway::{BurnerChoice, GatewayEvent, GatewayOptions, SimulatedBurn};
use otasim_protocol::ProgressState;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;

#[tokio::test(flavor = "multi_thread")]
async fn three_subdevices_share_one_download_under_a_download_limit_of_two() {
    let rig = Rig::start(3).await;
    rig.upload("2.0", image(200_000, 8));
    let slow: BTreeMap<_, _> = rig
        .subs
        .iter()
        .map(|s| (s.clone(), SimulatedBurn::Succeed { duration_ms: 100 }))
        .collect();
    let mut options = GatewayOptions::new();
    options.max_concurrent = NonZeroUsize::new(2).expect("not zero");
    options.burner = BurnerChoice::Simulated(slow);
    let (gw, mut events) = rig.gateway(options).await;
    rig.push("2.0", &rig.subs);
    let seen = collect_events(&mut events, "three updates done", |seen| {
        seen.iter()
            .filter(|e| matches!(e, GatewayEvent::Report { report, .. } if report.state == ProgressState::Done))
            .count()
            == 3
    })
    .await;
    for sub in &rig.subs {
        assert_eq!(rig.final_state(sub).await, UpdateState::Succeeded, "{sub}");
    }
    // Burns take no download slot (a hung one would otherwise block every later update).
    assert_eq!(
        rig.requests(&Rig::object("2.0")).len(),
        1,
        "the image is fetched once"
    );
    let fetched: u64 = seen
        .iter()
        .filter_map(|e| match e {
            GatewayEvent::ImageFetched {
                bytes_transferred, ..
            } => Some(*bytes_transferred),
            _ => None,
        })
        .sum();
    assert_eq!(fetched, 200_000, "one transfer in all");
    gw.shutdown().await;
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn image_over_the_storage_quota_fails_naming_the_quota_and_the_need() {
    let rig = Rig::start(1).await;
    rig.upload("2.0", image(300_000, 9));
    let mut options = GatewayOptions::new();
    options.storage_quota_bytes = Some(200_000);
    let (gw, _events) = rig.gateway(options).await;
    rig.push("2.0", &rig.subs);
    let (code, message) = failure(&rig.final_state(&rig.subs[0]).await);
    assert_eq!(code, -5);
    assert!(
        message.contains("storage quota of 200000 bytes"),
        "{message}"
    );
    assert!(message.contains("needs 300000 bytes"), "{message}");
    assert!(
        rig.requests(&Rig::object("2.0")).is_empty(),
        "nothing was fetched"
    );
    gw.shutdown().await;
    rig.shutdown().await;
}
