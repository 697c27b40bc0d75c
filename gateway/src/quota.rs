//! The images directory's storage quota: a download reserves its image's size before it
//! starts and keeps the reservation until the burns that need it are done.

use crate::update::Failure;
use otasim_protocol::OtaResultCode;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

type Reservations = BTreeMap<[u8; 16], (u64, usize)>;

/// The quota and the reservations of running updates.
#[derive(Debug)]
pub(crate) struct Quota {
    dir: PathBuf,
    limit_bytes: Option<u64>,
    reserved: Arc<Mutex<Reservations>>,
}

/// Held while an update uses its image; dropping it releases the reservation.
#[derive(Debug)]
pub(crate) struct Reservation {
    md5: [u8; 16],
    reserved: Arc<Mutex<Reservations>>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut map = self
            .reserved
            .lock()
            .expect("no panics under the quota lock");
        if let Some((_, users)) = map.get_mut(&self.md5) {
            *users -= 1;
            if *users == 0 {
                map.remove(&self.md5);
            }
        }
    }
}

impl Quota {
    pub(crate) fn new(dir: PathBuf, limit_bytes: Option<u64>) -> Self {
        Quota {
            dir,
            limit_bytes,
            reserved: Arc::default(),
        }
    }

    /// Reserves room for an image of `size` bytes, deleting finished images no update uses
    /// if that makes room; fails with `-5` and both numbers when it cannot.
    pub(crate) fn reserve(&self, md5: [u8; 16], size: u64) -> Result<Reservation, Failure> {
        let mut map = self
            .reserved
            .lock()
            .expect("no panics under the quota lock");
        let reservation = |map: &mut Reservations| {
            map.entry(md5).or_insert((size, 0)).1 += 1;
            Reservation {
                md5,
                reserved: Arc::clone(&self.reserved),
            }
        };
        let Some(limit) = self.limit_bytes else {
            return Ok(reservation(&mut map));
        };
        if map.contains_key(&md5) {
            return Ok(reservation(&mut map));
        }
        let mut files = image_files(&self.dir);
        let own = hex::encode(md5);
        files.retain(|f| f.stem != own);
        let in_use = |f: &ImageFile| map.keys().any(|m| hex::encode(m) == f.stem);
        let reserved: u64 = map.values().map(|(s, _)| s).sum();
        let mut used: u64 = reserved
            + files
                .iter()
                .filter(|f| !in_use(f))
                .map(|f| f.len)
                .sum::<u64>();
        // Oldest finished images go first; partial downloads are kept for their resume.
        files.sort_by_key(|f| f.modified);
        for f in files.iter().filter(|f| f.finished && !in_use(f)) {
            if used.saturating_add(size) <= limit {
                break;
            }
            match std::fs::remove_file(&f.path) {
                Ok(()) => {
                    info!(path = %f.path.display(), "evicted unused image for the storage quota");
                    used -= f.len;
                }
                Err(error) => warn!(%error, path = %f.path.display(), "could not evict image"),
            }
        }
        if used.saturating_add(size) > limit {
            return Err(Failure::new(
                OtaResultCode::UpgradeFailed,
                format!(
                    "storage quota of {limit} bytes exceeded: the image needs {size} bytes \
                     and {used} bytes are in use by other images"
                ),
            ));
        }
        Ok(reservation(&mut map))
    }
}

struct ImageFile {
    path: PathBuf,
    stem: String,
    len: u64,
    finished: bool,
    modified: Option<std::time::SystemTime>,
}

/// The files of the images directory, grouped by the MD5 that names them.
fn image_files(dir: &Path) -> Vec<ImageFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let meta = e.metadata().ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.split('.').next()?.to_owned();
            Some(ImageFile {
                path: e.path(),
                finished: name.ends_with(".bin"),
                stem,
                len: meta.len(),
                modified: meta.modified().ok(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_refuses_an_image_that_does_not_fit_and_says_why() {
        let dir = tempfile::tempdir().expect("temp dir");
        let quota = Quota::new(dir.path().to_path_buf(), Some(1000));
        let a = quota.reserve([1; 16], 600).expect("fits");
        let error = quota.reserve([2; 16], 600).expect_err("does not fit");
        assert_eq!(error.code, OtaResultCode::UpgradeFailed);
        assert!(
            error.message.contains("quota of 1000 bytes"),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("needs 600 bytes"),
            "{}",
            error.message
        );
        let shared = quota
            .reserve([1; 16], 600)
            .expect("same image shares the reservation");
        drop((a, shared));
        quota.reserve([2; 16], 600).expect("fits once released");
    }

    #[test]
    fn unused_finished_images_are_evicted_but_partials_are_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let old = dir.path().join(format!("{}.bin", hex::encode([7u8; 16])));
        let part = dir.path().join(format!("{}.part", hex::encode([8u8; 16])));
        std::fs::write(&old, vec![0u8; 500]).expect("write");
        std::fs::write(&part, vec![0u8; 300]).expect("write");
        let quota = Quota::new(dir.path().to_path_buf(), Some(1000));
        let _held = quota.reserve([1; 16], 600).expect("fits after eviction");
        assert!(!old.exists() && part.exists());
        let error = quota
            .reserve([2; 16], 200)
            .expect_err("partial and reservation fill it");
        assert!(
            error.message.contains("900 bytes are in use"),
            "{}",
            error.message
        );
    }
}
