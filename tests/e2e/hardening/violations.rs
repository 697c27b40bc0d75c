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
    assert_eq!(recorded, 6, "the wildcard publishes are recorded");
}
