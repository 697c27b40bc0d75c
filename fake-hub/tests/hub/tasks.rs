//! Update tasks on the wire: the three push methods' filters, timeouts and retries with fresh
//! URLs, rate limit, start delay, one pending task per device, override, cancel, summaries.

use crate::support::*;
use fake_hub::{Hub, PushMethod, PushRequest, RateLimit, TaskOptions, TaskRequest, UpdateState};
use otasim_protocol::{DeviceId, Topic};
use serde_json::Value;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn push(method: PushMethod) -> PushRequest {
    PushRequest {
        product_id: "E69UADXUYY".into(),
        version: "1.0".into(),
        method,
    }
}

fn devices(names: &[&str]) -> PushMethod {
    PushMethod::Devices {
        devices: names.iter().map(|s| s.to_string()).collect(),
    }
}

fn task(method: PushMethod, options: TaskOptions) -> TaskRequest {
    TaskRequest {
        push: push(method),
        options,
    }
}

async fn expect_update(c: &mut Client, sub: &DeviceId) -> Value {
    c.expect_json(&Topic::OtaUpdate(sub.clone()).to_string(), |v| {
        v["type"] == "update_firmware"
    })
    .await
}

async fn wait_state(hub: &Hub, sub: &DeviceId, label: &str) {
    let ok = hub
        .wait_until(DEADLINE, |h| {
            h.device(sub)
                .and_then(|d| d.update)
                .is_some_and(|u| u.state.label() == label)
        })
        .await;
    assert!(ok, "{sub} never {label}: {:?}", hub.device(sub));
}

#[tokio::test]
async fn done_ends_the_update_as_succeeded_and_a_later_old_version_is_a_warning() {
    let hub = hub().await;
    let mut c = gateway_with_online(&hub, &light(1)).await;
    let id = hub.push(push(devices(&["light1"]))).expect("push");
    expect_update(&mut c, &light(1)).await;
    let report = Topic::OtaReport(light(1)).to_string();
    for state in ["downloading", "burning", "done"] {
        c.publish(&report, progress(state, "1.0", "0")).await;
    }
    wait_state(&hub, &light(1), "succeeded").await;
    // The official sample, restarted, reports its hard-coded 0.1.
    c.publish(&report, report_version("0.1")).await;
    let warned = |h: &Hub| {
        h.task(id)
            .is_some_and(|t| t.warnings.get("E69UADXUYY/light1").is_some())
    };
    assert!(hub.wait_until(DEADLINE, warned).await, "{:?}", hub.task(id));
    let status = hub.task(id).expect("task");
    assert_eq!(
        status.warnings["E69UADXUYY/light1"],
        "reported 0.1 after done (target 1.0)"
    );
    assert_eq!(status.summary.get("succeeded"), Some(&1));
    let update = hub
        .device(&light(1))
        .and_then(|d| d.update)
        .expect("update");
    assert_eq!(
        update.state,
        UpdateState::Succeeded,
        "never a retroactive failure"
    );
    assert!(update.warning.is_some());
    hub.shutdown().await;
}

fn strict_options() -> TaskOptions {
    TaskOptions {
        require_version_report: true,
        ..TaskOptions::default()
    }
}

#[tokio::test]
async fn strict_task_succeeds_only_after_done_and_the_target_version() {
    let hub = hub().await;
    let mut c = gateway_with_online(&hub, &light(1)).await;
    let id = hub
        .create_task(task(devices(&["light1"]), strict_options()))
        .expect("push");
    let cmd = expect_update(&mut c, &light(1)).await;
    assert_eq!(cmd["version"], "1.0");
    let report = Topic::OtaReport(light(1)).to_string();
    for state in ["downloading", "burning", "done"] {
        c.publish(&report, progress(state, "1.0", "0")).await;
    }
    wait_state(&hub, &light(1), "done").await;
    c.publish(&report, report_version("1.0")).await;
    wait_state(&hub, &light(1), "succeeded").await;
    let status = hub.task(id).expect("task");
    assert_eq!(status.summary.get("succeeded"), Some(&1));
    assert!(status.is_finished());
    hub.shutdown().await;
}

