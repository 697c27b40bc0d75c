//! `device_info.json` in the format both official SDKs read.

use crate::ids::{DeviceId, IdError};
use serde::{Deserialize, Serialize};

/// How the device authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMode {
    /// Key auth: a base64 device secret.
    #[serde(rename = "KEY")]
    Key,
    /// Certificate auth: mutual TLS.
    #[serde(rename = "CERT")]
    Cert,
}

/// Why a `device_info.json` was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeviceInfoError {
    /// Not JSON of the SDKs' shape.
    #[error("device_info.json: {0}")]
    Json(#[from] serde_json::Error),
    /// An identity in it is invalid.
    #[error("device_info.json: {0}")]
    Id(#[from] IdError),
    /// Key auth without a `key_deviceinfo.deviceSecret`.
    #[error("device_info.json: auth_mode KEY needs key_deviceinfo.deviceSecret")]
    MissingSecret,
}

/// The SDKs' `device_info.json`: the device's identity, credentials and its subdevice list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `KEY` or `CERT`.
    pub auth_mode: AuthMode,
    /// The product id.
    #[serde(rename = "productId")]
    pub product_id: String,
    /// The product secret (dynamic registration only).
    #[serde(
        rename = "productSecret",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub product_secret: Option<String>,
    /// The device name.
    #[serde(rename = "deviceName")]
    pub device_name: String,
    /// Key auth settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_deviceinfo: Option<KeyDeviceInfo>,
    /// Certificate auth settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_deviceinfo: Option<CertDeviceInfo>,
    /// The gateway's subdevices.
    #[serde(rename = "subDev", default, skip_serializing_if = "Option::is_none")]
    pub sub_dev: Option<SubDevices>,
    /// `china` in every sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// `key_deviceinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDeviceInfo {
    /// The base64 device secret.
    #[serde(rename = "deviceSecret")]
    pub device_secret: String,
}

/// `cert_deviceinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertDeviceInfo {
    /// The CA that signs the Hub's certificate (Python SDK).
    #[serde(rename = "devCaFile", default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The device certificate file.
    #[serde(rename = "devCertFile")]
    pub cert_file: String,
    /// The device private key file.
    #[serde(rename = "devPrivateKeyFile")]
    pub private_key_file: String,
}

/// `subDev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubDevices {
    /// The number of entries (the SDKs read it; we derive it).
    pub subdev_num: usize,
    /// The subdevices.
    pub subdev_list: Vec<SubDeviceEntry>,
}

/// One entry of `subDev.subdev_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubDeviceEntry {
    /// The subdevice's product id.
    #[serde(rename = "sub_productId")]
    pub product_id: String,
    /// The subdevice's device name.
    #[serde(rename = "sub_devName")]
    pub device_name: String,
}

impl DeviceInfo {
    /// A key-auth gateway with its subdevices.
    pub fn key_gateway(gateway: &DeviceId, secret: &str, subdevices: &[DeviceId]) -> Self {
        DeviceInfo {
            auth_mode: AuthMode::Key,
            product_id: gateway.product_id().to_owned(),
            product_secret: None,
            device_name: gateway.device_name().to_owned(),
            key_deviceinfo: Some(KeyDeviceInfo {
                device_secret: secret.to_owned(),
            }),
            cert_deviceinfo: None,
            sub_dev: Some(SubDevices {
                subdev_num: subdevices.len(),
                subdev_list: subdevices
                    .iter()
                    .map(|d| SubDeviceEntry {
                        product_id: d.product_id().to_owned(),
                        device_name: d.device_name().to_owned(),
                    })
                    .collect(),
            }),
            region: Some("china".to_owned()),
        }
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Self, DeviceInfoError> {
        let info: DeviceInfo = serde_json::from_str(text)?;
        info.device_id()?;
        info.subdevices()?;
        if info.auth_mode == AuthMode::Key && info.key_deviceinfo.is_none() {
            return Err(DeviceInfoError::MissingSecret);
        }
        Ok(info)
    }

    /// Pretty JSON as the SDK samples ship it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain structs always serialize")
    }

    /// The device's identity.
    pub fn device_id(&self) -> Result<DeviceId, IdError> {
        DeviceId::new(self.product_id.clone(), self.device_name.clone())
    }

    /// The device secret, for key auth.
    pub fn device_secret(&self) -> Option<&str> {
        self.key_deviceinfo
            .as_ref()
            .map(|k| k.device_secret.as_str())
    }

    /// The subdevice identities, in file order.
    pub fn subdevices(&self) -> Result<Vec<DeviceId>, IdError> {
        let Some(sub) = &self.sub_dev else {
            return Ok(Vec::new());
        };
        sub.subdev_list
            .iter()
            .map(|e| DeviceId::new(e.product_id.clone(), e.device_name.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
    "auth_mode":"KEY",
    "productId":"JR1WOKB7Q7",
    "productSecret":"YOUR_PRODUCT_SECRET",
    "deviceName":"gw_deng1",
    "key_deviceinfo":{
        "deviceSecret":"1RRdhkwmZ45wYXjuPfygeA=="
    },
    "cert_deviceinfo":{
        "devCertFile":"YOUR_DEVICE_CERT_FILE_NAME",
        "devPrivateKeyFile":"YOUR_DEVICE_PRIVATE_KEY_FILE_NAME"
    },
    "subDev":{
        "subdev_num":2,
        "subdev_list":
        [
                {"sub_productId": "E69UADXUYY", "sub_devName": "light1"},
                {"sub_productId": "YI7XCD5DRH", "sub_devName": "airConditioner1"}
        ]
    },
    "region":"china"
}"#;

    #[test]
    fn reads_the_sdk_sample_format() {
        let info = DeviceInfo::parse(SAMPLE).unwrap();
        assert_eq!(info.device_id().unwrap().client_id(), "JR1WOKB7Q7gw_deng1");
        assert_eq!(info.device_secret(), Some("1RRdhkwmZ45wYXjuPfygeA=="));
        let subs = info.subdevices().unwrap();
        assert_eq!(subs[1].to_string(), "YI7XCD5DRH/airConditioner1");
    }

    #[test]
    fn written_file_reads_back() {
        let gw = DeviceId::new("JR1WOKB7Q7", "gw_deng1").unwrap();
        let sub = DeviceId::new("E69UADXUYY", "light1").unwrap();
        let info = DeviceInfo::key_gateway(&gw, "c2VjcmV0", std::slice::from_ref(&sub));
        assert_eq!(DeviceInfo::parse(&info.to_json()).unwrap(), info);
    }

    #[test]
    fn invalid_files_are_errors() {
        assert!(DeviceInfo::parse("{").is_err());
        let bad_name = SAMPLE.replace("light1", "../light1");
        assert!(matches!(
            DeviceInfo::parse(&bad_name),
            Err(DeviceInfoError::Id(_))
        ));
        let no_secret = r#"{"auth_mode":"KEY","productId":"P","deviceName":"d"}"#;
        assert!(matches!(
            DeviceInfo::parse(no_secret),
            Err(DeviceInfoError::MissingSecret)
        ));
    }
}
