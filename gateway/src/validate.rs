//! Validation of `update_firmware` commands: the Hub's fields are hostile input until checked.

use otasim_protocol::UpdateFirmware;
use std::fmt;

/// A firmware version that is safe to show, log and compare: 1 to 32 characters of
/// `[A-Za-z0-9._-]`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(String);

impl Version {
    /// Checks a version string.
    pub fn parse(text: &str) -> Result<Self, Rejection> {
        let ok = (1..=32).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && text != "."
            && text != "..";
        if ok {
            Ok(Version(text.to_owned()))
        } else {
            Err(Rejection::Version(text.escape_debug().to_string()))
        }
    }

    /// The version text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A checked `update_firmware`: what to fetch, how big it is and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The version the device runs after the update.
    pub version: Version,
    /// The image size in bytes, between 1 and the gateway's limit.
    pub size_bytes: u64,
    /// The image's MD5.
    pub md5: [u8; 16],
    /// An `http://` or `https://` URL.
    pub url: String,
}

impl Target {
    /// The MD5 as lower-case hex.
    pub fn md5_hex(&self) -> String {
        hex::encode(self.md5)
    }

    /// Whether two commands ask for the same image and version (a duplicate, not a new task).
    pub fn same_update(&self, other: &Target) -> bool {
        self.version == other.version
            && self.md5 == other.md5
            && self.size_bytes == other.size_bytes
    }
}

/// Why an `update_firmware` was refused without downloading anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The version is empty, too long, or has characters outside `[A-Za-z0-9._-]`.
    #[error("invalid version {0:?}: must be 1-32 characters of A-Z a-z 0-9 . _ -")]
    Version(String),
    /// `file_size` is zero or negative.
    #[error("invalid file_size {0}: must be positive")]
    NonPositiveSize(i64),
    /// `file_size` is over what this gateway will store.
    #[error("file_size {size} exceeds the gateway's limit of {limit} bytes")]
    TooLarge {
        /// The size asked.
        size: u64,
        /// The gateway's limit.
        limit: u64,
    },
    /// `md5sum` is not 32 hex digits.
    #[error("invalid md5sum {0:?}: must be 32 hex digits")]
    Md5(String),
    /// The URL is not http(s).
    #[error("refusing url {0:?}: only http:// and https:// are fetched")]
    Url(String),
    /// The URL is http(s) but cannot be fetched as written (a port out of range, no host).
    #[error("refusing url {url:?}: {reason}")]
    UrlInvalid {
        /// The URL without its query (the signature stays out of reports).
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Checks a command against the protocol and this gateway's size limit.
pub(crate) fn check(cmd: &UpdateFirmware, max_size_bytes: u64) -> Result<Target, Rejection> {
    let version = Version::parse(&cmd.version)?;
    if cmd.file_size <= 0 {
        return Err(Rejection::NonPositiveSize(cmd.file_size));
    }
    let size_bytes = cmd.file_size as u64;
    if size_bytes > max_size_bytes {
        return Err(Rejection::TooLarge {
            size: size_bytes,
            limit: max_size_bytes,
        });
    }
    let md5 = parse_md5(&cmd.md5sum)
        .ok_or_else(|| Rejection::Md5(cmd.md5sum.escape_debug().to_string()))?;
    let lower = cmd.url.to_ascii_lowercase();
    let scheme_ok = lower.starts_with("http://") || lower.starts_with("https://");
    if !scheme_ok || cmd.url.chars().any(char::is_control) {
        return Err(Rejection::Url(cmd.url.escape_debug().to_string()));
    }
    crate::download::check_url(&cmd.url).map_err(|reason| Rejection::UrlInvalid {
        url: crate::download::redacted(&cmd.url),
        reason,
    })?;
    Ok(Target {
        version,
        size_bytes,
        md5,
        url: cmd.url.clone(),
    })
}

fn parse_md5(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// A version string fit for a fail report about a rejected command: the original if valid,
/// otherwise escaped and cut to 32 characters so the report itself stays well-formed.
pub(crate) fn reportable_version(raw: &str) -> String {
    match Version::parse(raw) {
        Ok(v) => v.0,
        Err(_) => raw.escape_default().take(32).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(version: &str, size: i64, md5: &str, url: &str) -> UpdateFirmware {
        UpdateFirmware {
            file_size: size,
            md5sum: md5.into(),
            url: url.into(),
            version: version.into(),
        }
    }

    const MD5: &str = "20a4d2b1f8492a22fa3e472a758bf9ec";

    #[test]
    fn a_well_formed_command_is_accepted() {
        let t = check(
            &cmd("V100R0001", 29972, MD5, "http://127.0.0.1/x?sign=1"),
            1 << 20,
        )
        .unwrap();
        assert_eq!(
            (t.version.as_str(), t.size_bytes, t.md5_hex().as_str()),
            ("V100R0001", 29972, MD5)
        );
    }

    #[test]
    fn hostile_fields_are_rejected_with_the_field_named() {
        let limit = 1 << 20;
        for v in [
            "../../etc/passwd",
            "a/b",
            "..",
            "",
            "v\n1",
            "x".repeat(33).as_str(),
            "v 1",
        ] {
            assert!(
                matches!(
                    check(&cmd(v, 10, MD5, "http://h/x"), limit),
                    Err(Rejection::Version(_))
                ),
                "{v:?}"
            );
        }
        assert_eq!(
            check(&cmd("1", 0, MD5, "http://h/x"), limit),
            Err(Rejection::NonPositiveSize(0))
        );
        assert_eq!(
            check(&cmd("1", -7, MD5, "http://h/x"), limit),
            Err(Rejection::NonPositiveSize(-7))
        );
        assert!(matches!(
            check(&cmd("1", i64::MAX, MD5, "http://h/x"), limit),
            Err(Rejection::TooLarge { .. })
        ));
        assert!(matches!(
            check(&cmd("1", 5, "xyz", "http://h/x"), limit),
            Err(Rejection::Md5(_))
        ));
        assert!(matches!(
            check(&cmd("1", 5, &"g".repeat(32), "http://h/x"), limit),
            Err(Rejection::Md5(_))
        ));
        for url in ["http://127.0.0.1:99999/fw", "http://h:0/x", "https://:8/x"] {
            assert!(
                matches!(
                    check(&cmd("1", 5, MD5, url), limit),
                    Err(Rejection::UrlInvalid { .. } | Rejection::Url(_))
                ),
                "{url}"
            );
        }
        for url in [
            "file:///etc/passwd",
            "ftp://h/x",
            "h/x",
            "http://h/x\r\nHost: evil",
        ] {
            assert!(
                matches!(check(&cmd("1", 5, MD5, url), limit), Err(Rejection::Url(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn rejected_versions_are_reported_escaped_and_short() {
        assert_eq!(reportable_version("V1"), "V1");
        let r = reportable_version(&format!("../{}\n", "a".repeat(100)));
        assert!(r.len() <= 32 && !r.contains('\n'));
    }
}