#[tokio::test]
async fn source_version_filter_selects_only_devices_on_those_versions() {
    let hub = hub().await;
    let c = gateway_with_online(&hub, &light(2)).await;
    c.publish(
        &Topic::OtaReport(light(2)).to_string(),
        report_version("0.2"),
    )
    .await;
    assert!(
        hub.wait_until(DEADLINE, |h| h.device(&light(2)).and_then(|d| d.version)
            == Some("0.2".into()))
            .await
    );
    let id = hub
        .push(push(PushMethod::Versions {
            from_versions: vec!["0.1".into()],
        }))
        .expect("push");
    let names: Vec<String> = hub.task(id).expect("task").devices.into_keys().collect();
    assert_eq!(
        names,
        [
            "E69UADXUYY/light1",
            "E69UADXUYY/light3",
            "E69UADXUYY/light4"
        ]
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn timeout_retries_with_a_fresh_url_then_fails_with_code_minus_1() {
    let hub = hub().await;
    let mut c = gateway_with_online(&hub, &light(1)).await;
    let options = TaskOptions {
        timeout: Some(MINUTE),
        retries: 1,
        retry_interval: Duration::from_secs(10),
        ..TaskOptions::default()
    };
    let id = hub
        .create_task(task(devices(&["light1"]), options))
        .expect("task");
    let first = expect_update(&mut c, &light(1)).await;
    hub.advance_clock(MINUTE + Duration::from_secs(1));
    wait_state(&hub, &light(1), "waiting_retry").await;
    hub.advance_clock(Duration::from_secs(11));
    let second = expect_update(&mut c, &light(1)).await;
    assert_ne!(first["url"], second["url"], "a retry signs a fresh URL");
    hub.advance_clock(MINUTE + Duration::from_secs(1));
    wait_state(&hub, &light(1), "failed").await;
    let status = hub.task(id).expect("task");
    assert_eq!(status.failures.get(&-1), Some(&1));
    assert_eq!(status.devices["E69UADXUYY/light1"].attempts, 2);
    hub.shutdown().await;
}

#[tokio::test]
async fn device_failure_is_retried_and_can_then_succeed() {
    let hub = hub().await;
    let mut c = gateway_with_online(&hub, &light(1)).await;
    let options = TaskOptions {
        retries: 2,
        ..TaskOptions::default()
    };
    hub.create_task(task(devices(&["light1"]), options))
        .expect("task");
    expect_update(&mut c, &light(1)).await;
    let report = Topic::OtaReport(light(1)).to_string();
    c.publish(&report, progress("fail", "1.0", "-4")).await;
    expect_update(&mut c, &light(1)).await;
    for state in ["burning", "done"] {
        c.publish(&report, progress(state, "1.0", "0")).await;
    }
    c.publish(&report, report_version("1.0")).await;
    wait_state(&hub, &light(1), "succeeded").await;
    let u = hub
        .device(&light(1))
        .and_then(|d| d.update)
        .expect("update");
    assert!(
        u.history
            .iter()
            .any(|(_, s)| matches!(s, UpdateState::WaitingRetry { code: -4, .. }))
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn old_version_report_during_a_task_resends_with_a_fresh_url() {
    let hub = hub().await;
    let mut c = gateway_with_online(&hub, &light(1)).await;
    hub.push(push(devices(&["light1"]))).expect("push");
    let first = expect_update(&mut c, &light(1)).await;
    c.publish(
        &Topic::OtaReport(light(1)).to_string(),
        report_version("0.1"),
    )
    .await;
    let again = expect_update(&mut c, &light(1)).await;
    assert_ne!(first["url"], again["url"]);
    hub.shutdown().await;
}

#[tokio::test]
async fn rate_limit_and_start_delay_start_devices_in_batches() {
    let hub = hub().await;
    let options = TaskOptions {
        rate_limit: Some(RateLimit {
            devices: 2,
            per: MINUTE,
        }),
        start_delay: Duration::from_secs(30),
        ..TaskOptions::default()
    };
    let id = hub
        .create_task(task(devices(&["light1", "light2", "light3"]), options))
        .expect("task");
    let queued = |h: &Hub| {
        h.task(id)
            .and_then(|t| t.summary.get("queued").copied())
            .unwrap_or(0)
    };
    assert_eq!(queued(&hub), 3);
    hub.advance_clock(Duration::from_secs(31));
    assert!(
        hub.wait_until(DEADLINE, |h| queued(h) == 1).await,
        "{:?}",
        hub.task(id)
    );
    hub.advance_clock(MINUTE);
    assert!(
        hub.wait_until(DEADLINE, |h| queued(h) == 0).await,
        "{:?}",
        hub.task(id)
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn pending_device_is_skipped_unless_the_new_task_overrides() {
    let hub = hub().await;
    let first = hub.push(push(devices(&["light1"]))).expect("push");
    let second = hub
        .push(push(devices(&["light1", "light2"])))
        .expect("push");
    let status = hub.task(second).expect("task");
    assert_eq!(status.skipped.get("E69UADXUYY/light1"), Some(&first));
    assert_eq!(status.devices.len(), 1);
    let options = TaskOptions {
        override_running: true,
        ..TaskOptions::default()
    };
    let third = hub
        .create_task(task(devices(&["light1"]), options))
        .expect("task");
    assert_eq!(
        hub.device(&light(1))
            .and_then(|d| d.update)
            .map(|u| u.task_id),
        Some(third)
    );
    let old = hub.task(first).expect("task");
    assert_eq!(old.summary.get("cancelled"), Some(&1));
    hub.shutdown().await;
}

#[tokio::test]
async fn cancelled_task_cancels_its_unfinished_devices() {
    let hub = hub().await;
    let id = hub
        .push(push(devices(&["light1", "light2"])))
        .expect("push");
    assert!(hub.cancel_task(id));
    let status = hub.task(id).expect("task");
    assert!(status.cancelled);
    assert_eq!(status.summary.get("cancelled"), Some(&2));
    assert!(!hub.cancel_task(999));
    hub.shutdown().await;
}

#[tokio::test]
async fn task_options_round_trip_as_json_with_milliseconds() {
    let json = serde_json::json!({
        "push": {"product_id": "E69UADXUYY", "version": "1.0", "method": "devices", "devices": ["light1"]},
        "options": {"timeout_ms": 60000, "retries": 2, "retry_interval_ms": 500,
                    "rate_limit": {"devices": 10, "per_ms": 60000}, "override_running": true}
    });
    let req: TaskRequest = serde_json::from_value(json).expect("parses");
    assert_eq!(req.options.timeout, Some(MINUTE));
    assert_eq!(req.options.retry_interval, Duration::from_millis(500));
    let back: TaskRequest =
        serde_json::from_value(serde_json::to_value(&req).expect("ser")).expect("de");
    assert_eq!(back, req);
}

#[tokio::test]
async fn device_that_reported_done_is_taken_over_by_a_new_task() {
    let hub = hub().await;
    let mut c = gateway_with_online(&hub, &light(1)).await;
    let first = hub
        .create_task(task(devices(&["light1"]), strict_options()))
        .expect("push");
    expect_update(&mut c, &light(1)).await;
    c.publish(
        &Topic::OtaReport(light(1)).to_string(),
        progress("done", "1.0", "0"),
    )
    .await;
    wait_state(&hub, &light(1), "done").await;
    let second = hub.push(push(devices(&["light1"]))).expect("push");
    assert!(hub.task(second).expect("task").skipped.is_empty());
    expect_update(&mut c, &light(1)).await;
    let old = hub.task(first).expect("task");
    assert_eq!(old.summary.get("cancelled"), Some(&1));
    assert!(old.is_finished());
    hub.shutdown().await;
}
