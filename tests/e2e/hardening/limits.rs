//! Attack 2: one API call poisoned the hub for good. `rate_limit.per_ms = u64::MAX` over 1,002
//! devices overflowed a duration while the state lock was held; from then on every API call
//! dropped its connection and every CONNECT got code 3. Every number from outside is now
//! range-checked at parse time (400 naming the field) and the arithmetic saturates.

use super::wire::{Connect, Raw, credentials};
use super::{GW1_SECRET, LIGHT_SECRET, gw1, light, two_gateway_hub};
use crate::hub::{get, http, post};
use fake_hub::{Hub, HubConfig};
use otasim_protocol::DeviceId;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

async fn hub_and_api() -> (Arc<Hub>, fake_hub::api::ApiServer) {
    let hub = two_gateway_hub(HubConfig::loopback()).await;
    hub.upload_firmware("E69UADXUYY", "V2", vec![1; 10])
        .expect("upload");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = fake_hub::api::serve(listener, hub.clone()).expect("api serves");
    (hub, api)
}

/// The hub answers its API and accepts a normal CONNECT.
async fn still_serving(hub: &Hub, api: SocketAddr) {
    let (status, devices) = get(api, "/api/devices").await;
    assert_eq!(status, 200, "{devices}");
    let creds = credentials(&gw1(), GW1_SECRET);
    let (_raw, code) = Raw::connect(hub.local_addr(), &Connect::device(&creds)).await;
    assert_eq!(code, Some(0), "a normal CONNECT after the attack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_ms_u64_max_over_1002_devices_is_refused_and_the_hub_keeps_serving() {
    let (hub, api) = hub_and_api().await;
    let names: Vec<String> = (0..1002).map(|i| format!("bulk{i}")).collect();
    for n in &names {
        let id = DeviceId::new("E69UADXUYY", n).unwrap();
        hub.add_subdevice(&id, LIGHT_SECRET, Some(&gw1()), Some("0.1"));
    }
    let push = |per_ms: Value| {
        json!({"product_id":"E69UADXUYY","version":"V2","method":"devices","devices":names,
               "options":{"rate_limit":{"devices":1,"per_ms":per_ms}}})
    };
    let (status, answer) = post(api.local_addr(), "/api/tasks", &push(json!(u64::MAX))).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "options.rate_limit.per_ms", "{answer}");
    still_serving(&hub, api.local_addr()).await;
    // The longest period allowed, a year, over 1,002 devices: 1,001 years of schedule.
    let (status, answer) = post(
        api.local_addr(),
        "/api/tasks",
        &push(json!(31_536_000_000u64)),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    still_serving(&hub, api.local_addr()).await;
    api.shutdown().await;
}

/// Every extreme a JSON number or string field can take.
fn extremes() -> Vec<Value> {
    vec![
        json!(0),
        json!(1),
        json!(u32::MAX),
        json!(u64::MAX),
        json!(-1),
        json!(i64::MIN),
        json!(1.5),
        json!(1e300),
        json!("x".repeat(100_000)),
        json!(""),
        Value::Null,
        json!(true),
        json!([]),
        json!({}),
    ]
}

/// Sets the field at the dotted `path` of `template` to `value`.
fn with(template: &Value, path: &str, value: &Value) -> Value {
    let mut body = template.clone();
    let mut at = &mut body;
    for key in path.split('.') {
        at = match key.parse::<usize>() {
            Ok(i) => &mut at[i],
            Err(_) => &mut at[key],
        };
    }
    *at = value.clone();
    body
}

/// Route, a valid body, the fields to push to their extremes.
fn cases() -> Vec<(&'static str, Value, Vec<&'static str>)> {
    let ghost = "JR1WOKB7Q7ghost";
    vec![
        (
            "/api/tasks",
            json!({"product_id":"E69UADXUYY","version":"V2","method":"devices","devices":["light1"],
                   "options":{"timeout_ms":1000,"retries":1,"retry_interval_ms":10,
                              "rate_limit":{"devices":1,"per_ms":10},"start_delay_ms":0,
                              "override_running":true}}),
            vec![
                "options.timeout_ms",
                "options.retries",
                "options.retry_interval_ms",
                "options.rate_limit.devices",
                "options.rate_limit.per_ms",
                "options.start_delay_ms",
                "options.override_running",
                "product_id",
                "version",
                "devices.0",
            ],
        ),
        ("/api/clock", json!({"advance_ms": 1}), vec!["advance_ms"]),
        ("/api/clock", json!({"offset_ms": 1}), vec!["offset_ms"]),
        (
            "/api/faults",
            json!({"when":{"on":"connect","client_id":ghost,"nth":1},
                   "action":{"do":"delay_connack","ms":10},"fires":{"times":2}}),
            vec!["when.nth", "action.ms", "fires.times", "when.client_id"],
        ),
        (
            "/api/faults",
            json!({"when":{"on":"connect","client_id":ghost},"action":{"do":"refuse_connect","code":3},"fires":"once"}),
            vec!["action.code"],
        ),
        (
            "/api/faults",
            json!({"when":{"on":"update_firmware","device":{"product_id":"E69UADXUYY","device_name":"ghost"}},
                   "action":{"do":"wrong_size","file_size":1},"fires":"always"}),
            vec!["action.file_size"],
        ),
        (
            "/api/faults",
            json!({"when":{"on":"task_state","task_id":1,"state":"done"},
                   "action":{"do":"push_task","request":{"push":{"product_id":"E69UADXUYY","version":"V2","method":"devices","devices":["ghost"]},
                                                         "options":{"retries":1,"timeout_ms":5}}},
                   "fires":"once"}),
            vec![
                "when.task_id",
                "action.request.options.retries",
                "action.request.options.timeout_ms",
            ],
        ),
        (
            "/api/gateways",
            json!({"product_id":"NEWPROD000","device_name":"g","secret":"c2VjcmV0"}),
            vec!["product_id", "device_name", "secret"],
        ),
        (
            "/api/subdevices",
            json!({"product_id":"E69UADXUYY","device_name":"s","secret":"c2VjcmV0","gateway":"JR1WOKB7Q7/gw_deng1","version":"0.1"}),
            vec!["device_name", "secret", "gateway", "version"],
        ),
        (
            "/api/devices/E69UADXUYY/light3/enabled",
            json!({"enabled": true}),
            vec!["enabled"],
        ),
        ("/api/strict", json!({"on": false}), vec!["on"]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_field_at_its_extremes_gets_an_answer_and_the_hub_keeps_serving() {
    let (hub, api) = hub_and_api().await;
    let addr = api.local_addr();
    let mut asked = 0;
    for (path, template, fields) in cases() {
        for field in fields {
            for value in extremes() {
                let body = with(&template, field, &value).to_string();
                let (status, answer) =
                    http(addr, "POST", path, "application/json", body.as_bytes()).await;
                asked += 1;
                let what = format!("{path} {field} = {value:.40}: {status} {answer:.300}");
                assert!(
                    matches!(status, 200..=299 | 400 | 404 | 409 | 413),
                    "{what}"
                );
                if status == 400 {
                    assert!(answer["error"].is_string(), "{what}");
                }
            }
        }
    }
    for query in ["since", "limit"] {
        for value in [
            "0",
            "1",
            "4294967295",
            "18446744073709551615",
            "-1",
            "1.5",
            "99999999999999999999999",
        ] {
            let (status, answer) = get(addr, &format!("/api/transcript?{query}={value}")).await;
            assert!(
                matches!(status, 200 | 400),
                "{query}={value}: {status} {answer:.200}"
            );
        }
    }
    let long = "x".repeat(20_000);
    for path in [
        "/api/tasks/18446744073709551615".to_owned(),
        "/api/tasks/-1".to_owned(),
        format!("/api/tasks/{long}"),
        format!("/api/devices/{long}/{long}"),
    ] {
        let (status, _) = get(addr, &path).await;
        assert!(
            matches!(status, 400 | 404 | 431),
            "GET {path:.60}: {status}"
        );
    }
    for path in [
        "/api/faults/18446744073709551615".to_owned(),
        format!("/api/faults/{long}"),
    ] {
        let (status, _) = http(addr, "DELETE", &path, "application/json", b"").await;
        assert!(
            matches!(status, 400 | 404 | 431),
            "DELETE {path:.60}: {status}"
        );
    }
    let (status, _) = http(
        addr,
        "POST",
        &format!("/api/clients/{long}/kick"),
        "application/json",
        b"",
    )
    .await;
    assert!(matches!(status, 204 | 400 | 431), "kick: {status}");
    assert!(asked > 300, "{asked} requests");
    // A field out of range is refused and named.
    let bad = with(&cases()[0].1, "options.retries", &json!(u32::MAX)).to_string();
    let (status, answer) = http(
        addr,
        "POST",
        "/api/tasks",
        "application/json",
        bad.as_bytes(),
    )
    .await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("options.retries")),
        "{answer}"
    );
    assert!(hub.device(&light(1)).is_some());
    still_serving(&hub, addr).await;
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_file_values_out_of_range_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let huge = "x".repeat(100_000);
    let gateway =
        "[[gateway]]\nproduct_id = \"JR1WOKB7Q7\"\ndevice_name = \"g\"\nsecret = \"c2VjcmV0\"\n";
    let cases = [
        (
            format!(
                "[[gateway]]\nproduct_id = \"JR1WOKB7Q7\"\ndevice_name = \"g\"\nsecret = \"{huge}\"\n"
            ),
            "gateway[0].secret",
        ),
        (
            format!(
                "[[gateway]]\nproduct_id = \"JR1WOKB7Q7\"\ndevice_name = \"{huge}\"\nsecret = \"x\"\n"
            ),
            "gateway[0]",
        ),
        (
            format!(
                "{gateway}[[subdevice]]\nproduct_id = \"E69UADXUYY\"\ndevice_name = \"s\"\nsecret = \"x\"\nversion = \"{huge}\"\n"
            ),
            "subdevice[0].version",
        ),
        (
            format!(
                "{gateway}[[subdevice]]\nproduct_id = \"E69UADXUYY\"\ndevice_name = \"s\"\nsecret = \"x\"\nversion = \"\"\n"
            ),
            "subdevice[0].version",
        ),
        (
            format!(
                "{gateway}[[subdevice]]\nproduct_id = \"E69UADXUYY\"\ndevice_name = \"s\"\nsecret = \"a b\"\n"
            ),
            "subdevice[0].secret",
        ),
        (
            "[[gateway]]\nproduct_id = 18446744073709551616\n".to_owned(),
            "product_id",
        ),
        (
            "[[gateway]]\nproduct_id = -1.5e300\n".to_owned(),
            "product_id",
        ),
    ];
    for (i, (text, field)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("fleet{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_otasim"))
            .args([
                "hub",
                "--mqtt-port",
                "0",
                "--cos-port",
                "0",
                "--api-port",
                "0",
                "--fleet",
            ])
            .arg(&path)
            .output();
        let out = crate::support::within("otasim hub to refuse the fleet", out)
            .await
            .unwrap();
        assert!(!out.status.success(), "case {i} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(field),
            "case {i}: {field} not in {stderr:.400}"
        );
        assert!(!stderr.contains("panicked"), "case {i}: {stderr:.400}");
    }
}
