//! The simulated burner: each subdevice's flash is a pair of files, and per-subdevice
//! behaviours (slow, failing, lying about its version, going offline) come from data.

use super::{BurnError, BurnFuture, BurnRequest, Burner, VersionStore};
use otasim_protocol::DeviceId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How a simulated subdevice takes a burn. Scenario files and `subdevs.toml` set it per
/// subdevice; the default is [`SimulatedBurn::Succeed`] at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SimulatedBurn {
    /// The burn works and takes `duration_ms`.
    Succeed {
        /// How long the whole burn takes.
        #[serde(default)]
        duration_ms: u64,
    },
    /// The flash write fails when the burn reaches `percent`; the old image stays.
    FailAt {
        /// 0 to 100.
        percent: u8,
        /// How long a whole burn would take.
        #[serde(default)]
        duration_ms: u64,
    },
    /// The burn works but the subdevice then runs (and reports) `reports` instead.
    WrongVersion {
        /// The version the subdevice claims after the burn.
        reports: String,
        /// How long the whole burn takes.
        #[serde(default)]
        duration_ms: u64,
    },
    /// The subdevice stops answering when the burn reaches `percent`.
    OfflineAt {
        /// 0 to 100.
        percent: u8,
        /// How long a whole burn would take.
        #[serde(default)]
        duration_ms: u64,
    },
}

impl SimulatedBurn {
    /// A burn that works at once.
    pub fn succeed() -> Self {
        SimulatedBurn::Succeed { duration_ms: 0 }
    }

    /// Checks the fields; the error names the one that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            SimulatedBurn::FailAt { percent, .. } | SimulatedBurn::OfflineAt { percent, .. }
                if *percent > 100 =>
            {
                Err(format!("percent: {percent} is over 100"))
            }
            SimulatedBurn::WrongVersion { reports, .. } => crate::Version::parse(reports)
                .map(drop)
                .map_err(|e| format!("reports: {e}")),
            _ => Ok(()),
        }
    }

    fn duration(&self) -> Duration {
        let (SimulatedBurn::Succeed { duration_ms }
        | SimulatedBurn::FailAt { duration_ms, .. }
        | SimulatedBurn::WrongVersion { duration_ms, .. }
        | SimulatedBurn::OfflineAt { duration_ms, .. }) = self;
        Duration::from_millis(*duration_ms)
    }

    /// The percentage at which the burn stops, with the error it stops with.
    fn stop(&self, device: &DeviceId) -> Option<(u8, BurnError)> {
        match self {
            SimulatedBurn::FailAt { percent, .. } => Some((
                *percent,
                BurnError::Failed {
                    device: device.clone(),
                    reason: format!("flash write failed at {percent}%"),
                },
            )),
            SimulatedBurn::OfflineAt { percent, .. } => Some((
                *percent,
                BurnError::Offline {
                    device: device.clone(),
                    percent: *percent,
                },
            )),
            _ => None,
        }
    }
}

/// Progress steps of a simulated burn.
const STEPS: u8 = 10;

/// A burner that simulates each subdevice's flash as files under a directory:
/// `{dir}/{pid}/{dn}/image.bin` and `{dir}/{pid}/{dn}/version`.
#[derive(Debug, Clone)]
pub struct SimulatedBurner {
    store: VersionStore,
    behaviours: BTreeMap<DeviceId, SimulatedBurn>,
}

impl SimulatedBurner {
    /// A simulated burner keeping flash images under `dir`; every burn succeeds at once.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SimulatedBurner {
            store: VersionStore::new(dir.into()),
            behaviours: BTreeMap::new(),
        }
    }

    /// Sets how `device` takes its burns.
    pub fn set_behaviour(&mut self, device: DeviceId, behaviour: SimulatedBurn) {
        self.behaviours.insert(device, behaviour);
    }

    /// Where `device`'s flash lives. `DeviceId` parts cannot contain `/` or `..`.
    pub fn flash_dir(&self, device: &DeviceId) -> PathBuf {
        self.store.device_dir(device)
    }

    /// Sets the version a device runs before any burn (factory state), unless it has one.
    pub fn provision(&self, device: &DeviceId, version: &str) -> io::Result<()> {
        self.store.provision(device, version)
    }

    async fn stage(&self, device: &DeviceId, image: &Path) -> io::Result<PathBuf> {
        let dir = self.flash_dir(device);
        tokio::fs::create_dir_all(&dir).await?;
        let staged = dir.join("image.bin.new");
        let _ = tokio::fs::remove_file(&staged).await;
        // Verified images are never written again (only renamed into place and deleted), so
        // the simulated flash can share the image's blocks; a copy where links do not work.
        if tokio::fs::hard_link(image, &staged).await.is_err() {
            tokio::fs::copy(image, &staged).await?;
            tokio::fs::File::open(&staged).await?.sync_all().await?;
        }
        Ok(staged)
    }

    async fn commit(&self, device: &DeviceId, staged: &Path, version: &str) -> io::Result<()> {
        tokio::fs::rename(staged, self.flash_dir(device).join("image.bin")).await?;
        let store = self.store.clone();
        let (device, version) = (device.clone(), version.to_owned());
        tokio::task::spawn_blocking(move || store.write(&device, &version))
            .await
            .map_err(io::Error::other)?
    }

    async fn run(&self, request: BurnRequest<'_>) -> Result<(), BurnError> {
        let device = request.device;
        let behaviour = self
            .behaviours
            .get(device)
            .cloned()
            .unwrap_or_else(SimulatedBurn::succeed);
        let io_err = |source| BurnError::Io {
            device: device.clone(),
            source,
        };
        let staged = self.stage(device, request.image).await.map_err(io_err)?;
        let step = behaviour.duration() / u32::from(STEPS);
        let stop = behaviour.stop(device);
        for i in 0..=STEPS {
            let percent = i * (100 / STEPS);
            if let Some((at, _)) = &stop
                && percent >= *at
            {
                let _ = tokio::fs::remove_file(&staged).await;
                return Err(stop.expect("just matched").1);
            }
            (request.progress)(percent);
            if i == STEPS {
                break;
            }
            tokio::select! {
                // Nothing is half-written: the staged copy is only renamed after the last step.
                _ = request.cancel.cancelled() => {
                    let _ = tokio::fs::remove_file(&staged).await;
                    return Err(BurnError::Cancelled { device: device.clone(), percent });
                }
                _ = tokio::time::sleep(step) => {}
            }
        }
        let version = match &behaviour {
            SimulatedBurn::WrongVersion { reports, .. } => reports.as_str(),
            _ => request.version,
        };
        self.commit(device, &staged, version).await.map_err(io_err)
    }
}

impl Burner for SimulatedBurner {
    fn burn<'a>(&'a self, request: BurnRequest<'a>) -> BurnFuture<'a> {
        Box::pin(self.run(request))
    }

    fn running_version(&self, device: &DeviceId) -> Option<String> {
        self.store.read(device)
    }
}

#[cfg(test)]
mod tests;
