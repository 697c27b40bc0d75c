//! The COS XML API's request signature, `q-sign-algorithm=sha1&q-ak=...&q-signature=...`, as
//! `cos-python-sdk-v5` (`qcloud_cos/cos_auth.py`, `CosS3Auth`) computes it:
//!
//! 1. `format = "{method}\n{path}\n{params}\n{headers}\n"`: the method in lower case, the
//!    decoded object path with its leading `/`, then the signed query parameters and headers as
//!    `k=v` joined by `&`, sorted, each key lower-cased and both sides percent-encoded with only
//!    `A-Za-z0-9-_.~` left bare;
//! 2. `string_to_sign = "sha1\n{q-sign-time}\n{hex sha1(format)}\n"`;
//! 3. `sign_key = hex hmac_sha1(SecretKey, q-key-time)`;
//! 4. `q-signature = hex hmac_sha1(sign_key, string_to_sign)`.
//!
//! The same fields travel either in the `Authorization` header (values as they are) or in the
//! query string of a presigned URL (values URL-encoded).

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};
use sha1::{Digest, Sha1};

type HmacSha1 = Hmac<Sha1>;

/// What `quote(s, '-_.~')` leaves bare: ASCII letters, digits and `-_.~`.
const QUOTE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Longest `q-header-list` or `q-url-param-list` accepted, in entries.
const MAX_LIST: usize = 64;

/// A `start;end` validity window in unix seconds, as in `q-sign-time` and `q-key-time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) start: u64,
    pub(crate) end: u64,
}

impl Window {
    fn parse(text: &str) -> Option<Self> {
        let (start, end) = text.split_once(';')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(start) || !digits(end) {
            return None;
        }
        let window = Self {
            start: start.parse().ok()?,
            end: end.parse().ok()?,
        };
        (window.start <= window.end).then_some(window)
    }

    /// `start;end`, the text that is signed.
    pub(crate) fn text(self) -> String {
        format!("{};{}", self.start, self.end)
    }
}

/// One parsed `q-sign-*` credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QSign {
    /// `q-ak`: the SecretId.
    pub(crate) secret_id: String,
    /// `q-sign-time` exactly as sent (it is signed as text).
    pub(crate) sign_time_text: String,
    /// `q-sign-time` parsed.
    pub(crate) sign_time: Window,
    /// `q-key-time` exactly as sent.
    pub(crate) key_time_text: String,
    /// `q-key-time` parsed.
    pub(crate) key_time: Window,
    /// `q-header-list`: signed header names, lower case, in the order given.
    pub(crate) headers: Vec<String>,
    /// `q-url-param-list`: signed query parameter names, lower case.
    pub(crate) params: Vec<String>,
    /// `q-signature`, decoded from hex.
    pub(crate) signature: Vec<u8>,
}

/// Why a credential could not be read; every one of them is `SignatureDoesNotMatch` on the wire
/// except an unknown algorithm, which is also refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QSignError {
    /// A field is absent.
    #[error("{0} is missing")]
    Missing(&'static str),
    /// A field is present but unreadable.
    #[error("{0} is malformed")]
    Malformed(&'static str),
    /// A field appears twice.
    #[error("{0} appears twice")]
    Duplicate(&'static str),
    /// `q-sign-algorithm` is not `sha1`.
    #[error("q-sign-algorithm must be sha1")]
    Algorithm,
}

const FIELDS: [&str; 7] = [
    "q-sign-algorithm",
    "q-ak",
    "q-sign-time",
    "q-key-time",
    "q-header-list",
    "q-url-param-list",
    "q-signature",
];

/// Reads the `Authorization` header form.
pub(crate) fn from_header(value: &str) -> Result<QSign, QSignError> {
    let pairs = value.trim().split('&').map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (Cow::Borrowed(k), Cow::Borrowed(v))
    });
    from_pairs(pairs)
}

/// Reads the presigned query form; `None` when the query carries no `q-signature` at all.
pub(crate) fn from_query(query: &str) -> Option<Result<QSign, QSignError>> {
    let pairs: Vec<_> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| FIELDS.contains(&k.as_ref()))
        .collect();
    if !pairs.iter().any(|(k, _)| k == "q-signature") {
        return None;
    }
    Some(from_pairs(pairs.into_iter()))
}

/// True if `query` has any `q-sign-*` field, i.e. means to use this scheme.
pub(crate) fn query_mentions(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(k, _)| FIELDS.contains(&k.as_ref()))
}

