//! A Cloud API call as it arrives: the method, the path, the `X-TC-*` headers, the
//! `Authorization` header and the body, checked for shape before the signature is verified.

use super::error::{CloudError, Code};
use std::collections::BTreeMap;

/// The largest request body the Cloud API reads.
pub(crate) const MAX_BODY_BYTES: usize = 1 << 20;

/// A request with its common parameters taken from the headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    /// Every header, by lower-case name (the last value of a repeated header), as text.
    headers: BTreeMap<String, String>,
    pub(crate) action: String,
    pub(crate) version: String,
    pub(crate) timestamp: i64,
    pub(crate) region: Option<String>,
    pub(crate) authorization: String,
    pub(crate) content_sha256: Option<String>,
    pub(crate) body: Vec<u8>,
}

fn missing(name: &str) -> CloudError {
    CloudError::new(
        Code::MissingParameter,
        format!("the request is missing a required parameter `{name}` (header {name})"),
    )
}

impl Call {
    /// Checks the method, the headers and the content type. `headers` are (name, raw value)
    /// pairs as received; values that are not text are refused.
    pub(crate) fn parse<'a>(
        method: &str,
        path: &str,
        query: &str,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        body: Vec<u8>,
    ) -> Result<Call, CloudError> {
        match method {
            "POST" => {}
            "GET" => {
                return Err(CloudError::new(
                    Code::UnsupportedOperation,
                    "otasim's Cloud API takes POST requests with a JSON body (the SDK's \
                     default HttpProfile), not GET",
                ));
            }
            other => {
                return Err(CloudError::new(
                    Code::UnsupportedProtocol,
                    format!("the request method {other} is not supported: use POST"),
                ));
            }
        }
        if body.len() > MAX_BODY_BYTES {
            return Err(CloudError::new(
                Code::RequestSizeLimitExceeded,
                format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
            ));
        }
        let mut map = BTreeMap::new();
        for (name, value) in headers {
            let value = std::str::from_utf8(value).map_err(|_| {
                CloudError::new(
                    Code::InvalidParameter,
                    format!("the header {name} is not UTF-8 text"),
                )
            })?;
            map.insert(name.to_ascii_lowercase(), value.to_owned());
        }
        let header = |name: &str| map.get(name).map(|v| v.trim().to_owned());
        let content_type = header("content-type").unwrap_or_default();
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(CloudError::new(
                Code::UnsupportedOperation,
                format!(
                    "Content-Type {content_type:?} is not served: send application/json with \
                     TC3-HMAC-SHA256"
                ),
            ));
        }
        let action = header("x-tc-action")
            .filter(|a| !a.is_empty())
            .ok_or_else(|| missing("X-TC-Action"))?;
        let version = header("x-tc-version")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing("X-TC-Version"))?;
        let timestamp = header("x-tc-timestamp").ok_or_else(|| missing("X-TC-Timestamp"))?;
        let timestamp = timestamp
            .parse::<i64>()
            .ok()
            .filter(|t| *t >= 0)
            .ok_or_else(|| {
                CloudError::new(
                    Code::InvalidParameter,
                    format!("X-TC-Timestamp {timestamp:?} is not a Unix time in seconds"),
                )
            })?;
        let authorization = header("authorization").ok_or_else(|| {
            CloudError::new(
                Code::SignatureFailure,
                "the request has no Authorization header: sign it with TC3-HMAC-SHA256",
            )
        })?;
        Ok(Call {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            action,
            version,
            timestamp,
            region: header("x-tc-region").filter(|r| !r.is_empty()),
            authorization,
            content_sha256: header("x-tc-content-sha256"),
            headers: map,
            body,
        })
    }

    /// A header's value by (any case of) its name.
    pub(crate) fn signed_header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body as a JSON object (`{}` when empty).
    pub(crate) fn params(&self) -> Result<serde_json::Value, CloudError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Object(Default::default()));
        }
        match serde_json::from_slice(&self.body) {
            Ok(v @ serde_json::Value::Object(_)) => Ok(v),
            Ok(_) => Err(CloudError::new(
                Code::InvalidParameter,
                "the request body must be a JSON object of parameters",
            )),
            Err(e) => Err(CloudError::new(
                Code::InvalidParameter,
                format!("the request body is not valid JSON: {e}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::cloud::auth;
    use proptest::prelude::*;

    fn header_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("Content-Type".to_owned()),
            Just("X-TC-Action".to_owned()),
            Just("X-TC-Version".to_owned()),
            Just("X-TC-Timestamp".to_owned()),
            Just("Authorization".to_owned()),
            Just("Host".to_owned()),
            "[a-zA-Z-]{1,12}",
        ]
    }

    fn header_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"application/json".to_vec()),
            Just(b"1700000000".to_vec()),
            Just(b"TC3-HMAC-SHA256 Credential=a/2023-11-14/iotcloud/tc3_request, SignedHeaders=content-type;host;x, Signature=00".to_vec()),
            "[ -~]{0,40}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..40),
        ]
    }

    /// A call signed as the SDK signs it, with `body`.
    fn signed_call(body: Vec<u8>, key: &str, ts: i64) -> Call {
        let date = auth::utc_date(ts);
        let canonical = auth::canonical_request(
            "POST",
            "/",
            "",
            &[
                ("content-type".into(), "application/json".into()),
                ("host".into(), "h".into()),
            ],
            &auth::sha256_hex(&body),
        );
        let sig = auth::sign(key, &date, auth::SERVICE, ts, &canonical);
        let authorization = format!(
            "TC3-HMAC-SHA256 Credential=ID/{date}/iotcloud/tc3_request, SignedHeaders=content-type;host, Signature={sig}"
        );
        let ts = ts.to_string();
        let headers: Vec<(&str, &[u8])> = vec![
            ("Content-Type", b"application/json"),
            ("Host", b"h"),
            ("X-TC-Action", b"GetAllVersion"),
            ("X-TC-Version", b"2021-04-08"),
            ("X-TC-Timestamp", ts.as_bytes()),
            ("Authorization", authorization.as_bytes()),
        ];
        Call::parse("POST", "/", "", headers, body).expect("well-formed")
    }

    proptest! {
        #[test]
        fn parsing_and_verifying_any_request_never_panics(
            method in prop_oneof![
                Just("POST".to_owned()),
                Just("GET".to_owned()),
                Just("PUT".to_owned()),
                "[A-Z]{1,8}",
            ],
            path in "[ -~]{0,20}",
            headers in proptest::collection::vec((header_name(), header_value()), 0..10),
            body in proptest::collection::vec(any::<u8>(), 0..200),
            now in any::<i64>(),
        ) {
            let list: Vec<(&str, &[u8])> =
                headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
            if let Ok(call) = Call::parse(&method, &path, "", list, body) {
                let _ = call.params();
                let keys = std::collections::BTreeMap::from([("a".to_owned(), "k".to_owned())]);
                let _ = auth::verify(&call, &keys, now);
            }
        }

        #[test]
        fn a_signed_body_verifies_and_any_changed_byte_does_not(
            body in proptest::collection::vec(any::<u8>(), 1..300),
            flip in any::<prop::sample::Index>(),
            ts in 0i64..4_000_000_000,
        ) {
            let keys = std::collections::BTreeMap::from([("ID".to_owned(), "key".to_owned())]);
            let call = signed_call(body.clone(), "key", ts);
            prop_assert!(auth::verify(&call, &keys, ts).is_ok());
            let mut changed = body;
            let i = flip.index(changed.len());
            changed[i] ^= 0x01;
            let mut tampered = call;
            tampered.body = changed;
            let e = auth::verify(&tampered, &keys, ts).expect_err("changed body");
            prop_assert_eq!(e.code, Code::SignatureFailure);
        }
    }
}
