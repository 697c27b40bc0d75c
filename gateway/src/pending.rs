//! The update each subdevice was working on, kept on disk so that a rebooted gateway carries
//! on by itself: the Hub does not re-send a command it believes is being downloaded.
//!
//! `{state_dir}/updates/{pid}/{dn}.json` holds the raw `update_firmware` from when it is
//! accepted until its `done` or `fail` is reported. On boot the driver replays it once the
//! subdevice is online again; the downloader then resumes from its checkpoint (or reuses the
//! finished image), and a command for the version already running reports `done` at once.

use crate::burner::write_atomically;
use otasim_protocol::{DeviceId, UpdateFirmware};
use std::path::PathBuf;
use tracing::warn;

#[derive(Debug, Clone)]
pub(crate) struct PendingStore {
    dir: PathBuf,
}

impl PendingStore {
    pub(crate) fn new(state_dir: &std::path::Path) -> Self {
        PendingStore {
            dir: state_dir.join("updates"),
        }
    }

    /// `DeviceId` parts cannot contain `/` or `..`, so this stays under the directory.
    fn path(&self, device: &DeviceId) -> PathBuf {
        self.dir
            .join(device.product_id())
            .join(format!("{}.json", device.device_name()))
    }

    pub(crate) fn load(&self, device: &DeviceId) -> Option<UpdateFirmware> {
        let bytes = std::fs::read(self.path(device)).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(cmd) => Some(cmd),
            Err(error) => {
                warn!(%device, %error, "unreadable pending update ignored");
                None
            }
        }
    }

    pub(crate) fn save(&self, device: &DeviceId, cmd: &UpdateFirmware) {
        let path = self.path(device);
        let json = serde_json::to_vec(cmd).expect("a command always serializes");
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| write_atomically(&path, &json));
        if let Err(error) = written {
            warn!(%device, %error, path = %path.display(), "pending update not saved");
        }
    }

    pub(crate) fn clear(&self, device: &DeviceId) {
        match std::fs::remove_file(self.path(device)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                warn!(%device, error = %e, "pending update not cleared");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_command_survives_until_cleared() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = PendingStore::new(dir.path());
        let dev = DeviceId::new("E69UADXUYY", "light1").expect("id");
        assert_eq!(store.load(&dev), None);
        let cmd = UpdateFirmware {
            file_size: 10,
            md5sum: "20a4d2b1f8492a22fa3e472a758bf9ec".into(),
            url: "http://127.0.0.1/x".into(),
            version: "2.0".into(),
        };
        store.save(&dev, &cmd);
        assert_eq!(PendingStore::new(dir.path()).load(&dev), Some(cmd));
        store.clear(&dev);
        store.clear(&dev);
        assert_eq!(store.load(&dev), None);
    }
}
