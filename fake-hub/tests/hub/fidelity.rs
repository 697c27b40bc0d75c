//! Key auth, expiry against the hub's clock, MQTT 3.1 and 3.1.1, QoS 1 on `$ota/update`, and
//! strict mode.

use crate::raw;
use crate::support::*;
use otasim_protocol::{Credentials, DeviceId, SignMethod, Topic};
use rumqttc::{ConnectReturnCode, ConnectionError, QoS, SubscribeReasonCode};
use std::time::Duration;
use tokio::net::TcpStream;

async fn refused(options: rumqttc::MqttOptions) -> ConnectReturnCode {
    match Client::spawn(options).ended().await {
        ConnectionError::ConnectionRefused(code) => code,
        other => panic!("expected a refusing CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn hmacsha1_and_hmacsha256_passwords_are_both_accepted() {
    let hub = hub().await;
    for method in [SignMethod::HmacSha1, SignMethod::HmacSha256] {
        let o = options_signed(hub.local_addr(), &gw(), GW_SECRET, NEVER, method);
        drop(Client::connect(o).await);
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn bad_credentials_get_4_and_unknown_or_disabled_devices_get_5() {
    let hub = hub().await;
    let addr = hub.local_addr();
    let wrong = options(addr, &gw(), "AAAAAAAAAAAAAAAAAAAAAA==");
    assert_eq!(refused(wrong).await, ConnectReturnCode::BadUserNamePassword);
    let stranger = DeviceId::new("NOSUCHPROD", "x").expect("valid id");
    assert_eq!(
        refused(options(addr, &stranger, GW_SECRET)).await,
        ConnectReturnCode::NotAuthorized
    );
    // A subdevice cannot connect by itself.
    assert_eq!(
        refused(options(addr, &light(1), SUB_SECRET)).await,
        ConnectReturnCode::NotAuthorized
    );
    hub.set_enabled(&gw(), false).expect("known");
    assert_eq!(
        refused(options(addr, &gw(), GW_SECRET)).await,
        ConnectReturnCode::NotAuthorized
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn expiry_in_seconds_is_judged_by_the_hub_clock() {
    let hub = hub().await;
    let expiry = u64::try_from(hub.now_unix_ms() / 1000 + 100).expect("positive");
    let o = || {
        options_signed(
            hub.local_addr(),
            &gw(),
            GW_SECRET,
            expiry,
            SignMethod::HmacSha1,
        )
    };
    drop(Client::connect(o()).await);
    hub.advance_clock(Duration::from_secs(200));
    assert_eq!(refused(o()).await, ConnectReturnCode::BadUserNamePassword);
    hub.shutdown().await;
}

#[tokio::test]
async fn expiry_in_milliseconds_is_judged_by_the_hub_clock() {
    let hub = hub().await;
    let expiry = u64::try_from(hub.now_unix_ms() + 100_000).expect("positive");
    let o = || {
        options_signed(
            hub.local_addr(),
            &gw(),
            GW_SECRET,
            expiry,
            SignMethod::HmacSha1,
        )
    };
    drop(Client::connect(o()).await);
    hub.set_clock_offset_ms(200_000);
    assert_eq!(refused(o()).await, ConnectReturnCode::BadUserNamePassword);
    hub.set_clock_offset_ms(0);
    drop(Client::connect(o()).await);
    hub.shutdown().await;
}

#[tokio::test]
async fn mqtt_31_mqisdp_connect_is_authenticated_like_311() {
    let hub = hub().await;
    let c =
        Credentials::make(&gw(), GW_SECRET, "abcde", NEVER, SignMethod::HmacSha1).expect("creds");
    for (level, password, code) in [
        (3, c.password.as_str(), 0),
        (3, "00;hmacsha1", 4),
        (4, c.password.as_str(), 0),
    ] {
        let mut s = TcpStream::connect(hub.local_addr()).await.expect("tcp");
        let connect = raw::connect(level, &c.client_id, Some(&c.username), Some(password), 60);
        assert_eq!(raw::connack(&mut s, &connect).await, code, "level {level}");
    }
    assert!(has_event(&hub, "connect", "mqtt level 3"));
    hub.shutdown().await;
}

#[tokio::test]
async fn ota_update_is_granted_qos_1_and_update_firmware_arrives_at_qos_1() {
    let hub = hub().await;
    let mut gw_client = Client::gateway(&hub).await;
    gw_client.online(&light(1)).await;
    let topic = Topic::OtaUpdate(light(1)).to_string();
    for asked in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let codes = gw_client.subscribe(&topic, asked).await;
        assert_eq!(codes, vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    }
    let push = fake_hub::PushRequest {
        product_id: "E69UADXUYY".into(),
        version: "1.0".into(),
        method: fake_hub::PushMethod::Devices {
            devices: vec!["light1".into()],
        },
    };
    hub.push(push).expect("push");
    let p = gw_client
        .expect(
            "update_firmware",
            |p| matches!(p, rumqttc::Packet::Publish(p) if p.topic == topic),
        )
        .await;
    assert!(matches!(p, rumqttc::Packet::Publish(p) if p.qos == QoS::AtLeastOnce));
    hub.shutdown().await;
}

#[tokio::test]
async fn strict_mode_warns_on_a_hub_publish_over_2_kb() {
    let hub = hub().await;
    let mut gw_client = gateway_with_online(&hub, &light(1)).await;
    let report = Topic::OtaReport(light(1)).to_string();
    let long = "v".repeat(2100);
    gw_client.publish(&report, report_version(&long)).await;
    let update = Topic::OtaUpdate(light(1)).to_string();
    gw_client
        .expect_json(&update, |v| v["type"] == "report_version_rsp")
        .await;
    assert!(
        !has_event(&hub, "strict", "over the C SDK's 2048"),
        "strict is off"
    );
    hub.set_strict(true);
    gw_client.publish(&report, report_version(&long)).await;
    wait_event(&hub, "strict", "over the C SDK's 2048").await;
    hub.shutdown().await;
}

#[tokio::test]
async fn strict_mode_warns_on_an_eleventh_subscription_and_a_long_ota_topic() {
    let hub = hub().await;
    hub.set_strict(true);
    let mut subs: Vec<DeviceId> = (5..=13).map(light).collect();
    let long = DeviceId::new("E69UADXUYY", "l".repeat(48)).expect("valid id");
    subs.push(long.clone());
    for s in &subs {
        hub.add_subdevice(s, SUB_SECRET, Some(&gw()), Some("0.1"));
    }
    let mut gw_client = Client::gateway(&hub).await;
    gw_client.online(&subs[0]).await; // 1: the result topic
    gw_client
        .subscribe(&Topic::OtaUpdate(gw()).to_string(), QoS::AtLeastOnce)
        .await; // 2
    for s in &subs[..8] {
        if s != &subs[0] {
            gw_client.online(s).await;
        }
        gw_client
            .subscribe(&Topic::OtaUpdate(s.clone()).to_string(), QoS::AtLeastOnce)
            .await;
    }
    assert!(
        !has_event(&hub, "strict", "subscription"),
        "10 subscriptions are fine"
    );
    gw_client.online(&long).await;
    gw_client
        .subscribe(
            &Topic::OtaUpdate(long.clone()).to_string(),
            QoS::AtLeastOnce,
        )
        .await;
    wait_event(&hub, "strict", "subscription 11").await;
    wait_event(&hub, "strict", "OTA topic").await;
    hub.shutdown().await;
}
