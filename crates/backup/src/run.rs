//! One backup run: stream a snapshot into a store and write its manifest last; and a fetch,
//! which reads a backup back into a snapshot file identical to what etcdctl saves.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use jiff::Timestamp;
use kubemaint_etcd::save::manifest::{ManifestMember, RevisionSource, SourceMember};
use kubemaint_etcd::save::{ChunkSource, PartFile, SaveError, Streamed};
use tokio::sync::mpsc;

use crate::crypto::Decrypt;
use crate::manifest::{self, BackupManifest, Compression};
use crate::pipeline::{self, EncodeOptions, Encoded, PipelineError, hex};
use crate::store::{Chunk, Store, StoreError};

/// Snapshot messages buffered between the network and the encoder (32 KiB each from etcd).
const RAW_DEPTH: usize = 64;
/// Stored pieces (1 MiB) buffered between the encoder and the store.
const OUT_DEPTH: usize = 8;

/// Why a run or a fetch failed. Nothing is listed as a backup in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The snapshot, compression or encryption failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Interrupted (SIGTERM / Ctrl-C): the upload was abandoned and nothing stored.
    #[error("interrupted: the upload in flight was abandoned; nothing was stored")]
    Cancelled,
    /// The data was stored but the manifest could not be written; the data was removed.
    #[error(
        "the data of {id} was stored but its manifest could not be written ({source}); the data object was removed"
    )]
    Manifest {
        /// The backup.
        id: String,
        /// The cause.
        source: StoreError,
    },
    /// The backup's manifest is unreadable.
    #[error("the manifest of {id} in {location} is unreadable: {detail}")]
    BadManifest {
        /// The backup.
        id: String,
        /// The store.
        location: String,
        /// The cause.
        detail: String,
    },
    /// A background task failed.
    #[error("internal task failed: {0}")]
    Task(String),
    /// The output file could not be created or committed.
    #[error(transparent)]
    Output(#[from] SaveError),
}

/// What the manifest says about the source of a snapshot.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    /// Cluster ID (16 hex digits).
    pub cluster_id: String,
    /// etcd version.
    pub etcd_version: String,
    /// The member's revision when the snapshot started.
    pub revision: i64,
    /// The member streamed from.
    pub source: SourceMember,
    /// The member list.
    pub members: Vec<ManifestMember>,
}

