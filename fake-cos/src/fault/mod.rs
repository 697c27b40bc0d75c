//! Fault injection: an ordered list of rules; the first rule that matches a request and still
//! has firings left decides that request's [`Verdict`]. Rules are plain serde data so a control
//! API and scenario files can carry them; each verdict family lives in its own file and plugs
//! into one stage of answering a request, so a new fault needs no router edits:
//!
//! - [`status`]: answer instead of the object (`Status`, `Redirect`);
//! - [`content`]: change which bytes are served (`IgnoreRange`, `Corrupt`, `ReplaceObject`);
//! - [`delivery`]: change how the body goes out (`CutAfter`, `Reset`, `StallAfter`, `Throttle`);
//! - [`framing`]: change how the body is framed or placed (`WrongContentLength`, `Chunked`,
//!   `Gzip`, `WrongContentRange`).
//!
//! Several faults act on one request through one rule whose verdict is a list of them
//! ([`Verdict::Steps`], see [`steps`]): for example a throttled body cut at byte N.
//!
//! Faults fire on typed milestones (the Nth request, attempt K of an object from one client,
//! byte N of a body), never on timers.

pub(crate) mod content;
pub(crate) mod delivery;
pub(crate) mod framing;
mod rules;
pub(crate) mod status;
mod steps;

use serde::{Deserialize, Serialize};

pub use rules::{InstalledRule, RuleGuard};
pub(crate) use rules::{RuleInput, RuleSet};

use crate::CosError;
use crate::name::ObjectName;

/// Identifies one installed rule of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleId(u64);

impl RuleId {
    /// The id numbered `id`, e.g. as read from the control API's path.
    pub fn new(id: u64) -> Self {
        Self(id)
    }

    /// The number, unique for the instance's lifetime.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// One fault: which requests it matches, what happens to them, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Which requests the rule matches; every field set must match.
    #[serde(default)]
    pub when: Selector,
    /// What happens to a matched request.
    pub verdict: Verdict,
    /// How many matched requests it fires on before it stops matching.
    pub fires: Fires,
}

/// Request selector; an unset field matches anything. Rules only see GET and HEAD requests
/// for valid object names, and decide before the signature is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// The object name requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// 1-based request count for (object, client IP), this request included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// 1-based request count of the whole instance, this request included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nth_request: Option<u64>,
    /// The first byte the request asks for (0 without a Range header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_start: Option<u64>,
}

/// How many times a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fires {
    /// On the first matching request only.
    Once,
    /// On the first N matching requests.
    Times(u32),
    /// On every matching request.
    Always,
}

impl Fires {
    fn allows(self, fired: u32) -> bool {
        match self {
            Self::Once => fired < 1,
            Self::Times(n) => fired < n,
            Self::Always => true,
        }
    }
}

