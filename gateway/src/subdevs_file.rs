//! `subdevs.toml`: per-subdevice factory versions and simulated burner behaviours for
//! `otasim gateway`. Read raw with unknown fields refused, then validated; errors name the
//! field.
//!
//! It speaks the fleet's vocabulary (the same tables and keys as scenario files and
//! `otasim hub --fleet`), so one fleet file can serve the hub and the gateway; the keys only
//! the hub needs (`secret`, `gateway`, `bound`, `[[gateways]]`, `[[firmware]]`) are accepted
//! and ignored here.
//!
//! ```toml
//! default_version = "0.1"          # for subdevices not listed (optional)
//!
//! [[subdevices]]
//! product_id = "E69UADXUYY"
//! device_name = "light1"
//! version = "1.0"                  # optional, else default_version
//! burner = { kind = "fail", percent = 40, duration_ms = 2000 }   # optional
//! ```
//!
//! Burners: `ok`, `fail` (at `percent`), `wrong_version` (then runs `version`), `offline` (at
//! `percent`), each with an optional `duration_ms`. The older spelling (`[[subdevice]]`,
//! `factory_version`, `burn = { kind = "fail_at" | "offline_at" | "wrong_version" |
//! "succeed" }`) still parses, with a deprecation warning from
//! [`SubdevicesFile::deprecations`].

