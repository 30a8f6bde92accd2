//! `snapshot restore`: turn a snapshot file into a data dir that etcd 3.4/3.5 boots from.
//!
//! What is written (as `etcdutl snapshot restore`, release-3.4 `clientv3/snapshot` and release-3.5
//! `etcdutl/snapshot/v3_snapshot.go`):
//! * `member/snap/db`: a freshly written, defragmented bbolt file with every bucket of the snapshot,
//!   except `members`/`members_removed`, which hold the new membership only; `meta/consistent_index`
//!   = number of members, `meta/term` = 1 (and `meta/confState` = the new voters when the snapshot
//!   has one); with a bump, an empty-valued marker key at `latest + bump` in `key` and
//!   `meta/scheduledCompactRev` at the same revision, so etcd resumes that compaction on boot.
//! * `member/wal/0000000000000000-0000000000000000.wal`: CRC, metadata (node, cluster ID), empty
//!   snapshot marker, one ConfChange(AddNode) entry per member (ascending ID), the hard state
//!   (term 1, vote = lowest ID, commit = N), and the snapshot marker at index N with the voters.
//! * `member/snap/0000000000000001-<N>.snap`: the raft snapshot whose v2 store lists the members;
//!   etcd 3.4/3.5 read membership from it.
//!
//! Everything is built in a hidden directory beside the target (or, when the target is an existing
//! empty directory, possibly a mount point, inside it) and renamed into place at the end, so a
//! failure (including a SHA-256 mismatch found while writing) leaves the target as it was. The
//! SHA-256 is computed on a second thread while the database is rewritten.
//!
//! The steps are here; `plan.rs` decides (flags, membership, the revision bump), `staging.rs` owns
//! the staging directories, `db.rs` writes the database, WAL and `.snap`.

mod db;
pub mod plan;
mod staging;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::bbolt::Db;
use crate::bbolt::write::{WriteError, WriteStats};
use crate::ids::Membership;
use crate::snap;
use crate::wal;
pub use db::write_db;
use db::{scan_keys, write_all};
pub use plan::{KeyFacts, Layout, PlanError, RevisionFlags, RevisionPolicy};
use staging::{Staging, check_targets, stale_staging};

/// Inputs of a restore, as the etcdutl flags give them.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The snapshot file (or a raw `member/snap/db` with `skip_hash_check`).
    pub snapshot: PathBuf,
    /// `--data-dir` (default `<name>.etcd`).
    pub data_dir: Option<PathBuf>,
    /// `--wal-dir` (default `<data-dir>/member/wal`).
    pub wal_dir: Option<PathBuf>,
    /// `--name`.
    pub name: String,
    /// `--initial-cluster` (default `<name>=http://localhost:2380`).
    pub initial_cluster: Option<String>,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--initial-advertise-peer-urls` (default `http://localhost:2380`).
    pub initial_advertise_peer_urls: Vec<String>,
    /// `--skip-hash-check`.
    pub skip_hash_check: bool,
    /// Revision flags.
    pub revision: RevisionFlags,
    /// `--dry-run`: read and check everything, write nothing.
    pub dry_run: bool,
}

impl RestoreOptions {
    /// Options with etcdutl's defaults for `snapshot`.
    pub fn new(snapshot: impl Into<PathBuf>) -> Self {
        RestoreOptions {
            snapshot: snapshot.into(),
            data_dir: None,
            wal_dir: None,
            name: plan::DEFAULT_NAME.to_string(),
            initial_cluster: None,
            initial_cluster_token: plan::DEFAULT_TOKEN.to_string(),
            initial_advertise_peer_urls: Vec::new(),
            skip_hash_check: false,
            revision: RevisionFlags::default(),
            dry_run: false,
        }
    }
}

