//! The seed demo, end to end, and what the hub saw of it.

use crate::support::{render_device, within};
use otasim_protocol::DeviceId;
use scenarios::{Plan, SEED_DEMO};
use std::path::Path;

fn seed_plan() -> Plan {
    Plan::parse(Path::new("seed-demo.toml"), SEED_DEMO).expect("the built-in demo is valid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_demo_updates_three_lights_and_leaves_the_air_conditioner_alone() {
    let report = within("the seed demo", scenarios::run(&seed_plan(), None))
        .await
        .expect("world starts");
    assert!(report.passed, "failures: {:#?}", report.failures);
    let row = |name: &str| {
        report
            .devices
            .iter()
            .find(|r| r.device.ends_with(name))
            .expect("row")
    };
    for light in ["light1", "light2", "light3"] {
        assert_eq!(row(light).version_after.as_deref(), Some("V100R0001"));
        assert_eq!(row(light).result, "succeeded");
    }
    assert_eq!(row("airConditioner1").result, "untouched");
    assert_eq!(row("airConditioner1").version_after.as_deref(), Some("0.1"));
    // One image for three lights: fetched once over HTTP, reused for the other two.
    let fetched: u64 = report.devices.iter().map(|r| r.bytes_downloaded).sum();
    assert_eq!(fetched, 29_972);
    let gets = report
        .cos_journal
        .iter()
        .filter(|j| j.method == "GET")
        .count();
    assert_eq!(gets, 1, "journal: {:#?}", report.cos_journal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_demo_transcript_per_light() {
    let report = within("the seed demo", scenarios::run(&seed_plan(), None))
        .await
        .expect("world starts");
    assert!(report.passed, "failures: {:#?}", report.failures);
    for (product, name) in [
        ("E69UADXUYY", "light1"),
        ("E69UADXUYY", "light2"),
        ("YI7XCD5DRH", "airConditioner1"),
    ] {
        let id = DeviceId::new(product, name).unwrap();
        insta::assert_snapshot!(
            format!("seed_demo_{name}"),
            render_device(&report.transcript, &id)
        );
    }
}
