//! Object names: exactly one URL path segment, so a firmware URL has one `/` (the Python SDK
//! breaks on more) and no name can ever reach outside the in-memory store.

use std::fmt;

use crate::CosError;

const MAX_LEN: usize = 128;

/// A validated object name: 1 to 128 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ObjectName(String);

impl ObjectName {
    /// Checks `raw` as it appears in the request path, without percent-decoding: an encoded
    /// byte (`%2e`, `%2F`) is simply not in the alphabet.
    pub(crate) fn parse(raw: &str) -> Result<Self, CosError> {
        let reason = if raw.is_empty() {
            Some("empty")
        } else if raw.len() > MAX_LEN {
            Some("longer than 128 characters")
        } else if raw == "." || raw == ".." {
            Some("dot segment")
        } else if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            Some("only A-Z a-z 0-9 . _ - are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(CosError::InvalidObjectName {
                name: raw.to_owned(),
                reason,
            }),
            None => Ok(Self(raw.to_owned())),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_style_names_are_accepted() {
        for ok in [
            "100003908905_E69UADXUYY_V100R0001",
            "fw.bin",
            "a",
            "x-1.2_3",
        ] {
            assert!(ObjectName::parse(ok).is_ok(), "{ok}");
        }
        assert!(ObjectName::parse(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn traversal_and_encoded_names_are_rejected() {
        for bad in [
            "", ".", "..", "a/b", "%2e%2e", "..%2F", "a b", "a?b", "é", "a\\b",
        ] {
            assert!(ObjectName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ObjectName::parse(&"a".repeat(129)).is_err());
    }
}
