//! Opening a snapshot file: trailer detection (etcd's `size % 512 == 32` heuristic) and the
//! SHA-256 over the database image.

use std::fs::File;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Error;
use crate::bbolt::Db;

/// Length of the SHA-256 trailer etcd appends to a snapshot.
pub const SHA256_TRAILER_LEN: u64 = 32;

/// etcd's `hasChecksum`: a file whose size is `32 mod 512` carries a SHA-256 trailer ("512 is
/// chosen because it's a minimum disk sector size"); bbolt images are multiples of the page size.
pub fn has_sha256_trailer(file_len: u64) -> bool {
    file_len % 512 == SHA256_TRAILER_LEN
}

/// Whether the file ends with a SHA-256 trailer, and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trailer {
    /// A snapshot: the last 32 bytes are the expected SHA-256 of everything before them.
    Sha256([u8; 32]),
    /// No trailer: a raw `member/snap/db` copy (or a snapshot cut short).
    Missing,
}

/// An opened snapshot (or raw `member/snap/db`) file.
#[derive(Debug)]
pub struct SnapshotFile {
    path: PathBuf,
    file: File,
    file_len: u64,
    trailer: Trailer,
}

impl SnapshotFile {
    /// Opens `path` and reads the trailer if the size says there is one. Does not parse bbolt yet.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let trailer = if has_sha256_trailer(file_len) {
            let mut buf = [0u8; 32];
            read_exact_at(&file, &mut buf, file_len - SHA256_TRAILER_LEN).map_err(io)?;
            Trailer::Sha256(buf)
        } else {
            Trailer::Missing
        };
        Ok(SnapshotFile {
            path: path.to_path_buf(),
            file,
            file_len,
            trailer,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Total file size in bytes (including any trailer).
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The trailer state.
    pub fn trailer(&self) -> Trailer {
        self.trailer
    }

    /// Length of the bbolt image (file size minus the trailer, if any).
    pub fn db_len(&self) -> u64 {
        match self.trailer {
            Trailer::Sha256(_) => self.file_len - SHA256_TRAILER_LEN,
            Trailer::Missing => self.file_len,
        }
    }

    /// Opens the bbolt image (memory-mapped; the trailer is excluded).
    pub fn db(&self) -> Result<Db, Error> {
        Ok(Db::from_file(&self.file, &self.path, self.db_len())?)
    }

    /// SHA-256 of the bbolt image (bytes `[0, db_len)`), read in 1 MiB chunks so memory stays small.
    pub fn sha256(&self) -> Result<[u8; 32], Error> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = 0u64;
        let end = self.db_len();
        while pos < end {
            let n = ((end - pos) as usize).min(buf.len());
            read_exact_at(&self.file, &mut buf[..n], pos).map_err(io)?;
            h.update(&buf[..n]);
            pos += n as u64;
        }
        Ok(h.finalize().into())
    }
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_heuristic_matches_etcd() {
        assert!(has_sha256_trailer(4 * 4096 + 32));
        assert!(!has_sha256_trailer(4 * 4096));
        assert!(!has_sha256_trailer(4 * 4096 + 31));
        assert!(has_sha256_trailer(32));
    }
}
