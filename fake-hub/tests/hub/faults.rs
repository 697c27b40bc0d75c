//! Misbehaviour on cue: each fault fires on its milestone, on the wire, and is recorded.

use crate::support::*;
use fake_hub::{
    Fires, HubFaultAction as A, HubFaultRule, Milestone, PushMethod, PushRequest, TaskOptions,
    TaskRequest,
};
use otasim_protocol::{GatewayDevice, OperationType, Topic};
use rumqttc::{ConnectReturnCode, ConnectionError, Packet, QoS, SubscribeReasonCode};

fn rule(when: Milestone, action: A) -> HubFaultRule {
    HubFaultRule {
        when,
        action,
        fires: Fires::Once,
    }
}

fn on_connect() -> Milestone {
    Milestone::Connect {
        client_id: gw().client_id(),
        nth: None,
    }
}

fn on_message(kind: &str, nth: Option<u32>) -> Milestone {
    let device = if kind.starts_with("report") {
        light(1)
    } else {
        gw()
    };
    Milestone::Message {
        device,
        message_type: kind.into(),
        nth,
    }
}

fn push_light1() -> PushRequest {
    PushRequest {
        product_id: "E69UADXUYY".into(),
        version: "1.0".into(),
        method: PushMethod::Devices {
            devices: vec!["light1".into()],
        },
    }
}

#[tokio::test]
async fn kick_fires_on_the_nth_report_version_of_a_device() {
    let hub = hub().await;
    hub.add_fault(rule(
        on_message("report_version", Some(2)),
        A::Kick { client_id: None },
    ))
    .expect("valid rule");
    let mut c = gateway_with_online(&hub, &light(1)).await;
    let report = Topic::OtaReport(light(1)).to_string();
    c.publish(&report, report_version("0.1")).await;
    c.expect_json(&Topic::OtaUpdate(light(1)).to_string(), |v| {
        v["type"] == "report_version_rsp"
    })
    .await;
    c.publish(&report, report_version("0.1")).await;
    c.ended().await;
    wait_event(&hub, "fault", "kick").await;
    assert_eq!(hub.faults()[0].fired, 1);
    hub.shutdown().await;
}

#[tokio::test]
async fn refused_connect_gets_code_3_once_then_the_device_connects() {
    let hub = hub().await;
    hub.add_fault(rule(on_connect(), A::RefuseConnect { code: 3 }))
        .expect("valid rule");
    let mut first = Client::spawn(options(hub.local_addr(), &gw(), GW_SECRET));
    match first.ended().await {
        ConnectionError::ConnectionRefused(code) => {
            assert_eq!(code, ConnectReturnCode::ServiceUnavailable)
        }
        other => panic!("expected CONNACK 3, got {other:?}"),
    }
    drop(Client::gateway(&hub).await);
    wait_event(&hub, "connect", "ServerUnavailable").await;
    hub.shutdown().await;
}

#[tokio::test]
async fn held_connack_arrives_only_when_released() {
    let hub = hub().await;
    hub.add_fault(rule(on_connect(), A::DelayConnack { ms: None }))
        .expect("valid rule");
    let mut c = Client::spawn(options(hub.local_addr(), &gw(), GW_SECRET));
    wait_event(&hub, "fault", "delay_connack").await;
    assert!(c.nothing_yet(), "CONNACK is held");
    hub.release_held();
    c.expect("CONNACK", |p| matches!(p, Packet::ConnAck(_)))
        .await;
    hub.shutdown().await;
}

