//! CONNECT decisions as rules: CONNACK 4 for bad or expired credentials, 5 for unknown,
//! disabled or subdevice client ids, HMAC-SHA1 and HMAC-SHA256, expiry on the hub's clock.

use super::*;
use otasim_protocol::SignMethod;

const FAR: u64 = 4_000_000_000;

fn kit() -> Kit {
    let kit = Kit::new();
    kit.gateway(&gw());
    kit.subdevice(&sub(1), Some(&gw()));
    kit
}

#[test]
fn good_credentials_connect_with_either_sign_method() {
    let kit = kit();
    for method in [SignMethod::HmacSha1, SignMethod::HmacSha256] {
        let info = kit.connect_info(&gw(), GW_SECRET, FAR, method);
        assert_eq!(kit.authenticate(&info), AuthVerdict::Accept, "{method:?}");
    }
    let connects = kit.events("connect");
    assert_eq!(connects.len(), 2);
    assert!(
        connects.iter().all(|d| d.starts_with("Accept")),
        "{connects:?}"
    );
}

#[test]
fn a_wrong_secret_or_a_tampered_password_is_code_4() {
    let kit = kit();
    let wrong = kit.connect_info(&gw(), SUB_SECRET, FAR, SignMethod::HmacSha1);
    assert_eq!(kit.authenticate(&wrong), AuthVerdict::BadCredentials);
    let mut tampered = kit.connect_info(&gw(), GW_SECRET, FAR, SignMethod::HmacSha256);
    if let Some(p) = tampered.password.as_mut() {
        p[0] = if p[0] == b'0' { b'1' } else { b'0' };
    }
    assert_eq!(kit.authenticate(&tampered), AuthVerdict::BadCredentials);
}

#[test]
fn expiry_is_judged_on_the_hubs_clock_in_seconds_or_milliseconds() {
    let kit = kit();
    let now = u64::try_from(kit.core.clock.now_unix_secs()).expect("after 1970");
    let secs = kit.connect_info(&gw(), GW_SECRET, now + 60, SignMethod::HmacSha1);
    let millis = kit.connect_info(&gw(), GW_SECRET, (now + 60) * 1000, SignMethod::HmacSha1);
    assert_eq!(kit.authenticate(&secs), AuthVerdict::Accept);
    assert_eq!(kit.authenticate(&millis), AuthVerdict::Accept);
    // Two minutes later on the hub's clock both have expired: code 4, with the reason.
    kit.advance_ms(120_000);
    assert_eq!(kit.authenticate(&secs), AuthVerdict::BadCredentials);
    assert_eq!(kit.authenticate(&millis), AuthVerdict::BadCredentials);
    let last = kit.events("connect").pop().expect("recorded");
    assert!(last.contains("expired"), "{last}");
}

#[test]
fn unknown_disabled_and_subdevice_client_ids_are_code_5() {
    let kit = kit();
    let unknown = kit.connect_info(
        &id("JR1WOKB7Q6", "nobody"),
        GW_SECRET,
        FAR,
        SignMethod::HmacSha1,
    );
    assert_eq!(kit.authenticate(&unknown), AuthVerdict::NotAuthorized);
    let subdevice = kit.connect_info(&sub(1), SUB_SECRET, FAR, SignMethod::HmacSha1);
    assert_eq!(kit.authenticate(&subdevice), AuthVerdict::NotAuthorized);
    kit.core
        .lock()
        .registry
        .get_mut(&gw())
        .expect("known")
        .enabled = false;
    let disabled = kit.connect_info(&gw(), GW_SECRET, FAR, SignMethod::HmacSha1);
    assert_eq!(kit.authenticate(&disabled), AuthVerdict::NotAuthorized);
}

#[test]
fn a_client_id_whose_session_is_taken_is_code_3() {
    let kit = kit();
    let mut info = kit.connect_info(&gw(), GW_SECRET, FAR, SignMethod::HmacSha1);
    info.taken = true;
    assert_eq!(kit.authenticate(&info), AuthVerdict::ServerUnavailable);
}
