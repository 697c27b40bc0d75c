//! Gateway topology on the wire: bind (every error code), unbind, describe, online, offline,
//! offline on disconnect and on a missed keepalive, and Hub-initiated `change` and `unbind_all`.

use crate::raw;
use crate::support::*;
use fake_hub::Hub;
use otasim_protocol::{
    Credentials, DeviceId, GatewayDevice, OperationType, SignMethod, Topic, bind_signature,
};
use rumqttc::QoS;
use tokio::net::TcpStream;

fn bind_entry(hub: &Hub, sub: &DeviceId, secret: &str, age_secs: i64) -> GatewayDevice {
    let timestamp = hub.now_unix_ms() / 1000 - age_secs;
    GatewayDevice {
        signature: Some(bind_signature(
            sub,
            secret,
            42,
            timestamp,
            SignMethod::HmacSha1,
        )),
        random: Some(42),
        timestamp: Some(timestamp),
        signmethod: Some("hmacsha1".into()),
        authtype: Some("psk".into()),
        ..GatewayDevice::named(sub)
    }
}

async fn gateway_listening(hub: &Hub) -> Client {
    let mut c = Client::gateway(hub).await;
    c.subscribe(
        &Topic::GatewayOperationResult(gw()).to_string(),
        QoS::AtLeastOnce,
    )
    .await;
    c
}

