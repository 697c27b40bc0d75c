//! The Hub rules the seed demo relies on, checked on the wire: bad credentials get CONNACK 4,
//! an unbound subdevice gets online result -1, and a cut download resumes where it stopped.

use crate::support::within;
use fake_hub::{FirmwareStore, Hub, HubConfig};
use otasim_protocol::{Credentials, DeviceId, SignMethod};
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet};
use scenarios::Plan;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A store that keeps nothing: these tests never download.
struct NoStore;

impl FirmwareStore for NoStore {
    fn put(&self, _object: &str, _bytes: Vec<u8>) -> Result<(), fake_hub::StoreError> {
        Ok(())
    }

    fn signed_url(
        &self,
        object: &str,
        _valid_for: Duration,
    ) -> Result<String, fake_hub::StoreError> {
        Ok(format!("http://127.0.0.1/{object}"))
    }
}

const SECRET: &str = "1RRdhkwmZ45wYXjuPfygeA==";

async fn connack(hub: &Hub, device: &DeviceId, secret: &str) -> Result<(), ConnectReturnCode> {
    let creds = Credentials::make(
        device,
        secret,
        "abcde",
        i64::MAX as u64,
        SignMethod::HmacSha1,
    )
    .unwrap();
    let mut opts = MqttOptions::new(creds.client_id, "127.0.0.1", hub.local_addr().port());
    opts.set_credentials(creds.username, creds.password);
    let (_client, mut events) = AsyncClient::new(opts, 10);
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
            Ok(_) => {}
            Err(ConnectionError::ConnectionRefused(code)) => return Err(code),
            Err(e) => panic!("unexpected connection error: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_gets_connack_4_and_unknown_device_connack_5() {
    let hub = Hub::start(HubConfig::loopback(), Arc::new(NoStore))
        .await
        .unwrap();
    let gw = DeviceId::new("JR1WOKB7Q7", "gw_deng1").unwrap();
    hub.add_gateway(&gw, SECRET);
    within("good connect", connack(&hub, &gw, SECRET))
        .await
        .expect("right secret connects");
    let wrong = within(
        "bad connect",
        connack(&hub, &gw, "AAAAAAAAAAAAAAAAAAAAAA=="),
    )
    .await;
    assert_eq!(wrong, Err(ConnectReturnCode::BadUserNamePassword));
    let stranger = DeviceId::new("JR1WOKB7Q7", "nobody").unwrap();
    let unknown = within("unknown connect", connack(&hub, &stranger, SECRET)).await;
    assert_eq!(unknown, Err(ConnectReturnCode::NotAuthorized));
    hub.shutdown().await;
}

const UNBOUND: &str = r#"
name = "unbound-light"
[[gateways]]
product_id = "JR1WOKB7Q7"
device_name = "gw_deng1"
secret = "1RRdhkwmZ45wYXjuPfygeA=="
[[subdevices]]
product_id = "E69UADXUYY"
device_name = "light1"
version = "0.1"
[[subdevices]]
product_id = "E69UADXUYY"
device_name = "light2"
version = "0.1"
bound = false
[[steps]]
action = "wait_online"
[expect.online_results]
"E69UADXUYY/light1" = 0
"E69UADXUYY/light2" = -1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_subdevice_gets_online_result_minus_one_and_no_ota_topic() {
    let plan = Plan::parse(Path::new("unbound.toml"), UNBOUND).unwrap();
    let report = within("scenario", scenarios::run(&plan, None))
        .await
        .unwrap();
    assert!(report.passed, "{:#?}", report.failures);
    // The gateway must not be allowed into an unbound subdevice's topic space.
    let light2_ota = report
        .transcript
        .iter()
        .filter(|e| e.topic.contains("E69UADXUYY/light2") && e.topic.starts_with("$ota/"))
        .count();
    assert_eq!(light2_ota, 0);
}

const CUT_ONCE: &str = r#"
name = "cut-once"
[[gateways]]
product_id = "JR1WOKB7Q7"
device_name = "gw_deng1"
secret = "1RRdhkwmZ45wYXjuPfygeA=="
[[subdevices]]
product_id = "E69UADXUYY"
device_name = "light1"
version = "0.1"
[[firmware]]
product_id = "E69UADXUYY"
version = "V100R0001"
size = 29972
[[cos_faults]]
when = { attempt = 1 }
verdict = { kind = "cut_after", bytes = 10000 }
fires = "once"
[[steps]]
action = "wait_online"
[[steps]]
action = "push"
product_id = "E69UADXUYY"
version = "V100R0001"
method = "devices"
devices = ["light1"]
[[steps]]
action = "wait_tasks"
[expect.versions]
"E69UADXUYY/light1" = "V100R0001"
[expect.reports]
"E69UADXUYY/light1" = ["downloading 0", "downloading*", "downloading 100", "burning", "done"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_download_resumes_from_the_durable_byte() {
    let plan = Plan::parse(Path::new("cut.toml"), CUT_ONCE).unwrap();
    let report = within("scenario", scenarios::run(&plan, None))
        .await
        .unwrap();
    assert!(report.passed, "{:#?}", report.failures);
    let gets: Vec<_> = report
        .cos_journal
        .iter()
        .filter(|j| j.method == "GET")
        .collect();
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert_eq!(gets[0].body_bytes_sent, 10_000);
    let resume = gets[1]
        .range
        .as_deref()
        .expect("the resume asks for a range");
    let start: u64 = resume
        .trim_start_matches("bytes=")
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(start > 0 && start <= 10_000, "resumed at {start}");
    assert_eq!(gets[1].body_bytes_sent, 29_972 - start);
}
