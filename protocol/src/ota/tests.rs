use super::*;
use serde_json::Value;

fn json(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap()
}

// The exact strings of protocol.md section 4, as the C SDK writes them.
const REPORT_VERSION: &str = r#"{"type": "report_version", "report":{"version":"0.1"}}"#;
const DOWNLOADING_0: &str = r#"{"type": "report_progress", "report": {"progress": {"state":"downloading", "percent":"0", "result_code":"0", "result_msg":""}, "version": "V100R0001"}}"#;
const BURNING: &str = r#"{"type": "report_progress", "report":{"progress":{"state":"burning", "result_code":"0", "result_msg":""}, "version":"V100R0001"}}"#;
const DONE: &str = r#"{"type": "report_progress", "report":{"progress":{"state":"done", "result_code":"0", "result_msg":""}, "version":"V100R0001"}}"#;
const FAIL: &str = r#"{"type": "report_progress", "report": {"progress": {"state":"fail", "result_code":"-4", "result_msg":"time_out"}, "version": "V100R0001"}}"#;
const VERSION_RSP: &str =
    r#"{"result_code":0,"result_msg":"success","type":"report_version_rsp","version":"0.1"}"#;
const UPDATE: &str = r#"{"file_size":29972,"md5sum":"20a4d2b1f8492a22fa3e472a758bf9ec","type":"update_firmware","url":"https://ota-1255858890.cos.ap-guangzhou.myqcloud.com/100003908905_E69UADXUYY_V100R0001?sign=abc","version":"V100R0001"}"#;

#[test]
fn parses_every_device_message_of_the_c_sdk() {
    assert_eq!(
        DeviceOtaMessage::parse(REPORT_VERSION.as_bytes()).unwrap(),
        DeviceOtaMessage::ReportVersion {
            version: "0.1".into()
        }
    );
    let cases = [
        (DOWNLOADING_0, ProgressReport::downloading("V100R0001", 0)),
        (BURNING, ProgressReport::burning("V100R0001")),
        (DONE, ProgressReport::done("V100R0001")),
        (
            FAIL,
            ProgressReport::fail("V100R0001", OtaResultCode::Md5Mismatch, "time_out"),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            DeviceOtaMessage::parse(text.as_bytes()).unwrap(),
            DeviceOtaMessage::ReportProgress(expected),
            "{text}"
        );
    }
}

#[test]
fn encoded_device_messages_equal_the_sdk_strings_as_json() {
    for text in [REPORT_VERSION, DOWNLOADING_0, BURNING, DONE, FAIL] {
        let msg = DeviceOtaMessage::parse(text.as_bytes()).unwrap();
        assert_eq!(json(&msg.encode()), json(text.as_bytes()), "{text}");
    }
}

#[test]
fn numbers_sent_as_integers_are_accepted_too() {
    let text = r#"{"type":"report_progress","report":{"progress":{"state":"downloading","percent":42,"result_code":0},"version":"1.0"}}"#;
    assert_eq!(
        DeviceOtaMessage::parse(text.as_bytes()).unwrap(),
        DeviceOtaMessage::ReportProgress(ProgressReport::downloading("1.0", 42))
    );
}

#[test]
fn hub_messages_round_trip_byte_for_byte() {
    for text in [VERSION_RSP, UPDATE] {
        let msg = HubOtaMessage::parse(text.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(msg.encode()).unwrap(), text);
    }
}

#[test]
fn malformed_and_unknown_messages_are_errors_not_panics() {
    for bad in [
        "",
        "{",
        "[]",
        r#"{"type":1}"#,
        r#"{"type":"report_version"}"#,
        r#"{"type":"report_progress","report":{"progress":{"state":"exploding"},"version":"1"}}"#,
    ] {
        assert!(DeviceOtaMessage::parse(bad.as_bytes()).is_err(), "{bad}");
    }
    assert!(matches!(
        DeviceOtaMessage::parse(br#"{"type":"reboot"}"#),
        Err(MessageError::UnknownType(t)) if t == "reboot"
    ));
    assert!(HubOtaMessage::parse(br#"{"type":"update_firmware","file_size":"x"}"#).is_err());
}

#[test]
fn hostile_update_fields_are_kept_raw_for_the_gateway_to_judge() {
    let text = r#"{"file_size":-5,"md5sum":"zz","type":"update_firmware","url":"file:///etc/passwd","version":"../../x"}"#;
    let HubOtaMessage::UpdateFirmware(u) = HubOtaMessage::parse(text.as_bytes()).unwrap() else {
        panic!("expected update_firmware");
    };
    assert_eq!((u.file_size, u.version.as_str()), (-5, "../../x"));
}

#[test]
fn percent_outside_0_to_100_is_refused_not_clamped() {
    for bad in ["101", "-5", "100000"] {
        let text = format!(
            r#"{{"type":"report_progress","report":{{"progress":{{"state":"downloading","percent":"{bad}","result_code":"0"}},"version":"1.0"}}}}"#
        );
        let err = DeviceOtaMessage::parse(text.as_bytes()).unwrap_err();
        assert!(
            matches!(err, MessageError::PercentOutOfRange(v) if v.to_string() == bad),
            "{bad}: {err}"
        );
    }
}

#[test]
fn fail_without_a_non_zero_code_is_malformed() {
    for progress in [
        r#"{"state":"fail","result_code":"0","result_msg":"time_out"}"#,
        r#"{"state":"fail","result_msg":"time_out"}"#,
    ] {
        let text = format!(
            r#"{{"type":"report_progress","report":{{"progress":{progress},"version":"1.0"}}}}"#
        );
        let err = DeviceOtaMessage::parse(text.as_bytes()).unwrap_err();
        assert!(matches!(err, MessageError::FailWithoutCode(0)), "{err}");
    }
}

proptest::proptest! {
    #[test]
    fn any_percent_parses_exactly_when_in_range(p in -1000i64..1000) {
        let text = format!(
            r#"{{"type":"report_progress","report":{{"progress":{{"state":"downloading","percent":{p}}},"version":"1.0"}}}}"#
        );
        let parsed = DeviceOtaMessage::parse(text.as_bytes());
        match parsed {
            Ok(DeviceOtaMessage::ReportProgress(r)) => {
                proptest::prop_assert!((0..=100).contains(&p));
                proptest::prop_assert_eq!(r.percent.map(i64::from), Some(p));
            }
            Ok(other) => proptest::prop_assert!(false, "{other:?}"),
            Err(e) => proptest::prop_assert!(
                !(0..=100).contains(&p) && matches!(e, MessageError::PercentOutOfRange(_))
            ),
        }
    }
}