#[tokio::test]
async fn held_suback_arrives_only_when_released_and_a_failed_one_says_failure() {
    let hub = hub().await;
    let filter = Topic::OtaUpdate(gw()).to_string();
    let when = Milestone::Subscribe {
        client_id: gw().client_id(),
        topic_filter: Some(filter.clone()),
        nth: None,
    };
    hub.add_fault(rule(when.clone(), A::DelaySuback { ms: None }))
        .expect("valid rule");
    hub.add_fault(rule(when, A::FailSubscription))
        .expect("valid rule");
    let mut c = Client::gateway(&hub).await;
    c.client
        .subscribe(&filter, QoS::AtLeastOnce)
        .await
        .expect("queued");
    wait_event(&hub, "fault", "delay_suback").await;
    assert!(c.nothing_yet(), "SUBACK is held");
    hub.release_held();
    c.expect("SUBACK", |p| matches!(p, Packet::SubAck(_))).await;
    assert_eq!(
        c.subscribe(&filter, QoS::AtLeastOnce).await,
        vec![SubscribeReasonCode::Failure]
    );
    assert_eq!(
        c.subscribe(&filter, QoS::AtLeastOnce).await,
        vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn report_version_rsp_carries_the_given_non_zero_code() {
    let hub = hub().await;
    let action = A::ReportVersionRsp {
        result_code: -1,
        result_msg: "busy".into(),
    };
    hub.add_fault(rule(on_message("report_version", None), action))
        .expect("valid rule");
    let mut c = gateway_with_online(&hub, &light(1)).await;
    c.publish(
        &Topic::OtaReport(light(1)).to_string(),
        report_version("0.1"),
    )
    .await;
    let rsp = c
        .expect_json(&Topic::OtaUpdate(light(1)).to_string(), |v| {
            v["type"] == "report_version_rsp"
        })
        .await;
    assert_eq!(
        (rsp["result_code"].as_i64(), rsp["result_msg"].as_str()),
        (Some(-1), Some("busy"))
    );
    hub.shutdown().await;
}

async fn describe_reply(c: &mut Client) -> Vec<serde_json::Value> {
    c.publish(
        &Topic::GatewayOperation(gw()).to_string(),
        serde_json::json!({"type": "describe_sub_devices"}),
    )
    .await;
    let result = Topic::GatewayOperationResult(gw()).to_string();
    let mut seen = Vec::new();
    loop {
        let v = c.expect_json(&result, |_| true).await;
        let last = v["type"] == "describe_sub_devices";
        seen.push(v);
        if last {
            return seen;
        }
    }
}

#[tokio::test]
async fn gateway_operation_answered_never_late_or_with_a_given_result() {
    let hub = hub().await;
    hub.add_fault(rule(on_message("online", Some(1)), A::GatewayNever))
        .expect("valid rule");
    hub.add_fault(rule(
        on_message("online", Some(2)),
        A::GatewayLate { ms: None },
    ))
    .expect("valid rule");
    hub.add_fault(rule(
        on_message("online", Some(3)),
        A::GatewayResult { result: -808 },
    ))
    .expect("valid rule");
    let mut c = Client::gateway(&hub).await;
    let result = Topic::GatewayOperationResult(gw()).to_string();
    c.subscribe(&result, QoS::AtLeastOnce).await;
    let online = |n| {
        otasim_protocol::GatewayRequest::single(
            OperationType::Online,
            GatewayDevice::named(&light(n)),
        )
    };
    let op = Topic::GatewayOperation(gw()).to_string();
    c.publish_raw(&op, online(1).encode()).await;
    let seen = describe_reply(&mut c).await;
    assert_eq!(seen.len(), 1, "no online reply, ever: {seen:?}");
    assert!(
        hub.device(&light(1)).is_some_and(|d| d.online),
        "the operation still applies"
    );
    c.publish_raw(&op, online(2).encode()).await;
    assert_eq!(
        describe_reply(&mut c).await.len(),
        1,
        "the late reply is held"
    );
    hub.release_held();
    let late = c.expect_json(&result, |v| v["type"] == "online").await;
    assert_eq!(late["payload"]["devices"][0]["device_name"], "light2");
    let code = c
        .operation(OperationType::Online, GatewayDevice::named(&light(3)))
        .await;
    assert_eq!(code, -808);
    assert!(
        !hub.device(&light(3)).is_some_and(|d| d.online),
        "a forced result is not applied"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn update_firmware_is_delivered_twice_or_with_wrong_md5_size_or_url() {
    let hub = hub().await;
    let when = |nth| Milestone::UpdateFirmware {
        device: light(1),
        nth: Some(nth),
    };
    hub.add_fault(rule(when(1), A::DuplicateUpdate))
        .expect("valid rule");
    hub.add_fault(rule(when(2), A::WrongMd5 { md5: None }))
        .expect("valid rule");
    hub.add_fault(rule(when(3), A::WrongSize { file_size: -1 }))
        .expect("valid rule");
    hub.add_fault(rule(
        when(4),
        A::WrongUrl {
            url: "http://127.0.0.1/nope".into(),
        },
    ))
    .expect("valid rule");
    let real = hub.firmware()[0].clone();
    let mut c = gateway_with_online(&hub, &light(1)).await;
    hub.push(push_light1()).expect("push");
    let topic = Topic::OtaUpdate(light(1)).to_string();
    let is_update = |v: &serde_json::Value| v["type"] == "update_firmware";
    let a = c.expect_json(&topic, is_update).await;
    let b = c.expect_json(&topic, is_update).await;
    assert_eq!(a, b, "the same command twice");
    let report = Topic::OtaReport(light(1)).to_string();
    let mut next = async || {
        c.publish(&report, report_version("0.1")).await;
        c.expect_json(&topic, is_update).await
    };
    let md5 = next().await;
    assert_ne!(md5["md5sum"], real.md5);
    assert_eq!(md5["md5sum"].as_str().map(str::len), Some(32));
    assert_eq!(next().await["file_size"], -1);
    assert_eq!(next().await["url"], "http://127.0.0.1/nope");
    hub.shutdown().await;
}

#[tokio::test]
async fn a_second_task_is_pushed_over_a_running_one_when_it_reaches_downloading() {
    let hub = hub().await;
    let request = TaskRequest {
        push: push_light1(),
        options: TaskOptions {
            override_running: true,
            ..TaskOptions::default()
        },
    };
    let when = Milestone::TaskState {
        device: Some(light(1)),
        task_id: Some(1),
        state: "downloading".into(),
    };
    hub.add_fault(rule(when, A::PushTask { request }))
        .expect("valid rule");
    let mut c = gateway_with_online(&hub, &light(1)).await;
    let first = hub.push(push_light1()).expect("push");
    let topic = Topic::OtaUpdate(light(1)).to_string();
    c.expect_json(&topic, |v| v["type"] == "update_firmware")
        .await;
    c.publish(
        &Topic::OtaReport(light(1)).to_string(),
        progress("downloading", "1.0", "0"),
    )
    .await;
    c.expect_json(&topic, |v| v["type"] == "update_firmware")
        .await;
    let now = hub
        .device(&light(1))
        .and_then(|d| d.update)
        .expect("update");
    assert_eq!(now.task_id, first + 1);
    assert_eq!(
        hub.task(first).expect("task").summary.get("cancelled"),
        Some(&1)
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn a_second_client_with_the_same_id_takes_the_session_over() {
    let hub = hub().await;
    let mut first = Client::gateway(&hub).await;
    let _second = Client::gateway(&hub).await;
    first.ended().await;
    assert!(
        hub.wait_until(DEADLINE, |h| h.device(&gw()).is_some_and(|d| d.online))
            .await
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn a_rule_whose_action_does_not_fit_its_milestone_is_refused() {
    let hub = hub().await;
    let bad = rule(
        on_message("report_version", None),
        A::RefuseConnect { code: 3 },
    );
    assert!(hub.add_fault(bad).is_err());
    let bad_code = rule(on_connect(), A::RefuseConnect { code: 2 });
    assert!(hub.add_fault(bad_code).is_err());
    assert!(hub.faults().is_empty());
    hub.shutdown().await;
}
