//! The Hub's limits on what devices report: versions of 1 to 32 characters, percent 0 to 100,
//! `fail` with a non-zero code, and task states that never move backwards. Each is recorded,
//! never coerced.

use crate::support::*;
use fake_hub::{Hub, PushMethod, PushRequest, UpdateState};
use otasim_protocol::Topic;
use serde_json::json;

fn push_light1(hub: &Hub) {
    hub.push(PushRequest {
        product_id: "E69UADXUYY".into(),
        version: "1.0".into(),
        method: PushMethod::Devices {
            devices: vec!["light1".into()],
        },
    })
    .expect("push");
}

fn state(hub: &Hub) -> Option<UpdateState> {
    hub.device(&light(1))
        .and_then(|d| d.update)
        .map(|u| u.state)
}

#[tokio::test]
async fn versions_outside_1_to_32_characters_get_a_non_zero_result_code_and_are_not_stored() {
    let hub = hub().await;
    let mut c = gateway_with_online(&hub, &light(1)).await;
    let report = Topic::OtaReport(light(1)).to_string();
    let update = Topic::OtaUpdate(light(1)).to_string();
    for bad in [String::new(), "v".repeat(33)] {
        c.publish(&report, report_version(&bad)).await;
        let rsp = c
            .expect_json(&update, |v| {
                v["type"] == "report_version_rsp" && v["version"] == bad.as_str()
            })
            .await;
        assert_ne!(rsp["result_code"], 0, "{bad:?}: {rsp}");
        wait_event(&hub, "refused", &format!("report_version {bad:?}")).await;
    }
    assert_eq!(
        hub.device(&light(1)).and_then(|d| d.version).as_deref(),
        Some("0.1")
    );
    // 32 characters is fine.
    let ok = "v".repeat(32);
    c.publish(&report, report_version(&ok)).await;
    let rsp = c
        .expect_json(&update, |v| v["version"] == ok.as_str())
        .await;
    assert_eq!(rsp["result_code"], 0);
    hub.shutdown().await;
}

#[tokio::test]
async fn out_of_range_percent_and_codeless_fail_are_malformed_not_coerced() {
    let hub = hub().await;
    let mut c = gateway_with_online(&hub, &light(1)).await;
    push_light1(&hub);
    c.expect_json(&Topic::OtaUpdate(light(1)).to_string(), |v| {
        v["type"] == "update_firmware"
    })
    .await;
    let report = Topic::OtaReport(light(1)).to_string();
    for percent in ["101", "-5"] {
        let msg = json!({"type": "report_progress", "report": {"progress": {"state": "downloading", "percent": percent, "result_code": "0", "result_msg": ""}, "version": "1.0"}});
        c.publish(&report, msg).await;
        wait_event(
            &hub,
            "malformed",
            &format!("percent {percent} is outside 0 to 100"),
        )
        .await;
    }
    assert_eq!(state(&hub), Some(UpdateState::Pushed), "nothing applied");
    c.publish(&report, progress("fail", "1.0", "0")).await;
    wait_event(
        &hub,
        "malformed",
        "a fail report needs a non-zero result_code",
    )
    .await;
    assert_eq!(
        state(&hub),
        Some(UpdateState::Pushed),
        "not failed with code 0"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn a_late_downloading_after_burning_is_recorded_not_applied() {
    let hub = hub().await;
    let mut c = gateway_with_online(&hub, &light(1)).await;
    push_light1(&hub);
    c.expect_json(&Topic::OtaUpdate(light(1)).to_string(), |v| {
        v["type"] == "update_firmware"
    })
    .await;
    let report = Topic::OtaReport(light(1)).to_string();
    c.publish(&report, progress("burning", "1.0", "0")).await;
    c.publish(&report, progress("downloading", "1.0", "0"))
        .await;
    wait_event(&hub, "not applied", "late Downloading report").await;
    assert_eq!(state(&hub), Some(UpdateState::Burning));
    hub.shutdown().await;
}
