//! `examples/`: the seed's gateway with its four subdevices, all bound, as a newcomer runs it;
//! and one fleet vocabulary, the same file read by a scenario, the gateway, the hub's control
//! API and (in the hub's unit tests) `otasim hub --fleet`.

use crate::hub::{get, post, serve_hub};
use crate::procs::Proc;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn fleet_text() -> String {
    std::fs::read_to_string(examples().join("fleet.toml")).expect("examples/fleet.toml")
}

const FOUR: [&str; 4] = [
    "E69UADXUYY/light1",
    "E69UADXUYY/light2",
    "E69UADXUYY/light3",
    "YI7XCD5DRH/airConditioner1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_fleet_runs_as_a_scenario_and_updates_the_three_lights() {
    let text = format!(
        "name = \"example-fleet\"\n{}\n{}",
        fleet_text(),
        r#"
[[steps]]
action = "wait_online"

[[steps]]
action = "push"
product_id = "E69UADXUYY"
version = "V100R0001"
method = "versions"
from_versions = ["0.1"]

[[steps]]
action = "wait_tasks"

[expect.versions]
"E69UADXUYY/light1" = "V100R0001"
"E69UADXUYY/light2" = "V100R0001"
"E69UADXUYY/light3" = "V100R0001"
"YI7XCD5DRH/airConditioner1" = "0.1"
"#
    );
    let plan = scenarios::Plan::parse(&examples().join("example-fleet.toml"), &text)
        .unwrap_or_else(|e| panic!("examples/fleet.toml as a scenario: {e}"));
    assert_eq!(plan.subdevices.len(), 4);
    assert!(plan.subdevices.iter().all(|s| s.bound), "all four bound");
    let report = scenarios::run_seeded(&plan, plan.seed, None)
        .await
        .expect("the scenario runs");
    assert!(report.passed, "{:?}", report.failures);
}

#[test]
fn the_example_fleet_is_a_valid_subdevices_file_without_warnings() {
    for name in ["fleet.toml", "subdevs.toml"] {
        let text = std::fs::read_to_string(examples().join(name)).expect("example file");
        let file = gateway::SubdevicesFile::parse(&text)
            .unwrap_or_else(|e| panic!("examples/{name} as subdevs.toml: {e}"));
        assert!(file.deprecations().is_empty(), "{:?}", file.deprecations());
    }
}

/// The fleet's subdevice tables as the control API takes them: the same keys, less the
/// gateway's own `burner`.
fn api_bodies(table: &str) -> Vec<Value> {
    let fleet: toml::Table = fleet_text().parse().expect("TOML");
    fleet[table]
        .as_array()
        .expect("an array of tables")
        .iter()
        .map(|t| {
            let mut t = t.as_table().expect("a table").clone();
            t.remove("burner");
            serde_json::to_value(t).expect("TOML values are JSON values")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_gateway_brings_all_four_subdevices_online_through_the_api_fleet() {
    let hub = serve_hub(&[]).await;
    for body in api_bodies("gateways") {
        let (status, answer) = post(hub.api, "/api/gateways", &body).await;
        assert_eq!(status, 201, "{body} -> {answer}");
    }
    for body in api_bodies("subdevices") {
        let (status, answer) = post(hub.api, "/api/subdevices", &body).await;
        assert_eq!(status, 201, "{body} -> {answer}");
    }
    let state = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_otasim"));
    cmd.arg("gateway")
        .arg("--device-info")
        .arg(examples().join("device_info.json"))
        .arg("--subdevices")
        .arg(examples().join("fleet.toml"))
        .arg("--state-dir")
        .arg(state.path())
        .arg("--hub")
        .arg(hub.mqtt.to_string());
    let mut gw = Proc::spawn(cmd).expect("otasim gateway starts");
    for device in FOUR {
        let line = gw
            .wait_line(
                &format!("event=online device={device} "),
                Duration::from_secs(60),
            )
            .unwrap_or_else(|e| panic!("{device} online: {e:?}\n{}", gw.tails()));
        assert!(line.ends_with("result=0"), "{line}");
    }
    let (_, devices) = get(hub.api, "/api/devices").await;
    let online = devices
        .as_array()
        .expect("a list")
        .iter()
        .filter(|d| d["online"] == true)
        .count();
    assert_eq!(online, 5, "the gateway and its four subdevices: {devices}");
    let status = gw.stop(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        gw.tails()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbound_subdevice_is_explained_with_the_way_to_bind_it() {
    let hub = serve_hub(&[]).await;
    for body in api_bodies("gateways") {
        post(hub.api, "/api/gateways", &body).await;
    }
    for mut body in api_bodies("subdevices") {
        if body["device_name"] == "light2" {
            body.as_object_mut().expect("object").remove("gateway");
        }
        post(hub.api, "/api/subdevices", &body).await;
    }
    let state = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_otasim"));
    cmd.arg("gateway")
        .arg("--device-info")
        .arg(examples().join("device_info.json"))
        .arg("--state-dir")
        .arg(state.path())
        .arg("--hub")
        .arg(hub.mqtt.to_string());
    let mut gw = Proc::spawn(cmd).expect("otasim gateway starts");
    let line = gw
        .wait_line(
            "event=online device=E69UADXUYY/light2 ",
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("light2 online answer: {e:?}\n{}", gw.tails()));
    assert!(line.contains("result=-1"), "{line}");
    assert!(
        line.contains("not bound to this gateway") && line.contains("/api/topology/bind"),
        "{line}"
    );
    gw.stop(Duration::from_secs(30));
}
