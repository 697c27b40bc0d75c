//! Subscriptions, device publishes and hub publishes.

use rumqttc::{Packet, QoS, SubscribeReasonCode};

use super::support::{
    ECHO_PREFIX, FORBIDDEN_FILTER, FORBIDDEN_TOPIC, GATEWAY, GATEWAY_PASSWORD, Incoming, LIGHT,
    LIGHT_PASSWORD, Seen, TestClient, TestHub,
};

const UPDATE_TOPIC: &str = "$ota/update/E69UADXUYY/light1";
const REPORT_TOPIC: &str = "$ota/report/E69UADXUYY/light1";

async fn subscribe(client: &mut TestClient, filter: &str, qos: QoS) -> SubscribeReasonCode {
    client
        .client
        .subscribe(filter, qos)
        .await
        .expect("SUBSCRIBE queued");
    let incoming = client
        .expect("SUBACK", |i| {
            matches!(i, Incoming::Packet(Packet::SubAck(_)))
        })
        .await;
    let Incoming::Packet(Packet::SubAck(ack)) = incoming else {
        unreachable!("matched above")
    };
    assert_eq!(ack.return_codes.len(), 1);
    ack.return_codes[0]
}

/// The next PUBLISH the client receives, as (topic, payload, qos).
async fn next_publish(client: &mut TestClient) -> (String, Vec<u8>, QoS) {
    let incoming = client
        .expect("PUBLISH", |i| {
            matches!(i, Incoming::Packet(Packet::Publish(_)))
        })
        .await;
    let Incoming::Packet(Packet::Publish(p)) = incoming else {
        unreachable!("matched above")
    };
    (p.topic, p.payload.to_vec(), p.qos)
}

#[tokio::test]
async fn ota_update_subscription_is_granted_qos1_and_receives_hub_publish() {
    let mut hub = TestHub::start().await;
    let mut device = TestClient::connect(hub.addr(), GATEWAY, GATEWAY_PASSWORD).await;

    let granted = subscribe(&mut device, UPDATE_TOPIC, QoS::AtLeastOnce).await;
    assert_eq!(granted, SubscribeReasonCode::Success(QoS::AtLeastOnce));
    let subscribed = hub
        .expect("on_subscribed", |s| matches!(s, Seen::Subscribed { .. }))
        .await;
    assert_eq!(
        subscribed,
        Seen::Subscribed {
            client_id: GATEWAY.into(),
            filter: UPDATE_TOPIC.into(),
            qos: 1
        }
    );

    let payload = br#"{"type":"update_firmware","version":"V100R0001"}"#.to_vec();
    hub.broker
        .handle()
        .publish(UPDATE_TOPIC, payload.clone(), 1);
    let (topic, got, qos) = next_publish(&mut device).await;
    assert_eq!(
        (topic.as_str(), got, qos),
        (UPDATE_TOPIC, payload, QoS::AtLeastOnce)
    );
    hub.broker.shutdown().await;
}

#[tokio::test]
async fn refused_subscription_gets_suback_failure() {
    let hub = TestHub::start().await;
    let mut device = TestClient::connect(hub.addr(), GATEWAY, GATEWAY_PASSWORD).await;
    let code = subscribe(&mut device, FORBIDDEN_FILTER, QoS::AtLeastOnce).await;
    assert_eq!(code, SubscribeReasonCode::Failure);
    // The connection stays usable after a refusal.
    let code = subscribe(&mut device, UPDATE_TOPIC, QoS::AtMostOnce).await;
    assert_eq!(code, SubscribeReasonCode::Success(QoS::AtMostOnce));
    hub.broker.shutdown().await;
}

#[tokio::test]
async fn device_report_reaches_on_publish_with_client_id_and_payload() {
    let mut hub = TestHub::start().await;
    let device = TestClient::connect(hub.addr(), GATEWAY, GATEWAY_PASSWORD).await;
    let report = br#"{"type": "report_version", "report":{"version":"0.1"}}"#.to_vec();
    device
        .client
        .publish(REPORT_TOPIC, QoS::AtLeastOnce, false, report.clone())
        .await
        .expect("PUBLISH queued");

    let seen = hub
        .expect("on_publish", |s| matches!(s, Seen::Published { .. }))
        .await;
    assert_eq!(
        seen,
        Seen::Published {
            client_id: GATEWAY.into(),
            topic: REPORT_TOPIC.into(),
            payload: report,
            qos: 1
        }
    );
    hub.broker.shutdown().await;
}

