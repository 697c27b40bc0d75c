//! The gateway's configuration, validated before anything runs.

use crate::burner::SimulatedBurn;
use crate::download::DownloadConfig;
use crate::tls::TlsSettings;
use otasim_protocol::{DeviceId, DeviceInfo};
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

/// Where the Hub's MQTT listener is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubAddress {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// One subdevice the gateway serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubdeviceConfig {
    /// Its identity.
    pub id: DeviceId,
    /// The version it runs before the gateway ever burned it.
    pub factory_version: String,
}

/// Everything a gateway needs to run.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The gateway's own identity.
    pub device: DeviceId,
    /// The gateway's base64 device secret (key auth).
    pub secret: String,
    /// The Hub's MQTT address.
    pub hub: HubAddress,
    /// The subdevices, in the order they are brought online.
    pub subdevices: Vec<SubdeviceConfig>,
    /// Where images, checkpoints and simulated flash live.
    pub state_dir: PathBuf,
    /// Images larger than this are refused before downloading.
    pub max_image_bytes: u64,
    /// MQTT keepalive.
    pub keepalive: Duration,
    /// Download timeouts, retries and checkpointing.
    pub download: DownloadConfig,
}

impl GatewayConfig {
    /// A configuration from the SDKs' `device_info.json`, with every subdevice on
    /// `factory_version` and defaults for the rest.
    pub fn from_device_info(
        info: &DeviceInfo,
        hub: HubAddress,
        state_dir: PathBuf,
        factory_version: &str,
    ) -> Result<Self, otasim_protocol::DeviceInfoError> {
        let secret = info
            .device_secret()
            .ok_or(otasim_protocol::DeviceInfoError::MissingSecret)?
            .to_owned();
        let subdevices = info
            .subdevices()?
            .into_iter()
            .map(|id| SubdeviceConfig {
                id,
                factory_version: factory_version.to_owned(),
            })
            .collect();
        Ok(GatewayConfig {
            device: info.device_id()?,
            secret,
            hub,
            subdevices,
            state_dir,
            max_image_bytes: 512 * 1024 * 1024,
            keepalive: Duration::from_secs(60),
            download: DownloadConfig::default(),
        })
    }
}

/// How the gateway burns images into its subdevices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BurnerChoice {
    /// The simulated burner (flash as files under `{state_dir}/flash`), with per-subdevice
    /// behaviours; subdevices not listed succeed at once.
    Simulated(BTreeMap<DeviceId, SimulatedBurn>),
    /// Run this program for every burn (see [`crate::CommandBurner`]).
    Command(PathBuf),
}

/// Settings beyond identity and addresses. Start from [`GatewayOptions::new`] and change
/// what you need.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Updates (download and burn) running at once, over all subdevices.
    pub max_concurrent: NonZeroUsize,
    /// Most bytes the images directory may hold (finished images and partial downloads);
    /// `None` for no limit besides `max_image_bytes` per image.
    pub storage_quota_bytes: Option<u64>,
    /// The burner.
    pub burner: BurnerChoice,
    /// TLS for MQTT (`None`: plain TCP).
    pub mqtt_tls: Option<TlsSettings>,
    /// Trust for `https://` image URLs (`None`: https URLs fail with a clear report).
    pub https_ca: Option<TlsSettings>,
}

impl GatewayOptions {
    /// 4 concurrent updates, no quota, the simulated burner, no TLS.
    pub fn new() -> Self {
        GatewayOptions {
            max_concurrent: NonZeroUsize::new(4).expect("4 is not zero"),
            storage_quota_bytes: None,
            burner: BurnerChoice::Simulated(BTreeMap::new()),
            mqtt_tls: None,
            https_ca: None,
        }
    }
}

impl Default for GatewayOptions {
    /// Same as [`GatewayOptions::new`].
    fn default() -> Self {
        GatewayOptions::new()
    }
}
