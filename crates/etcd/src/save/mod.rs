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

pub mod fromfile;
pub mod manifest;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// SHA-256 length: the trailer etcd appends.
pub const TRAILER_LEN: usize = 32;

/// Chunks in flight between the network and the writer thread (32 KiB each from etcd).
const CHANNEL_DEPTH: usize = 64;

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

/// A source of snapshot messages: etcd's stream, or a fake in tests.
pub trait ChunkSource {
    /// One message's blob.
    type Blob: AsRef<[u8]> + Send + 'static;
    /// The next message as `(remaining_bytes, blob)`, or `None` at the end of the stream.
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<(u64, Self::Blob)>, String>> + Send;
}

/// Told about progress (a progress bar, log lines, or nothing).
pub trait Progress: Send {
    /// The database size announced by the first message (without the trailer).
    fn start(&mut self, db_size: u64);
    /// Bytes received so far.
    fn advance(&mut self, received: u64);
}

/// Ignores progress.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _: u64) {}
    fn advance(&mut self, _: u64) {}
}

/// What was received and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streamed {
    /// Database bytes (file size minus the trailer).
    pub db_size: u64,
    /// File size (database + 32-byte trailer), what etcdctl reports.
    pub file_size: u64,
    /// SHA-256 of the database bytes (equal to the trailer).
    pub sha256: [u8; 32],
    /// Messages received.
    pub messages: u64,
    /// Database size announced by the server (first `remaining_bytes` + first blob), if any.
    pub announced_db_size: Option<u64>,
}

/// Hashes all bytes but the last 32 seen so far: the trailer is only known at the end.
#[derive(Default)]
struct HoldbackHasher {
    hasher: Sha256,
    tail: Vec<u8>,
    hashed: u64,
}

impl HoldbackHasher {
    fn update(&mut self, data: &[u8]) {
        if data.len() >= TRAILER_LEN {
            self.hasher.update(&self.tail);
            self.hashed += self.tail.len() as u64;
            let cut = data.len() - TRAILER_LEN;
            self.hasher.update(&data[..cut]);
            self.hashed += cut as u64;
            self.tail.clear();
            self.tail.extend_from_slice(&data[cut..]);
        } else {
            self.tail.extend_from_slice(data);
            if self.tail.len() > TRAILER_LEN {
                let excess = self.tail.len() - TRAILER_LEN;
                self.hasher.update(&self.tail[..excess]);
                self.hashed += excess as u64;
                self.tail.drain(..excess);
            }
        }
    }

