//! Who may read and write objects: the COS XML API's `q-sign-*` signatures made with a
//! SecretId/SecretKey pair configured on the instance (in the `Authorization` header or a
//! presigned URL's query), and, for reads only, the instance's own download URLs (`sign`/`t`,
//! see [`crate::sign`]).
//!
//! Leniency where the SDK and the wire disagree: `cos-python-sdk-v5` signs the `host` it reads
//! from the URL without the port, while the `Host` it sends carries a non-default port; a
//! signed `host` therefore matches the header as sent or without its port.

pub(crate) mod qsign;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{PoisonError, RwLock};

use axum::http::{HeaderMap, Method, header};

use crate::CosError;
use crate::name::ObjectName;
use crate::sign::{self, SignatureCheck};
use qsign::{Canonical, QSign};

/// A SecretId/SecretKey pair whose `q-sign-*` signatures the instance accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct CosKey {
    secret_id: String,
    secret_key: String,
}

impl CosKey {
    /// A pair; both must be non-empty printable ASCII without `&`, `;` or `=` in the id.
    pub fn new(
        secret_id: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Result<Self, CosError> {
        let (secret_id, secret_key) = (secret_id.into(), secret_key.into());
        let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        if !printable(&secret_id) || secret_id.contains(['&', ';', '=']) || secret_id.len() > 256 {
            return Err(CosError::Config {
                field: "secret_id",
                reason: "must be 1 to 256 printable ASCII characters without & ; =".into(),
            });
        }
        if !printable(&secret_key) || secret_key.len() > 256 {
            return Err(CosError::Config {
                field: "secret_key",
                reason: "must be 1 to 256 printable ASCII characters".into(),
            });
        }
        Ok(Self {
            secret_id,
            secret_key,
        })
    }

    /// The SecretId (`q-ak`).
    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    pub(crate) fn secret_key(&self) -> &str {
        &self.secret_key
    }
}

/// Never prints the SecretKey.
impl fmt::Debug for CosKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosKey")
            .field("secret_id", &self.secret_id)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// The pairs an instance accepts, by SecretId.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    by_id: RwLock<BTreeMap<String, CosKey>>,
}

impl Keys {
    pub(crate) fn new(keys: impl IntoIterator<Item = CosKey>) -> Self {
        let by_id = keys.into_iter().map(|k| (k.secret_id.clone(), k)).collect();
        Self {
            by_id: RwLock::new(by_id),
        }
    }

    /// Adds or replaces the pair with `key`'s SecretId.
    pub(crate) fn add(&self, key: CosKey) {
        self.by_id
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.secret_id.clone(), key);
    }

    pub(crate) fn get(&self, secret_id: &str) -> Option<CosKey> {
        self.by_id
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(secret_id)
            .cloned()
    }

    /// Whether `key` is configured exactly (id and secret).
    pub(crate) fn holds(&self, key: &CosKey) -> bool {
        self.get(&key.secret_id).is_some_and(|k| k == *key)
    }
}

/// Why a request's credentials were refused; each is a distinct COS error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No credentials where they are required.
    Anonymous,
    /// The signature is malformed or not the key's over this request.
    Mismatch,
    /// The SecretId is not configured.
    UnknownKey,
    /// The key or sign time ended before now.
    Expired,
    /// The key or sign time starts after now.
    NotYetValid,
}

/// The request as authentication sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignedRequest<'a> {
    pub(crate) method: &'a Method,
    /// The path as sent, not decoded.
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: &'a HeaderMap,
}

/// What a request may be authorized by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accept {
    /// `q-sign-*` only (writes).
    QSignOnly,
    /// `q-sign-*` or the instance's own `sign`/`t` download URLs (reads).
    QSignOrDownloadUrl,
}

