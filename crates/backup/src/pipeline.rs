//! The byte pipeline: snapshot messages -> SHA-256 trailer check -> zstd -> age -> store
//! chunks, and back again for a fetch, on one blocking thread each (libzstd adds its own
//! worker threads). Memory is bounded by the channels and zstd's window, never the snapshot.
//!
//! A fetch tells a corrupted object from a wrong key: the stored bytes are hashed as they are
//! read and, when anything fails, the rest is read too and the hash compared with the
//! manifest's `object_sha256` before the cause is named.

use std::cell::RefCell;
use std::io::{BufReader, Read, Write};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use kubemaint_etcd::save::{SaveError, StreamCheck, Streamed};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::crypto::{Decrypt, Encrypt};
use crate::manifest::BackupManifest;
use crate::store::Chunk;

/// Size of the pieces handed to the store.
const OUT_CHUNK: usize = 1 << 20;

/// Compression and encryption settings.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// zstd level (1-19; 3 is zstd's default).
    pub level: i32,
    /// libzstd worker threads (0 = compress on the pipeline thread).
    pub threads: u32,
    /// Encryption, if any.
    pub encrypt: Option<Arc<Encrypt>>,
    /// Read the snapshot from etcd at most this fast (bytes per second), to spare a busy
    /// member's disk and the network; `None`: as fast as it comes.
    pub max_rate: Option<u64>,
}

/// Why the pipeline failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The snapshot stream failed its checks.
    #[error(transparent)]
    Snapshot(#[from] SaveError),
    /// Compressing or encrypting failed, or the store stopped taking data.
    #[error("compressing/encrypting the snapshot failed: {0}")]
    Encode(std::io::Error),
    /// The backup is encrypted and no key was given.
    #[error(
        "the backup is encrypted with age ({what}): give --identity FILE (age-keygen output) or --passphrase-file FILE"
    )]
    NeedKey {
        /// Recipients or passphrase.
        what: String,
    },
    /// None of the given keys opens the backup.
    #[error(
        "wrong key: none of the keys given ({given}) opens this backup; it was encrypted to {what}"
    )]
    WrongKey {
        /// What was given.
        given: String,
        /// What it was encrypted to.
        what: String,
    },
    /// The stored object's bytes are not what was stored.
    #[error(
        "the stored object {object} is corrupted: its SHA-256 is {computed} ({size} bytes) but the manifest recorded {recorded} ({recorded_size} bytes); fetch another backup"
    )]
    Corrupted {
        /// The object.
        object: String,
        /// Hash of what was read.
        computed: String,
        /// Hash in the manifest.
        recorded: String,
        /// Bytes read.
        size: u64,
        /// Size in the manifest.
        recorded_size: u64,
    },
    /// Decryption failed for another reason (the object hash matched).
    #[error("decrypting {object} failed: {detail}")]
    Decrypt {
        /// The object.
        object: String,
        /// age's message.
        detail: String,
    },
    /// Decompression failed (the object hash matched).
    #[error("decompressing {object} failed: {source}")]
    Decompress {
        /// The object.
        object: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The restored snapshot's SHA-256 differs from the manifest.
    #[error(
        "the restored snapshot's SHA-256 is {computed}, the manifest recorded {recorded}: the manifest does not describe this object"
    )]
    ContentMismatch {
        /// Computed.
        computed: String,
        /// Recorded.
        recorded: String,
    },
    /// Writing the output failed.
    #[error("writing the snapshot failed: {0}; check free space")]
    Output(std::io::Error),
}

/// Hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Collects output into store chunks, hashing what is stored.
#[derive(Debug)]
pub struct ChannelWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
    hasher: Sha256,
    size: u64,
}

impl ChannelWriter {
    fn new(tx: mpsc::Sender<Chunk>) -> Self {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(OUT_CHUNK + 64 * 1024),
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn send_buf(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(OUT_CHUNK + 64 * 1024),
        ));
        self.hasher.update(&piece);
        self.size += piece.len() as u64;
        self.tx.blocking_send(Chunk::Data(piece)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the store stopped taking data",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= OUT_CHUNK {
            self.send_buf()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Sink {
    Plain(ChannelWriter),
    Age(age::stream::StreamWriter<ChannelWriter>),
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(data),
            Sink::Age(w) => w.write(data),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Age(w) => w.flush(),
        }
    }
}

impl Sink {
    fn finish(self) -> std::io::Result<ChannelWriter> {
        match self {
            Sink::Plain(w) => Ok(w),
            Sink::Age(w) => w.finish(),
        }
    }
}

/// What the encoding thread produced. The store's sender is handed back so the caller sends
/// [`Chunk::End`] only after the stream's checks passed (dropping it abandons the upload).
#[derive(Debug)]
pub struct Encoded {
    /// The snapshot's checks, still to be finished by the caller.
    pub check: StreamCheck,
    /// Stored (compressed, encrypted) bytes.
    pub stored_size: u64,
    /// SHA-256 of the stored bytes.
    pub object_sha256: [u8; 32],
    /// The store's channel; send [`Chunk::End`] to commit.
    pub tx: mpsc::Sender<Chunk>,
}

