//! Bad input never crashes the hub: it is recorded and answered as the real Hub does (ignored,
//! refused, or disconnected), and the hub goes on serving.

use crate::support::*;
use fake_hub::{Direction, Hub};
use otasim_protocol::{DeviceId, Topic};
use rumqttc::{QoS, SubscribeReasonCode};

/// The hub still answers a `report_version` from this client.
async fn still_answers(c: &mut Client, sub: &DeviceId) {
    c.publish(
        &Topic::OtaReport(sub.clone()).to_string(),
        report_version("0.1"),
    )
    .await;
    c.expect_json(&Topic::OtaUpdate(sub.clone()).to_string(), |v| {
        v["type"] == "report_version_rsp"
    })
    .await;
}

async fn ignored(hub: &Hub, c: &mut Client, topic: &str, payload: &[u8], why: &str) {
    c.publish_raw(topic, payload.to_vec()).await;
    wait_event(hub, "ignored", why).await;
    still_answers(c, &light(1)).await;
}

#[tokio::test]
async fn malformed_json_is_recorded_and_ignored() {
    let hub = hub().await;
    let mut c = gateway_with_online(&hub, &light(1)).await;
    let report = Topic::OtaReport(light(1)).to_string();
    ignored(&hub, &mut c, &report, b"{not json", "malformed JSON").await;
    ignored(&hub, &mut c, &report, &[0xff, 0xfe, 0x00], "malformed JSON").await;
    let op = Topic::GatewayOperation(gw()).to_string();
    ignored(&hub, &mut c, &op, b"[1,2", "malformed JSON").await;
    let recorded = hub
        .transcript()
        .iter()
        .any(|e| e.direction == Direction::In && e.payload == "{not json");
    assert!(recorded, "the bad payload itself is in the transcript");
    hub.shutdown().await;
}

#[tokio::test]
async fn unknown_types_and_wrong_shapes_are_recorded_and_ignored() {
    let hub = hub().await;
    let mut c = gateway_with_online(&hub, &light(1)).await;
    let report = Topic::OtaReport(light(1)).to_string();
    ignored(
        &hub,
        &mut c,
        &report,
        br#"{"type":"explode"}"#,
        "ota report",
    )
    .await;
    ignored(&hub, &mut c, &report, br#"{"report":{}}"#, "no type").await;
    ignored(
        &hub,
        &mut c,
        &report,
        br#"{"type":"report_version","report":{"version":7}}"#,
        "ota report",
    )
    .await;
    let op = Topic::GatewayOperation(gw()).to_string();
    ignored(
        &hub,
        &mut c,
        &op,
        br#"{"type":"explode","payload":{"devices":[]}}"#,
        "gateway operation",
    )
    .await;
    ignored(
        &hub,
        &mut c,
        &op,
        br#"{"type":"unbind_all"}"#,
        "hub-side operation",
    )
    .await;
    hub.shutdown().await;
}

#[tokio::test]
async fn oversized_publish_disconnects_the_client_and_is_recorded() {
    let hub = hub().await;
    let mut c = gateway_with_online(&hub, &light(1)).await;
    let big = vec![b'x'; 20 * 1024];
    c.publish_raw(&Topic::OtaReport(light(1)).to_string(), big)
        .await;
    c.ended().await;
    wait_event(&hub, "disconnect", "packet_too_large").await;
    assert!(
        hub.wait_until(DEADLINE, |h| !h.device(&light(1)).is_some_and(|d| d.online))
            .await
    );
    let mut again = gateway_with_online(&hub, &light(1)).await;
    still_answers(&mut again, &light(1)).await;
    hub.shutdown().await;
}

#[tokio::test]
async fn topic_space_violations_are_refused_and_recorded() {
    let hub = hub().await;
    let mut c = gateway_with_online(&hub, &light(1)).await;
    // Another gateway's subdevice, an unbound one, a foreign topic, a wildcard.
    for filter in [
        "$ota/update/E69UADXUYY/light4",
        "$sys/broker",
        "$ota/update/+/+",
        "#",
    ] {
        assert_eq!(
            c.subscribe(filter, QoS::AtLeastOnce).await,
            vec![SubscribeReasonCode::Failure],
            "{filter}"
        );
        wait_event(&hub, "suback failure", filter).await;
    }
    let intruding = Topic::OtaReport(light(4)).to_string();
    c.publish(&intruding, report_version("9.9")).await;
    let refused = |h: &Hub| {
        h.transcript()
            .iter()
            .any(|e| e.direction == Direction::Refused && e.topic == intruding)
    };
    assert!(hub.wait_until(DEADLINE, refused).await);
    assert_eq!(
        hub.device(&light(4)).and_then(|d| d.version),
        Some("0.1".into())
    );
    still_answers(&mut c, &light(1)).await;
    let _ = QoS::AtMostOnce;
    hub.shutdown().await;
}
