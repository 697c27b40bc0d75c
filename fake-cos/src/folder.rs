//! Loading a folder of firmware files as objects, for `otasim cos --dir`.

use std::path::{Path, PathBuf};

use crate::name::ObjectName;
use crate::store::StoredObject;
use crate::{Cos, CosError, ObjectInfo};

/// What [`Cos::put_dir`] stored and what it left out.
#[derive(Debug, Clone, Default)]
pub struct FolderLoad {
    /// The objects stored, ordered by name.
    pub loaded: Vec<ObjectInfo>,
    /// Entries not stored, with the reason (an invalid name, not a regular file, unreadable).
    pub skipped: Vec<(PathBuf, String)>,
}

impl Cos {
    /// Stores every regular file directly in `dir` as an object named after the file; entries
    /// whose name is not a valid object name, subfolders and unreadable files are skipped and
    /// listed. A symbolic link is followed only to a regular file inside `dir`: one that leads
    /// out of the folder (to `/etc/passwd`, say) is skipped, so serving a folder never serves
    /// more than the folder. Fails only if `dir` itself cannot be listed.
    pub fn put_dir(&self, dir: &Path) -> Result<FolderLoad, CosError> {
        let folder_error = |source| CosError::Folder {
            path: dir.to_owned(),
            source,
        };
        let root = std::fs::canonicalize(dir).map_err(folder_error)?;
        let mut paths = std::fs::read_dir(dir)
            .map_err(folder_error)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(folder_error)?;
        paths.sort();
        let mut load = FolderLoad::default();
        for path in paths {
            match self.put_file(&root, &path) {
                Ok(info) => load.loaded.push(info),
                Err(reason) => load.skipped.push((path, reason)),
            }
        }
        load.loaded.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(load)
    }

    fn put_file(&self, root: &Path, path: &Path) -> Result<ObjectInfo, String> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("the file name is not UTF-8")?;
        let name = ObjectName::parse(name).map_err(|e| e.to_string())?;
        // The file the entry really is, links resolved; read by that path so a link swapped
        // after this check cannot redirect the read.
        let target = std::fs::canonicalize(path).map_err(|e| e.to_string())?;
        if !target.starts_with(root) {
            return Err(format!(
                "a symbolic link out of the folder (to {}): not served",
                target.display()
            ));
        }
        let meta = std::fs::symlink_metadata(&target).map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err("not a regular file".into());
        }
        // Streamed into the store, so serving a large file never holds it in the heap.
        let mut file = std::fs::File::open(&target).map_err(|e| e.to_string())?;
        let object = StoredObject::load(&name, &mut file, self.shared.clock.now())
            .map_err(|e| format!("reading {}: {e}", target.display()))?;
        Ok(self.shared.store.put(name, object).info.clone())
    }
}
