//! Burning an image into a subdevice: the `Burner` trait and the simulated burner.

use otasim_protocol::DeviceId;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

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
}

/// Writes a verified image into a subdevice over whatever local link the gateway has.
pub trait Burner: Send + Sync + 'static {
    /// Burns `image` (already verified) into `device`, which then runs `version`.
    fn burn<'a>(
        &'a self,
        device: &'a DeviceId,
        image: &'a Path,
        version: &'a str,
    ) -> BurnFuture<'a>;

    /// The version `device` runs now, if the burner knows it.
    fn running_version(&self, device: &DeviceId) -> Option<String>;
}

/// A burner that simulates each subdevice's flash as files under a directory:
/// `{dir}/{pid}/{dn}/image.bin` and `{dir}/{pid}/{dn}/version`.
#[derive(Debug, Clone)]
pub struct SimulatedBurner {
    dir: PathBuf,
}

impl SimulatedBurner {
    /// A simulated burner keeping flash images under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SimulatedBurner { dir: dir.into() }
    }

    /// Where `device`'s flash lives. `DeviceId` parts cannot contain `/` or `..`.
    pub fn flash_dir(&self, device: &DeviceId) -> PathBuf {
        self.dir
            .join(device.product_id())
            .join(device.device_name())
    }

    /// Sets the version a device runs before any burn (factory state), unless it has one.
    pub fn provision(&self, device: &DeviceId, version: &str) -> io::Result<()> {
        let dir = self.flash_dir(device);
        if dir.join("version").exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&dir)?;
        write_atomically(&dir.join("version"), version.as_bytes())
    }

    async fn burn_files(&self, device: &DeviceId, image: &Path, version: &str) -> io::Result<()> {
        let dir = self.flash_dir(device);
        tokio::fs::create_dir_all(&dir).await?;
        let staged = dir.join("image.bin.new");
        tokio::fs::copy(image, &staged).await?;
        tokio::fs::File::open(&staged).await?.sync_all().await?;
        tokio::fs::rename(&staged, dir.join("image.bin")).await?;
        let dir2 = dir.clone();
        let version = version.to_owned();
        tokio::task::spawn_blocking(move || {
            write_atomically(&dir2.join("version"), version.as_bytes())
        })
        .await
        .map_err(io::Error::other)?
    }
}

impl Burner for SimulatedBurner {
    fn burn<'a>(
        &'a self,
        device: &'a DeviceId,
        image: &'a Path,
        version: &'a str,
    ) -> BurnFuture<'a> {
        Box::pin(async move {
            self.burn_files(device, image, version)
                .await
                .map_err(|source| BurnError::Io {
                    device: device.clone(),
                    source,
                })
        })
    }

    fn running_version(&self, device: &DeviceId) -> Option<String> {
        let text = std::fs::read_to_string(self.flash_dir(device).join("version")).ok()?;
        Some(text.trim().to_owned())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn simulated_burn_writes_flash_and_adopts_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let burner = SimulatedBurner::new(dir.path().join("flash"));
        let dev = DeviceId::new("E69UADXUYY", "light1").unwrap();
        burner.provision(&dev, "0.1").unwrap();
        assert_eq!(burner.running_version(&dev).as_deref(), Some("0.1"));
        let image = dir.path().join("img");
        std::fs::write(&image, b"firmware").unwrap();
        burner.burn(&dev, &image, "1.0").await.unwrap();
        assert_eq!(burner.running_version(&dev).as_deref(), Some("1.0"));
        assert_eq!(
            std::fs::read(burner.flash_dir(&dev).join("image.bin")).unwrap(),
            b"firmware"
        );
        burner.provision(&dev, "0.1").unwrap();
        assert_eq!(
            burner.running_version(&dev).as_deref(),
            Some("1.0"),
            "provision keeps a burned version"
        );
    }

    #[tokio::test]
    async fn burning_a_missing_image_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let burner = SimulatedBurner::new(dir.path());
        let dev = DeviceId::new("E69UADXUYY", "light1").unwrap();
        let err = burner
            .burn(&dev, &dir.path().join("nope"), "1.0")
            .await
            .unwrap_err();
        assert!(matches!(err, BurnError::Io { .. }));
    }
}
