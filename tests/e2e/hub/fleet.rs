//! A large fleet file is registered before `otasim hub` prints its `listening` line: a client
//! that starts at that line (as `otasim bench hub` does) finds every subdevice bound. When the
//! line came first, the bench's early gateways were refused (`online` -1, not bound) while the
//! hub was still registering a 4,000-gateway fleet.

use super::{connect_gateway, get, serve_hub};
use crate::support::within;
use otasim_protocol::DeviceId;
use rumqttc::QoS;
use serde_json::json;
use std::fmt::Write as _;

const SECRET: &str = "YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldA==";
const GATEWAYS: usize = 500;
const SUBDEVICES: usize = 10;

fn fleet_toml() -> String {
    let mut out = String::new();
    for g in 0..GATEWAYS {
        let _ = writeln!(
            out,
            "[[gateways]]\nproduct_id = \"FLEETGW001\"\ndevice_name = \"gw{g}\"\nsecret = \"{SECRET}\"\n"
        );
        for s in 0..SUBDEVICES {
            let _ = writeln!(
                out,
                "[[subdevices]]\nproduct_id = \"FLEETSUB01\"\ndevice_name = \"s{g}_{s}\"\n\
                 secret = \"x\"\ngateway = \"FLEETGW001/gw{g}\"\nversion = \"1.0\"\n"
            );
        }
    }
    out
}

#[tokio::test]
async fn every_subdevice_of_a_large_fleet_is_bound_when_the_listening_line_appears() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(&fleet, fleet_toml()).expect("write the fleet");
    let hub = serve_hub(&["--quiet", "--fleet", fleet.to_str().expect("utf-8 path")]).await;
    // The last subdevice registered, asked at once.
    let last = format!("FLEETSUB01/s{}_{}", GATEWAYS - 1, SUBDEVICES - 1);
    let (status, device) = get(hub.api, &format!("/api/devices/{last}")).await;
    assert_eq!(status, 200, "{device}");
    let bound_to =
        json!({"product_id": "FLEETGW001", "device_name": format!("gw{}", GATEWAYS - 1)});
    assert_eq!(device["bound_to"], bound_to, "{device}");
    // The first and the last gateway bring every subdevice online.
    for g in [0, GATEWAYS - 1] {
        let gw = DeviceId::new("FLEETGW001", format!("gw{g}")).expect("valid id");
        let mut client = connect_gateway(hub.mqtt, &gw, SECRET).await;
        let result_topic = format!("$gateway/operation/result/{gw}");
        client
            .client
            .subscribe(&result_topic, QoS::AtLeastOnce)
            .await
            .expect("subscribe queued");
        for s in 0..SUBDEVICES {
            let body = json!({"type": "online", "payload": {"devices": [
                {"product_id": "FLEETSUB01", "device_name": format!("s{g}_{s}")}]}});
            client.send(&format!("$gateway/operation/{gw}"), body).await;
            let reply = within("the online reply", client.expect(&result_topic, "online")).await;
            assert_eq!(reply["payload"]["devices"][0]["result"], 0, "{reply}");
        }
    }
}