/// What happens to a request a rule matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Verdict {
    /// Answer `code` with a COS XML error body (and `Retry-After` if given) instead of the object.
    Status {
        /// HTTP status, 400 to 599.
        code: u16,
        /// Seconds for a `Retry-After` header.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
    /// Send the headers and `bytes` body bytes, then close the connection (FIN).
    CutAfter {
        /// Body bytes sent before the close.
        bytes: u64,
    },
    /// Ignore the Range header: 200 with the whole object.
    IgnoreRange,
    /// XOR `len` bytes from absolute object offset `offset` with `xor`, where they are served.
    Corrupt {
        /// First corrupted object offset.
        offset: u64,
        /// How many bytes to corrupt (default 1).
        #[serde(default = "one")]
        len: u64,
        /// The mask, not 0 (default 0xFF).
        #[serde(default = "all_bits")]
        xor: u8,
    },
    /// Send `bytes` body bytes, then send nothing for `for_ms` (forever if unset) and go on.
    StallAfter {
        /// Body bytes sent before the stall.
        bytes: u64,
        /// Stall length in milliseconds; unset stalls until the client or the server gives up.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_ms: Option<u64>,
    },
    /// Send the body at about `bytes_per_sec`.
    Throttle {
        /// Rate, at least 1.
        bytes_per_sec: u64,
    },
    /// Declare `Content-Length` as the real length plus `delta`: a positive delta sends the real
    /// body then closes; a negative one sends only the declared bytes (hyper never writes past
    /// a declared length).
    WrongContentLength {
        /// Declared minus real length, not 0.
        delta: i64,
    },
    /// Send the body with `Transfer-Encoding: chunked` and no `Content-Length`.
    Chunked,
    /// Send the served bytes gzip-compressed with `Content-Encoding: gzip` (the SDKs say they
    /// accept gzip but store the compressed bytes).
    Gzip,
    /// Answer `status` (a 3xx) with `Location: location`.
    Redirect {
        /// The `Location` header.
        location: String,
        /// 301, 302, 303, 307 or 308 (default 302).
        #[serde(default = "found")]
        status: u16,
    },
    /// Send the headers and up to `after_bytes` body bytes, then reset the connection (RST via
    /// `SO_LINGER` 0; bytes still in flight may be lost with it).
    Reset {
        /// Body bytes handed to the socket before the reset.
        after_bytes: u64,
    },
    /// Replace the requested object with a copy of `with_object` (new ETag and MD5), then answer
    /// normally: the "firmware changed under a resumed download" case.
    ReplaceObject {
        /// Name of the stored object whose bytes replace the requested one.
        with_object: String,
    },
    /// Answer the asked range (206, the right bytes) under a `Content-Range` that says other
    /// bytes: first and last byte `shift` bytes off, and/or `total` instead of the object's
    /// size. A server or proxy that mislabels a range; a client that trusts the header writes
    /// the bytes at the wrong offset. Answers without a `Content-Range` (200) are left alone.
    WrongContentRange {
        /// Declared minus real first (and last) byte; 0 keeps them.
        #[serde(default, skip_serializing_if = "is_zero")]
        shift: i64,
        /// The total size declared instead of the object's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
    },
    /// Several faults on one request, e.g. `throttle` then `cut_after`. Each step acts in its
    /// stage of the answer whatever its place in the list: content (`replace_object`,
    /// `ignore_range`, each `corrupt` in list order), then delivery (`throttle` paces the body
    /// up to the one `cut_after`, `reset` or `stall_after`, which acts at its exact byte), then
    /// framing (one of `wrong_content_length`, `chunked`, `gzip`; `wrong_content_range`). A
    /// stage takes at most one of each kind (`corrupt` excepted); `status` and `redirect`
    /// answer instead of a body and are no steps; steps do not nest.
    Steps {
        /// 2 to 8 faults.
        steps: Vec<Verdict>,
    },
}

/// The most steps one [`Verdict::Steps`] may hold.
pub(crate) const MAX_STEPS: usize = 8;

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn one() -> u64 {
    1
}

fn all_bits() -> u8 {
    0xFF
}

fn found() -> u16 {
    302
}

impl FaultRule {
    /// Checks the fields a runtime could not act on; errors name the field.
    pub fn validate(&self) -> Result<(), CosError> {
        let bad = |field, reason| Err(invalid(field, reason, None));
        if let Some(object) = &self.when.object {
            ObjectName::parse(object)
                .map_err(|e| invalid("when.object", "not a valid object name", Some(e)))?;
        }
        if self.when.attempt == Some(0) {
            return bad("when.attempt", "attempts count from 1");
        }
        if self.when.nth_request == Some(0) {
            return bad("when.nth_request", "requests count from 1");
        }
        if self.fires == Fires::Times(0) {
            return bad("fires", "times must be at least 1");
        }
        self.verdict.validate()
    }
}