/// Checks a request for `name` at `now_unix`.
pub(crate) fn check(
    keys: &Keys,
    download_secret: &[u8],
    req: SignedRequest<'_>,
    name: &ObjectName,
    now_unix: u64,
    accept: Accept,
) -> Result<(), Refusal> {
    let authorization = req
        .headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map_err(|_| Refusal::Mismatch))
        .transpose()?
        .filter(|v| !v.trim().is_empty());
    if let Some(value) = authorization {
        let credential = qsign::from_header(value).map_err(|_| Refusal::Mismatch)?;
        return verify(keys, &credential, req, now_unix);
    }
    let query = req.query.unwrap_or("");
    if let Some(credential) = qsign::from_query(query) {
        let credential = credential.map_err(|_| Refusal::Mismatch)?;
        return verify(keys, &credential, req, now_unix);
    }
    if qsign::query_mentions(query) {
        return Err(Refusal::Mismatch);
    }
    match accept {
        Accept::QSignOnly => Err(Refusal::Anonymous),
        Accept::QSignOrDownloadUrl => match sign::check(download_secret, name, req.query, now_unix)
        {
            SignatureCheck::Valid => Ok(()),
            SignatureCheck::Mismatch => Err(Refusal::Mismatch),
            SignatureCheck::Expired => Err(Refusal::Expired),
        },
    }
}

fn verify(
    keys: &Keys,
    credential: &QSign,
    req: SignedRequest<'_>,
    now: u64,
) -> Result<(), Refusal> {
    let key = keys.get(&credential.secret_id).ok_or(Refusal::UnknownKey)?;
    let mut canonical = Canonical {
        method: req.method.as_str().to_owned(),
        path: req.path.to_owned(),
        params: signed_params(credential, req.query.unwrap_or(""))?,
        headers: signed_headers(credential, req.headers)?,
    };
    let mut good = qsign::matches(key.secret_key(), credential, &canonical);
    if !good && let Some(bare) = host_without_port(&mut canonical) {
        good = qsign::matches(key.secret_key(), credential, &bare);
    }
    if !good {
        return Err(Refusal::Mismatch);
    }
    let (key_time, sign_time) = (credential.key_time, credential.sign_time);
    if now > key_time.end || now > sign_time.end {
        return Err(Refusal::Expired);
    }
    if now < key_time.start || now < sign_time.start {
        return Err(Refusal::NotYetValid);
    }
    Ok(())
}

/// The listed query parameters, quoted; a listed one that is absent is a mismatch.
fn signed_params(credential: &QSign, query: &str) -> Result<Vec<(String, String)>, Refusal> {
    let present: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| {
            (
                qsign::quote(k.as_bytes()).to_ascii_lowercase(),
                qsign::quote(v.as_bytes()),
            )
        })
        .collect();
    credential
        .params
        .iter()
        .map(|name| {
            present
                .iter()
                .find(|(k, _)| k == name)
                .cloned()
                .ok_or(Refusal::Mismatch)
        })
        .collect()
}

/// The listed headers, quoted; a listed one that is absent is a mismatch.
fn signed_headers(
    credential: &QSign,
    headers: &HeaderMap,
) -> Result<Vec<(String, String)>, Refusal> {
    credential
        .headers
        .iter()
        .map(|name| {
            headers
                .iter()
                .find(|(n, _)| qsign::quote(n.as_str().as_bytes()) == *name)
                .map(|(_, v)| (name.clone(), qsign::quote(v.as_bytes())))
                .ok_or(Refusal::Mismatch)
        })
        .collect()
}

/// `canonical` with a signed `host` stripped of its port (and IPv6 brackets), if it had one.
fn host_without_port(canonical: &mut Canonical) -> Option<Canonical> {
    let (_, quoted) = canonical.headers.iter().find(|(k, _)| k == "host")?;
    let host = percent_encoding::percent_decode_str(quoted)
        .decode_utf8()
        .ok()?;
    let bare = hostname(&host)?;
    let mut copy = canonical.clone();
    for (k, v) in &mut copy.headers {
        if k == "host" {
            *v = qsign::quote(bare.as_bytes());
        }
    }
    Some(copy)
}