fn from_pairs<'a>(
    pairs: impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)>,
) -> Result<QSign, QSignError> {
    let mut found: [Option<Cow<'a, str>>; 7] = Default::default();
    for (key, value) in pairs {
        let Some(at) = FIELDS.iter().position(|f| *f == key) else {
            continue;
        };
        if found[at].is_some() {
            return Err(QSignError::Duplicate(FIELDS[at]));
        }
        found[at] = Some(value);
    }
    let mut field = |at: usize| found[at].take().ok_or(QSignError::Missing(FIELDS[at]));
    let algorithm = field(0)?;
    let secret_id = field(1)?.into_owned();
    let sign_time_text = field(2)?.into_owned();
    let key_time_text = field(3)?.into_owned();
    let headers = list(&field(4)?, FIELDS[4])?;
    let params = list(&field(5)?, FIELDS[5])?;
    let signature = field(6)?;
    if !algorithm.eq_ignore_ascii_case("sha1") {
        return Err(QSignError::Algorithm);
    }
    if secret_id.is_empty() {
        return Err(QSignError::Malformed(FIELDS[1]));
    }
    let sign_time = Window::parse(&sign_time_text).ok_or(QSignError::Malformed(FIELDS[2]))?;
    let key_time = Window::parse(&key_time_text).ok_or(QSignError::Malformed(FIELDS[3]))?;
    let signature = match hex::decode(signature.as_ref()) {
        Ok(bytes) if bytes.len() == 20 => bytes,
        _ => return Err(QSignError::Malformed(FIELDS[6])),
    };
    Ok(QSign {
        secret_id,
        sign_time_text,
        sign_time,
        key_time_text,
        key_time,
        headers,
        params,
        signature,
    })
}

fn list(text: &str, field: &'static str) -> Result<Vec<String>, QSignError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<String> = text.split(';').map(str::to_ascii_lowercase).collect();
    if items.len() > MAX_LIST || items.iter().any(String::is_empty) {
        return Err(QSignError::Malformed(field));
    }
    Ok(items)
}

/// `quote(bytes, '-_.~')`.
pub(crate) fn quote(bytes: &[u8]) -> String {
    percent_encode(bytes, QUOTE).to_string()
}

/// The part of a request that is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Canonical {
    /// The method, any case.
    pub(crate) method: String,
    /// The path as sent (percent-encoded); it is decoded before signing.
    pub(crate) path: String,
    /// Signed parameters as `(quoted lower-case key, quoted value)`.
    pub(crate) params: Vec<(String, String)>,
    /// Signed headers as `(quoted lower-case name, quoted value)`.
    pub(crate) headers: Vec<(String, String)>,
}

impl Canonical {
    fn format(&self) -> String {
        let join = |pairs: &[(String, String)]| {
            let mut pairs = pairs.to_vec();
            pairs.sort();
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        };
        let path = percent_decode_str(&self.path).decode_utf8_lossy();
        format!(
            "{}\n{}\n{}\n{}\n",
            self.method.to_ascii_lowercase(),
            path,
            join(&self.params),
            join(&self.headers),
        )
    }
}

fn hmac(key: &[u8], message: &[u8]) -> HmacSha1 {
    let mut mac = HmacSha1::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac
}

fn signing_mac(
    secret_key: &str,
    sign_time: &str,
    key_time: &str,
    canonical: &Canonical,
) -> HmacSha1 {
    let digest = hex::encode(Sha1::digest(canonical.format().as_bytes()));
    let string_to_sign = format!("sha1\n{sign_time}\n{digest}\n");
    let sign_key = hex::encode(
        hmac(secret_key.as_bytes(), key_time.as_bytes())
            .finalize()
            .into_bytes(),
    );
    hmac(sign_key.as_bytes(), string_to_sign.as_bytes())
}

/// The hex `q-signature` for `canonical`.
pub(crate) fn signature(
    secret_key: &str,
    sign_time: &str,
    key_time: &str,
    canonical: &Canonical,
) -> String {
    hex::encode(
        signing_mac(secret_key, sign_time, key_time, canonical)
            .finalize()
            .into_bytes(),
    )
}

/// Whether `credential`'s signature is `secret_key`'s over `canonical` (constant time).
pub(crate) fn matches(secret_key: &str, credential: &QSign, canonical: &Canonical) -> bool {
    signing_mac(
        secret_key,
        &credential.sign_time_text,
        &credential.key_time_text,
        canonical,
    )
    .verify_slice(&credential.signature)
    .is_ok()
}

