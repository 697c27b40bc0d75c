//! The signature a gateway sends to bind a subdevice.

use crate::auth::SignMethod;
use crate::ids::DeviceId;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

fn bind_message(sub: &DeviceId, random: i64, timestamp: i64) -> String {
    format!(
        "{}{};{random};{timestamp}",
        sub.product_id(),
        sub.device_name()
    )
}

/// The bind signature: base64 of the raw HMAC over `{sub_pid}{sub_dn};{random};{timestamp}`,
/// keyed with the subdevice's secret **string as written** (not base64-decoded).
pub fn bind_signature(
    sub: &DeviceId,
    sub_secret: &str,
    random: i64,
    timestamp: i64,
    method: SignMethod,
) -> String {
    let mac = method.mac(
        sub_secret.as_bytes(),
        bind_message(sub, random, timestamp).as_bytes(),
    );
    BASE64.encode(mac)
}

/// Whether `signature` is the bind signature of these values.
pub fn verify_bind_signature(
    sub: &DeviceId,
    sub_secret: &str,
    random: i64,
    timestamp: i64,
    method: SignMethod,
    signature: &str,
) -> bool {
    bind_signature(sub, sub_secret, random, timestamp, method) == signature
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_keys_with_the_secret_string_not_its_decoding() {
        let sub = DeviceId::new("E69UADXUYY", "light1").unwrap();
        let secret = "c2VjcmV0c2VjcmV0MTI=";
        let sig = bind_signature(&sub, secret, 123, 1600000000, SignMethod::HmacSha1);
        let expected = BASE64.encode(
            SignMethod::HmacSha1.mac(secret.as_bytes(), b"E69UADXUYYlight1;123;1600000000"),
        );
        assert_eq!(sig, expected);
        assert_eq!(BASE64.decode(&sig).unwrap().len(), 20);
        assert!(verify_bind_signature(
            &sub,
            secret,
            123,
            1600000000,
            SignMethod::HmacSha1,
            &sig
        ));
        assert!(!verify_bind_signature(
            &sub,
            secret,
            124,
            1600000000,
            SignMethod::HmacSha1,
            &sig
        ));
    }
}
