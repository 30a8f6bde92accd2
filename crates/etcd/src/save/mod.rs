//! Saving a snapshot streamed by `Maintenance.Snapshot` to a file, safely.
//!
//! The server (etcd 3.4 and 3.5, `api/v3rpc/maintenance.go`) sends the bbolt image in 32 KiB
//! chunks with `remaining_bytes` counting down to 0, then one more message whose blob is the
//! SHA-256 of everything before it (also with `remaining_bytes` 0), then ends the stream. Like
//! etcdctl we write every blob, trailer included, so the file is exactly what etcdctl writes. Unlike
//! etcdctl we read to the end of the stream, recompute the SHA-256 of the database bytes and check
//! it against the trailer before the file gets its final name.
//!
//! File handling: the bytes go to `FILE.part` (mode 0600, created exclusively and locked); it is
//! fsynced, then [`PartFile::commit`] renames it to `FILE` and fsyncs the directory. On any error
//! (or a dropped future) the `.part` is removed; after a kill, the next save removes it. Nothing
//! ever appears at `FILE` unless the whole snapshot arrived and its hash matched.
//!
//! Hashing and writing run on their own thread, fed through a small bounded channel, so the
//! network side keeps receiving while the disk side works; memory stays bounded by the channel.
//!
//! The errors are here; `part.rs` handles `FILE.part`, `stream.rs` receives and checks the stream.

pub mod fromfile;
pub mod manifest;
mod part;
mod stream;

use std::path::PathBuf;

pub use part::{Leftover, PartFile, part_path, sync_dir, write_atomically};
pub use stream::{ChunkSource, NoProgress, Progress, StreamCheck, Streamed, stream_to_file};

/// SHA-256 length: the trailer etcd appends.
pub const TRAILER_LEN: usize = 32;
/// Why a save failed. Nothing is left at the target path in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The target's directory is missing or unwritable, or the part file cannot be created.
    #[error("cannot create {}: {error}; check that the directory exists and is writable", path.display())]
    Create {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// Another save to the same file is running.
    #[error(
        "another save to {} is in progress ({} is locked); wait for it or choose another file",
        target.display(), part.display()
    )]
    Busy {
        /// The target.
        target: PathBuf,
        /// The locked part file.
        part: PathBuf,
    },
    /// Writing or syncing failed (disk full, I/O error).
    #[error("writing {} failed: {error}; free space or pick another directory", path.display())]
    Write {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The stream broke.
    #[error("the snapshot stream failed after {received} bytes: {error}")]
    Stream {
        /// Bytes received so far.
        received: u64,
        /// The cause (already explained by the client edge).
        error: String,
    },
    /// The stream ended without a plausible trailer.
    #[error(
        "the snapshot stream ended after {received} bytes{expected}, without a SHA-256 trailer; the server or connection stopped early — retry"
    )]
    Truncated {
        /// Bytes received.
        received: u64,
        /// " of N expected" when known.
        expected: String,
    },
    /// The trailer does not match the data.
    #[error(
        "SHA-256 mismatch: the server's trailer says {trailer} but the {db_size} database bytes received hash to {computed}; the snapshot was corrupted in transit or by the server — retry, and check the member's health"
    )]
    HashMismatch {
        /// Hex of the trailer.
        trailer: String,
        /// Hex of what we computed.
        computed: String,
        /// Database bytes hashed.
        db_size: u64,
    },
    /// Renaming into place failed.
    #[error("cannot rename {} to {}: {error}", part.display(), target.display())]
    Rename {
        /// The part file.
        part: PathBuf,
        /// The target.
        target: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}
#[cfg(test)]
mod tests;
