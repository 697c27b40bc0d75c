//! The Hub's rule for firmware version strings: 1 to 32 characters. It applies to uploads, to
//! pushes and to what devices report in `report_version`; this is its one home.

/// The longest version the Hub accepts, in characters.
pub const MAX_VERSION_CHARS: usize = 32;

/// Why a version string breaks the Hub's rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The version is empty.
    #[error("the version is empty; versions are 1 to {MAX_VERSION_CHARS} characters")]
    Empty,
    /// The version is longer than [`MAX_VERSION_CHARS`].
    #[error("the version has {chars} characters; versions are 1 to {MAX_VERSION_CHARS}")]
    TooLong {
        /// How many characters it has.
        chars: usize,
    },
}

/// Checks a version against the Hub's rule (characters, not bytes).
pub fn check_version(version: &str) -> Result<(), VersionError> {
    match version.chars().count() {
        0 => Err(VersionError::Empty),
        n if n > MAX_VERSION_CHARS => Err(VersionError::TooLong { chars: n }),
        _ => Ok(()),
    }
}

/// The COS object name a product's version is stored under: `{product_id}_{version}`, with
/// every character a one-segment object name cannot hold replaced by `_`. The hub's uploads, the
/// Cloud API and the scenarios all name firmware through this one function.
pub fn firmware_object_name(product_id: &str, version: &str) -> String {
    format!("{product_id}_{version}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_and_thirty_two_characters_are_the_bounds() {
        assert_eq!(check_version(""), Err(VersionError::Empty));
        assert_eq!(check_version("1"), Ok(()));
        assert_eq!(check_version(&"a".repeat(32)), Ok(()));
        assert_eq!(
            check_version(&"a".repeat(33)),
            Err(VersionError::TooLong { chars: 33 })
        );
    }

    proptest! {
        #[test]
        fn the_rule_counts_characters(v in "\\PC{0,40}") {
            let n = v.chars().count();
            prop_assert_eq!(check_version(&v).is_ok(), (1..=32).contains(&n));
        }
    }
}
