//! `FILE.part`: created exclusively and locked, removed unless committed, renamed into place and
//! the directory fsynced.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::SaveError;

/// The `.part` path for `target`: `FILE.part`, as etcdctl uses.
pub fn part_path(target: &Path) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// A `FILE.part` being written; removed on drop unless committed.
#[derive(Debug)]
pub struct PartFile {
    part: PathBuf,
    target: PathBuf,
    /// Kept open (and locked) until commit so a concurrent save cannot take it over.
    lock: Option<File>,
    committed: bool,
}

/// What [`PartFile::create`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    /// No earlier `.part`.
    None,
    /// An earlier `.part` (from a killed save) was removed; its size.
    Removed(u64),
}

impl PartFile {
    /// Creates `target.part` (mode 0600) exclusively and locks it, first removing a leftover
    /// `.part` from an earlier, killed save (unless another live save holds its lock).
    pub fn create(target: &Path) -> Result<(Self, File, Leftover), SaveError> {
        let part = part_path(target);
        let mut leftover = Leftover::None;
        if let Ok(meta) = std::fs::symlink_metadata(&part) {
            if let Ok(existing) = File::open(&part) {
                match existing.try_lock() {
                    Ok(()) => {}
                    Err(std::fs::TryLockError::WouldBlock) => {
                        return Err(SaveError::Busy {
                            target: target.to_path_buf(),
                            part,
                        });
                    }
                    Err(std::fs::TryLockError::Error(_)) => {}
                }
            }
            std::fs::remove_file(&part).map_err(|error| SaveError::Create {
                path: part.clone(),
                error,
            })?;
            leftover = Leftover::Removed(meta.len());
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&part)
            .map_err(|error| SaveError::Create {
                path: part.clone(),
                error,
            })?;
        let lock = file.try_clone().map_err(|error| SaveError::Create {
            path: part.clone(),
            error,
        })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SaveError::Busy {
                    target: target.to_path_buf(),
                    part,
                });
            }
            // Locks unsupported on this file system: carry on without.
            Err(std::fs::TryLockError::Error(_)) => {}
        }
        Ok((
            PartFile {
                part,
                target: target.to_path_buf(),
                lock: Some(lock),
                committed: false,
            },
            file,
            leftover,
        ))
    }

    /// The `.part` path.
    pub fn path(&self) -> &Path {
        &self.part
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Renames the (already fsynced) part file to the target and fsyncs the directory.
    pub fn commit(mut self) -> Result<PathBuf, SaveError> {
        std::fs::rename(&self.part, &self.target).map_err(|error| SaveError::Rename {
            part: self.part.clone(),
            target: self.target.clone(),
            error,
        })?;
        self.committed = true;
        self.lock.take();
        sync_dir(&self.target)?;
        Ok(self.target.clone())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

/// fsyncs the directory holding `path`, so a rename in it survives a crash.
pub fn sync_dir(path: &Path) -> Result<(), SaveError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|error| SaveError::Write {
            path: dir.to_path_buf(),
            error,
        })
}

/// Writes `bytes` to `target` atomically (`.part`, fsync, rename, fsync dir); for small files
/// such as the manifest.
pub fn write_atomically(target: &Path, bytes: &[u8]) -> Result<(), SaveError> {
    let (part, mut file, _) = PartFile::create(target)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| SaveError::Write {
            path: part.path().to_path_buf(),
            error,
        })?;
    drop(file);
    part.commit().map(|_| ())
}