/// Encodes snapshot messages from `input` until it closes; runs on a blocking thread.
pub fn encode_blocking<B: AsRef<[u8]>>(
    mut input: mpsc::Receiver<(u64, B)>,
    out: mpsc::Sender<Chunk>,
    opts: &EncodeOptions,
) -> Result<Encoded, PipelineError> {
    let writer = ChannelWriter::new(out);
    let sink = match &opts.encrypt {
        None => Sink::Plain(writer),
        Some(e) => Sink::Age(
            e.encryptor()
                .wrap_output(writer)
                .map_err(PipelineError::Encode)?,
        ),
    };
    let mut encoder =
        zstd::stream::write::Encoder::new(sink, opts.level).map_err(PipelineError::Encode)?;
    if opts.threads > 0 {
        encoder
            .multithread(opts.threads)
            .map_err(PipelineError::Encode)?;
    }
    encoder
        .include_checksum(true)
        .map_err(PipelineError::Encode)?;
    let mut check = StreamCheck::default();
    while let Some((remaining, blob)) = input.blocking_recv() {
        let data = blob.as_ref();
        check.message(remaining, data);
        encoder.write_all(data).map_err(PipelineError::Encode)?;
    }
    let sink = encoder.finish().map_err(PipelineError::Encode)?;
    let mut writer = sink.finish().map_err(PipelineError::Encode)?;
    writer.send_buf().map_err(PipelineError::Encode)?;
    Ok(Encoded {
        check,
        stored_size: writer.size,
        object_sha256: writer.hasher.finalize().into(),
        tx: writer.tx,
    })
}

/// The stored bytes as a reader, hashed as they pass.
struct Source {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
    hasher: Sha256,
    size: u64,
}

#[derive(Clone)]
struct SharedReader(Rc<RefCell<Source>>);

impl Read for SharedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut s = self.0.borrow_mut();
        while s.current.is_empty() {
            match s.rx.blocking_recv() {
                Some(b) => s.current = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(s.current.len());
        let piece = s.current.split_to(n);
        buf[..n].copy_from_slice(&piece);
        s.hasher.update(&piece);
        s.size += n as u64;
        Ok(n)
    }
}

enum Fault {
    NeedKey,
    NoMatchingKeys,
    Decrypt(String),
    Decompress(std::io::Error),
    Output(std::io::Error),
}

fn encrypted_to(m: &BackupManifest) -> String {
    match &m.encryption {
        Some(e) if e.passphrase => "a passphrase".into(),
        Some(e) => format!("recipients {}", e.recipients.join(", ")),
        None => "nothing".into(),
    }
}

/// Decodes a stored object (from `input`) described by `manifest` into `out`: decrypts,
/// decompresses, checks the snapshot's SHA-256 trailer and the manifest's hashes. Runs on a
/// blocking thread.
pub fn decode_blocking(
    input: mpsc::Receiver<Bytes>,
    manifest: &BackupManifest,
    keys: &Decrypt,
    out: &mut dyn Write,
) -> Result<Streamed, PipelineError> {
    let reader = SharedReader(Rc::new(RefCell::new(Source {
        rx: input,
        current: Bytes::new(),
        hasher: Sha256::new(),
        size: 0,
    })));
    let result = (|| -> Result<StreamCheck, Fault> {
        let inner: Box<dyn Read> = match &manifest.encryption {
            None => Box::new(reader.clone()),
            Some(_) if keys.is_empty() => return Err(Fault::NeedKey),
            Some(_) => {
                let decryptor = age::Decryptor::new_buffered(BufReader::new(reader.clone()))
                    .map_err(|e| Fault::Decrypt(e.to_string()))?;
                let plain = decryptor.decrypt(keys.identities()).map_err(|e| match e {
                    age::DecryptError::NoMatchingKeys => Fault::NoMatchingKeys,
                    other => Fault::Decrypt(other.to_string()),
                })?;
                Box::new(plain)
            }
        };
        let mut decoder = zstd::stream::read::Decoder::new(inner).map_err(Fault::Decompress)?;
        let mut check = StreamCheck::expecting(manifest.db_size);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = decoder.read(&mut buf).map_err(Fault::Decompress)?;
            if n == 0 {
                break;
            }
            check.message(0, &buf[..n]);
            out.write_all(&buf[..n]).map_err(Fault::Output)?;
        }
        Ok(check)
    })();
    if let Err(Fault::Output(e)) = result {
        return Err(PipelineError::Output(e));
    }
    if let Err(Fault::NeedKey) = result {
        return Err(PipelineError::NeedKey {
            what: encrypted_to(manifest),
        });
    }
    // Read whatever is left so the object's hash covers all of it.
    let _ = std::io::copy(&mut reader.clone(), &mut std::io::sink());
    let (computed, size) = {
        let s = reader.0.borrow();
        (hex(&s.hasher.clone().finalize()), s.size)
    };
    if computed != manifest.object_sha256 || size != manifest.stored_size {
        return Err(PipelineError::Corrupted {
            object: manifest.object.clone(),
            computed,
            recorded: manifest.object_sha256.clone(),
            size,
            recorded_size: manifest.stored_size,
        });
    }
    let check = match result {
        Ok(c) => c,
        Err(Fault::NoMatchingKeys) => {
            return Err(PipelineError::WrongKey {
                given: keys.describe(),
                what: encrypted_to(manifest),
            });
        }
        Err(Fault::Decrypt(detail)) => {
            return Err(PipelineError::Decrypt {
                object: manifest.object.clone(),
                detail,
            });
        }
        Err(Fault::Decompress(source)) => {
            return Err(PipelineError::Decompress {
                object: manifest.object.clone(),
                source,
            });
        }
        Err(Fault::NeedKey | Fault::Output(_)) => unreachable!("handled above"),
    };
    let streamed = check.finish()?;
    let got = hex(&streamed.sha256);
    if got != manifest.sha256 {
        return Err(PipelineError::ContentMismatch {
            computed: got,
            recorded: manifest.sha256.clone(),
        });
    }
    Ok(streamed)
}