/// Restore faults. Each says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Bad flags.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The data dir exists and is not empty.
    #[error(
        "data dir {0} exists and is not empty; restore into a new or empty directory (etcd never overwrites a data dir)"
    )]
    DataDirNotEmpty(PathBuf),
    /// The WAL dir exists.
    #[error("wal dir {0} exists; choose a --wal-dir that does not exist")]
    WalDirExists(PathBuf),
    /// No SHA-256 trailer and no `--skip-hash-check`.
    #[error(
        "snapshot {0} has no SHA-256 trailer (size is not 32 more than a multiple of 512): if it is a copy of member/snap/db, pass --skip-hash-check"
    )]
    MissingHash(PathBuf),
    /// SHA-256 mismatch.
    #[error(
        "snapshot {path} is corrupt: SHA-256 trailer says {expected}, contents hash to {actual}; take a new snapshot or use another copy"
    )]
    HashMismatch {
        /// Snapshot path.
        path: PathBuf,
        /// Trailer, hex.
        expected: String,
        /// Computed, hex.
        actual: String,
    },
    /// The bbolt image is unreadable.
    #[error("snapshot {path} is not a readable etcd database")]
    Source {
        /// Snapshot path.
        path: PathBuf,
        /// Reader fault.
        source: crate::bbolt::Error,
    },
    /// Something etcd never writes (e.g. nested buckets).
    #[error("snapshot {path}: {what}")]
    Unsupported {
        /// Snapshot path.
        path: PathBuf,
        /// What.
        what: String,
    },
    /// Writing the new bbolt file failed.
    #[error("writing the restored database")]
    Write(#[from] WriteError),
    /// Other I/O.
    #[error("{what} {path}")]
    Io {
        /// What we were doing.
        what: &'static str,
        /// Path involved.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> RestoreError + 'a {
    move |source| RestoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// What a restore did (or, with `dry_run`, would do).
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// Output layout.
    pub layout: Layout,
    /// The new membership.
    pub membership: Membership,
    /// Files written (final paths), in write order.
    pub files: Vec<PathBuf>,
    /// Facts from the `key` bucket.
    pub key_facts: KeyFacts,
    /// Bump applied (with mark-compacted), if any.
    pub bump: Option<u64>,
    /// Whether the SHA-256 trailer was verified.
    pub hash_verified: bool,
    /// Whether the input had a trailer.
    pub had_trailer: bool,
    /// Writer figures (zero for a dry run).
    pub db: WriteStats,
    /// Size of the snapshot's bbolt image.
    pub source_size: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Dry run: nothing written.
    pub dry_run: bool,
    /// Staging dirs left by restores that were killed midway (their process is gone), removed
    /// before starting; a dry run lists the ones it would remove.
    pub leftovers: Vec<PathBuf>,
}

/// Whether a file of `len` bytes ends with etcd's 32-byte SHA-256 trailer (`hasChecksum`).
pub fn has_trailer(len: u64) -> bool {
    len % 512 == 32
}

/// Runs a restore.
pub fn restore(opts: &RestoreOptions) -> Result<RestoreReport, RestoreError> {
    let start = Instant::now();
    let policy = plan::revision_policy(opts.revision)?;
    let membership = plan::membership(
        &opts.name,
        opts.initial_cluster.as_deref(),
        &opts.initial_cluster_token,
        &opts.initial_advertise_peer_urls,
    )?;
    let layout = Layout::new(
        &opts.name,
        opts.data_dir.as_deref(),
        opts.wal_dir.as_deref(),
    );
    let leftovers = stale_staging(&layout);
    check_targets(&layout, &leftovers)?;
    if !opts.dry_run {
        for dir in &leftovers {
            std::fs::remove_dir_all(dir).map_err(io_err(
                "cannot remove the leftover of an interrupted restore",
                dir,
            ))?;
        }
    }

    let path = &opts.snapshot;
    let file = File::open(path).map_err(io_err("cannot open snapshot", path))?;
    let len = file
        .metadata()
        .map_err(io_err("cannot stat snapshot", path))?
        .len();
    let had_trailer = len >= 32 && has_trailer(len);
    if !had_trailer && !opts.skip_hash_check {
        return Err(RestoreError::MissingHash(path.clone()));
    }
    let db_len = if had_trailer { len - 32 } else { len };
    let db = Db::from_file(&file, path, db_len).map_err(|source| RestoreError::Source {
        path: path.clone(),
        source,
    })?;
    let verify = had_trailer && !opts.skip_hash_check;

    let commit = membership.members.len() as u64;
    let snap_name = snap::file_name(1, commit);
    let snap_dir = layout.data_dir.join("member").join("snap");
    let files = vec![
        snap_dir.join("db"),
        layout.wal_dir.join(wal::segment_name(0, 0)),
        snap_dir.join(&snap_name),
    ];

    if opts.dry_run {
        if verify {
            check_hash(&db, &file, path)?;
        }
        let facts = scan_keys(&db, path)?;
        let bump = plan::decide_bump(policy, facts)?;
        // Walk every bucket so a structural fault shows up in the dry run too.
        for b in db.buckets() {
            let (_, bucket) = b.map_err(|source| RestoreError::Source {
                path: path.clone(),
                source,
            })?;
            for e in bucket.cursor() {
                e.map_err(|source| RestoreError::Source {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        return Ok(RestoreReport {
            layout,
            membership,
            files,
            key_facts: facts,
            bump,
            hash_verified: verify,
            had_trailer,
            db: WriteStats::default(),
            source_size: db_len,
            elapsed: start.elapsed(),
            dry_run: true,
            leftovers,
        });
    }

    let mut staging = Staging::new(&layout)?;
    let tmp_data = staging.data.clone();
    let tmp_wal = staging.wal_root();

    // Verify the SHA-256 on a second thread while the database is rewritten; the result is
    // checked before anything is renamed into place.
    let (written, hash_result) = std::thread::scope(|s| {
        let hasher = verify.then(|| s.spawn(|| check_hash(&db, &file, path)));
        let written = write_all(
            &db,
            path,
            &membership,
            policy,
            &tmp_data,
            &tmp_wal,
            &snap_name,
        );
        let hash = match hasher {
            Some(h) => h.join().unwrap_or_else(|_| {
                Err(RestoreError::Unsupported {
                    path: path.clone(),
                    what: "hash thread panicked".into(),
                })
            }),
            None => Ok(()),
        };
        (written, hash)
    });
    hash_result?;
    let (facts, bump, stats) = written?;
    staging.commit(&layout)?;
    Ok(RestoreReport {
        layout,
        membership,
        files,
        key_facts: facts,
        bump,
        hash_verified: verify,
        had_trailer,
        db: stats,
        source_size: db_len,
        elapsed: start.elapsed(),
        dry_run: false,
        leftovers,
    })
}
/// Hashes the mapped image (no extra copy; the page faults are shared with the writer) and
/// compares the result with the 32-byte trailer that follows it in the file.
fn check_hash(db: &Db, file: &File, path: &Path) -> Result<(), RestoreError> {
    use std::os::unix::fs::FileExt;
    let data = db.data();
    let mut trailer = [0u8; 32];
    file.read_exact_at(&mut trailer, data.len() as u64)
        .map_err(io_err("cannot read the snapshot's SHA-256 trailer", path))?;
    let mut h = Sha256::new();
    // Chunked so a multi-GiB map is not one giant call (keeps the hasher cache-friendly).
    for chunk in data.chunks(8 << 20) {
        h.update(chunk);
    }
    let actual: [u8; 32] = h.finalize().into();
    if actual != trailer {
        return Err(RestoreError::HashMismatch {
            path: path.to_path_buf(),
            expected: hex(&trailer),
            actual: hex(&actual),
        });
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
#[cfg(test)]
mod tests;