    /// `(hashed bytes, their SHA-256, the last 32 bytes)` if at least 32 bytes were seen.
    fn finish(self) -> Option<(u64, [u8; 32], [u8; 32])> {
        let trailer: [u8; 32] = self.tail.as_slice().try_into().ok()?;
        Some((self.hashed, self.hasher.finalize().into(), trailer))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The writer thread: writes every blob, hashes with holdback, fsyncs at the end.
fn writer_thread<B: AsRef<[u8]>>(
    mut file: File,
    path: PathBuf,
    mut rx: tokio::sync::mpsc::Receiver<B>,
) -> Result<(File, HoldbackHasher, u64), SaveError> {
    let mut hasher = HoldbackHasher::default();
    let mut written = 0u64;
    while let Some(blob) = rx.blocking_recv() {
        let data = blob.as_ref();
        file.write_all(data).map_err(|error| SaveError::Write {
            path: path.clone(),
            error,
        })?;
        hasher.update(data);
        written += data.len() as u64;
    }
    file.sync_all().map_err(|error| SaveError::Write {
        path: path.clone(),
        error,
    })?;
    Ok((file, hasher, written))
}

/// Receives the whole stream into `file` (the open `.part`), checks the SHA-256 trailer and fsyncs.
/// The caller commits the [`PartFile`] afterwards (possibly after reading the file).
pub async fn stream_to_file<S: ChunkSource>(
    mut source: S,
    file: File,
    path: &Path,
    progress: &mut dyn Progress,
) -> Result<Streamed, SaveError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<S::Blob>(CHANNEL_DEPTH);
    let writer_path = path.to_path_buf();
    let writer = tokio::task::spawn_blocking(move || writer_thread(file, writer_path, rx));
    let mut received = 0u64;
    let mut messages = 0u64;
    let mut announced: Option<u64> = None;
    let mut stream_error: Option<SaveError> = None;
    loop {
        let next = source.next_chunk().await;
        match next {
            Ok(Some((remaining, blob))) => {
                let len = blob.as_ref().len() as u64;
                if announced.is_none() {
                    let total = remaining.saturating_add(len);
                    announced = Some(total);
                    progress.start(total);
                }
                messages += 1;
                received += len;
                // A full channel makes this wait: the writer is the bottleneck then.
                if tx.send(blob).await.is_err() {
                    // The writer stopped: its error is reported below.
                    break;
                }
                progress.advance(received);
            }
            Ok(None) => break,
            Err(error) => {
                stream_error = Some(SaveError::Stream { received, error });
                break;
            }
        }
    }
    drop(tx);
    let (file, hasher, written) = writer.await.unwrap_or_else(|_| {
        Err(SaveError::Write {
            path: path.to_path_buf(),
            error: std::io::Error::other("the writer thread panicked"),
        })
    })?;
    drop(file);
    if let Some(e) = stream_error {
        return Err(e);
    }
    debug_assert_eq!(written, received);
    check_end(hasher, received, messages, announced)
}

/// The end-of-stream checks shared by [`stream_to_file`] and [`StreamCheck`]: a trailer is
/// present, the size has etcd's shape, the announced size arrived, and the SHA-256 matches.
fn check_end(
    hasher: HoldbackHasher,
    received: u64,
    messages: u64,
    announced: Option<u64>,
) -> Result<Streamed, SaveError> {
    let expected = announced.map_or_else(String::new, |a| {
        format!(" of {} expected", a + TRAILER_LEN as u64)
    });
    let Some((db_size, computed, trailer)) = hasher.finish() else {
        return Err(SaveError::Truncated { received, expected });
    };
    // etcd's own check (`hasChecksum`): a bbolt image is a whole number of pages, so with the
    // trailer the size is 32 more than a multiple of 512.
    if (received % 512) as usize != TRAILER_LEN {
        return Err(SaveError::Truncated { received, expected });
    }
    // The server announced the database size up front; fewer bytes means the stream was cut
    // (some future etcd may count the trailer in `remaining_bytes`, so accept both).
    if let Some(a) = announced
        && db_size != a
        && db_size + TRAILER_LEN as u64 != a
    {
        return Err(SaveError::Truncated { received, expected });
    }
    if computed != trailer {
        return Err(SaveError::HashMismatch {
            trailer: hex(&trailer),
            computed: hex(&computed),
            db_size,
        });
    }
    Ok(Streamed {
        db_size,
        file_size: received,
        sha256: computed,
        messages,
        announced_db_size: announced,
    })
}

/// Checks a snapshot stream as it passes through, for callers that send the bytes somewhere
/// other than a local file (a compressor, an upload): the same checks as [`stream_to_file`].
#[derive(Default)]
pub struct StreamCheck {
    hasher: HoldbackHasher,
    received: u64,
    messages: u64,
    announced: Option<u64>,
}

impl std::fmt::Debug for StreamCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamCheck")
            .field("received", &self.received)
            .field("messages", &self.messages)
            .field("announced", &self.announced)
            .finish_non_exhaustive()
    }
}

impl StreamCheck {
    /// A check for a stream whose database size is known in advance (re-reading a stored
    /// snapshot): the size is checked as if the server had announced it.
    pub fn expecting(db_size: u64) -> Self {
        StreamCheck {
            announced: Some(db_size),
            ..StreamCheck::default()
        }
    }

