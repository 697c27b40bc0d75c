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
    /// Downloads running at once, over all subdevices (a burn needs no slot: each subdevice
    /// has its own link).
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
    /// Longest a burn may take before it fails with `-5` and frees its subdevice.
    pub burn_timeout: Duration,
    /// How long to wait for the Hub's answer to `online` (and before retrying a refused OTA
    /// subscription); doubled on every retry up to [`MAX_ONLINE_RETRY`].
    pub online_retry: Duration,
    /// Largest MQTT packet accepted from the Hub (topic, payload and header).
    pub max_incoming_bytes: NonZeroUsize,
    /// How many partial downloads of failed updates are kept for a later resume, and how long.
    pub partials: PartialRetention,
}

/// The longest wait between two `online` attempts for one subdevice.
pub const MAX_ONLINE_RETRY: Duration = Duration::from_secs(300);

/// Partial images of failed downloads kept for a resume: at most `max_count`, none older than
/// `max_age`. Partials of running downloads are never removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialRetention {
    /// Most partials of failed downloads kept.
    pub max_count: usize,
    /// A partial untouched for longer is deleted.
    pub max_age: Duration,
}

impl Default for PartialRetention {
    /// 3 partials, 72 hours: a retry of the Hub's task or a push the next day still resumes.
    fn default() -> Self {
        PartialRetention {
            max_count: 3,
            max_age: Duration::from_secs(72 * 3600),
        }
    }
}

impl GatewayOptions {
    /// 4 concurrent downloads, no quota, the simulated burner, no TLS, burns of at most 10
    /// minutes, `online` answered within 10 s, Hub packets up to 256 KiB, default retention of
    /// partial images.
    pub fn new() -> Self {
        GatewayOptions {
            max_concurrent: NonZeroUsize::new(4).expect("4 is not zero"),
            storage_quota_bytes: None,
            burner: BurnerChoice::Simulated(BTreeMap::new()),
            mqtt_tls: None,
            https_ca: None,
            burn_timeout: Duration::from_secs(600),
            online_retry: Duration::from_secs(10),
            max_incoming_bytes: NonZeroUsize::new(256 << 10).expect("not zero"),
            partials: PartialRetention::default(),
        }
    }
}

impl Default for GatewayOptions {
    /// Same as [`GatewayOptions::new`].
    fn default() -> Self {
        GatewayOptions::new()
    }
}
