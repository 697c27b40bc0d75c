//! MQTT resilience: a broker that drops the gateway mid-download, and a command delivered twice.

use super::{Rig, collect_events, image};
use fake_cos::{FaultRule, Fires, Selector, Verdict};
use fake_hub::{HubFaultAction, HubFaultRule, Milestone, UpdateState};
use gateway::{GatewayEvent, GatewayOptions};

const SIZE: usize = 1 << 20;

fn stall_first_request(rig: &Rig, object: &str) -> fake_cos::RuleGuard {
    rig.cos
        .add_rule(FaultRule {
            when: Selector {
                object: Some(object.into()),
                attempt: Some(1),
                ..Selector::default()
            },
            verdict: Verdict::StallAfter {
                bytes: SIZE as u64 / 2,
                for_ms: None,
            },
            fires: Fires::Once,
        })
        .expect("stall rule")
}

#[tokio::test(flavor = "multi_thread")]
async fn kicked_gateway_reconnects_reonlines_and_finishes_the_update_in_flight() {
    let rig = Rig::start(1).await;
    rig.upload("2.0", image(SIZE, 3));
    let object = Rig::object("2.0");
    let _stall = stall_first_request(&rig, &object);
    let (gw, mut events) = rig.gateway(GatewayOptions::new()).await;
    let sub = rig.subs[0].clone();
    rig.push("2.0", std::slice::from_ref(&sub));
    // Wait until half the body went out (and the stall holds the rest), then drop the gateway.
    rig.cos
        .wait_journal(crate::support::DEADLINE, |journal| {
            journal.iter().any(|e| {
                e.object.as_deref() == Some(object.as_str()) && e.body_bytes_sent >= SIZE as u64 / 2
            })
        })
        .await
        .expect("half the image sent");
    let client_id = rig.gateway.client_id();
    rig.hub.kick(&client_id);
    let seen = collect_events(&mut events, "reconnect and re-online", |seen| {
        let dropped = seen
            .iter()
            .position(|e| matches!(e, GatewayEvent::Disconnected { .. }));
        dropped.is_some_and(|i| {
            seen[i..]
                .iter()
                .any(|e| matches!(e, GatewayEvent::Online { result: 0, .. }))
        })
    })
    .await;
    assert!(seen.iter().any(|e| matches!(e, GatewayEvent::Connected)));
    assert_eq!(rig.final_state(&sub).await, UpdateState::Succeeded);
    let states = rig.reported_states(&sub);
    assert_eq!(
        states.last().map(String::as_str),
        Some("done"),
        "{states:?}"
    );
    assert!(states.contains(&"burning".to_owned()), "{states:?}");
    let from_zero = rig
        .requests(&object)
        .iter()
        .filter(|e| {
            e.range
                .as_deref()
                .is_some_and(|r| r.starts_with("bytes=0-"))
        })
        .count();
    assert_eq!(
        from_zero, 1,
        "the download went on instead of starting over"
    );
    gw.shutdown().await;
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_update_firmware_does_not_start_a_second_download() {
    let rig = Rig::start(1).await;
    rig.upload("2.0", image(SIZE, 4));
    let object = Rig::object("2.0");
    let sub = rig.subs[0].clone();
    rig.hub
        .add_fault(HubFaultRule {
            when: Milestone::UpdateFirmware {
                device: sub.clone(),
                nth: Some(1),
            },
            action: HubFaultAction::DuplicateUpdate,
            fires: fake_hub::Fires::Once,
        })
        .expect("duplicate rule");
    let (gw, mut events) = rig.gateway(GatewayOptions::new()).await;
    rig.push("2.0", std::slice::from_ref(&sub));
    assert_eq!(rig.final_state(&sub).await, UpdateState::Succeeded);
    let seen = collect_events(&mut events, "the update's reports", |seen| {
        seen.iter().any(|e| matches!(e, GatewayEvent::Report { report, .. } if report.state == otasim_protocol::ProgressState::Done))
    })
    .await;
    let fetched = seen
        .iter()
        .filter(|e| matches!(e, GatewayEvent::ImageFetched { .. }))
        .count();
    assert_eq!(fetched, 1, "{seen:?}");
    assert_eq!(rig.requests(&object).len(), 1, "one GET for the image");
    let burns = rig
        .reported_states(&sub)
        .iter()
        .filter(|s| *s == "burning")
        .count();
    assert_eq!(burns, 1);
    gw.shutdown().await;
    rig.shutdown().await;
}