#[tokio::test]
async fn hook_can_answer_a_report_by_publishing_from_inside_on_publish() {
    let hub = TestHub::start().await;
    let mut device = TestClient::connect(hub.addr(), LIGHT, LIGHT_PASSWORD).await;
    subscribe(&mut device, UPDATE_TOPIC, QoS::AtLeastOnce).await;

    let rsp = br#"{"result_code":0,"type":"report_version_rsp","version":"0.1"}"#;
    let report = [ECHO_PREFIX, rsp].concat();
    device
        .client
        .publish(REPORT_TOPIC, QoS::AtLeastOnce, false, report)
        .await
        .expect("PUBLISH queued");
    let (topic, payload, qos) = next_publish(&mut device).await;
    assert_eq!(
        (topic.as_str(), payload.as_slice(), qos),
        (UPDATE_TOPIC, rsp.as_slice(), QoS::AtLeastOnce)
    );
    hub.broker.shutdown().await;
}

#[tokio::test]
async fn refused_publish_reaches_on_publish_refused_and_is_not_delivered() {
    let mut hub = TestHub::start().await;
    let mut watcher = TestClient::connect(hub.addr(), LIGHT, LIGHT_PASSWORD).await;
    let granted = subscribe(&mut watcher, "$ota/report/+/+", QoS::AtLeastOnce).await;
    assert_eq!(granted, SubscribeReasonCode::Success(QoS::AtLeastOnce));

    let device = TestClient::connect(hub.addr(), GATEWAY, GATEWAY_PASSWORD).await;
    for (topic, payload) in [
        (FORBIDDEN_TOPIC, b"refused".as_slice()),
        (REPORT_TOPIC, b"allowed"),
    ] {
        device
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("PUBLISH queued");
    }

    let refused = hub
        .expect("on_publish_refused", |s| matches!(s, Seen::Refused { .. }))
        .await;
    assert_eq!(
        refused,
        Seen::Refused {
            client_id: GATEWAY.into(),
            topic: FORBIDDEN_TOPIC.into(),
            payload: b"refused".to_vec()
        }
    );
    // Both matched the watcher's filter and were routed in order: the first one it gets must be
    // the allowed one.
    let (topic, payload, _) = next_publish(&mut watcher).await;
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        (REPORT_TOPIC, b"allowed".as_slice())
    );
    hub.broker.shutdown().await;
}

#[tokio::test]
async fn hub_publishes_arrive_in_call_order() {
    let hub = TestHub::start().await;
    let mut device = TestClient::connect(hub.addr(), GATEWAY, GATEWAY_PASSWORD).await;
    subscribe(&mut device, UPDATE_TOPIC, QoS::AtLeastOnce).await;

    let handle = hub.broker.handle();
    for i in 0..50u32 {
        handle.publish(
            UPDATE_TOPIC,
            i.to_string().into_bytes(),
            u8::from(i % 2 == 0),
        );
    }
    for i in 0..50u32 {
        let (_, payload, _) = next_publish(&mut device).await;
        assert_eq!(payload, i.to_string().into_bytes());
    }
    hub.broker.shutdown().await;
}

#[tokio::test]
async fn hash_subscription_does_not_receive_dollar_topics() {
    let hub = TestHub::start().await;
    let mut device = TestClient::connect(hub.addr(), GATEWAY, GATEWAY_PASSWORD).await;
    subscribe(&mut device, "#", QoS::AtLeastOnce).await;

    let handle = hub.broker.handle();
    handle.publish(UPDATE_TOPIC, b"dollar".to_vec(), 1);
    handle.publish("plain/topic", b"plain".to_vec(), 1);
    let (topic, payload, _) = next_publish(&mut device).await;
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("plain/topic", b"plain".as_slice())
    );
    hub.broker.shutdown().await;
}
