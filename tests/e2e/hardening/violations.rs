//! Degraded behaviours of the hardening issue: protocol violations (SUBSCRIBE with QoS 3,
//! PUBLISH to a wildcard topic) now disconnect; a bind signature is single-use; under 500
//! simultaneous CONNECTs with one client id the transcript records what each client got.

use super::wire::{Connect, Raw, credentials, publish_packet, subscribe_packet};
use super::{GW1_SECRET, gw1, two_gateway_hub};
use fake_hub::HubConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_with_qos_3_and_publish_to_a_wildcard_topic_disconnect() {
    let hub = two_gateway_hub(HubConfig::loopback()).await;
    let creds = credentials(&gw1(), GW1_SECRET);
    let violations: [(&str, Vec<u8>); 4] = [
        (
            "SUBSCRIBE QoS 3",
            subscribe_packet(1, "$ota/update/JR1WOKB7Q7/gw_deng1", 3),
        ),
        (
            "PUBLISH to +",
            publish_packet("$ota/report/JR1WOKB7Q7/+", b"{}"),
        ),
        ("PUBLISH to #", publish_packet("$ota/report/#", b"{}")),
        ("PUBLISH to a/+/b", publish_packet("a/+/b", b"{}")),
    ];
    for level in [4, 5] {
        for (what, packet) in &violations {
            let mut c = Connect::device(&creds);
            c.level = level;
            let (mut raw, code) = Raw::connect(hub.local_addr(), &c).await;
            assert_eq!(code, Some(0));
            assert!(raw.send(packet).await);
            // Then a valid SUBSCRIBE: a connection still open answers it with a SUBACK.
            raw.send(&subscribe_packet(2, "$ota/update/JR1WOKB7Q7/gw_deng1", 1))
                .await;
            let seen = raw.until_closed().await;
            let acks: Vec<u8> = seen.iter().map(|(first, _)| first >> 4).collect();
            assert!(
                !acks.contains(&9),
                "MQTT {level} {what}: still answered: {acks:?}"
            );
            assert!(
                seen.iter().all(|(first, _)| first >> 4 != 3),
                "MQTT {level} {what}: a publish was routed"
            );
        }
    }
    let recorded = hub
        .transcript()
        .into_iter()
        .filter(|e| e.topic == "protocol violation" && e.client_id == creds.client_id)
        .count();
    // MQTT 5's codec refuses the wildcard topics itself; MQTT 3.1.1's reaches the hub.
    assert_eq!(
        recorded, 3,
        "the MQTT 3.1.1 wildcard publishes are recorded"
    );
}

/// A bind request for light3 with the given signature values.
fn bind_request(random: i64, timestamp: i64) -> serde_json::Value {
    let sig = otasim_protocol::bind_signature(
        &super::light(3),
        super::LIGHT_SECRET,
        random,
        timestamp,
        otasim_protocol::SignMethod::HmacSha1,
    );
    serde_json::json!({"type":"bind","payload":{"devices":[{"product_id":"E69UADXUYY","device_name":"light3",
        "signature":sig,"random":random,"timestamp":timestamp,"signmethod":"hmacsha1","authtype":"psk"}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_signature_binds_once_and_a_replay_by_another_gateway_gets_805() {
    use crate::hub::connect_gateway;
    use rumqttc::QoS;
    let hub = two_gateway_hub(HubConfig::loopback()).await;
    let mut gws = Vec::new();
    for (id, secret) in [(gw1(), GW1_SECRET), (super::gw2(), super::GW2_SECRET)] {
        let gw = connect_gateway(hub.local_addr(), &id, secret).await;
        let result = format!("$gateway/operation/result/{id}");
        gw.client
            .subscribe(&result, QoS::AtLeastOnce)
            .await
            .unwrap();
        gws.push((gw, format!("$gateway/operation/{id}"), result));
    }
    let now = hub.now_unix_ms() / 1000;
    let signed = bind_request(4242, now);
    let mut ask = async |who: usize, body: serde_json::Value| -> i64 {
        let (gw, op, result) = &mut gws[who];
        let kind = body["type"].as_str().unwrap().to_owned();
        gw.send(op, body).await;
        gw.expect(result, &kind).await["payload"]["devices"][0]["result"]
            .as_i64()
            .expect("a result")
    };
    let unbind = serde_json::json!({"type":"unbind","payload":{"devices":[{"product_id":"E69UADXUYY","device_name":"light3"}]}});
    assert_eq!(ask(0, signed.clone()).await, 0, "gw1 binds light3");
    assert_eq!(
        ask(0, signed.clone()).await,
        -809,
        "gw1 asking again learns it is bound"
    );
    assert_eq!(
        ask(1, signed.clone()).await,
        -805,
        "gw2 replays while light3 is gw1's"
    );
    assert_eq!(ask(0, unbind).await, 0, "gw1 unbinds light3");
    assert_eq!(
        ask(1, signed.clone()).await,
        -805,
        "gw2 replays after the unbind"
    );
    assert_eq!(
        ask(0, signed).await,
        -805,
        "gw1 replays its own spent signature"
    );
    assert_eq!(hub.device(&super::light(3)).unwrap().bound_to, None);
    assert_eq!(
        ask(1, bind_request(4243, now)).await,
        0,
        "a fresh signature binds"
    );
    assert_eq!(
        hub.device(&super::light(3)).unwrap().bound_to,
        Some(super::gw2())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_simultaneous_connects_with_one_client_id_are_recorded_as_answered() {
    let hub = two_gateway_hub(HubConfig::loopback()).await;
    let mqtt = hub.local_addr();
    let creds = std::sync::Arc::new(credentials(&gw1(), GW1_SECRET));
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(500));
    let mut clients = Vec::new();
    for _ in 0..500 {
        let (creds, start) = (creds.clone(), start.clone());
        clients.push(tokio::spawn(async move {
            start.wait().await;
            let (raw, code) = Raw::connect(mqtt, &Connect::device(&creds)).await;
            // Kept open until every client has its answer, so no takeover is hidden.
            (raw, code)
        }));
    }
    let mut got = std::collections::BTreeMap::<Option<u8>, usize>::new();
    let mut open = Vec::new();
    for c in clients {
        let (raw, code) = c.await.expect("a client");
        *got.entry(code).or_default() += 1;
        open.push(raw);
    }
    let recorded = |prefix: &str| {
        hub.transcript()
            .iter()
            .filter(|e| e.topic == "connect" && e.client_id == creds.client_id)
            .filter(|e| e.payload.starts_with(prefix))
            .count()
    };
    let accepted = got.get(&Some(0)).copied().unwrap_or(0);
    let unavailable = got.get(&Some(3)).copied().unwrap_or(0);
    assert_eq!(accepted + unavailable, 500, "answers: {got:?}");
    assert!(accepted >= 1, "answers: {got:?}");
    assert_eq!(recorded("Accept"), accepted, "answers: {got:?}");
    assert_eq!(
        recorded("ServerUnavailable"),
        unavailable,
        "answers: {got:?}"
    );
    eprintln!("500 simultaneous CONNECTs with one client id: {got:?}");
}
