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

pub mod plan;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::bbolt::Db;
use crate::bbolt::write::{DbWriter, WriteError, WriteOptions, WriteStats};
use crate::ids::Membership;
use crate::proto::raft;
use crate::snap;
use crate::wal;
pub use plan::{KeyFacts, Layout, PlanError, RevisionFlags, RevisionPolicy};

/// Bucket names etcd uses that restore touches.
const KEY_BUCKET: &[u8] = b"key";
const META_BUCKET: &[u8] = b"meta";
const MEMBERS_BUCKET: &[u8] = b"members";
const MEMBERS_REMOVED_BUCKET: &[u8] = b"members_removed";

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

/// Staging dirs of earlier restores into these targets that nobody holds any more (killed
/// midway): `DATA/.kubemaint-restore-PID` inside an existing data dir, `.NAME.kubemaint-restore-PID`
/// beside the data and WAL dirs. A restore holds an exclusive `flock` on its staging dirs while it
/// runs, so one in progress — even in another PID namespace sharing the disk — is left alone.
fn stale_staging(layout: &Layout) -> Vec<PathBuf> {
    let ours = std::process::id().to_string();
    let named_like_staging = |name: &str, prefix: &str| {
        name.strip_prefix(prefix).is_some_and(|pid| {
            !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && pid != ours
        })
    };
    let mut found = Vec::new();
    let mut scan = |dir: &Path, prefix: &str| {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = dir.join(&name);
            if named_like_staging(&name, prefix)
                && e.file_type().is_ok_and(|t| t.is_dir())
                && !held_by_a_restore(&path)
            {
                found.push(path);
            }
        }
    };
    scan(&layout.data_dir, ".kubemaint-restore-");
    for target in [&layout.data_dir, &layout.wal_dir] {
        if let Some(name) = target.file_name() {
            let prefix = format!(".{}.kubemaint-restore-", name.to_string_lossy());
            scan(&parent_of(target), &prefix);
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Whether a running restore holds its lock on staging dir `dir` (unknown counts as held).
fn held_by_a_restore(dir: &Path) -> bool {
    match File::open(dir) {
        Ok(f) => match f.try_lock() {
            Ok(()) => false,
            Err(std::fs::TryLockError::WouldBlock) => true,
            Err(std::fs::TryLockError::Error(_)) => true,
        },
        Err(_) => true,
    }
}

/// Takes the exclusive lock a restore holds on each of its staging dirs while it runs.
fn lock_staging(dir: &Path) -> Result<File, RestoreError> {
    let f = File::open(dir).map_err(io_err("cannot open staging dir", dir))?;
    f.try_lock()
        .map_err(|e| io_err("cannot lock staging dir", dir)(e.into()))?;
    Ok(f)
}

/// Refuses a non-empty data dir or an existing WAL dir (etcdutl's rules); `leftovers` (stale
/// staging dirs, about to be removed) do not count.
fn check_targets(layout: &Layout, leftovers: &[PathBuf]) -> Result<(), RestoreError> {
    let d = &layout.data_dir;
    match std::fs::read_dir(d) {
        Ok(mut it) => {
            // An entry that cannot be read counts as data.
            if it.any(|e| e.map_or(true, |e| !leftovers.contains(&e.path()))) {
                return Err(RestoreError::DataDirNotEmpty(d.clone()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) if d.exists() => return Err(RestoreError::DataDirNotEmpty(d.clone())),
        Err(e) => return Err(io_err("cannot read data dir", d)(e)),
    }
    if layout.separate_wal && layout.wal_dir.symlink_metadata().is_ok() {
        return Err(RestoreError::WalDirExists(layout.wal_dir.clone()));
    }
    Ok(())
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

/// Reads the `key` bucket's facts without writing (dry run).
fn scan_keys(db: &Db, path: &Path) -> Result<KeyFacts, RestoreError> {
    let src = |source| RestoreError::Source {
        path: path.to_path_buf(),
        source,
    };
    let mut facts = KeyFacts::default();
    if let Some(b) = db.bucket(KEY_BUCKET).map_err(src)? {
        let mut last: Option<&[u8]> = None;
        for e in b.cursor() {
            let e = e.map_err(src)?;
            if !facts.has_kubernetes_keys && is_kubernetes_value(e.value) {
                facts.has_kubernetes_keys = true;
            }
            last = Some(e.key);
        }
        facts.latest_revision = last.and_then(plan::revision_main).unwrap_or(0);
    }
    Ok(facts)
}

/// Whether an `mvccpb.KeyValue` value's key (field 1) starts with `/registry/`.
fn is_kubernetes_value(v: &[u8]) -> bool {
    // Field 1, wire type 2 → tag 0x0a, then a varint length.
    if v.first() != Some(&0x0a) {
        return false;
    }
    let mut len = 0usize;
    let mut i = 1;
    for shift in (0..35).step_by(7) {
        let Some(&c) = v.get(i) else { return false };
        i += 1;
        len |= usize::from(c & 0x7f) << shift;
        if c < 0x80 {
            break;
        }
    }
    len >= plan::KUBERNETES_PREFIX.len() && v[i..].starts_with(plan::KUBERNETES_PREFIX)
}

/// Temporary directories beside the targets; removed on drop unless committed.
struct Staging {
    data: PathBuf,
    wal: Option<PathBuf>,
    /// Staged inside an existing empty data dir (which may be a mount point, where a rename
    /// over it would fail): only `member/` is renamed into it at the end.
    inside: bool,
    /// A `--wal-dir` inside the data dir, staged at its place inside the staging dir.
    inner_wal: Option<PathBuf>,
    committed: bool,
    /// Locks held on the staging dirs while this restore runs (see [`stale_staging`]).
    _locks: Vec<File>,
}

fn hidden_sibling(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "etcd".into());
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parent.join(format!(".{name}.kubemaint-restore-{}", std::process::id()))
}

fn mkdir(path: &Path) -> Result<(), RestoreError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_err("cannot create directory", path))
}

fn fsync_dir(path: &Path) -> Result<(), RestoreError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_err("cannot fsync directory", path))
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(x) if !x.as_os_str().is_empty() => x.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl Staging {
    fn new(layout: &Layout) -> Result<Self, RestoreError> {
        let data_parent = parent_of(&layout.data_dir);
        if !data_parent.is_dir() {
            mkdir(&data_parent)?;
        }
        let inside = layout.data_dir.is_dir();
        let data = if inside {
            layout
                .data_dir
                .join(format!(".kubemaint-restore-{}", std::process::id()))
        } else {
            hidden_sibling(&layout.data_dir)
        };
        let _ = std::fs::remove_dir_all(&data);
        let mut s = Staging {
            data: data.clone(),
            wal: None,
            inside,
            inner_wal: None,
            committed: false,
            _locks: Vec::new(),
        };
        mkdir(&data.join("member").join("snap"))?;
        s._locks.push(lock_staging(&data)?);
        // A --wal-dir inside the data dir is staged inside it too and moves with it.
        let inner_wal = layout
            .wal_dir
            .strip_prefix(&layout.data_dir)
            .ok()
            .filter(|r| !r.as_os_str().is_empty());
        if let Some(rel) = inner_wal {
            let w = data.join(rel);
            mkdir(&w)?;
            s.inner_wal = Some(w);
        } else if layout.separate_wal {
            let wal_parent = parent_of(&layout.wal_dir);
            if !wal_parent.is_dir() {
                mkdir(&wal_parent)?;
            }
            let w = hidden_sibling(&layout.wal_dir);
            let _ = std::fs::remove_dir_all(&w);
            s.wal = Some(w.clone());
            mkdir(&w)?;
            s._locks.push(lock_staging(&w)?);
        } else {
            mkdir(&data.join("member").join("wal"))?;
        }
        Ok(s)
    }

    fn wal_root(&self) -> PathBuf {
        self.wal
            .clone()
            .or_else(|| self.inner_wal.clone())
            .unwrap_or_else(|| self.data.join("member").join("wal"))
    }

    /// Renames staged dirs into place (WAL first) and fsyncs the parents.
    fn commit(&mut self, layout: &Layout) -> Result<(), RestoreError> {
        if let Some(w) = &self.wal {
            std::fs::rename(w, &layout.wal_dir).map_err(io_err(
                "cannot rename the WAL dir into place at",
                &layout.wal_dir,
            ))?;
            fsync_dir(&parent_of(&layout.wal_dir))?;
        }
        let renamed = if self.inside {
            // Move each staged top-level entry (`member`, maybe an inner WAL dir) into place.
            std::fs::read_dir(&self.data).and_then(|entries| {
                for e in entries {
                    let name = e?.file_name();
                    std::fs::rename(self.data.join(&name), layout.data_dir.join(&name))?;
                }
                Ok(())
            })
        } else {
            std::fs::rename(&self.data, &layout.data_dir)
        };
        if let Err(e) = renamed {
            if self.wal.is_some() {
                let _ = std::fs::remove_dir_all(&layout.wal_dir);
            }
            return Err(io_err(
                "cannot rename the data dir into place at",
                &layout.data_dir,
            )(e));
        }
        self.committed = true;
        if self.inside {
            let _ = std::fs::remove_dir(&self.data);
            fsync_dir(&layout.data_dir)
        } else {
            fsync_dir(&parent_of(&layout.data_dir))
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.data);
            if let Some(w) = &self.wal {
                let _ = std::fs::remove_dir_all(w);
            }
        }
    }
}

/// Writes db, WAL and .snap into the staging dirs; fsyncs them.
#[allow(clippy::too_many_arguments)]
fn write_all(
    db: &Db,
    path: &Path,
    membership: &Membership,
    policy: RevisionPolicy,
    tmp_data: &Path,
    tmp_wal: &Path,
    snap_name: &str,
) -> Result<(KeyFacts, Option<u64>, WriteStats), RestoreError> {
    let snap_dir = tmp_data.join("member").join("snap");
    let db_path = snap_dir.join("db");
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&db_path)
        .map_err(io_err("cannot create", &db_path))?;
    let out = BufWriter::with_capacity(1 << 20, f);
    let opts = WriteOptions {
        page_size: u32::try_from(db.page_size()).unwrap_or(4096),
        ..WriteOptions::default()
    };
    let (facts, bump, out, stats) = write_db(db, path, membership, policy, out, opts)?;
    let f = out
        .into_inner()
        .map_err(|e| io_err("cannot write", &db_path)(e.into_error()))?;
    f.sync_all().map_err(io_err("cannot fsync", &db_path))?;

    let ids = membership.ids();
    let commit = ids.len() as u64;
    let conf_state = wal::voters(&ids);
    let entries: Vec<raft::Entry> = membership
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| raft::Entry {
            entry_type: raft::ENTRY_CONF_CHANGE,
            term: 1,
            index: i as u64 + 1,
            data: Some(
                raft::ConfChange {
                    id: 0,
                    change_type: raft::CONF_CHANGE_ADD_NODE,
                    node_id: m.id,
                    context: Some(m.to_json().into_bytes()),
                }
                .encode(),
            ),
        })
        .collect();
    let segment = wal::restore_segment(
        &raft::Metadata {
            node_id: membership.local_member().id,
            cluster_id: membership.cluster_id,
        },
        &entries,
        &raft::HardState {
            term: 1,
            vote: ids[0],
            commit,
        },
        &raft::WalSnapshot {
            index: commit,
            term: 1,
            conf_state: Some(conf_state.clone()),
        },
    );
    let wal_path = tmp_wal.join(wal::segment_name(0, 0));
    wal::write_segment_file(&wal_path, &segment).map_err(io_err("cannot write", &wal_path))?;

    let snap_bytes = snap::encode(&raft::RaftSnapshot {
        data: snap::v2_store_json(&membership.members).into_bytes(),
        conf_state,
        index: commit,
        term: 1,
    });
    let snap_path = snap_dir.join(snap_name);
    snap::write_file(&snap_path, &snap_bytes).map_err(io_err("cannot write", &snap_path))?;

    fsync_dir(&snap_dir)?;
    fsync_dir(tmp_wal)?;
    fsync_dir(&tmp_data.join("member"))?;
    fsync_dir(tmp_data)?;
    Ok((facts, bump, stats))
}

