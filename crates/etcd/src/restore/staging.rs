//! The staging directories a restore builds in and renames into place, and the leftovers of a
//! killed restore (found by their name and the lock they no longer hold).

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::{Layout, RestoreError, io_err};

/// Staging dirs of earlier restores into these targets that nobody holds any more (killed
/// midway): `DATA/.kubemaint-restore-PID` inside an existing data dir, `.NAME.kubemaint-restore-PID`
/// beside the data and WAL dirs. A restore holds an exclusive `flock` on its staging dirs while it
/// runs, so one in progress — even in another PID namespace sharing the disk — is left alone.
pub(super) fn stale_staging(layout: &Layout) -> Vec<PathBuf> {
    let ours = std::process::id().to_string();
    let named_like_staging = |name: &str, prefix: &str| {
        name.strip_prefix(prefix).is_some_and(|pid| {
            !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && pid != ours
        })
    };
    let mut found = Vec::new();
    let mut scan = |dir: &Path, prefix: &str| {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = dir.join(&name);
            if named_like_staging(&name, prefix)
                && e.file_type().is_ok_and(|t| t.is_dir())
                && !held_by_a_restore(&path)
            {
                found.push(path);
            }
        }
    };
    scan(&layout.data_dir, ".kubemaint-restore-");
    for target in [&layout.data_dir, &layout.wal_dir] {
        if let Some(name) = target.file_name() {
            let prefix = format!(".{}.kubemaint-restore-", name.to_string_lossy());
            scan(&parent_of(target), &prefix);
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Whether a running restore holds its lock on staging dir `dir` (unknown counts as held).
fn held_by_a_restore(dir: &Path) -> bool {
    match File::open(dir) {
        Ok(f) => match f.try_lock() {
            Ok(()) => false,
            Err(std::fs::TryLockError::WouldBlock) => true,
            Err(std::fs::TryLockError::Error(_)) => true,
        },
        Err(_) => true,
    }
}

/// Takes the exclusive lock a restore holds on each of its staging dirs while it runs.
fn lock_staging(dir: &Path) -> Result<File, RestoreError> {
    let f = File::open(dir).map_err(io_err("cannot open staging dir", dir))?;
    f.try_lock()
        .map_err(|e| io_err("cannot lock staging dir", dir)(e.into()))?;
    Ok(f)
}

/// Refuses a non-empty data dir or an existing WAL dir (etcdutl's rules); `leftovers` (stale
/// staging dirs, about to be removed) do not count.
pub(super) fn check_targets(layout: &Layout, leftovers: &[PathBuf]) -> Result<(), RestoreError> {
    let d = &layout.data_dir;
    match std::fs::read_dir(d) {
        Ok(mut it) => {
            // An entry that cannot be read counts as data.
            if it.any(|e| e.map_or(true, |e| !leftovers.contains(&e.path()))) {
                return Err(RestoreError::DataDirNotEmpty(d.clone()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) if d.exists() => return Err(RestoreError::DataDirNotEmpty(d.clone())),
        Err(e) => return Err(io_err("cannot read data dir", d)(e)),
    }
    if layout.separate_wal && layout.wal_dir.symlink_metadata().is_ok() {
        return Err(RestoreError::WalDirExists(layout.wal_dir.clone()));
    }
    Ok(())
}
/// Temporary directories beside the targets; removed on drop unless committed.
pub(super) struct Staging {
    pub(super) data: PathBuf,
    wal: Option<PathBuf>,
    /// Staged inside an existing empty data dir (which may be a mount point, where a rename
    /// over it would fail): only `member/` is renamed into it at the end.
    inside: bool,
    /// A `--wal-dir` inside the data dir, staged at its place inside the staging dir.
    inner_wal: Option<PathBuf>,
    committed: bool,
    /// Locks held on the staging dirs while this restore runs (see [`stale_staging`]).
    _locks: Vec<File>,
}

fn hidden_sibling(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "etcd".into());
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parent.join(format!(".{name}.kubemaint-restore-{}", std::process::id()))
}

fn mkdir(path: &Path) -> Result<(), RestoreError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_err("cannot create directory", path))
}

pub(super) fn fsync_dir(path: &Path) -> Result<(), RestoreError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_err("cannot fsync directory", path))
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(x) if !x.as_os_str().is_empty() => x.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl Staging {
    pub(super) fn new(layout: &Layout) -> Result<Self, RestoreError> {
        let data_parent = parent_of(&layout.data_dir);
        if !data_parent.is_dir() {
            mkdir(&data_parent)?;
        }
        let inside = layout.data_dir.is_dir();
        let data = if inside {
            layout
                .data_dir
                .join(format!(".kubemaint-restore-{}", std::process::id()))
        } else {
            hidden_sibling(&layout.data_dir)
        };
        let _ = std::fs::remove_dir_all(&data);
        let mut s = Staging {
            data: data.clone(),
            wal: None,
            inside,
            inner_wal: None,
            committed: false,
            _locks: Vec::new(),
        };
        mkdir(&data.join("member").join("snap"))?;
        s._locks.push(lock_staging(&data)?);
        // A --wal-dir inside the data dir is staged inside it too and moves with it.
        let inner_wal = layout
            .wal_dir
            .strip_prefix(&layout.data_dir)
            .ok()
            .filter(|r| !r.as_os_str().is_empty());
        if let Some(rel) = inner_wal {
            let w = data.join(rel);
            mkdir(&w)?;
            s.inner_wal = Some(w);
        } else if layout.separate_wal {
            let wal_parent = parent_of(&layout.wal_dir);
            if !wal_parent.is_dir() {
                mkdir(&wal_parent)?;
            }
            let w = hidden_sibling(&layout.wal_dir);
            let _ = std::fs::remove_dir_all(&w);
            s.wal = Some(w.clone());
            mkdir(&w)?;
            s._locks.push(lock_staging(&w)?);
        } else {
            mkdir(&data.join("member").join("wal"))?;
        }
        Ok(s)
    }

    pub(super) fn wal_root(&self) -> PathBuf {
        self.wal
            .clone()
            .or_else(|| self.inner_wal.clone())
            .unwrap_or_else(|| self.data.join("member").join("wal"))
    }

    /// Renames staged dirs into place (WAL first) and fsyncs the parents.
    pub(super) fn commit(&mut self, layout: &Layout) -> Result<(), RestoreError> {
        if let Some(w) = &self.wal {
            std::fs::rename(w, &layout.wal_dir).map_err(io_err(
                "cannot rename the WAL dir into place at",
                &layout.wal_dir,
            ))?;
            fsync_dir(&parent_of(&layout.wal_dir))?;
        }
        let renamed = if self.inside {
            // Move each staged top-level entry (`member`, maybe an inner WAL dir) into place.
            std::fs::read_dir(&self.data).and_then(|entries| {
                for e in entries {
                    let name = e?.file_name();
                    std::fs::rename(self.data.join(&name), layout.data_dir.join(&name))?;
                }
                Ok(())
            })
        } else {
            std::fs::rename(&self.data, &layout.data_dir)
        };
        if let Err(e) = renamed {
            if self.wal.is_some() {
                let _ = std::fs::remove_dir_all(&layout.wal_dir);
            }
            return Err(io_err(
                "cannot rename the data dir into place at",
                &layout.data_dir,
            )(e));
        }
        self.committed = true;
        if self.inside {
            let _ = std::fs::remove_dir(&self.data);
            fsync_dir(&layout.data_dir)
        } else {
            fsync_dir(&parent_of(&layout.data_dir))
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.data);
            if let Some(w) = &self.wal {
                let _ = std::fs::remove_dir_all(w);
            }
        }
    }
}
