//! A local directory as a backup store: files 0600 in a directory created 0700, written as
//! `NAME.part` (exclusive, locked), fsynced, renamed, directory fsynced — the same safe path as
//! `etcd snapshot save`.

use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kubemaint_etcd::save::{PartFile, SaveError, sync_dir, write_atomically};
use tokio::sync::mpsc;

use super::{Chunk, ObjectInfo, Store, StoreError, StoreFuture, StoreKind};

/// Read size for streamed reads.
const READ_CHUNK: usize = 1 << 20;

/// A directory of backup objects.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    /// A store in `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        LocalStore { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn ensure_dir(&self) -> Result<(), StoreError> {
        if self.dir.is_dir() {
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| StoreError::Io {
                op: "creating the directory",
                path: self.dir.clone(),
                source,
            })
    }
}

fn save_error(e: SaveError) -> StoreError {
    match e {
        SaveError::Create { path, error } => StoreError::Io {
            op: "creating",
            path,
            source: error,
        },
        SaveError::Write { path, error } => StoreError::Io {
            op: "writing",
            path,
            source: error,
        },
        SaveError::Rename { target, error, .. } => StoreError::Io {
            op: "renaming into place",
            path: target,
            source: error,
        },
        other => StoreError::Io {
            op: "writing",
            path: PathBuf::new(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

fn join_error(location: &Path, e: tokio::task::JoinError) -> StoreError {
    StoreError::Io {
        op: "the I/O thread for",
        path: location.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl Store for LocalStore {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn kind(&self) -> StoreKind {
        StoreKind::Local
    }

    fn check(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.ensure_dir()?;
            let meta = std::fs::metadata(&self.dir).map_err(|source| StoreError::Io {
                op: "reading",
                path: self.dir.clone(),
                source,
            })?;
            if !meta.is_dir() {
                return Err(StoreError::BadLocation {
                    location: self.location(),
                    detail: "it exists and is not a directory".into(),
                });
            }
            Ok(())
        })
    }

    fn put_stream<'a>(
        &'a self,
        name: &'a str,
        mut data: mpsc::Receiver<Chunk>,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            self.ensure_dir()?;
            let target = self.path(name);
            if target.exists() {
                return Err(StoreError::Exists {
                    location: self.location(),
                    name: name.to_string(),
                });
            }
            let location = self.location();
            let name = name.to_string();
            let dir = self.dir.clone();
            tokio::task::spawn_blocking(move || {
                let (part, mut file, _) = PartFile::create(&target).map_err(save_error)?;
                let mut size = 0u64;
                while let Some(chunk) = data.blocking_recv() {
                    match chunk {
                        Chunk::Data(b) => {
                            file.write_all(&b).map_err(|source| StoreError::Io {
                                op: "writing",
                                path: part.path().to_path_buf(),
                                source,
                            })?;
                            size += b.len() as u64;
                        }
                        Chunk::End => {
                            file.sync_all().map_err(|source| StoreError::Io {
                                op: "syncing",
                                path: part.path().to_path_buf(),
                                source,
                            })?;
                            drop(file);
                            part.commit().map_err(save_error)?;
                            return Ok(size);
                        }
                    }
                }
                // Closed without End: dropping `part` removes the .part file.
                Err(StoreError::Abandoned { location, name })
            })
            .await
            .map_err(|e| join_error(&dir, e))?
        })
    }

    fn put_small<'a>(&'a self, name: &'a str, bytes: Bytes) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.ensure_dir()?;
            write_atomically(&self.path(name), &bytes).map_err(save_error)
        })
    }

    fn get_stream<'a>(&'a self, name: &'a str, to: mpsc::Sender<Bytes>) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let path = self.path(name);
            let location = self.location();
            let name = name.to_string();
            let dir = self.dir.clone();
            tokio::task::spawn_blocking(move || {
                let mut f = std::fs::File::open(&path).map_err(|source| {
                    if source.kind() == std::io::ErrorKind::NotFound {
                        StoreError::NotFound { location, name }
                    } else {
                        StoreError::Io {
                            op: "opening",
                            path: path.clone(),
                            source,
                        }
                    }
                })?;
                let mut total = 0u64;
                loop {
                    let mut buf = vec![0u8; READ_CHUNK];
                    let n = f.read(&mut buf).map_err(|source| StoreError::Io {
                        op: "reading",
                        path: path.clone(),
                        source,
                    })?;
                    if n == 0 {
                        return Ok(total);
                    }
                    buf.truncate(n);
                    total += n as u64;
                    if to.blocking_send(Bytes::from(buf)).is_err() {
                        return Ok(total);
                    }
                }
            })
            .await
            .map_err(|e| join_error(&dir, e))?
        })
    }

    fn get_small<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Bytes> {
        Box::pin(async move {
            let path = self.path(name);
            std::fs::read(&path).map(Bytes::from).map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    StoreError::NotFound {
                        location: self.location(),
                        name: name.to_string(),
                    }
                } else {
                    StoreError::Io {
                        op: "reading",
                        path,
                        source,
                    }
                }
            })
        })
    }

    fn list(&self) -> StoreFuture<'_, Vec<ObjectInfo>> {
        Box::pin(async move {
            let entries = match std::fs::read_dir(&self.dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(source) => {
                    return Err(StoreError::Io {
                        op: "listing",
                        path: self.dir.clone(),
                        source,
                    });
                }
            };
            let mut out = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|source| StoreError::Io {
                    op: "listing",
                    path: self.dir.clone(),
                    source,
                })?;
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".part") {
                    continue;
                }
                out.push(ObjectInfo {
                    name,
                    size: meta.len(),
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let path = self.path(name);
            match std::fs::remove_file(&path) {
                Ok(()) => sync_dir(&path).map_err(save_error),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(StoreError::Io {
                    op: "deleting",
                    path,
                    source,
                }),
            }
        })
    }
}
