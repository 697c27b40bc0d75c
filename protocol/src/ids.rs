//! Device identities: `(product_id, device_name)`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a product id or device name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The product id is not 1 to 32 ASCII letters and digits.
    #[error("product id {0:?} must be 1 to 32 ASCII letters or digits")]
    ProductId(String),
    /// The device name is not 1 to 48 characters of `[A-Za-z0-9_-.:@]`.
    #[error("device name {0:?} must be 1 to 48 characters of A-Z a-z 0-9 _ - . : @")]
    DeviceName(String),
}

/// A device identity on the Hub: product id and device name.
///
/// Both parts are validated so that a `DeviceId` can always be put into a topic or a file name
/// without escaping (no `/`, `+`, `#`, `..` or control characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawDeviceId", into = "RawDeviceId")]
pub struct DeviceId {
    product_id: String,
    device_name: String,
}

#[derive(Serialize, Deserialize)]
struct RawDeviceId {
    product_id: String,
    device_name: String,
}

impl TryFrom<RawDeviceId> for DeviceId {
    type Error = IdError;
    fn try_from(raw: RawDeviceId) -> Result<Self, IdError> {
        DeviceId::new(raw.product_id, raw.device_name)
    }
}

impl From<DeviceId> for RawDeviceId {
    fn from(id: DeviceId) -> Self {
        RawDeviceId {
            product_id: id.product_id,
            device_name: id.device_name,
        }
    }
}

impl DeviceId {
    /// Validates and builds a device identity.
    pub fn new(
        product_id: impl Into<String>,
        device_name: impl Into<String>,
    ) -> Result<Self, IdError> {
        let product_id = product_id.into();
        let device_name = device_name.into();
        let pid_ok = (1..=32).contains(&product_id.len())
            && product_id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !pid_ok {
            return Err(IdError::ProductId(product_id));
        }
        let dn_ok = (1..=48).contains(&device_name.len())
            && device_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:@".contains(&b))
            && device_name != "."
            && device_name != "..";
        if !dn_ok {
            return Err(IdError::DeviceName(device_name));
        }
        Ok(DeviceId {
            product_id,
            device_name,
        })
    }

    /// The product id, e.g. `E69UADXUYY`.
    pub fn product_id(&self) -> &str {
        &self.product_id
    }

    /// The device name, e.g. `light1`.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// The MQTT client id the SDKs use: product id and device name with no separator.
    pub fn client_id(&self) -> String {
        format!("{}{}", self.product_id, self.device_name)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.product_id, self.device_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_concatenates_without_separator() {
        let id = DeviceId::new("JR1WOKB7Q7", "gw_deng1").unwrap();
        assert_eq!(id.client_id(), "JR1WOKB7Q7gw_deng1");
        assert_eq!(id.to_string(), "JR1WOKB7Q7/gw_deng1");
    }

    #[test]
    fn names_that_could_escape_a_topic_or_path_are_refused() {
        for bad in ["", "a/b", "..", "a+b", "a#", "a b", "x\u{0}"] {
            assert!(DeviceId::new("E69UADXUYY", bad).is_err(), "{bad:?}");
        }
        assert!(DeviceId::new("E69/UADXUYY", "light1").is_err());
    }

    #[test]
    fn deserializing_validates() {
        let ok: DeviceId =
            serde_json::from_str(r#"{"product_id":"E69UADXUYY","device_name":"light1"}"#).unwrap();
        assert_eq!(ok.device_name(), "light1");
        let bad = serde_json::from_str::<DeviceId>(r#"{"product_id":"E69","device_name":"../x"}"#);
        assert!(bad.is_err());
    }
}
