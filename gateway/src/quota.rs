//! The images directory's storage quota: a download reserves its image's size before it
//! starts and keeps the reservation until the burns that need it are done. Room is made by
//! deleting the least recently used images no update holds, finished or partial; partials of
//! failed downloads are kept for a resume only within the retention count and age.

use crate::PartialRetention;
use crate::update::Failure;
use otasim_protocol::OtaResultCode;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tracing::{info, warn};

type Reservations = BTreeMap<[u8; 16], (u64, usize)>;

/// The quota and the reservations of running updates.
#[derive(Debug)]
pub(crate) struct Quota {
    dir: PathBuf,
    limit_bytes: Option<u64>,
    retention: PartialRetention,
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
    pub(crate) fn new(dir: PathBuf, limit_bytes: Option<u64>, retention: PartialRetention) -> Self {
        Quota {
            dir,
            limit_bytes,
            retention,
            reserved: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reservations> {
        self.reserved
            .lock()
            .expect("no panics under the quota lock")
    }

    /// Reserves room for an image of `size` bytes, deleting the least recently used images
    /// and partial downloads no update uses if that makes room; fails with `-5` and both
    /// numbers when it cannot.
    pub(crate) fn reserve(&self, md5: [u8; 16], size: u64) -> Result<Reservation, Failure> {
        let mut map = self.lock();
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
        let own = hex::encode(md5);
        let mut images = unused_images(&self.dir, &map);
        images.retain(|i| i.stem != own);
        let reserved: u64 = map.values().map(|(s, _)| s).sum();
        // Files the gateway did not write use the space too, and are never deleted.
        let mut used =
            reserved + foreign_bytes(&self.dir) + images.iter().map(|i| i.len).sum::<u64>();
        // Least recently used first: finished images and partials alike.
        images.sort_by_key(|i| i.modified);
        for image in &images {
            if used.saturating_add(size) <= limit {
                break;
            }
            if image.remove() {
                info!(image = %image.stem, bytes = image.len, partial = !image.finished, "evicted for the storage quota");
                used -= image.len;
            }
        }
        if used.saturating_add(size) > limit {
            return Err(Failure::new(
                OtaResultCode::UpgradeFailed,
                format!(
                    "storage quota of {limit} bytes exceeded: the image needs {size} bytes \
                     and {used} bytes are in use by other images and files"
                ),
            ));
        }
        Ok(reservation(&mut map))
    }

    /// Deletes partial downloads no update uses once they are older than the retention age,
    /// and the oldest beyond the retention count.
    pub(crate) fn prune_partials(&self) {
        let map = self.lock();
        let mut partials: Vec<Image> = unused_images(&self.dir, &map)
            .into_iter()
            .filter(|i| !i.finished)
            .collect();
        // Newest first: those are kept.
        partials.sort_by_key(|i| std::cmp::Reverse(i.modified));
        let now = SystemTime::now();
        for (rank, image) in partials.iter().enumerate() {
            let age = image
                .modified
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            let too_many = rank >= self.retention.max_count;
            if (too_many || age > self.retention.max_age) && image.remove() {
                info!(image = %image.stem, bytes = image.len, ?age, "partial download dropped");
            }
        }
    }
}

/// One image's files (`{md5}.part`, `.ckpt`, `.bin`, ...), grouped by the MD5 naming them.
struct Image {
    stem: String,
    paths: Vec<PathBuf>,
    len: u64,
    finished: bool,
    modified: Option<SystemTime>,
}

impl Image {
    /// Deletes every file of the image; `true` if all went.
    fn remove(&self) -> bool {
        let mut ok = true;
        for path in &self.paths {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    warn!(error = %e, path = %path.display(), "could not delete image file");
                    ok = false;
                }
                _ => {}
            }
        }
        ok
    }
}

/// The bytes of the directory's files that are not the gateway's own (named by an MD5).
fn foreign_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.split('.').next().is_none_or(|stem| stem.len() != 32)
        })
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// The images of the directory that no reservation holds.
fn unused_images(dir: &Path, reserved: &Reservations) -> Vec<Image> {
    let in_use: Vec<String> = reserved.keys().map(hex::encode).collect();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut images: BTreeMap<String, Image> = BTreeMap::new();
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.split('.').next().filter(|s| s.len() == 32) else {
            continue;
        };
        if in_use.iter().any(|m| m == stem) || !meta.is_file() {
            continue;
        }
        let image = images.entry(stem.to_owned()).or_insert_with(|| Image {
            stem: stem.to_owned(),
            paths: Vec::new(),
            len: 0,
            finished: false,
            modified: None,
        });
        image.paths.push(e.path());
        image.len += meta.len();
        image.finished |= name.ends_with(".bin");
        image.modified = image.modified.max(meta.modified().ok());
    }
    images.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_refuses_an_image_that_does_not_fit_and_says_why() {
        let dir = tempfile::tempdir().expect("temp dir");
        let quota = Quota::new(dir.path().to_path_buf(), Some(1000), keep_all());
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

    fn keep_all() -> PartialRetention {
        PartialRetention {
            max_count: 100,
            max_age: std::time::Duration::from_secs(3600),
        }
    }

    fn image(dir: &Path, byte: u8, ext: &str, len: usize, age_secs: u64) -> PathBuf {
        let path = dir.join(format!("{}.{ext}", hex::encode([byte; 16])));
        let f = std::fs::File::create(&path).expect("create");
        f.set_len(len as u64).expect("size");
        let when = SystemTime::now() - std::time::Duration::from_secs(age_secs);
        f.set_modified(when).expect("mtime");
        path
    }

    #[test]
    fn least_recently_used_images_and_partials_make_room_but_never_one_in_use() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let oldest_part = image(d, 7, "part", 300, 300);
        let old_bin = image(d, 8, "bin", 300, 200);
        let newer_part = image(d, 9, "part", 300, 100);
        let quota = Quota::new(d.to_path_buf(), Some(1000), keep_all());
        let held = quota
            .reserve([9; 16], 300)
            .expect("its own partial is its room");
        let _room = quota
            .reserve([1; 16], 500)
            .expect("fits after evicting the two oldest");
        assert!(!oldest_part.exists() && !old_bin.exists());
        assert!(newer_part.exists(), "in use: never evicted");
        let error = quota
            .reserve([2; 16], 300)
            .expect_err("only in-use images are left");
        assert!(
            error.message.contains("800 bytes are in use"),
            "{}",
            error.message
        );
        drop(held);
    }

    #[test]
    fn partials_of_failed_downloads_are_bounded_in_count_and_age() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let stale = image(d, 1, "part", 10, 10_000);
        let ckpt = image(d, 1, "ckpt", 10, 10_000);
        let parts: Vec<PathBuf> = (2..6)
            .map(|b| image(d, b, "part", 10, u64::from(b) * 10))
            .collect();
        let bin = image(d, 9, "bin", 10, 20_000);
        let retention = PartialRetention {
            max_count: 2,
            max_age: std::time::Duration::from_secs(3600),
        };
        let quota = Quota::new(d.to_path_buf(), None, retention);
        let _used = quota.reserve([5; 16], 10).expect("no limit");
        quota.prune_partials();
        assert!(!stale.exists() && !ckpt.exists(), "too old");
        assert!(
            parts[0].exists() && parts[1].exists(),
            "the two newest are kept"
        );
        assert!(!parts[2].exists(), "beyond the count");
        assert!(parts[3].exists(), "in use: never pruned");
        assert!(bin.exists(), "finished images are not partials");
    }
}