/// The name part of `host:port` or `[v6]:port`, as Python's `urlparse(url).hostname`.
fn hostname(host: &str) -> Option<&str> {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map(|(name, _)| name);
    }
    let (name, port) = host.rsplit_once(':')?;
    (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use qsign::Window;

    fn key() -> CosKey {
        CosKey::new("AKID", "secret").expect("valid pair")
    }

    fn signed(canonical: &Canonical, window: Window) -> HeaderMap {
        let time = window.text();
        let sig = qsign::signature("secret", &time, &time, canonical);
        let names: Vec<&str> = canonical.headers.iter().map(|(k, _)| k.as_str()).collect();
        let value = format!(
            "q-sign-algorithm=sha1&q-ak=AKID&q-sign-time={time}&q-key-time={time}&q-header-list={}&q-url-param-list=&q-signature={sig}",
            names.join(";")
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&value).expect("ascii"),
        );
        headers
    }

    fn run(headers: &HeaderMap, now: u64) -> Result<(), Refusal> {
        let keys = Keys::new([key()]);
        let req = SignedRequest {
            method: &Method::GET,
            path: "/fw.bin",
            query: None,
            headers,
        };
        let name = ObjectName::parse("fw.bin").expect("valid");
        check(&keys, b"x", req, &name, now, Accept::QSignOnly)
    }

    fn host_canonical(host: &str) -> Canonical {
        Canonical {
            method: "get".into(),
            path: "/fw.bin".into(),
            params: vec![],
            headers: vec![("host".into(), host.into())],
        }
    }

    #[test]
    fn sdk_style_host_without_port_matches_a_host_header_with_port() {
        let window = Window {
            start: 100,
            end: 200,
        };
        let mut headers = signed(&host_canonical("127.0.0.1"), window);
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert_eq!(run(&headers, 150), Ok(()));
        headers.insert(header::HOST, HeaderValue::from_static("10.0.0.1:8080"));
        assert_eq!(run(&headers, 150), Err(Refusal::Mismatch));
    }

    #[test]
    fn time_windows_are_inclusive_and_checked_after_the_signature() {
        let window = Window {
            start: 100,
            end: 200,
        };
        let mut headers = signed(&host_canonical("h"), window);
        headers.insert(header::HOST, HeaderValue::from_static("h"));
        assert_eq!(run(&headers, 100), Ok(()));
        assert_eq!(run(&headers, 200), Ok(()));
        assert_eq!(run(&headers, 201), Err(Refusal::Expired));
        assert_eq!(run(&headers, 99), Err(Refusal::NotYetValid));
        headers.remove(header::HOST);
        assert_eq!(
            run(&headers, 150),
            Err(Refusal::Mismatch),
            "a signed header is missing"
        );
    }

    #[test]
    fn unknown_secret_id_and_anonymous_writes_are_refused() {
        let mut headers = signed(&host_canonical("h"), Window { start: 0, end: 9 });
        let value = headers[header::AUTHORIZATION]
            .to_str()
            .expect("ascii")
            .replace("AKID", "OTHER");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&value).expect("ascii"),
        );
        assert_eq!(run(&headers, 5), Err(Refusal::UnknownKey));
        assert_eq!(run(&HeaderMap::new(), 5), Err(Refusal::Anonymous));
    }

    #[test]
    fn hostname_matches_python_urlparse() {
        assert_eq!(hostname("127.0.0.1:80"), Some("127.0.0.1"));
        assert_eq!(hostname("[::1]:80"), Some("::1"));
        assert_eq!(hostname("cos.example"), None);
    }

    #[test]
    fn keys_are_validated_and_never_printed() {
        assert!(CosKey::new("", "k").is_err());
        assert!(CosKey::new("a&b", "k").is_err());
        assert!(CosKey::new("a", "").is_err());
        assert!(!format!("{:?}", key()).contains("secret\""));
    }
}
