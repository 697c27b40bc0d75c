//! URL signatures: `sign` = lower-case hex HMAC-SHA1, keyed by the instance secret, over
//! `"{name}\n{t}"` where `t` is the expiry in unix seconds. Simpler than real COS `q-sign-*`
//! signatures, but it has the properties the SDKs meet: opaque, per object, expiring.

use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::name::ObjectName;

type HmacSha1 = Hmac<Sha1>;

/// Why a request's signature was refused, each a distinct COS error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureCheck {
    /// Signature valid and not expired.
    Valid,
    /// `sign` or `t` missing, malformed, or not ours.
    Mismatch,
    /// Signature valid but `t` is in the past on the instance clock.
    Expired,
}

fn mac(secret: &[u8], name: &ObjectName, expires_unix: u64) -> HmacSha1 {
    let mut mac = HmacSha1::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(name.as_str().as_bytes());
    mac.update(b"\n");
    mac.update(expires_unix.to_string().as_bytes());
    mac
}

/// The hex signature for `name` expiring at `expires_unix`.
pub(crate) fn sign(secret: &[u8], name: &ObjectName, expires_unix: u64) -> String {
    hex::encode(mac(secret, name, expires_unix).finalize().into_bytes())
}

/// Checks the query string of a request for `name` at `now_unix`.
pub(crate) fn check(
    secret: &[u8],
    name: &ObjectName,
    query: Option<&str>,
    now_unix: u64,
) -> SignatureCheck {
    let (mut sign, mut t) = (None, None);
    for pair in query.unwrap_or("").split('&') {
        match pair.split_once('=') {
            Some(("sign", v)) => sign = Some(v),
            Some(("t", v)) => t = Some(v),
            _ => {}
        }
    }
    let (Some(sign), Some(t)) = (sign, t) else {
        return SignatureCheck::Mismatch;
    };
    let (Ok(expires), Ok(given)) = (t.parse::<u64>(), hex::decode(sign)) else {
        return SignatureCheck::Mismatch;
    };
    if mac(secret, name, expires).verify_slice(&given).is_err() {
        return SignatureCheck::Mismatch;
    }
    if now_unix > expires {
        SignatureCheck::Expired
    } else {
        SignatureCheck::Valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> ObjectName {
        ObjectName::parse("fw.bin").expect("valid name")
    }

    #[test]
    fn own_signature_is_valid_until_expiry_inclusive() {
        let s = sign(b"k", &name(), 100);
        let q = format!("sign={s}&t=100");
        assert_eq!(check(b"k", &name(), Some(&q), 100), SignatureCheck::Valid);
        assert_eq!(check(b"k", &name(), Some(&q), 101), SignatureCheck::Expired);
    }

    #[test]
    fn forged_missing_or_other_key_signatures_mismatch() {
        let s = sign(b"other", &name(), 100);
        for q in [
            format!("sign={s}&t=100"),
            "t=100".to_owned(),
            "sign=zz&t=100".to_owned(),
            format!("sign={}&t=101", sign(b"k", &name(), 100)),
        ] {
            assert_eq!(check(b"k", &name(), Some(&q), 0), SignatureCheck::Mismatch);
        }
        assert_eq!(check(b"k", &name(), None, 0), SignatureCheck::Mismatch);
    }
}