#[tokio::test]
async fn bind_then_bind_again_then_unbind_and_describe() {
    let hub = hub().await;
    let mut c = gateway_listening(&hub).await;
    let entry = bind_entry(&hub, &light(4), SUB_SECRET, 0);
    assert_eq!(c.operation(OperationType::Bind, entry.clone()).await, 0);
    assert_eq!(hub.device(&light(4)).and_then(|d| d.bound_to), Some(gw()));
    assert_eq!(c.operation(OperationType::Bind, entry).await, -809);
    let unbind = GatewayDevice::named(&light(1));
    assert_eq!(c.operation(OperationType::Unbind, unbind.clone()).await, 0);
    assert_eq!(c.operation(OperationType::Unbind, unbind).await, -1);
    c.publish(
        &Topic::GatewayOperation(gw()).to_string(),
        serde_json::json!({"type": "describe_sub_devices"}),
    )
    .await;
    let reply = c
        .expect_json(&Topic::GatewayOperationResult(gw()).to_string(), |v| {
            v["type"] == "describe_sub_devices"
        })
        .await;
    let names: Vec<&str> = reply["payload"]["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .filter_map(|d| d["device_name"].as_str())
        .collect();
    assert_eq!(names, ["light2", "light3", "light4"]);
    hub.shutdown().await;
}

#[tokio::test]
async fn every_bind_error_code_from_801_to_809_is_reachable() {
    let hub = hub().await;
    let gw2 = DeviceId::new("JR1WOKB7Q7", "gw_other").expect("valid id");
    hub.add_gateway(&gw2, GW_SECRET);
    let disabled = DeviceId::new("E69UADXUYY", "disabled").expect("valid id");
    hub.add_subdevice(&disabled, SUB_SECRET, None, None);
    hub.set_enabled(&disabled, false).expect("known");
    let mut c = gateway_listening(&hub).await;
    let good = bind_entry(&hub, &light(4), SUB_SECRET, 0);
    let cases: Vec<(i64, GatewayDevice)> = vec![
        (
            -801,
            GatewayDevice {
                signature: None,
                ..good.clone()
            },
        ),
        (
            -802,
            bind_entry(
                &hub,
                &DeviceId::new("E69UADXUYY", "ghost").expect("id"),
                SUB_SECRET,
                0,
            ),
        ),
        (-803, bind_entry(&hub, &light(4), "d3Jvbmc=", 0)),
        (
            -804,
            GatewayDevice {
                signmethod: Some("hmacmd5".into()),
                ..good.clone()
            },
        ),
        (
            -805,
            bind_entry(
                &hub,
                &light(4),
                SUB_SECRET,
                fake_hub::BIND_MAX_AGE_SECS + 60,
            ),
        ),
        (
            -805,
            bind_entry(
                &hub,
                &light(4),
                SUB_SECRET,
                -fake_hub::BIND_MAX_AHEAD_SECS - 60,
            ),
        ),
        (-806, bind_entry(&hub, &light(1), SUB_SECRET, 0)),
        (-807, bind_entry(&hub, &disabled, SUB_SECRET, 0)),
        (-808, bind_entry(&hub, &gw2, GW_SECRET, 0)),
        (-809, bind_entry(&hub, &light(1), SUB_SECRET, 0)),
    ];
    for (want, entry) in cases {
        // light1 is bound to gw: gw2 binding it is -806, gw binding it again is -809.
        let got = if want == -806 {
            let mut other = Client::connect(options(hub.local_addr(), &gw2, GW_SECRET)).await;
            let result = Topic::GatewayOperationResult(gw2.clone()).to_string();
            other.subscribe(&result, QoS::AtLeastOnce).await;
            let req = otasim_protocol::GatewayRequest::single(OperationType::Bind, entry.clone());
            other
                .publish_raw(
                    &Topic::GatewayOperation(gw2.clone()).to_string(),
                    req.encode(),
                )
                .await;
            let reply = other.expect_json(&result, |v| v["type"] == "bind").await;
            reply["payload"]["devices"][0]["result"]
                .as_i64()
                .expect("result")
        } else {
            c.operation(OperationType::Bind, entry.clone()).await
        };
        assert_eq!(got, want, "{entry:?}");
    }
    assert_eq!(
        hub.device(&light(4)).and_then(|d| d.bound_to),
        None,
        "nothing bound by errors"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn bind_timestamp_is_judged_by_the_hub_clock() {
    let hub = hub().await;
    let mut c = gateway_listening(&hub).await;
    let entry = bind_entry(&hub, &light(4), SUB_SECRET, 0);
    hub.advance_clock(std::time::Duration::from_secs(2 * 3600));
    assert_eq!(c.operation(OperationType::Bind, entry).await, -805);
    hub.shutdown().await;
}

#[tokio::test]
async fn offline_subdevice_topics_are_refused_and_online_ones_accepted() {
    let hub = hub().await;
    let mut c = gateway_listening(&hub).await;
    let report = Topic::OtaReport(light(1)).to_string();
    c.publish(&report, report_version("0.1")).await;
    assert_eq!(
        c.operation(OperationType::Online, GatewayDevice::named(&light(1)))
            .await,
        0
    );
    assert!(hub.device(&light(1)).is_some_and(|d| d.online));
    c.publish(&report, report_version("0.2")).await;
    assert!(
        hub.wait_until(DEADLINE, |h| h.device(&light(1)).and_then(|d| d.version)
            == Some("0.2".into()))
            .await
    );
    assert_eq!(
        c.operation(OperationType::Offline, GatewayDevice::named(&light(1)))
            .await,
        0
    );
    assert_eq!(
        c.operation(OperationType::Online, GatewayDevice::named(&light(4)))
            .await,
        -1
    );
    let refused: Vec<_> = hub
        .transcript()
        .into_iter()
        .filter(|e| e.direction == fake_hub::Direction::Refused && e.topic == report)
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "only the report sent before online is refused"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn subdevices_go_offline_when_their_gateway_disconnects() {
    let hub = hub().await;
    let c = gateway_with_online(&hub, &light(1)).await;
    drop(c);
    assert!(
        hub.wait_until(DEADLINE, |h| !h.device(&light(1)).is_some_and(|d| d.online))
            .await
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn subdevices_go_offline_when_their_gateway_misses_its_keepalive() {
    let hub = hub().await;
    let c =
        Credentials::make(&gw(), GW_SECRET, "abcde", NEVER, SignMethod::HmacSha1).expect("creds");
    let mut s = TcpStream::connect(hub.local_addr()).await.expect("tcp");
    // Keepalive 1 s: rmqtt drops a silent client after 1 + 3 s.
    let connect = raw::connect(4, &c.client_id, Some(&c.username), Some(&c.password), 1);
    assert_eq!(raw::connack(&mut s, &connect).await, 0);
    let online = otasim_protocol::GatewayRequest::single(
        OperationType::Online,
        GatewayDevice::named(&light(1)),
    );
    use tokio::io::AsyncWriteExt;
    s.write_all(&raw::publish(
        &Topic::GatewayOperation(gw()).to_string(),
        &online.encode(),
    ))
    .await
    .expect("written");
    assert!(
        hub.wait_until(DEADLINE, |h| h.device(&light(1)).is_some_and(|d| d.online))
            .await
    );
    raw::closed(&mut s).await;
    assert!(
        hub.wait_until(DEADLINE, |h| !h.device(&light(1)).is_some_and(|d| d.online))
            .await
    );
    wait_event(&hub, "disconnect", "keepalive_timeout").await;
    hub.shutdown().await;
}

#[tokio::test]
async fn hub_initiated_change_and_unbind_all_reach_the_gateway() {
    let hub = hub().await;
    let mut c = gateway_listening(&hub).await;
    let result = Topic::GatewayOperationResult(gw()).to_string();
    hub.change_binding(&gw(), &light(4), true)
        .expect("known devices");
    let change = c.expect_json(&result, |v| v["type"] == "change").await;
    assert_eq!(change["payload"]["status"], 1);
    assert_eq!(change["payload"]["devices"][0]["device_name"], "light4");
    assert_eq!(hub.device(&light(4)).and_then(|d| d.bound_to), Some(gw()));
    hub.unbind_all(&gw()).expect("known gateway");
    let all = c.expect_json(&result, |v| v["type"] == "unbind_all").await;
    assert_eq!(all["payload"]["devices"].as_array().map(Vec::len), Some(4));
    assert!(hub.devices().iter().all(|d| d.bound_to.is_none()));
    hub.shutdown().await;
}
