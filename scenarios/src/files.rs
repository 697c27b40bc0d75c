//! Finding scenario files: a file is itself, a folder is every `*.toml` under it, sorted.
//! A path that does not exist, or a folder with no scenario, is an error that names it.

use std::path::{Path, PathBuf};

/// Why the scenario files could not be found.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// A path could not be read (missing, unreadable).
    #[error("{path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A folder holds no `*.toml` file.
    #[error("{path}: no scenario files (*.toml) in this folder")]
    Empty {
        /// The folder.
        path: PathBuf,
    },
}

/// The scenario files named by `paths`, folders expanded recursively, in a stable order.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, DiscoverError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| DiscoverError::Read {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            let before = out.len();
            walk(p, &mut out).map_err(|source| DiscoverError::Read {
                path: p.clone(),
                source,
            })?;
            if out.len() == before {
                return Err(DiscoverError::Empty { path: p.clone() });
            }
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_folder_and_a_missing_file_are_errors_naming_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let e = discover(&[dir.path().to_owned()]).unwrap_err();
        assert!(matches!(e, DiscoverError::Empty { .. }));
        assert!(e.to_string().contains(&dir.path().display().to_string()));
        let missing = dir.path().join("missing.toml");
        let e = discover(std::slice::from_ref(&missing)).unwrap_err();
        assert!(matches!(e, DiscoverError::Read { .. }));
        assert!(e.to_string().starts_with(&missing.display().to_string()));
    }
}
