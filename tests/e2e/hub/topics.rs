//! `[[topic]]` in the fleet file of the real `otasim hub`: a device gets its own product's
//! custom topics with the declared permission, a gateway also those of its online bound
//! subdevices, and nothing of another device or product.

use super::{FLEET, GATEWAY_SECRET, gateway_id, serve_hub};
use crate::support::within;
use otasim_protocol::{Credentials, SignMethod};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;

const TOPICS: &str = r#"
[[topic]]
product_id = "JR1WOKB7Q7"
topic = "JR1WOKB7Q7/${deviceName}/status"
permission = "pub_sub"

[[topic]]
product_id = "JR1WOKB7Q7"
topic = "JR1WOKB7Q7/${deviceName}/up"
permission = "pub"

[[topic]]
product_id = "E69UADXUYY"
topic = "E69UADXUYY/${deviceName}/lamp/state"
permission = "sub"
"#;

/// What the gateway's connection receives: SUBACK codes and publishes.
enum Got {
    SubAck(Vec<SubscribeReasonCode>),
    Publish(String, Value),
}

/// Subscribes to `topic` at QoS 1 and answers its SUBACK's codes.
async fn suback(
    client: &AsyncClient,
    got: &mut mpsc::UnboundedReceiver<Got>,
    topic: &str,
) -> Vec<SubscribeReasonCode> {
    client
        .subscribe(topic, QoS::AtLeastOnce)
        .await
        .expect("subscribe queued");
    within(&format!("the SUBACK for {topic}"), async {
        loop {
            if let Got::SubAck(codes) = got.recv().await.expect("connection open") {
                return codes;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_topics_are_granted_with_their_permission_and_foreign_ones_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fleet = dir.path().join("fleet.toml");
    let base = std::fs::read_to_string(FLEET).expect("the Python fleet");
    std::fs::write(&fleet, format!("{base}{TOPICS}")).expect("write the fleet");
    let hub = serve_hub(&["--fleet", fleet.to_str().expect("utf-8 temp path")]).await;

    let creds = Credentials::make(
        &gateway_id(),
        GATEWAY_SECRET,
        "abcde",
        u64::MAX >> 1,
        SignMethod::HmacSha1,
    )
    .expect("valid secret");
    let mut options = MqttOptions::new(&creds.client_id, "127.0.0.1", hub.mqtt.port());
    options.set_credentials(creds.username, creds.password);
    options.set_keep_alive(Duration::from_secs(60));
    let (client, mut event_loop) = AsyncClient::new(options, 16);
    let (tx, mut got) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = event_loop.poll().await {
            let item = match event {
                Event::Incoming(Packet::SubAck(a)) => Got::SubAck(a.return_codes),
                Event::Incoming(Packet::Publish(p)) => Got::Publish(
                    p.topic.clone(),
                    serde_json::from_slice(&p.payload).unwrap_or(Value::Null),
                ),
                _ => continue,
            };
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    let granted = vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)];
    let refused = vec![SubscribeReasonCode::Failure];
    for (topic, want) in [
        ("JR1WOKB7Q7/gw_deng1/status", &granted),
        // Declared publish-only.
        ("JR1WOKB7Q7/gw_deng1/up", &refused),
        ("JR1WOKB7Q7/gw_deng1/undeclared", &refused),
        // Another device of the product, and the subdevice's topic before it is online.
        ("JR1WOKB7Q7/gw_other/status", &refused),
        ("E69UADXUYY/light1/lamp/state", &refused),
        // Another product's name on this product.
        ("JR1WOKB7Q7/gw_deng1/lamp/state", &refused),
    ] {
        assert_eq!(&suback(&client, &mut got, topic).await, want, "{topic}");
    }
    let result = "$gateway/operation/result/JR1WOKB7Q7/gw_deng1";
    assert_eq!(suback(&client, &mut got, result).await, granted);
    let online = json!({"type":"online","payload":{"devices":[
        {"product_id":"E69UADXUYY","device_name":"light1"}]}});
    client
        .publish(
            "$gateway/operation/JR1WOKB7Q7/gw_deng1",
            QoS::AtLeastOnce,
            false,
            online.to_string(),
        )
        .await
        .expect("publish queued");
    within("the online reply", async {
        loop {
            if let Some(Got::Publish(t, v)) = got.recv().await
                && t == result
            {
                assert_eq!(v["payload"]["devices"][0]["result"], 0, "{v}");
                return;
            }
        }
    })
    .await;
    for (topic, want) in [
        // Online and bound: the subdevice's own topic, through its gateway.
        ("E69UADXUYY/light1/lamp/state", &granted),
        // light2 is not bound to this gateway; the air conditioner's product declares nothing.
        ("E69UADXUYY/light2/lamp/state", &refused),
        ("YI7XCD5DRH/airConditioner1/lamp/state", &refused),
    ] {
        assert_eq!(&suback(&client, &mut got, topic).await, want, "{topic}");
    }
}
