//! Receiving the snapshot stream: a writer thread fed through a bounded channel, the SHA-256
//! computed with the trailer held back, and the end-of-stream checks.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{SaveError, TRAILER_LEN};

/// Chunks in flight between the network and the writer thread (32 KiB each from etcd).
const CHANNEL_DEPTH: usize = 64;
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
pub(super) struct HoldbackHasher {
    hasher: Sha256,
    tail: Vec<u8>,
    hashed: u64,
}

impl HoldbackHasher {
    pub(super) fn update(&mut self, data: &[u8]) {
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
    pub(super) fn finish(self) -> Option<(u64, [u8; 32], [u8; 32])> {
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
