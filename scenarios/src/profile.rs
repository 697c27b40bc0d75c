//! A gateway profile: the known and accepted behaviours of a gateway under qualification, so
//! the catalog's expectations judge the contract the Hub sees and not our gateway's choices.
//!
//! ```toml
//! name = "C SDK gateway sample"
//! subdevices = "serial"              # or "concurrent" (default)
//! shares_downloads = false           # one download per subdevice, even of the same image
//! reports_version_after_done = false # the hub sees `done` but no `report_version` after it
//! reports_burning = false            # no `burning` report before `done`
//! resume = "restart"                 # or "range" (default): how an interrupted download goes on
//!
//! [[fail_codes]]                     # where the catalog expects `fail -2`, it reports -2 then -5
//! expected = -2
//! reports = [-2, -5]
//! ```

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why a profile file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not TOML of the profile's shape (the message names the field and line).
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A field says something impossible.
    #[error("{path}: {field}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
}

/// How a gateway serves several subdevices' updates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Concurrency {
    /// At once.
    #[default]
    Concurrent,
    /// One after the other: waits are lengthened by the number of subdevices.
    Serial,
}

/// How a gateway goes on after a download was interrupted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resume {
    /// With a Range from where it stopped, as the catalog expects.
    #[default]
    Range,
    /// From byte 0: Range starts and byte counts of later requests are not judged.
    Restart,
}

/// The fail reports a gateway sends where the catalog expects one code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailCodes {
    /// The code the catalog expects.
    pub expected: i32,
    /// The codes the gateway reports instead, in order.
    pub reports: Vec<i32>,
}

/// A gateway's known and accepted behaviours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayProfile {
    /// The gateway's name, for reports.
    pub name: String,
    /// Serial or concurrent subdevice updates.
    #[serde(default)]
    pub subdevices: Concurrency,
    /// Whether one download serves several subdevices that take the same image.
    #[serde(default = "yes")]
    pub shares_downloads: bool,
    /// Whether it publishes `report_version` with the new version after `done`.
    #[serde(default = "yes")]
    pub reports_version_after_done: bool,
    /// Whether it reports `burning` before `done` (the Python SDK has no call for it).
    #[serde(default = "yes")]
    pub reports_burning: bool,
    /// How it resumes.
    #[serde(default)]
    pub resume: Resume,
    /// Fail codes it reports instead of the catalog's.
    #[serde(default)]
    pub fail_codes: Vec<FailCodes>,
}

fn yes() -> bool {
    true
}

impl Default for GatewayProfile {
    /// Our gateway's behaviour: the catalog's expectations as written.
    fn default() -> Self {
        GatewayProfile {
            name: "otasim gateway".into(),
            subdevices: Concurrency::Concurrent,
            shares_downloads: true,
            reports_version_after_done: true,
            reports_burning: true,
            resume: Resume::Range,
            fail_codes: Vec::new(),
        }
    }
}

impl GatewayProfile {
    /// Reads and validates a profile file.
    pub fn load(path: &Path) -> Result<GatewayProfile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_owned(),
            source,
        })?;
        GatewayProfile::parse(path, &text)
    }

    /// Validates profile text; `path` is for messages.
    pub fn parse(path: &Path, text: &str) -> Result<GatewayProfile, ProfileError> {
        let p: GatewayProfile = toml::from_str(text).map_err(|e| ProfileError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let invalid = |field: String, reason: &str| ProfileError::Invalid {
            path: path.to_owned(),
            field,
            reason: reason.to_owned(),
        };
        for (i, f) in p.fail_codes.iter().enumerate() {
            if f.reports.is_empty() || f.reports.len() > 8 {
                return Err(invalid(format!("fail_codes[{i}].reports"), "1 to 8 codes"));
            }
            if p.fail_codes[..i].iter().any(|o| o.expected == f.expected) {
                return Err(invalid(format!("fail_codes[{i}].expected"), "listed twice"));
            }
        }
        Ok(p)
    }

    /// The codes reported where the catalog expects `code`.
    pub fn reports_for(&self, code: i32) -> Vec<i32> {
        self.fail_codes
            .iter()
            .find(|f| f.expected == code)
            .map_or_else(|| vec![code], |f| f.reports.clone())
    }

    /// Whether this profile is the catalog's own expectations, unchanged.
    pub fn is_exact(&self) -> bool {
        let d = GatewayProfile::default();
        self.subdevices == d.subdevices
            && self.shares_downloads
            && self.reports_version_after_done
            && self.reports_burning
            && self.resume == d.resume
            && self.fail_codes.iter().all(|f| f.reports == [f.expected])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csdk_profile_parses_and_maps_codes() {
        let text = "name = \"c sdk\"\nsubdevices = \"serial\"\nreports_version_after_done = false\n\
                    [[fail_codes]]\nexpected = -2\nreports = [-2, -5]\n";
        let p = GatewayProfile::parse(Path::new("p.toml"), text).unwrap();
        assert_eq!(p.reports_for(-2), [-2, -5]);
        assert_eq!(p.reports_for(-4), [-4]);
        assert!(!p.is_exact());
        assert!(GatewayProfile::default().is_exact());
    }

    #[test]
    fn bad_profiles_name_the_field() {
        let e = GatewayProfile::parse(Path::new("p.toml"), "name = \"x\"\nresume = \"maybe\"\n")
            .unwrap_err();
        assert!(matches!(e, ProfileError::Syntax { .. }), "{e}");
        let e = GatewayProfile::parse(
            Path::new("p.toml"),
            "name = \"x\"\n[[fail_codes]]\nexpected = -2\nreports = []\n",
        )
        .unwrap_err();
        assert!(
            matches!(&e, ProfileError::Invalid { field, .. } if field == "fail_codes[0].reports"),
            "{e}"
        );
    }
}
