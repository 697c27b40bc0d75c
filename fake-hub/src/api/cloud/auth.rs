//! TC3-HMAC-SHA256, the request signature of Tencent Cloud API 3.0, verified as the real API
//! does: the canonical request (method, path, query, the signed headers lower-cased and trimmed,
//! the hex SHA-256 of the body), the string to sign under the scope `date/service/tc3_request`,
//! and the key derived from `"TC3" + SecretKey` through the date, the service and `tc3_request`.
//! A timestamp more than five minutes from the hub's clock is expired.

use super::error::{CloudError, Code};
use super::request::Call;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

type HmacSha256 = Hmac<Sha256>;

/// The service name in the credential scope.
pub const SERVICE: &str = "iotcloud";

/// How far `X-TC-Timestamp` may be from the hub's clock, as on the real API.
pub const MAX_SKEW_SECS: i64 = 300;

/// The algorithm name, first word of the `Authorization` header.
const ALGORITHM: &str = "TC3-HMAC-SHA256";

/// The parts of an `Authorization: TC3-HMAC-SHA256 Credential=..., SignedHeaders=...,
/// Signature=...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authorization {
    pub(crate) secret_id: String,
    pub(crate) date: String,
    pub(crate) service: String,
    pub(crate) signed_headers: Vec<String>,
    pub(crate) signature: String,
}

fn malformed(why: &str) -> CloudError {
    CloudError::new(
        Code::SignatureFailure,
        format!("the Authorization header is not a TC3-HMAC-SHA256 signature: {why}"),
    )
}

impl Authorization {
    /// Parses the header's text.
    pub(crate) fn parse(text: &str) -> Result<Self, CloudError> {
        let rest = text
            .strip_prefix(ALGORITHM)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| malformed("it does not start with `TC3-HMAC-SHA256 `"))?;
        let mut parts = BTreeMap::new();
        for part in rest.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| malformed("a part is not KEY=VALUE"))?;
            parts.insert(k, v);
        }
        let get = |k: &str| {
            parts
                .get(k)
                .copied()
                .ok_or_else(|| malformed(&format!("no {k}")))
        };
        let credential: Vec<&str> = get("Credential")?.split('/').collect();
        let [secret_id, date, service, "tc3_request"] = credential[..] else {
            return Err(malformed(
                "Credential is not SECRET_ID/DATE/SERVICE/tc3_request",
            ));
        };
        let signed_headers: Vec<String> = get("SignedHeaders")?
            .split(';')
            .map(str::to_owned)
            .collect();
        if signed_headers.iter().any(String::is_empty) {
            return Err(malformed("SignedHeaders has an empty name"));
        }
        Ok(Authorization {
            secret_id: secret_id.to_owned(),
            date: date.to_owned(),
            service: service.to_owned(),
            signed_headers,
            signature: get("Signature")?.to_owned(),
        })
    }
}

/// Lower-case hex SHA-256 (the canonical request's payload hash).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn hmac(key: &[u8], msg: &str) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(msg.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The canonical request: method, path, query, `name:value\n` per signed header (names and
/// values already lower-case and trimmed), the signed header list, and the body's hash.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    payload_hash: &str,
) -> String {
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    format!(
        "{method}\n{path}\n{query}\n{canonical_headers}\n{}\n{payload_hash}",
        signed.join(";")
    )
}

/// The hex signature of `canonical` made at `timestamp` on `date` with `secret_key`.
pub fn sign(
    secret_key: &str,
    date: &str,
    service: &str,
    timestamp: i64,
    canonical: &str,
) -> String {
    let scope = format!("{date}/{service}/tc3_request");
    let to_sign = format!(
        "{ALGORITHM}\n{timestamp}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let k_date = hmac(format!("TC3{secret_key}").as_bytes(), date);
    let k_service = hmac(&k_date, service);
    let k_signing = hmac(&k_service, "tc3_request");
    hex::encode(hmac(&k_signing, &to_sign))
}

/// The UTC date (`YYYY-MM-DD`) of a Unix time in seconds.
pub fn utc_date(unix_secs: i64) -> String {
    // Days to civil date (Howard Hinnant's algorithm), valid for the whole i64 day range used.
    let days = unix_secs.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Checks `call`'s signature against `keys` (SecretId to SecretKey) at the hub's `now_unix`;
/// answers the SecretId that signed it.
pub(crate) fn verify(
    call: &Call,
    keys: &BTreeMap<String, String>,
    now_unix: i64,
) -> Result<String, CloudError> {
    let auth = Authorization::parse(&call.authorization)?;
    let skew = now_unix.saturating_sub(call.timestamp);
    if !(-MAX_SKEW_SECS..=MAX_SKEW_SECS).contains(&skew) {
        return Err(CloudError::new(
            Code::SignatureExpire,
            format!(
                "signature expired: X-TC-Timestamp {} is {skew} s from the server time {now_unix} \
                 (at most {MAX_SKEW_SECS} s either way)",
                call.timestamp
            ),
        ));
    }
    let secret_key = keys.get(&auth.secret_id).ok_or_else(|| {
        CloudError::new(
            Code::SecretIdNotFound,
            format!(
                "the SecretId {:?} is not found; declare it in the fleet file",
                auth.secret_id
            ),
        )
    })?;
    if auth.service != SERVICE {
        return Err(CloudError::new(
            Code::SignatureFailure,
            format!(
                "the credential scope names service {:?}, expected {SERVICE:?}",
                auth.service
            ),
        ));
    }
    let date = utc_date(call.timestamp);
    if auth.date != date {
        return Err(CloudError::new(
            Code::SignatureFailure,
            format!(
                "the credential scope date {:?} is not the UTC date {date} of X-TC-Timestamp",
                auth.date
            ),
        ));
    }
    let mut headers = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let value = call.signed_header(name).ok_or_else(|| {
            CloudError::new(
                Code::SignatureFailure,
                format!("the signed header {name:?} is not in the request"),
            )
        })?;
        headers.push((name.to_ascii_lowercase(), value.trim().to_ascii_lowercase()));
    }
    let payload_hash = match call.content_sha256.as_deref() {
        Some("UNSIGNED-PAYLOAD") => sha256_hex(b"UNSIGNED-PAYLOAD"),
        _ => sha256_hex(&call.body),
    };
    let canonical = canonical_request(
        &call.method,
        &call.path,
        &call.query,
        &headers,
        &payload_hash,
    );
    let expected = sign(secret_key, &date, SERVICE, call.timestamp, &canonical);
    if expected != auth.signature.to_ascii_lowercase() {
        return Err(CloudError::new(
            Code::SignatureFailure,
            "the provided credentials could not be validated: check the SecretKey and that the \
             signature covers the body as sent",
        ));
    }
    Ok(auth.secret_id)
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
