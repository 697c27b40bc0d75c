//! Attack 1: a Last Will bypassed the publish ACL. A gateway connected with a will on another
//! gateway's subdevice topic (a forged `update_firmware`) or on a topology reply topic, reset
//! its socket, and the broker delivered the forgery. Wills are now authorized at CONNECT as
//! publishes (CONNACK 5, reason 0x87 in MQTT 5) and recorded when sent.

use super::wire::{Connect, Raw, Will, credentials};
use super::{GW1_SECRET, GW2_SECRET, gw1, gw2, light, two_gateway_hub};
use crate::hub::connect_gateway;
use fake_hub::{Direction, HubConfig};
use rumqttc::QoS;
use serde_json::json;

const FORGED_UPDATE: &str = r#"{"type":"update_firmware","file_size":3,"md5sum":"00000000000000000000000000000000","url":"http://127.0.0.1:9/forged.bin","version":"EVIL"}"#;
const FORGED_TOPOLOGY: &str = r#"{"type":"describe_sub_devices","payload":{"devices":[{"product_id":"E69UADXUYY","device_name":"light1"}]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_forging_another_gateways_subdevice_or_topology_is_refused_at_connect() {
    let hub = two_gateway_hub(HubConfig::loopback()).await;
    let mqtt = hub.local_addr();
    let mut victim = connect_gateway(mqtt, &gw1(), GW1_SECRET).await;
    let (op, result) = (
        "$gateway/operation/JR1WOKB7Q7/gw_deng1",
        "$gateway/operation/result/JR1WOKB7Q7/gw_deng1",
    );
    let (update, report) = (
        "$ota/update/E69UADXUYY/light1",
        "$ota/report/E69UADXUYY/light1",
    );
    victim
        .client
        .subscribe(result, QoS::AtLeastOnce)
        .await
        .unwrap();
    victim.send(op, json!({"type":"online","payload":{"devices":[{"product_id":"E69UADXUYY","device_name":"light1"}]}})).await;
    victim.expect(result, "online").await;
    victim
        .client
        .subscribe(update, QoS::AtLeastOnce)
        .await
        .unwrap();

    let creds = credentials(&gw2(), GW2_SECRET);
    let attacks = [
        (update, FORGED_UPDATE, 4, 5),
        (update, FORGED_UPDATE, 5, 0x87),
        (result, FORGED_TOPOLOGY, 4, 5),
        (result, FORGED_TOPOLOGY, 5, 0x87),
    ];
    for (topic, payload, level, want) in attacks {
        let mut c = Connect::device(&creds);
        c.level = level;
        c.will = Some(Will {
            topic,
            payload: payload.as_bytes(),
        });
        let (raw, code) = Raw::connect(mqtt, &c).await;
        assert_eq!(code, Some(want), "MQTT {level} will on {topic}");
        // Had the CONNECT been accepted, this is where the broker would publish the will.
        raw.reset();
    }
    // The victim's next exchanges come after any will the attacks could have caused.
    victim
        .send(
            report,
            json!({"type":"report_version","report":{"version":"0.1"}}),
        )
        .await;
    victim.expect(update, "report_version_rsp").await;
    victim
        .send(op, json!({"type":"describe_sub_devices"}))
        .await;
    victim.expect(result, "describe_sub_devices").await;
    while let Ok((topic, v)) = victim.inbox.try_recv() {
        assert_ne!(v["type"], "update_firmware", "forged command on {topic}");
    }
    assert_eq!(
        hub.device(&light(1)).unwrap().version.as_deref(),
        Some("0.1")
    );
    let refused: Vec<_> = hub
        .transcript()
        .into_iter()
        .filter(|e| e.direction == Direction::Event && e.topic == "will refused")
        .collect();
    assert_eq!(refused.len(), 4, "{refused:#?}");
    assert!(refused.iter().all(|e| e.client_id == creds.client_id));
    assert!(
        refused[0].payload.contains(update),
        "{}",
        refused[0].payload
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_on_the_clients_own_topic_is_accepted_recorded_and_acted_on_when_sent() {
    let hub = two_gateway_hub(HubConfig::loopback()).await;
    let creds = credentials(&gw2(), GW2_SECRET);
    let mut c = Connect::device(&creds);
    let payload = br#"{"type":"report_version","report":{"version":"9.9"}}"#;
    c.will = Some(Will {
        topic: "$ota/report/GW2PROD000/gw2",
        payload,
    });
    let (raw, code) = Raw::connect(hub.local_addr(), &c).await;
    assert_eq!(code, Some(0));
    raw.reset();
    let sent = hub
        .wait_until(crate::support::DEADLINE, |h| {
            h.device(&gw2()).unwrap().version.as_deref() == Some("9.9")
        })
        .await;
    assert!(sent, "the will was not acted on");
    let t = hub.transcript();
    let will = t
        .iter()
        .position(|e| e.topic == "will" && e.client_id == creds.client_id)
        .expect("the will is in the transcript");
    assert!(t[will + 1..].iter().any(|e| e.direction == Direction::In
        && e.topic == "$ota/report/GW2PROD000/gw2"
        && e.payload.as_bytes() == payload));
}