/// Streams `source` into `store` as a new backup taken at `started`; writes the manifest last.
/// `cancel` resolving abandons the upload cleanly.
pub async fn write_backup<S: ChunkSource>(
    mut source: S,
    info: SourceInfo,
    store: &dyn Store,
    opts: &EncodeOptions,
    started: Timestamp,
    cancel: impl Future<Output = ()>,
) -> Result<BackupManifest, RunError> {
    let clock = Instant::now();
    // One-second IDs: a second backup in the same second gets a suffix instead of replacing
    // the first.
    let existing = store.list().await?;
    let id = manifest::unique_id(started, existing.iter().map(|o| o.name.as_str()));
    let object = manifest::data_name(&id, opts.encrypt.is_some());
    let (raw_tx, raw_rx) = mpsc::channel::<(u64, S::Blob)>(RAW_DEPTH);
    let (out_tx, out_rx) = mpsc::channel::<Chunk>(OUT_DEPTH);
    let enc_opts = opts.clone();
    let encoder =
        tokio::task::spawn_blocking(move || pipeline::encode_blocking(raw_rx, out_tx, &enc_opts));

    let max_rate = opts.max_rate.filter(|&r| r > 0);
    let produce = async move {
        let mut received = 0u64;
        let paced_from = tokio::time::Instant::now();
        tokio::pin!(cancel);
        let fed: Result<(), RunError> = loop {
            tokio::select! {
                biased;
                _ = &mut cancel => break Err(RunError::Cancelled),
                next = source.next_chunk() => match next {
                    Ok(Some((remaining, blob))) => {
                        received += blob.as_ref().len() as u64;
                        if raw_tx.send((remaining, blob)).await.is_err() {
                            // The encoder stopped; its error is reported below.
                            break Ok(());
                        }
                        if let Some(rate) = max_rate {
                            // Pace the reads: never ahead of `rate` bytes per second overall.
                            let due = paced_from + Duration::from_secs_f64(received as f64 / rate as f64);
                            tokio::select! {
                                biased;
                                _ = &mut cancel => break Err(RunError::Cancelled),
                                _ = tokio::time::sleep_until(due) => {}
                            }
                        }
                    }
                    Ok(None) => break Ok(()),
                    Err(error) => break Err(RunError::Pipeline(PipelineError::Snapshot(
                        SaveError::Stream { received, error },
                    ))),
                },
            }
        };
        drop(raw_tx);
        let encoded = encoder.await.map_err(|e| RunError::Task(e.to_string()))?;
        fed?;
        let Encoded {
            check,
            stored_size,
            object_sha256,
            tx,
        } = encoded?;
        let streamed = check.finish().map_err(PipelineError::from)?;
        // Only now does the store make the object visible.
        tx.send(Chunk::End)
            .await
            .map_err(|_| RunError::Task("the store stopped before the end".into()))?;
        Ok::<_, RunError>((streamed, stored_size, object_sha256))
    };
    let upload = store.put_stream(&object, out_rx);
    let (produced, uploaded) = tokio::join!(produce, upload);
    let (streamed, stored_size, object_sha256) = match (produced, uploaded) {
        (Ok(p), Ok(_)) => p,
        (Err(RunError::Cancelled), _) => return Err(RunError::Cancelled),
        (_, Err(e)) if !matches!(e, StoreError::Abandoned { .. }) => return Err(e.into()),
        (Err(e), _) => return Err(e),
        (Ok(_), Err(e)) => return Err(e.into()),
    };

    let manifest = BackupManifest {
        format: manifest::FORMAT.into(),
        id: id.clone(),
        object: object.clone(),
        created: started.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        duration_seconds: (clock.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        written_by: format!("kubemaint {}", env!("CARGO_PKG_VERSION")),
        revision: info.revision,
        revision_source: RevisionSource::StatusBeforeSave,
        db_size: streamed.db_size,
        file_size: streamed.file_size,
        sha256: hex(&streamed.sha256),
        stored_size,
        object_sha256: hex(&object_sha256),
        compression: Compression {
            algorithm: "zstd".into(),
            level: opts.level,
        },
        encryption: opts.encrypt.as_ref().map(|e| e.describe()),
        verified: true,
        cluster_id: info.cluster_id,
        etcd_version: info.etcd_version,
        source: info.source,
        members: info.members,
    };
    if let Err(source) = store
        .put_small(
            &manifest::manifest_name(&id),
            Bytes::from(manifest.to_json()),
        )
        .await
    {
        let _ = store.delete(&object).await;
        return Err(RunError::Manifest { id, source });
    }
    Ok(manifest)
}

/// Reads one backup's manifest.
pub async fn read_manifest(store: &dyn Store, id: &str) -> Result<BackupManifest, RunError> {
    let bytes = store.get_small(&manifest::manifest_name(id)).await?;
    let m: BackupManifest = serde_json::from_slice(&bytes).map_err(|e| RunError::BadManifest {
        id: id.to_string(),
        location: store.location(),
        detail: e.to_string(),
    })?;
    if m.id != id || !manifest::valid_id(&m.id) || m.object.contains('/') {
        return Err(RunError::BadManifest {
            id: id.to_string(),
            location: store.location(),
            detail: format!("it names backup {:?} / object {:?}", m.id, m.object),
        });
    }
    Ok(m)
}

/// What a fetch wrote.
#[derive(Debug)]
pub struct Fetched {
    /// The snapshot file.
    pub path: PathBuf,
    /// Its checked sizes and SHA-256.
    pub streamed: Streamed,
    /// The manifest.
    pub manifest: BackupManifest,
}

/// Fetches backup `id` from `store` into the snapshot file `to` (via `to.part`, mode 0600):
/// decrypts, decompresses and verifies every hash. Nothing is left at `to` on failure.
pub async fn fetch(
    store: &dyn Store,
    id: &str,
    keys: Arc<Decrypt>,
    to: &Path,
) -> Result<Fetched, RunError> {
    let manifest = read_manifest(store, id).await?;
    let (part, mut file, _) = PartFile::create(to)?;
    let (tx, rx) = mpsc::channel::<Bytes>(OUT_DEPTH);
    let m = manifest.clone();
    let decode = tokio::task::spawn_blocking(move || {
        let r = pipeline::decode_blocking(rx, &m, &keys, &mut file);
        (r, file)
    });
    let download = store.get_stream(&manifest.object, tx);
    let (decoded, downloaded) = tokio::join!(decode, download);
    let (decoded, file) = decoded.map_err(|e| RunError::Task(e.to_string()))?;
    // A download error explains a short object better than the decoder's complaint.
    downloaded?;
    let streamed = decoded?;
    file.sync_all().map_err(|error| SaveError::Write {
        path: part.path().to_path_buf(),
        error,
    })?;
    drop(file);
    let path = part.commit()?;
    Ok(Fetched {
        path,
        streamed,
        manifest,
    })
}
