//! Property tests of every parser of outside input in this crate: topics, OTA and gateway
//! messages, credentials, bind signatures, `device_info.json`. None panics on any input, and
//! what the encoders write parses back to itself.

use otasim_protocol::{
    Credentials, DeviceId, DeviceInfo, DeviceOtaMessage, GatewayDevice, GatewayReply,
    GatewayRequest, HubOtaMessage, OperationType, SignMethod, Topic, UpdateFirmware, Username,
    bind_signature, verify_bind_signature,
};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Any JSON value, shallow enough to stay fast.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("report".to_owned()),
                    Just("payload".to_owned()),
                    Just("devices".to_owned()),
                    Just("progress".to_owned()),
                    Just("version".to_owned()),
                    Just("percent".to_owned()),
                    Just("result_code".to_owned()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A message of a known type with arbitrary fields, to reach past the `type` check.
fn typed_json() -> impl Strategy<Value = Value> {
    let kinds = prop_oneof![
        Just("report_version"),
        Just("report_progress"),
        Just("report_version_rsp"),
        Just("update_firmware"),
        Just("online"),
        Just("offline"),
        Just("bind"),
        Just("unbind"),
        Just("describe_sub_devices"),
        Just("change"),
        Just("unbind_all"),
    ];
    (kinds, any_json(), any_json()).prop_map(|(kind, report, payload)| {
        json!({"type": kind, "report": report, "payload": payload, "version": report})
    })
}

fn parse_all(bytes: &[u8]) {
    let _ = DeviceOtaMessage::parse(bytes);
    let _ = HubOtaMessage::parse(bytes);
    let _ = GatewayRequest::parse(bytes);
    let _ = GatewayReply::parse(bytes);
}

proptest! {
    #[test]
    fn message_parsers_take_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        parse_all(&bytes);
    }

    #[test]
    fn message_parsers_take_any_json(v in prop_oneof![any_json(), typed_json()]) {
        parse_all(v.to_string().as_bytes());
    }

    #[test]
    fn topic_parser_takes_any_text_and_what_it_parses_renders_back(text in prop_oneof![
        ".{0,80}",
        "\\$(ota|gateway)/(update|report|operation|operation/result)/[A-Za-z0-9_/+#-]{0,30}",
    ]) {
        if let Ok(t) = text.parse::<Topic>() {
            prop_assert_eq!(t.to_string().parse::<Topic>().ok(), Some(t.clone()));
        }
    }

    #[test]
    fn update_firmware_round_trips(file_size in any::<i64>(), md5 in ".{0,40}", url in ".{0,80}", version in ".{0,40}") {
        let m = HubOtaMessage::UpdateFirmware(UpdateFirmware { file_size, md5sum: md5, url, version });
        prop_assert_eq!(HubOtaMessage::parse(&m.encode()).ok(), Some(m));
    }

    #[test]
    fn gateway_reply_round_trips(pid in "[A-Z0-9]{1,10}", dn in "[a-z0-9_]{1,20}", result in any::<i64>()) {
        let d = GatewayDevice { result: Some(result), ..GatewayDevice::named(&DeviceId::new(pid, dn).unwrap()) };
        let reply = GatewayReply { kind: OperationType::Bind, devices: vec![d], status: None };
        prop_assert_eq!(GatewayReply::parse(&reply.encode()).ok(), Some(reply));
    }

    #[test]
    fn credential_parsers_take_any_text(client_id in ".{0,40}", username in ".{0,120}", password in ".{0,80}", secret in ".{0,40}") {
        let _ = Username::parse(&username);
        let _ = Credentials::verify(&client_id, &username, &password, &secret);
        let _ = SignMethod::parse(&password);
        let _ = DeviceId::new(client_id.as_str(), username.as_str());
    }

    #[test]
    fn credentials_made_verify_and_a_changed_password_does_not(
        dn in "[a-z0-9_]{1,20}", expiry in any::<u64>(), sha256 in any::<bool>(), flip in 0usize..40,
    ) {
        let id = DeviceId::new("JR1WOKB7Q7", dn).unwrap();
        let method = if sha256 { SignMethod::HmacSha256 } else { SignMethod::HmacSha1 };
        let c = Credentials::make(&id, "1RRdhkwmZ45wYXjuPfygeA==", "abcde", expiry, method).unwrap();
        prop_assert!(Credentials::verify(&c.client_id, &c.username, &c.password, "1RRdhkwmZ45wYXjuPfygeA==").is_ok());
        let mut bad = c.password.clone().into_bytes();
        bad[flip] = if bad[flip] == b'0' { b'1' } else { b'0' };
        let bad = String::from_utf8(bad).unwrap();
        prop_assert!(Credentials::verify(&c.client_id, &c.username, &bad, "1RRdhkwmZ45wYXjuPfygeA==").is_err());
    }

    #[test]
    fn bind_signatures_verify_only_for_what_was_signed(
        secret in ".{1,30}", random in any::<i64>(), timestamp in any::<i64>(), other in any::<i64>(), junk in ".{0,60}",
    ) {
        let id = DeviceId::new("E69UADXUYY", "light1").unwrap();
        let sig = bind_signature(&id, &secret, random, timestamp, SignMethod::HmacSha1);
        prop_assert!(verify_bind_signature(&id, &secret, random, timestamp, SignMethod::HmacSha1, &sig));
        prop_assert!(!verify_bind_signature(&id, &secret, random, timestamp, SignMethod::HmacSha256, &sig));
        if other != timestamp {
            prop_assert!(!verify_bind_signature(&id, &secret, random, other, SignMethod::HmacSha1, &sig));
        }
        prop_assert!(junk == sig || !verify_bind_signature(&id, &secret, random, timestamp, SignMethod::HmacSha1, &junk));
    }

    #[test]
    fn device_info_parser_takes_any_text(text in prop_oneof![".{0,200}".boxed(), any_json().prop_map(|v| v.to_string()).boxed()]) {
        if let Ok(info) = DeviceInfo::parse(&text) {
            let _ = info.device_id();
            let _ = info.subdevices();
        }
    }
}