    /// Feeds one message of the stream (`remaining_bytes` and its blob).
    pub fn message(&mut self, remaining: u64, blob: &[u8]) {
        let len = blob.len() as u64;
        if self.announced.is_none() {
            self.announced = Some(remaining.saturating_add(len));
        }
        self.messages += 1;
        self.received += len;
        self.hasher.update(blob);
    }

    /// The size announced by the first message, once one arrived.
    pub fn announced(&self) -> Option<u64> {
        self.announced
    }

    /// Bytes fed so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Checks the end of the stream: trailer present, etcd's size shape, the announced size
    /// arrived, SHA-256 matches.
    pub fn finish(self) -> Result<Streamed, SaveError> {
        check_end(self.hasher, self.received, self.messages, self.announced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages as etcd 3.4/3.5 send them: 32 KiB chunks counting down, then the SHA-256.
    fn etcd_messages(db: &[u8], chunk: usize) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut sent = 0;
        for c in db.chunks(chunk) {
            sent += c.len();
            out.push(((db.len() - sent) as u64, c.to_vec()));
        }
        out.push((0, Sha256::digest(db).to_vec()));
        out
    }

    struct Fake {
        messages: std::collections::VecDeque<Result<(u64, Vec<u8>), String>>,
    }
    impl Fake {
        fn new(messages: Vec<(u64, Vec<u8>)>) -> Self {
            Fake {
                messages: messages.into_iter().map(Ok).collect(),
            }
        }
    }
    impl ChunkSource for Fake {
        type Blob = Vec<u8>;
        async fn next_chunk(&mut self) -> Result<Option<(u64, Vec<u8>)>, String> {
            self.messages.pop_front().transpose()
        }
    }

    fn db(pages: usize) -> Vec<u8> {
        (0..pages * 4096).map(|i| (i * 7 % 251) as u8).collect()
    }

    async fn save(target: &Path, source: Fake) -> Result<Streamed, SaveError> {
        let (part, file, _) = PartFile::create(target)?;
        let streamed = stream_to_file(source, file, part.path(), &mut NoProgress).await?;
        part.commit()?;
        Ok(streamed)
    }

    #[tokio::test]
    async fn saves_exactly_what_etcd_sends() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s.db");
        let data = db(20);
        let s = save(&target, Fake::new(etcd_messages(&data, 32 * 1024)))
            .await
            .unwrap();
        let file = std::fs::read(&target).unwrap();
        assert_eq!(&file[..data.len()], &data[..]);
        assert_eq!(&file[data.len()..], Sha256::digest(&data).as_slice());
        assert_eq!(s.db_size, data.len() as u64);
        assert_eq!(s.file_size, data.len() as u64 + 32);
        assert_eq!(s.announced_db_size, Some(data.len() as u64));
        assert_eq!(s.messages, 4);
        assert!(!part_path(&target).exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn odd_chunking_and_trailer_split_across_messages() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s.db");
        let data = db(3);
        let mut all = data.clone();
        all.extend_from_slice(&Sha256::digest(&data));
        // 5-byte messages: the trailer straddles several of them.
        let mut sent = 0usize;
        let msgs: Vec<_> = all
            .chunks(5)
            .map(|c| {
                sent += c.len();
                (data.len().saturating_sub(sent) as u64, c.to_vec())
            })
            .collect();
        let s = save(&target, Fake::new(msgs)).await.unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), all);
        assert_eq!(s.sha256.as_slice(), Sha256::digest(&data).as_slice());
    }

    #[tokio::test]
    async fn bad_trailer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s.db");
        let data = db(4);
        let mut msgs = etcd_messages(&data, 32 * 1024);
        msgs.last_mut().unwrap().1[0] ^= 1;
        let err = save(&target, Fake::new(msgs)).await.unwrap_err();
        assert!(matches!(err, SaveError::HashMismatch { .. }), "{err}");
        assert!(err.to_string().contains("SHA-256 mismatch"));
        assert!(!target.exists());
        assert!(!part_path(&target).exists());
    }

    #[tokio::test]
    async fn flipped_data_bit_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s.db");
        let data = db(4);
        let mut msgs = etcd_messages(&data, 32 * 1024);
        msgs[0].1[100] ^= 0x80;
        let err = save(&target, Fake::new(msgs)).await.unwrap_err();
        assert!(matches!(err, SaveError::HashMismatch { .. }), "{err}");
        assert!(!target.exists());
    }

    #[tokio::test]
    async fn stream_stopping_at_remaining_zero_is_truncated() {
        // The classic client bug: stopping when remaining_bytes hits 0 loses the trailer.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s.db");
        let data = db(8);
        let mut msgs = etcd_messages(&data, 32 * 1024);
        msgs.pop();
        let err = save(&target, Fake::new(msgs)).await.unwrap_err();
        assert!(matches!(err, SaveError::Truncated { .. }), "{err}");
        assert!(!target.exists() && !part_path(&target).exists());
    }

    #[tokio::test]
    async fn stream_cut_midway_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s.db");
        let data = db(64);
        let mut msgs = etcd_messages(&data, 32 * 1024);
        // Lose a whole middle chunk but keep a valid-looking trailer of what was sent.
        msgs.remove(3);
        let err = save(&target, Fake::new(msgs)).await.unwrap_err();
        assert!(matches!(err, SaveError::Truncated { .. }), "{err}");
        assert!(!target.exists());
    }

    #[tokio::test]
    async fn stream_error_is_reported_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s.db");
        let data = db(16);
        let msgs = etcd_messages(&data, 32 * 1024);
        let mut fake = Fake::new(msgs[..1].to_vec());
        fake.messages.push_back(Err("connection reset".into()));
        let err = save(&target, fake).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the snapshot stream failed after 32768 bytes: connection reset"
        );
        assert!(!target.exists() && !part_path(&target).exists());
    }

    #[tokio::test]
    async fn empty_stream_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s.db");
        let err = save(&target, Fake::new(vec![])).await.unwrap_err();
        assert!(
            matches!(err, SaveError::Truncated { received: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn leftover_part_is_removed_and_live_one_is_respected() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s.db");
        std::fs::write(part_path(&target), b"half a snapshot").unwrap();
        let (part, _file, leftover) = PartFile::create(&target).unwrap();
        assert_eq!(leftover, Leftover::Removed(15));
        // A second save while the first holds the lock is refused, and the first's file kept.
        let err = PartFile::create(&target).unwrap_err();
        assert!(matches!(err, SaveError::Busy { .. }), "{err}");
        assert!(part.path().exists());
        drop(part);
        assert!(!part_path(&target).exists());
    }

    #[test]
    fn existing_target_is_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("m.json");
        std::fs::write(&target, b"old").unwrap();
        write_atomically(&target, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert!(!part_path(&target).exists());
    }

    #[test]
    fn missing_directory_is_a_clear_error() {
        let err = PartFile::create(Path::new("/nonexistent-dir-kubemaint/s.db")).unwrap_err();
        assert!(
            err.to_string().contains("check that the directory exists"),
            "{err}"
        );
    }

    #[test]
    fn holdback_hasher_matches_plain_hash() {
        let data = db(2);
        let mut all = data.clone();
        all.extend_from_slice(&[9u8; 32]);
        for step in [1, 7, 31, 32, 33, 4096, 10000] {
            let mut h = HoldbackHasher::default();
            for c in all.chunks(step) {
                h.update(c);
            }
            let (n, sum, tail) = h.finish().unwrap();
            assert_eq!(n, data.len() as u64, "step {step}");
            assert_eq!(
                sum.as_slice(),
                Sha256::digest(&data).as_slice(),
                "step {step}"
            );
            assert_eq!(tail, [9u8; 32]);
        }
    }
}
