//! `subdevs.toml`: per-subdevice factory versions and simulated burner behaviours for
//! `otasim gateway`. Read raw with unknown fields refused, then validated; errors name the
//! field.
//!
//! ```toml
//! default_version = "0.1"          # for subdevices not listed (optional)
//!
//! [[subdevice]]
//! product_id = "E69UADXUYY"
//! device_name = "light1"
//! factory_version = "1.0"          # optional, else default_version
//! burn = { kind = "fail_at", percent = 40, duration_ms = 2000 }   # optional
//! ```

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
    #[serde(default, rename = "subdevice")]
    subdevices: Vec<RawSubdevice>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubdevice {
    product_id: String,
    device_name: String,
    #[serde(default)]
    factory_version: Option<String>,
    #[serde(default)]
    burn: Option<SimulatedBurn>,
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
        let mut entries = BTreeMap::new();
        for (i, sub) in raw.subdevices.into_iter().enumerate() {
            let at = |field: &str| format!("subdevice[{i}].{field}");
            let id = DeviceId::new(&sub.product_id, &sub.device_name)
                .map_err(|e| invalid(at("device_name"), e.to_string()))?;
            if let Some(v) = &sub.factory_version {
                Version::parse(v).map_err(|e| invalid(at("factory_version"), e.to_string()))?;
            }
            if let Some(burn) = &sub.burn {
                burn.validate().map_err(|e| invalid(at("burn"), e))?;
            }
            let entry = Entry {
                factory_version: sub.factory_version,
                burn: sub.burn,
            };
            if entries.insert(id.clone(), entry).is_some() {
                return Err(invalid(at("device_name"), format!("{id} is listed twice")));
            }
        }
        Ok(SubdevicesFile {
            default_version: raw.default_version,
            entries,
        })
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
            "[[subdevice]]\nproduct_id = \"P1\"\ndevice_name = \"d\"\nversion = \"1\"",
        )
        .expect_err("unknown field");
        assert!(unknown.to_string().contains("version"), "{unknown}");
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
}
