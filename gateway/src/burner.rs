//! Burning an image into a subdevice: the `Burner` trait, the simulated burner and the command
//! burner for real hardware.

mod command;
mod simulated;

pub use command::CommandBurner;
pub use simulated::{SimulatedBurn, SimulatedBurner};

use otasim_protocol::DeviceId;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use tokio_util::sync::CancellationToken;

/// A boxed future, so burners can be chosen at run time.
pub type BurnFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BurnError>> + Send + 'a>>;

/// Why a burn failed.
#[derive(Debug, thiserror::Error)]
pub enum BurnError {
    /// The burner could not read the image or write the device.
    #[error("burning {device}: {source}")]
    Io {
        /// The subdevice.
        device: DeviceId,
        /// The I/O error.
        source: io::Error,
    },
    /// The device refused or failed the burn.
    #[error("burning {device} failed: {reason}")]
    Failed {
        /// The subdevice.
        device: DeviceId,
        /// What the device or tool said.
        reason: String,
    },
    /// The subdevice stopped answering during the burn.
    #[error("burning {device} failed: subdevice went offline at {percent}% of the burn")]
    Offline {
        /// The subdevice.
        device: DeviceId,
        /// How far the burn had come.
        percent: u8,
    },
    /// The gateway is shutting down; the subdevice keeps its previous image.
    #[error("burning {device} cancelled at {percent}%")]
    Cancelled {
        /// The subdevice.
        device: DeviceId,
        /// How far the burn had come.
        percent: u8,
    },
}

/// One burn: what to write where, and how to talk back.
pub struct BurnRequest<'a> {
    /// The subdevice.
    pub device: &'a DeviceId,
    /// The verified image.
    pub image: &'a Path,
    /// The version the subdevice runs after the burn.
    pub version: &'a str,
    /// Called with the percentage burned, 0 to 100, as it grows.
    pub progress: &'a (dyn Fn(u8) + Send + Sync),
    /// Fires when the burn must stop (gateway shutdown).
    pub cancel: &'a CancellationToken,
}

/// Writes a verified image into a subdevice over whatever local link the gateway has.
pub trait Burner: Send + Sync + 'static {
    /// Burns `request.image` (already verified) into `request.device`.
    fn burn<'a>(&'a self, request: BurnRequest<'a>) -> BurnFuture<'a>;

    /// The version `device` runs now, if the burner knows it. The gateway checks it after
    /// every burn: a device that reports another version than the one burned failed.
    fn running_version(&self, device: &DeviceId) -> Option<String>;
}

/// Replaces `path` with `data` so that a crash leaves either the old or the new content.
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Where a burner keeps what each device runs: `{dir}/{pid}/{dn}/version`.
#[derive(Debug, Clone)]
pub(crate) struct VersionStore {
    dir: std::path::PathBuf,
}

impl VersionStore {
    pub(crate) fn new(dir: std::path::PathBuf) -> Self {
        VersionStore { dir }
    }

    /// `DeviceId` parts cannot contain `/` or `..`, so this stays under the directory.
    pub(crate) fn device_dir(&self, device: &DeviceId) -> std::path::PathBuf {
        self.dir
            .join(device.product_id())
            .join(device.device_name())
    }

    pub(crate) fn read(&self, device: &DeviceId) -> Option<String> {
        let text = std::fs::read_to_string(self.device_dir(device).join("version")).ok()?;
        Some(text.trim().to_owned())
    }

    pub(crate) fn write(&self, device: &DeviceId, version: &str) -> io::Result<()> {
        let dir = self.device_dir(device);
        std::fs::create_dir_all(&dir)?;
        write_atomically(&dir.join("version"), version.as_bytes())
    }

    /// Sets the factory version unless the device already has one.
    pub(crate) fn provision(&self, device: &DeviceId, version: &str) -> io::Result<()> {
        if self.device_dir(device).join("version").exists() {
            return Ok(());
        }
        self.write(device, version)
    }
}