impl Verdict {
    fn validate(&self) -> Result<(), CosError> {
        let bad = |field, reason| Err(invalid(field, reason, None));
        match self {
            Self::Status { code, .. } if !(400..=599).contains(code) => {
                bad("verdict.code", "must be 400..=599")
            }
            Self::Corrupt { len: 0, .. } => bad("verdict.len", "must be at least 1"),
            Self::Corrupt { xor: 0, .. } => bad("verdict.xor", "a zero mask changes nothing"),
            Self::Throttle { bytes_per_sec: 0 } => {
                bad("verdict.bytes_per_sec", "must be at least 1")
            }
            Self::WrongContentLength { delta: 0 } => {
                bad("verdict.delta", "a zero delta changes nothing")
            }
            Self::Redirect { status, .. } if !matches!(status, 301 | 302 | 303 | 307 | 308) => {
                bad("verdict.status", "must be 301, 302, 303, 307 or 308")
            }
            Self::Redirect { location, .. }
                if axum::http::HeaderValue::from_str(location).is_err() =>
            {
                bad("verdict.location", "not a valid header value")
            }
            Self::ReplaceObject { with_object } => ObjectName::parse(with_object)
                .map(drop)
                .map_err(|e| invalid("verdict.with_object", "not a valid object name", Some(e))),
            Self::WrongContentRange {
                shift: 0,
                total: None,
            } => bad(
                "verdict.shift",
                "set shift or total: as written it changes nothing",
            ),
            Self::Steps { steps } => steps::validate(steps),
            _ => Ok(()),
        }
    }

    /// The verdict's `kind` tag, for logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Status { .. } => "status",
            Self::CutAfter { .. } => "cut_after",
            Self::IgnoreRange => "ignore_range",
            Self::Corrupt { .. } => "corrupt",
            Self::StallAfter { .. } => "stall_after",
            Self::Throttle { .. } => "throttle",
            Self::WrongContentLength { .. } => "wrong_content_length",
            Self::Chunked => "chunked",
            Self::Gzip => "gzip",
            Self::Redirect { .. } => "redirect",
            Self::Reset { .. } => "reset",
            Self::ReplaceObject { .. } => "replace_object",
            Self::WrongContentRange { .. } => "wrong_content_range",
            Self::Steps { .. } => "steps",
        }
    }
}

fn invalid(field: &'static str, reason: &'static str, source: Option<CosError>) -> CosError {
    CosError::InvalidRule {
        field,
        reason,
        source: source.map(Box::new),
    }
}

/// A rule that fired on a request, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FiredRule {
    /// The rule.
    pub id: RuleId,
    /// Its verdict.
    pub verdict: Verdict,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip_through_json() {
        let json = r#"{"when":{"object":"fw.bin","attempt":1},
            "verdict":{"kind":"cut_after","bytes":4999},"fires":"once"}"#;
        let rule: FaultRule = serde_json::from_str(json).expect("valid rule json");
        assert_eq!(rule.verdict, Verdict::CutAfter { bytes: 4999 });
        assert_eq!(rule.when.attempt, Some(1));
        let back = serde_json::to_string(&rule).expect("serializable");
        assert_eq!(
            serde_json::from_str::<FaultRule>(&back).expect("round trip"),
            rule
        );
        let times: Fires = serde_json::from_str(r#"{"times":3}"#).expect("times");
        assert_eq!(times, Fires::Times(3));
    }

    #[test]
    fn unknown_fields_and_invalid_values_are_rejected() {
        let typo = r#"{"verdict":{"kind":"cut_after","byte":1},"fires":"once"}"#;
        assert!(serde_json::from_str::<FaultRule>(typo).is_err());
        let rule = FaultRule {
            when: Selector::default(),
            verdict: Verdict::Status {
                code: 200,
                retry_after_secs: None,
            },
            fires: Fires::Always,
        };
        let err = rule.validate().expect_err("200 is no fault");
        assert!(err.to_string().contains("verdict.code"), "{err}");
    }
}