/// Rewrites the snapshot's buckets into `out`, replacing membership and meta as restore does.
/// Public for tests and benchmarks that want the database alone.
pub fn write_db<W: std::io::Write + std::io::Seek>(
    db: &Db,
    path: &Path,
    membership: &Membership,
    policy: RevisionPolicy,
    out: W,
    opts: WriteOptions,
) -> Result<(KeyFacts, Option<u64>, W, WriteStats), RestoreError> {
    let src = |source| RestoreError::Source {
        path: path.to_path_buf(),
        source,
    };
    // Bucket names in order, plus the ones restore always writes.
    let mut names: BTreeMap<Vec<u8>, Option<crate::bbolt::Bucket<'_>>> = BTreeMap::new();
    for b in db.buckets() {
        let (name, bucket) = b.map_err(src)?;
        names.insert(name.to_vec(), Some(bucket));
    }
    for n in [
        KEY_BUCKET,
        META_BUCKET,
        MEMBERS_BUCKET,
        MEMBERS_REMOVED_BUCKET,
    ] {
        names.entry(n.to_vec()).or_insert(None);
    }

    let mut w = DbWriter::new(out, opts)?;
    let mut facts = KeyFacts::default();
    let mut bump = None;
    let mut decided = false;
    for (name, bucket) in &names {
        let sequence = bucket.map_or(0, |b| b.header().sequence);
        w.begin_bucket(name, sequence)?;
        match name.as_slice() {
            MEMBERS_BUCKET => {
                let mut m: Vec<(String, String)> = membership
                    .members
                    .iter()
                    .map(|m| (m.hex_id(), m.to_json()))
                    .collect();
                m.sort();
                for (k, v) in m {
                    w.put(k.as_bytes(), v.as_bytes())?;
                }
            }
            MEMBERS_REMOVED_BUCKET => {}
            META_BUCKET => {
                if !decided {
                    bump = plan::decide_bump(policy, facts)?;
                    decided = true;
                }
                let mut meta: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
                if let Some(b) = bucket {
                    for e in b.cursor() {
                        let e = e.map_err(src)?;
                        if e.is_bucket() {
                            return Err(nested(path, name));
                        }
                        meta.insert(e.key.to_vec(), e.value.to_vec());
                    }
                }
                let n = membership.members.len() as u64;
                meta.insert(b"consistent_index".to_vec(), n.to_be_bytes().to_vec());
                meta.insert(b"term".to_vec(), 1u64.to_be_bytes().to_vec());
                if let Some(cs) = meta.get_mut(b"confState".as_slice()) {
                    *cs = wal::voters(&membership.ids()).to_json().into_bytes();
                }
                if let Some(b) = bump {
                    let rev = plan::revision_key(facts.latest_revision + b, 0);
                    meta.insert(b"scheduledCompactRev".to_vec(), rev.to_vec());
                }
                for (k, v) in &meta {
                    w.put(k, v)?;
                }
            }
            KEY_BUCKET => {
                let mut last: Option<&[u8]> = None;
                if let Some(b) = bucket {
                    for e in b.cursor() {
                        let e = e.map_err(src)?;
                        if e.is_bucket() {
                            return Err(nested(path, name));
                        }
                        if !facts.has_kubernetes_keys && is_kubernetes_value(e.value) {
                            facts.has_kubernetes_keys = true;
                        }
                        w.put(e.key, e.value)?;
                        last = Some(e.key);
                    }
                }
                facts.latest_revision = last.and_then(plan::revision_main).unwrap_or(0);
                bump = plan::decide_bump(policy, facts)?;
                decided = true;
                if let Some(b) = bump {
                    // etcdutl's `unsafeBumpRevision`: an empty value at (latest + bump, 0).
                    w.put(&plan::revision_key(facts.latest_revision + b, 0), &[])?;
                }
            }
            _ => {
                if let Some(b) = bucket {
                    for e in b.cursor() {
                        let e = e.map_err(src)?;
                        if e.is_bucket() {
                            return Err(nested(path, name));
                        }
                        w.put(e.key, e.value)?;
                    }
                }
            }
        }
        w.end_bucket()?;
    }
    let (out, stats) = w.finish()?;
    Ok((facts, bump, out, stats))
}

fn nested(path: &Path, bucket: &[u8]) -> RestoreError {
    RestoreError::Unsupported {
        path: path.to_path_buf(),
        what: format!(
            "bucket {:?} contains a nested bucket, which etcd never writes; this is not an etcd snapshot",
            String::from_utf8_lossy(bucket)
        ),
    }
}

#[cfg(test)]
mod tests;
