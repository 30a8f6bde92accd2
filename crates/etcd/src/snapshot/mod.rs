//! etcd snapshot files: the SHA-256 trailer, `status` (identical figures to `etcdutl snapshot
//! status` 3.5 plus operator extras), `verify` (trailer + full structural check, first fault named
//! precisely) and an offline `HashKV` equal to etcd's `Maintenance.HashKV`.
//!
//! A snapshot is the bbolt image written by `Tx.WriteTo` followed by 32 bytes of SHA-256 over it;
//! a raw `member/snap/db` copy has no trailer and is accepted with a warning.

mod file;
mod hashkv;
mod status;
mod verify;

pub use file::{SHA256_TRAILER_LEN, SnapshotFile, Trailer, has_sha256_trailer};
pub use hashkv::{HashKv, hash_kv};
pub use status::{
    Alarm, FileStatus, Member, ResourceStats, Status, StatusOptions, WrittenBy, humanize_bytes,
    status, status_file,
};
pub use verify::{Fault, TrailerCheck, VerifyReport, verify};

use std::path::PathBuf;

/// Errors handling a snapshot file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bbolt image is malformed.
    #[error(transparent)]
    Bbolt(#[from] crate::bbolt::Error),
    /// A key in bucket `key` is not an etcd revision (17 bytes, or 18 with a trailing `t`).
    #[error(
        "bucket `key`, entry at offset {offset}: {len}-byte key is not an etcd revision; the file is not an etcd database or is corrupt"
    )]
    BadRevisionKey {
        /// File offset of the leaf element.
        offset: u64,
        /// Key length found.
        len: usize,
    },
    /// A value in bucket `key` is not a valid `mvccpb.KeyValue`.
    #[error("bucket `key`, entry at offset {offset}: value is not an mvccpb.KeyValue: {what}")]
    BadKeyValue {
        /// File offset of the leaf element.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The requested HashKV revision has been compacted.
    #[error(
        "revision {rev} is compacted (compact revision {compact}); ask for a revision after it or 0 for the latest"
    )]
    Compacted {
        /// Requested revision.
        rev: i64,
        /// Compact revision in the file.
        compact: i64,
    },
    /// The requested HashKV revision is newer than the snapshot.
    #[error("revision {rev} is newer than the snapshot's revision {current}")]
    FutureRevision {
        /// Requested revision.
        rev: i64,
        /// The snapshot's current revision.
        current: i64,
    },
}
