//! OTA tracking as rules: report sequences through the hub's hooks, `done` meaning succeeded,
//! a late `downloading` after `burning` recorded and not applied, versions stored and answered,
//! and the firmware URL signed outside the state lock.

use super::*;
use crate::tasks::{PushMethod, PushRequest, UpdateState};
use serde_json::json;

pub(crate) fn fleet(n: u32) -> (Kit, Vec<DeviceId>) {
    let kit = Kit::new();
    kit.gateway(&gw());
    kit.connected(&gw());
    let subs: Vec<DeviceId> = (1..=n).map(sub).collect();
    for s in &subs {
        kit.subdevice(s, Some(&gw()));
    }
    kit.online(&gw(), &subs);
    kit.firmware("E69UADXUYY", "2.0");
    (kit, subs)
}

pub(crate) fn push_all(kit: &Kit) -> u64 {
    let request = PushRequest {
        product_id: "E69UADXUYY".into(),
        version: "2.0".into(),
        method: PushMethod::Versions {
            from_versions: vec!["1.0".into()],
        },
    };
    crate::tasks::create::push(&kit.core, request.into()).expect("a task")
}

pub(crate) fn progress(kit: &Kit, s: &DeviceId, state: &str, percent: Option<u8>) {
    let mut p = json!({"state": state, "result_code": "0", "result_msg": ""});
    if let Some(pct) = percent {
        p["percent"] = json!(pct.to_string());
    }
    let msg = json!({"type": "report_progress", "report": {"progress": p, "version": "2.0"}});
    assert!(kit.publish(&gw(), &format!("$ota/report/{s}"), &msg));
}

pub(crate) fn state_of(kit: &Kit, s: &DeviceId) -> UpdateState {
    kit.core
        .lock()
        .updates
        .get(s)
        .expect("an update")
        .state
        .clone()
}

#[test]
fn a_push_sends_update_firmware_with_a_signed_url() {
    let (kit, subs) = fleet(2);
    kit.take_published();
    push_all(&kit);
    let sent = kit.take_published();
    assert_eq!(sent.len(), 2, "{sent:?}");
    for ((topic, cmd), s) in sent.iter().zip(&subs) {
        assert_eq!(topic, &format!("$ota/update/{s}"));
        assert_eq!(cmd["type"], "update_firmware");
        assert_eq!(cmd["url"], "http://cos.invalid/E69UADXUYY_2.0?valid=3600");
        assert_eq!(cmd["file_size"], 4096);
    }
    assert_eq!(
        kit.core.issued.holders("E69UADXUYY_2.0", 64),
        (subs.clone(), 0)
    );
    // Recorded as sent, in the order sent.
    let outs: Vec<String> = kit
        .transcript()
        .into_iter()
        .filter(|e| e.direction == Direction::Out && e.topic.starts_with("$ota/update/"))
        .map(|e| e.topic)
        .collect();
    assert_eq!(
        outs,
        [
            format!("$ota/update/{}", subs[0]),
            format!("$ota/update/{}", subs[1])
        ]
    );
}

#[test]
fn reports_walk_the_update_to_succeeded_and_done_means_succeeded() {
    let (kit, subs) = fleet(1);
    push_all(&kit);
    let s = &subs[0];
    assert_eq!(state_of(&kit, s), UpdateState::Pushed);
    progress(&kit, s, "downloading", Some(40));
    assert_eq!(state_of(&kit, s), UpdateState::Downloading { percent: 40 });
    progress(&kit, s, "burning", None);
    assert_eq!(state_of(&kit, s), UpdateState::Burning);
    progress(&kit, s, "done", None);
    assert_eq!(state_of(&kit, s), UpdateState::Succeeded);
    let labels: Vec<&str> = kit.core.lock().updates[s]
        .history
        .iter()
        .map(|(_, st)| st.label())
        .collect();
    assert_eq!(
        labels,
        ["queued", "pushed", "downloading", "burning", "succeeded"]
    );
}

#[test]
fn a_late_downloading_after_burning_is_recorded_and_not_applied() {
    let (kit, subs) = fleet(1);
    push_all(&kit);
    let s = &subs[0];
    progress(&kit, s, "burning", None);
    progress(&kit, s, "downloading", Some(90));
    assert_eq!(state_of(&kit, s), UpdateState::Burning);
    let not_applied = kit.events("not applied");
    assert_eq!(not_applied.len(), 1, "{not_applied:?}");
    assert!(not_applied[0].contains("after burning"), "{not_applied:?}");
}

#[test]
fn a_fail_report_fails_the_update_with_its_code() {
    let (kit, subs) = fleet(1);
    push_all(&kit);
    let s = &subs[0];
    let msg = json!({"type": "report_progress", "report": {"progress":
        {"state": "fail", "result_code": "-3", "result_msg": "md5 mismatch"}, "version": "2.0"}});
    assert!(kit.publish(&gw(), &format!("$ota/report/{s}"), &msg));
    assert_eq!(
        state_of(&kit, s),
        UpdateState::Failed {
            code: -3,
            message: "md5 mismatch".into()
        }
    );
}

#[test]
fn report_version_is_stored_and_answered_and_a_bad_one_refused() {
    let (kit, subs) = fleet(1);
    kit.take_published();
    let s = &subs[0];
    let topic = format!("$ota/report/{s}");
    let report = |v: &str| json!({"type": "report_version", "report": {"version": v}});
    assert!(kit.publish(&gw(), &topic, &report("1.5")));
    let (t, rsp) = kit.take_published().pop().expect("an answer");
    assert_eq!(t, format!("$ota/update/{s}"));
    assert_eq!(
        (rsp["result_code"].as_i64(), rsp["version"].as_str()),
        (Some(0), Some("1.5"))
    );
    assert_eq!(
        kit.core
            .lock()
            .registry
            .get(s)
            .and_then(|r| r.version.clone()),
        Some("1.5".into())
    );
    assert!(kit.publish(&gw(), &topic, &report(&"9".repeat(33))));
    let (_, rsp) = kit.take_published().pop().expect("an answer");
    assert_ne!(rsp["result_code"], 0);
    assert_eq!(kit.events("refused").len(), 1);
    assert_eq!(
        kit.core
            .lock()
            .registry
            .get(s)
            .and_then(|r| r.version.clone()),
        Some("1.5".into())
    );
}

#[test]
fn an_old_version_mid_attempt_resends_the_command() {
    let (kit, subs) = fleet(1);
    push_all(&kit);
    kit.take_published();
    let s = &subs[0];
    progress(&kit, s, "downloading", Some(10));
    let report = json!({"type": "report_version", "report": {"version": "1.0"}});
    assert!(kit.publish(&gw(), &format!("$ota/report/{s}"), &report));
    let sent: Vec<String> = kit
        .take_published()
        .into_iter()
        .filter_map(|(_, v)| v["type"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(sent, ["report_version_rsp", "update_firmware"]);
    assert_eq!(state_of(&kit, s), UpdateState::Pushed);
    assert_eq!(kit.core.lock().updates[s].commands_sent, 2);
}