/// The presigned query string (`q-sign-algorithm=sha1&q-ak=...`) for `canonical`, URL-encoded
/// as the SDK's `get_presigned_url` writes it. `canonical` lists exactly the signed headers
/// and parameters.
pub(crate) fn presign_query(
    secret_id: &str,
    secret_key: &str,
    window: Window,
    canonical: &Canonical,
) -> String {
    let time = window.text();
    let names = |pairs: &[(String, String)]| {
        let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        names.join(";")
    };
    let signature = signature(secret_key, &time, &time, canonical);
    form_urlencoded::Serializer::new(String::new())
        .append_pair("q-sign-algorithm", "sha1")
        .append_pair("q-ak", secret_id)
        .append_pair("q-sign-time", &time)
        .append_pair("q-key-time", &time)
        .append_pair("q-header-list", &names(&canonical.headers))
        .append_pair("q-url-param-list", &names(&canonical.params))
        .append_pair("q-signature", &signature)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn canonical() -> Canonical {
        Canonical {
            method: "PUT".into(),
            path: "/fw.bin".into(),
            params: vec![],
            headers: vec![
                ("host".into(), "127.0.0.1".into()),
                ("content-length".into(), "8".into()),
            ],
        }
    }

    /// Computed with `cos-python-sdk-v5` 1.9.33's `CosS3Auth` for `PUT http://127.0.0.1/fw.bin`
    /// with an 8-byte body, SecretKey `SECRETKEY`, `time.time` pinned to 1700000060 and
    /// `expire` 3600.
    #[test]
    fn signature_matches_the_python_sdk() {
        let sig = signature(
            "SECRETKEY",
            "1700000000;1700003660",
            "1700000000;1700003660",
            &canonical(),
        );
        assert_eq!(sig, SDK_SIGNATURE);
    }

    /// `q-signature` of the SDK's header
    /// `q-sign-algorithm=sha1&q-ak=AKID&q-sign-time=1700000000;1700003660&...`.
    const SDK_SIGNATURE: &str = "0c15693d272c8d25870a800fe4330e38cba7ef8d";

    #[test]
    fn header_form_round_trips_through_the_parser() {
        let sig = signature("k", "1;2", "1;2", &canonical());
        let header = format!(
            "q-sign-algorithm=sha1&q-ak=AKID&q-sign-time=1;2&q-key-time=1;2&q-header-list=content-length;host&q-url-param-list=&q-signature={sig}"
        );
        let parsed = from_header(&header).expect("well formed");
        assert_eq!(parsed.secret_id, "AKID");
        assert_eq!(parsed.headers, ["content-length", "host"]);
        assert!(parsed.params.is_empty());
        assert!(matches("k", &parsed, &canonical()));
        assert!(!matches("other", &parsed, &canonical()));
    }

    #[test]
    fn presigned_query_parses_back_and_verifies() {
        let window = Window { start: 10, end: 20 };
        let query = presign_query("AKID", "k", window, &canonical());
        assert!(query.contains("q-sign-time=10%3B20"), "{query}");
        let parsed = from_query(&query)
            .expect("has a signature")
            .expect("parses");
        assert_eq!(parsed.key_time, window);
        assert!(matches("k", &parsed, &canonical()));
    }

    #[test]
    fn bad_fields_are_named() {
        let ok = "q-sign-algorithm=sha1&q-ak=A&q-sign-time=1;2&q-key-time=1;2&q-header-list=&q-url-param-list=&q-signature=0000000000000000000000000000000000000000";
        assert!(from_header(ok).is_ok());
        let cases = [
            (ok.replace("sha1", "md5"), QSignError::Algorithm),
            (ok.replace("&q-ak=A", ""), QSignError::Missing("q-ak")),
            (
                ok.replace("q-sign-time=1;2", "q-sign-time=2;1"),
                QSignError::Malformed("q-sign-time"),
            ),
            (
                ok.replace("q-key-time=1;2", "q-key-time=1"),
                QSignError::Malformed("q-key-time"),
            ),
            (
                ok.replace("=0000", "=zz00"),
                QSignError::Malformed("q-signature"),
            ),
            (format!("{ok}&q-ak=B"), QSignError::Duplicate("q-ak")),
            (
                ok.replace("q-sign-time=1;2", "q-sign-time=1;99999999999999999999999"),
                QSignError::Malformed("q-sign-time"),
            ),
        ];
        for (header, error) in cases {
            assert_eq!(from_header(&header), Err(error), "{header}");
        }
        assert!(from_query("sign=ab&t=1").is_none());
    }

    proptest! {
        #[test]
        fn parsers_never_panic_on_any_text(text in "\\PC{0,300}") {
            let _ = from_header(&text);
            let _ = from_query(&text);
            let _ = query_mentions(&text);
        }

        #[test]
        fn parsers_never_panic_on_near_miss_fields(
            fields in proptest::collection::vec(
                (proptest::sample::select(FIELDS.to_vec()), "[0-9a-f;&=%]{0,45}"), 0..10)
        ) {
            let header = fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
            let _ = from_header(&header);
            let _ = from_query(&header);
        }

        #[test]
        fn any_presigned_credential_round_trips(
            id in "[A-Za-z0-9]{1,40}", key in "\\PC{1,40}",
            start in 0u64..u64::MAX / 2, len in 0u64..u64::MAX / 2,
            path in "/[A-Za-z0-9._-]{1,20}",
            headers in proptest::collection::btree_map("[a-z-]{1,10}", "\\PC{0,20}", 0..4),
        ) {
            let canonical = Canonical {
                method: "GET".into(),
                path,
                params: vec![],
                headers: headers.iter().map(|(k, v)| (quote(k.as_bytes()), quote(v.as_bytes()))).collect(),
            };
            let window = Window { start, end: start + len };
            let query = presign_query(&id, &key, window, &canonical);
            let parsed = from_query(&query).expect("has a signature").expect("parses");
            prop_assert_eq!(&parsed.secret_id, &id);
            prop_assert_eq!(parsed.key_time, window);
            prop_assert!(matches(&key, &parsed, &canonical));
        }
    }
}
