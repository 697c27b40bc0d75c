use super::*;
use crate::api::cloud::request::Call;

/// A request signed by the official Python SDK's own signer
/// (`tencentcloud.common.abstract_client.AbstractClient._get_tc3_signature`, tencentcloud-sdk-python-common
/// 3.1.195) with SecretId `AKIDEXAMPLE`, SecretKey `secretKEYexample`, at 1700000000.
const GOLDEN_BODY: &str = r#"{"ProductId": "E69UADXUYY", "FirmwareVersion": "0.2"}"#;
const GOLDEN_TIMESTAMP: i64 = 1_700_000_000;
const GOLDEN_SIGNATURE: &str = "932a328aed7959dd288a201b5728f072ead0245e294bb581cff35bc3e81a92cc";

fn golden_call(signature: &str) -> Call {
    let auth = format!(
        "TC3-HMAC-SHA256 Credential=AKIDEXAMPLE/2023-11-14/iotcloud/tc3_request, \
         SignedHeaders=content-type;host, Signature={signature}"
    );
    let ts = GOLDEN_TIMESTAMP.to_string();
    let headers: Vec<(&str, &[u8])> = vec![
        ("Content-Type", b"application/json"),
        ("Host", b"127.0.0.1:9000"),
        ("X-TC-Action", b"DescribeFirmware"),
        ("X-TC-Version", b"2021-04-08"),
        ("X-TC-Timestamp", ts.as_bytes()),
        ("X-TC-Region", b"ap-guangzhou"),
        ("Authorization", auth.as_bytes()),
    ];
    Call::parse("POST", "/", "", headers, GOLDEN_BODY.as_bytes().to_vec()).expect("well-formed")
}

fn keys() -> BTreeMap<String, String> {
    BTreeMap::from([("AKIDEXAMPLE".to_owned(), "secretKEYexample".to_owned())])
}

#[test]
fn python_sdk_signature_verifies() {
    let call = golden_call(GOLDEN_SIGNATURE);
    assert_eq!(
        verify(&call, &keys(), GOLDEN_TIMESTAMP + 10).as_deref(),
        Ok("AKIDEXAMPLE")
    );
}

#[test]
fn wrong_secret_key_is_a_signature_failure() {
    let call = golden_call(GOLDEN_SIGNATURE);
    let mut wrong = keys();
    wrong.insert("AKIDEXAMPLE".into(), "another".into());
    let e = verify(&call, &wrong, GOLDEN_TIMESTAMP).expect_err("wrong key");
    assert_eq!(e.code, Code::SignatureFailure);
}

#[test]
fn timestamp_beyond_five_minutes_is_expired_either_way() {
    let call = golden_call(GOLDEN_SIGNATURE);
    for now in [GOLDEN_TIMESTAMP + 301, GOLDEN_TIMESTAMP - 301] {
        let e = verify(&call, &keys(), now).expect_err("stale");
        assert_eq!(e.code, Code::SignatureExpire);
    }
    for now in [GOLDEN_TIMESTAMP + 300, GOLDEN_TIMESTAMP - 300] {
        assert!(verify(&call, &keys(), now).is_ok());
    }
}

#[test]
fn unknown_secret_id_is_not_found() {
    let call = golden_call(GOLDEN_SIGNATURE);
    let e = verify(&call, &BTreeMap::new(), GOLDEN_TIMESTAMP).expect_err("no keys");
    assert_eq!(e.code, Code::SecretIdNotFound);
}

#[test]
fn a_changed_body_breaks_the_signature() {
    let mut call = golden_call(GOLDEN_SIGNATURE);
    call.body = br#"{"ProductId": "E69UADXUYY", "FirmwareVersion": "0.3"}"#.to_vec();
    let e = verify(&call, &keys(), GOLDEN_TIMESTAMP).expect_err("tampered");
    assert_eq!(e.code, Code::SignatureFailure);
}

#[test]
fn utc_dates_match_the_calendar() {
    assert_eq!(utc_date(0), "1970-01-01");
    assert_eq!(utc_date(GOLDEN_TIMESTAMP), "2023-11-14");
    assert_eq!(utc_date(951_782_400), "2000-02-29");
    assert_eq!(utc_date(4_102_444_799), "2099-12-31");
}

#[test]
fn authorization_header_parts_are_parsed() {
    let a = Authorization::parse(
        "TC3-HMAC-SHA256 Credential=ID/2024-01-02/iotcloud/tc3_request, SignedHeaders=content-type;host, Signature=ab",
    )
    .expect("valid");
    assert_eq!(a.secret_id, "ID");
    assert_eq!(a.date, "2024-01-02");
    assert_eq!(a.signed_headers, ["content-type", "host"]);
    for bad in [
        "",
        "TC3-HMAC-SHA256",
        "HMAC Credential=a/b/c/tc3_request, SignedHeaders=host, Signature=x",
        "TC3-HMAC-SHA256 Credential=a/b/c, SignedHeaders=host, Signature=x",
        "TC3-HMAC-SHA256 Credential=a/b/c/tc3_request, SignedHeaders=, Signature=x",
        "TC3-HMAC-SHA256 Credential=a/b/c/tc3_request, Signature=x",
    ] {
        assert_eq!(
            Authorization::parse(bad).expect_err(bad).code,
            Code::SignatureFailure
        );
    }
}