use crate::burner::SimulatedBurn;
use crate::config::GatewayConfig;
use crate::validate::Version;
use otasim_protocol::DeviceId;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Why `subdevs.toml` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubdevicesFileError {
    /// Not TOML, or not the expected shape (the message names the field).
    #[error("{0}")]
    Parse(String),
    /// A field has a value that cannot work.
    #[error("{field}: {reason}")]
    Invalid {
        /// Where, e.g. `subdevice[1].burn`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    default_version: Option<String>,
    #[serde(default)]
    subdevices: Vec<RawSubdevice>,
    /// The older spelling of `subdevices`.
    #[serde(default)]
    subdevice: Vec<RawSubdevice>,
    /// A fleet file's gateways: the hub's business, ignored here.
    #[serde(default, rename = "gateways")]
    _gateways: Vec<serde::de::IgnoredAny>,
    /// A fleet file's firmware: the hub's business, ignored here.
    #[serde(default, rename = "firmware")]
    _firmware: Vec<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubdevice {
    product_id: String,
    device_name: String,
    #[serde(default)]
    version: Option<String>,
    /// The older spelling of `version`.
    #[serde(default)]
    factory_version: Option<String>,
    #[serde(default)]
    burner: Option<FleetBurner>,
    /// The older spelling of `burner`.
    #[serde(default)]
    burn: Option<SimulatedBurn>,
    /// The hub's: accepted so that a fleet file parses, ignored.
    #[serde(default, rename = "secret")]
    _secret: Option<serde::de::IgnoredAny>,
    /// The hub's: accepted so that a fleet file parses, ignored.
    #[serde(default, rename = "gateway")]
    _gateway: Option<serde::de::IgnoredAny>,
    /// The hub's: accepted so that a fleet file parses, ignored.
    #[serde(default, rename = "bound")]
    _bound: Option<serde::de::IgnoredAny>,
}

/// A burner in the fleet's words (as in scenario files).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum FleetBurner {
    Ok {
        #[serde(default)]
        duration_ms: u64,
    },
    Fail {
        #[serde(default)]
        percent: u8,
        #[serde(default)]
        duration_ms: u64,
    },
    WrongVersion {
        version: String,
        #[serde(default)]
        duration_ms: u64,
    },
    Offline {
        #[serde(default)]
        percent: u8,
        #[serde(default)]
        duration_ms: u64,
    },
}

impl From<FleetBurner> for SimulatedBurn {
    fn from(b: FleetBurner) -> Self {
        match b {
            FleetBurner::Ok { duration_ms } => SimulatedBurn::Succeed { duration_ms },
            FleetBurner::Fail {
                percent,
                duration_ms,
            } => SimulatedBurn::FailAt {
                percent,
                duration_ms,
            },
            FleetBurner::WrongVersion {
                version,
                duration_ms,
            } => SimulatedBurn::WrongVersion {
                reports: version,
                duration_ms,
            },
            FleetBurner::Offline {
                percent,
                duration_ms,
            } => SimulatedBurn::OfflineAt {
                percent,
                duration_ms,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    factory_version: Option<String>,
    burn: Option<SimulatedBurn>,
}

/// A validated `subdevs.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubdevicesFile {
    default_version: Option<String>,
    entries: BTreeMap<DeviceId, Entry>,
    deprecations: Vec<String>,
}

impl SubdevicesFile {
    /// Parses and validates the file's text.
    pub fn parse(text: &str) -> Result<Self, SubdevicesFileError> {
        let raw: RawFile =
            toml::from_str(text).map_err(|e| SubdevicesFileError::Parse(e.to_string()))?;
        let invalid =
            |field: String, reason: String| SubdevicesFileError::Invalid { field, reason };
        if let Some(v) = &raw.default_version {
            Version::parse(v).map_err(|e| invalid("default_version".into(), e.to_string()))?;
        }
        let mut deprecations = Vec::new();
        if !raw.subdevice.is_empty() {
            deprecations.push("[[subdevice]] is the old spelling: write [[subdevices]]".into());
        }
        let listed = raw
            .subdevices
            .into_iter()
            .enumerate()
            .map(|(i, s)| (format!("subdevices[{i}]"), s))
            .chain(
                raw.subdevice
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| (format!("subdevice[{i}]"), s)),
            );
        let mut entries = BTreeMap::new();
        for (table, sub) in listed {
            let at = |field: &str| format!("{table}.{field}");
            let id = DeviceId::new(&sub.product_id, &sub.device_name)
                .map_err(|e| invalid(at("device_name"), e.to_string()))?;
            let factory_version = match (sub.version, sub.factory_version) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        at("factory_version"),
                        "give `version` only (`factory_version` is its old spelling)".into(),
                    ));
                }
                (Some(v), None) => Some((v, "version")),
                (None, Some(v)) => {
                    deprecations.push(format!(
                        "{}: `factory_version` is the old spelling: write `version`",
                        at("factory_version")
                    ));
                    Some((v, "factory_version"))
                }
                (None, None) => None,
            };
            if let Some((v, field)) = &factory_version {
                Version::parse(v).map_err(|e| invalid(at(field), e.to_string()))?;
            }
            let burn = match (sub.burner, sub.burn) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        at("burn"),
                        "give `burner` only (`burn` is its old spelling)".into(),
                    ));
                }
                (Some(b), None) => Some((SimulatedBurn::from(b), "burner")),
                (None, Some(b)) => {
                    deprecations.push(format!(
                        "{}: `burn` is the old spelling: write `burner = {{ kind = \"fail\" | \
                         \"offline\" | \"wrong_version\" | \"ok\", ... }}`",
                        at("burn")
                    ));
                    Some((b, "burn"))
                }
                (None, None) => None,
            };
            if let Some((burn, field)) = &burn {
                burn.validate().map_err(|e| invalid(at(field), e))?;
            }
            let entry = Entry {
                factory_version: factory_version.map(|(v, _)| v),
                burn: burn.map(|(b, _)| b),
            };
            if entries.insert(id.clone(), entry).is_some() {
                return Err(invalid(at("device_name"), format!("{id} is listed twice")));
            }
        }
        Ok(SubdevicesFile {
            default_version: raw.default_version,
            entries,
            deprecations,
        })
    }

    /// Old spellings the file used, each with the new one to write instead.
    pub fn deprecations(&self) -> &[String] {
        &self.deprecations
    }

    /// Sets factory versions on `config`'s subdevices; returns the burner behaviours. A listed
    /// subdevice the gateway does not serve is an error.
    pub fn apply(
        &self,
        config: &mut GatewayConfig,
    ) -> Result<BTreeMap<DeviceId, SimulatedBurn>, SubdevicesFileError> {
        for id in self.entries.keys() {
            if !config.subdevices.iter().any(|s| &s.id == id) {
                return Err(SubdevicesFileError::Invalid {
                    field: "subdevice".into(),
                    reason: format!("{id} is not a subdevice in device_info.json"),
                });
            }
        }
        let mut behaviours = BTreeMap::new();
        for sub in &mut config.subdevices {
            let entry = self.entries.get(&sub.id);
            let version = entry
                .and_then(|e| e.factory_version.clone())
                .or_else(|| self.default_version.clone());
            if let Some(version) = version {
                sub.factory_version = version;
            }
            if let Some(burn) = entry.and_then(|e| e.burn.clone()) {
                behaviours.insert(sub.id.clone(), burn);
            }
        }
        Ok(behaviours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses_into_versions_and_behaviours() {
        let file = SubdevicesFile::parse(
            r#"
default_version = "0.1"
[[subdevice]]
product_id = "E69UADXUYY"
device_name = "light1"
factory_version = "1.0"
burn = { kind = "offline_at", percent = 30 }
"#,
        )
        .expect("valid file");
        let id = DeviceId::new("E69UADXUYY", "light1").expect("id");
        let entry = &file.entries[&id];
        assert_eq!(entry.factory_version.as_deref(), Some("1.0"));
        assert_eq!(
            entry.burn,
            Some(SimulatedBurn::OfflineAt {
                percent: 30,
                duration_ms: 0
            })
        );
    }

    #[test]
    fn bad_files_are_refused_naming_the_field() {
        let unknown = SubdevicesFile::parse(
            "[[subdevice]]\nproduct_id = \"P1\"\ndevice_name = \"d\"\ncolour = \"1\"",
        )
        .expect_err("unknown field");
        assert!(unknown.to_string().contains("colour"), "{unknown}");
        let bad_version = SubdevicesFile::parse(
            "[[subdevice]]\nproduct_id = \"E69UADXUYY\"\ndevice_name = \"d\"\nfactory_version = \"../x\"",
        )
        .expect_err("bad version");
        assert!(
            bad_version
                .to_string()
                .starts_with("subdevice[0].factory_version"),
            "{bad_version}"
        );
        let bad_burn = SubdevicesFile::parse(
            "[[subdevice]]\nproduct_id = \"E69UADXUYY\"\ndevice_name = \"d\"\nburn = { kind = \"fail_at\", percent = 120 }",
        )
        .expect_err("bad percent");
        assert!(
            bad_burn
                .to_string()
                .starts_with("subdevice[0].burn: percent"),
            "{bad_burn}"
        );
    }

    #[test]
    fn the_fleet_spelling_parses_like_the_old_one_without_warnings() {
        let new = SubdevicesFile::parse(
            r#"
[[gateways]]
product_id = "JR1WOKB7Q7"
device_name = "gw_deng1"
secret = "1RRdhkwmZ45wYXjuPfygeA=="
[[subdevices]]
product_id = "E69UADXUYY"
device_name = "light1"
secret = "light1-secret"
gateway = "JR1WOKB7Q7/gw_deng1"
version = "1.0"
burner = { kind = "offline", percent = 30 }
"#,
        )
        .expect("the fleet's spelling");
        let old = SubdevicesFile::parse(
            "[[subdevice]]\nproduct_id = \"E69UADXUYY\"\ndevice_name = \"light1\"\n\
             factory_version = \"1.0\"\nburn = { kind = \"offline_at\", percent = 30 }",
        )
        .expect("the old spelling");
        assert_eq!(new.entries, old.entries);
        assert!(new.deprecations().is_empty(), "{:?}", new.deprecations());
        assert_eq!(old.deprecations().len(), 3, "{:?}", old.deprecations());
        let both = SubdevicesFile::parse(
            "[[subdevices]]\nproduct_id = \"E69UADXUYY\"\ndevice_name = \"d\"\n\
             version = \"1\"\nfactory_version = \"1\"",
        )
        .expect_err("two spellings at once");
        assert!(
            both.to_string()
                .starts_with("subdevices[0].factory_version"),
            "{both}"
        );
    }
}
