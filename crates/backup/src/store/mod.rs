//! Where backups live: a small object-store interface with a local-directory and an
//! S3-compatible implementation.
//!
//! Objects are flat names under the destination (`ID.db.zst.age`, `ID.manifest.json`). A
//! streamed upload becomes visible only when it is whole: it is fed [`Chunk::Data`] pieces and
//! committed by [`Chunk::End`]; if the channel closes without `End` (the snapshot failed, the
//! run was interrupted) the upload is abandoned and nothing is left.

pub mod local;
pub mod s3;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;
use tokio::sync::mpsc;

/// A boxed future of a store operation (keeps [`Store`] usable as `dyn Store`).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// One piece of a streamed upload.
#[derive(Debug, Clone)]
pub enum Chunk {
    /// Bytes to append.
    Data(Bytes),
    /// All bytes were sent and checked: make the object visible.
    End,
}

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its name under the destination.
    pub name: String,
    /// Its size.
    pub size: u64,
}

/// Local disk or remote store: they get separate retention policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// A directory on this machine.
    Local,
    /// A remote object store.
    Remote,
}

/// Why a store operation failed. Every message names the store and what to check next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The destination string is malformed.
    #[error("{location:?} is not a backup destination: {detail}")]
    BadLocation {
        /// What was given.
        location: String,
        /// What is wrong.
        detail: String,
    },
    /// The endpoint could not be reached.
    #[error(
        "cannot reach {location}: {detail}; check the endpoint (AWS_ENDPOINT_URL), the network and that the store is running"
    )]
    Unreachable {
        /// The store.
        location: String,
        /// The cause.
        detail: String,
    },
    /// The store refused the credentials.
    #[error(
        "{location} refused the credentials: {detail}; check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE and ~/.aws/credentials) and the key's permissions on the bucket"
    )]
    Credentials {
        /// The store.
        location: String,
        /// The cause.
        detail: String,
    },
    /// The bucket does not exist.
    #[error("the bucket {bucket:?} does not exist at {location}: create it or fix the name")]
    NoBucket {
        /// The store.
        location: String,
        /// The bucket.
        bucket: String,
    },
    /// The object does not exist.
    #[error(
        "{name} was not found in {location}; `kubemaint backup list --from {location}` shows what is there"
    )]
    NotFound {
        /// The store.
        location: String,
        /// The object.
        name: String,
    },
    /// The object already exists (IDs are unique per second).
    #[error(
        "{name} already exists in {location}; a backup with this ID was already taken, retry in a second"
    )]
    Exists {
        /// The store.
        location: String,
        /// The object.
        name: String,
    },
    /// Local I/O failed.
    #[error("{op} {} failed: {source}; check free space and permissions", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The upload was abandoned before it was complete; nothing was stored.
    #[error(
        "the upload of {name} to {location} was abandoned before it completed; nothing was stored"
    )]
    Abandoned {
        /// The store.
        location: String,
        /// The object.
        name: String,
    },
    /// Any other store error.
    #[error("{location}: {op} failed: {detail}")]
    Other {
        /// The store.
        location: String,
        /// What was being done.
        op: &'static str,
        /// The cause.
        detail: String,
    },
}

/// A place that holds backup objects.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The destination as the user wrote it (`/var/backups/etcd`, `s3://bucket/prefix`).
    fn location(&self) -> String;
    /// Local or remote (for separate retention).
    fn kind(&self) -> StoreKind;
    /// Checks that the store can be reached and listed with these credentials (a cheap list),
    /// before a snapshot is taken.
    fn check(&self) -> StoreFuture<'_, ()>;
    /// Writes `name` from `data` until [`Chunk::End`]; returns its size. Without `End` the upload
    /// is abandoned ([`StoreError::Abandoned`]) and nothing is left.
    fn put_stream<'a>(&'a self, name: &'a str, data: mpsc::Receiver<Chunk>)
    -> StoreFuture<'a, u64>;
    /// Writes a small object atomically.
    fn put_small<'a>(&'a self, name: &'a str, bytes: Bytes) -> StoreFuture<'a, ()>;
    /// Reads `name`, sending it piece by piece to `to`; returns its size. Stops early (Ok) if
    /// the receiver is dropped.
    fn get_stream<'a>(&'a self, name: &'a str, to: mpsc::Sender<Bytes>) -> StoreFuture<'a, u64>;
    /// Reads a small object whole.
    fn get_small<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Bytes>;
    /// Lists the objects directly under the destination.
    fn list(&self) -> StoreFuture<'_, Vec<ObjectInfo>>;
    /// Deletes an object (a missing one is not an error).
    fn delete<'a>(&'a self, name: &'a str) -> StoreFuture<'a, ()>;
}

/// A parsed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory.
    Dir(PathBuf),
    /// `s3://bucket/prefix`.
    S3 {
        /// The bucket.
        bucket: String,
        /// The prefix (no leading or trailing `/`; may be empty).
        prefix: String,
    },
}

impl Location {
    /// Parses `s3://bucket[/prefix]` or a directory path.
    pub fn parse(s: &str) -> Result<Location, StoreError> {
        let bad = |detail: &str| StoreError::BadLocation {
            location: s.to_string(),
            detail: detail.to_string(),
        };
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name (s3://BUCKET/PREFIX)"));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|p| p == ".." || p == ".") {
                return Err(bad("the prefix may not contain . or .. segments"));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if s.contains("://") {
            return Err(bad(
                "only local directories and s3://bucket/prefix are supported",
            ));
        }
        if s.is_empty() {
            return Err(bad("empty"));
        }
        Ok(Location::Dir(PathBuf::from(s)))
    }

    /// Opens the store (a local directory is created, mode 0700, when first written).
    pub fn open(&self) -> Result<Box<dyn Store>, StoreError> {
        self.open_with(&StoreOptions::default())
    }

    /// Opens the store with these settings.
    pub fn open_with(&self, options: &StoreOptions) -> Result<Box<dyn Store>, StoreError> {
        match self {
            Location::Dir(d) => Ok(Box::new(local::LocalStore::new(d.clone()))),
            Location::S3 { bucket, prefix } => Ok(Box::new(
                s3::S3Store::from_env(bucket, prefix)?.with_part_size(options.part_size),
            )),
        }
    }
}

/// Store settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// S3 multipart part size in bytes (at least 5 MiB).
    pub part_size: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            part_size: s3::DEFAULT_PART_SIZE,
        }
    }
}

/// Opens a destination string.
pub fn open(dest: &str) -> Result<Box<dyn Store>, StoreError> {
    Location::parse(dest)?.open()
}

/// Opens a destination string with these settings.
pub fn open_with(dest: &str, options: &StoreOptions) -> Result<Box<dyn Store>, StoreError> {
    Location::parse(dest)?.open_with(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            Location::parse("s3://b/p/q/").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                prefix: "p/q".into()
            }
        );
        assert_eq!(
            Location::parse("s3://b").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            Location::parse("/var/b").unwrap(),
            Location::Dir("/var/b".into())
        );
        for bad in ["s3://", "s3:///p", "gs://b/p", "", "s3://b/../x"] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }
}
