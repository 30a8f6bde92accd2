//! `snapshot status`: the figures `etcdutl snapshot status` (v3.5) prints, computed in one pass
//! that also runs the full structural check, plus what operators ask for.
//!
//! etcdutl 3.5 (`etcdutl/snapshot/v3_snapshot.go`, `Status`): runs `tx.Check()`, then feeds a
//! CRC-32C (Castagnoli) with every top-level bucket name followed by each of its keys and values
//! (in cursor order; a nested bucket's value counts as empty), counts every such entry in every
//! bucket as `totalKey`, takes `revision` from the main part of the last key of bucket `key`, and
//! `totalSize = tx.Size() = pgid * pageSize`. etcd 3.6 added `version` (`meta/storageVersion`) and
//! changed `totalKey` to the number of live user keys; we report that as `liveKeys`.
//!
//! The figures and their assembly are here; `visitor.rs` computes them during the walk.

use serde::Serialize;

use super::Error;
use crate::bbolt::Db;
use crate::bbolt::check;
use crate::proto::mvcc::KeyValue;

mod visitor;

use visitor::{StatusVisitor, tally_live};

/// Options for [`status`].
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// Key prefix under which kube-apiserver stores objects (`--etcd-prefix`, default `/registry`),
    /// with a trailing slash.
    pub registry_prefix: Vec<u8>,
    /// Walk the second half of bucket `key` on a second thread (default). The figures are the
    /// same either way; `false` keeps everything on the calling thread.
    pub parallel: bool,
}

impl Default for StatusOptions {
    fn default() -> Self {
        StatusOptions {
            registry_prefix: b"/registry/".to_vec(),
            parallel: true,
        }
    }
}

/// Counts and sizes for one Kubernetes resource prefix (`/registry/<resource>` or
/// `/registry/<group>/<resource>` for resources whose first segment is an API group).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStats {
    /// Resource name, e.g. `pods` or `apiregistration.k8s.io/apiservices`; `(other)` for keys
    /// outside the registry prefix.
    pub resource: String,
    /// Live keys (latest revision is not a deletion).
    pub keys: u64,
    /// Bytes of the live keys' values.
    pub bytes: u64,
    /// Revisions still stored for this prefix (puts and deletions not yet compacted away).
    pub revisions: u64,
    /// Bytes those revisions occupy in bucket `key` (revision key + encoded KeyValue).
    pub revision_bytes: u64,
}

/// A cluster member from bucket `members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Member id as lowercase hex (as `etcdctl member list` prints it).
    #[serde(skip_deserializing)]
    pub id: String,
    /// Member name (empty for a member that has not started yet).
    #[serde(default)]
    pub name: String,
    /// Peer URLs.
    #[serde(default, rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    /// Client URLs.
    #[serde(default, rename = "clientURLs")]
    pub client_urls: Vec<String>,
    /// Whether the member is a learner.
    #[serde(default)]
    pub is_learner: bool,
}

/// An alarm from bucket `alarm` (alarms survive snapshot and restore).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alarm {
    /// Member id as lowercase hex.
    pub member_id: String,
    /// `NOSPACE`, `CORRUPT`, ...
    pub alarm: String,
}

/// Which etcd release line wrote the file, inferred from the schema (reference §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WrittenBy {
    /// `meta/storageVersion` is present (etcd ≥ 3.6).
    #[serde(rename = "3.6+")]
    V3_6Plus,
    /// `meta/term` is present (etcd 3.5; 3.4 already writes `cluster/clusterVersion`).
    #[serde(rename = "3.5")]
    V3_5,
    /// Neither (etcd ≤ 3.4).
    #[serde(rename = "<=3.4")]
    V3_4OrOlder,
}

/// Result of [`status`]. The first five fields serialize exactly like `etcdutl snapshot status -w json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// CRC-32C over bucket names, keys and values (etcdutl `hash`).
    pub hash: u32,
    /// Main revision of the last key in bucket `key` (etcdutl `revision`).
    pub revision: i64,
    /// Entries in all top-level buckets (etcdutl 3.5 `totalKey`).
    pub total_key: u64,
    /// `pgid * pageSize`, free pages included (etcdutl `totalSize`).
    pub total_size: u64,
    /// `meta/storageVersion` (etcdutl 3.6 `version`); empty before etcd 3.6.
    pub version: String,
    /// Live user keys (etcdutl 3.6 `totalKey`).
    pub live_keys: u64,
    /// Revisions stored in bucket `key` (puts and deletions).
    pub revisions: u64,
    /// `meta/finishedCompactRev` (0 if never compacted).
    pub compact_revision: i64,
    /// `meta/scheduledCompactRev` (greater than `compact_revision` if a compaction was in progress).
    pub scheduled_compact_revision: i64,
    /// `meta/consistent_index`: the raft index the data reflects.
    pub consistent_index: u64,
    /// `meta/term` (etcd ≥ 3.5).
    pub term: Option<u64>,
    /// `cluster/clusterVersion` (written by etcd 3.4 and later).
    pub cluster_version: Option<String>,
    /// Which etcd release line wrote the file.
    pub written_by: WrittenBy,
    /// Page size in bytes.
    pub page_size: u64,
    /// Pages in use (metas, freelist, reachable tree pages).
    pub used_pages: u64,
    /// Free pages below the high-water mark (reclaimable by defragmentation).
    pub free_pages: u64,
    /// `free_pages * page_size`.
    pub free_bytes: u64,
    /// `free_pages / (pgid)` in percent (0–100), rounded to one decimal.
    pub fragmentation_percent: f64,
    /// Number of leases in bucket `lease`.
    pub leases: u64,
    /// Whether `auth/authEnabled` is set.
    pub auth_enabled: bool,
    /// Members from bucket `members`, in id order.
    pub members: Vec<Member>,
    /// Ids (hex) from bucket `members_removed`.
    pub removed_members: Vec<String>,
    /// Alarms from bucket `alarm`.
    pub alarms: Vec<Alarm>,
    /// Per-resource counts, sorted by resource name.
    pub resources: Vec<ResourceStats>,
}

/// etcd's revision key: `BE u64 main`, `_`, `BE u64 sub`, and an 18th byte `t` for a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Rev {
    pub main: i64,
    pub sub: i64,
}

/// Parses a `key`-bucket key: `(revision, is_tombstone)`.
pub(crate) fn parse_rev_key(key: &[u8], offset: u64) -> Result<(Rev, bool), Error> {
    if key.len() != 17 && key.len() != 18 {
        return Err(Error::BadRevisionKey {
            offset,
            len: key.len(),
        });
    }
    let main = i64::from_be_bytes(key[0..8].try_into().unwrap_or_default());
    let sub = i64::from_be_bytes(key[9..17].try_into().unwrap_or_default());
    Ok((Rev { main, sub }, key.len() == 18 && key[17] == b't'))
}

/// Decodes a `key`-bucket value.
pub(crate) fn parse_kv<'a>(value: &'a [u8], offset: u64) -> Result<KeyValue<'a>, Error> {
    KeyValue::decode(value).map_err(|e| Error::BadKeyValue {
        offset,
        what: e.to_string(),
    })
}

fn be_u64(v: &[u8]) -> Option<u64> {
    v.get(0..8)
        .map(|b| u64::from_be_bytes(b.try_into().unwrap_or_default()))
}
/// Computes the status of an opened database: runs the full structural check (like etcdutl's
/// `tx.Check`) and every figure in the same pass. With [`StatusOptions::parallel`], the second
/// half of bucket `key` is walked on a second thread (see [`check::check`]).
pub fn status(db: &Db, opts: &StatusOptions) -> Result<Status, Error> {
    let mut v = StatusVisitor::new(opts, foldhash::fast::RandomState::default());
    let stats = check::check(db, &mut v)?;
    if let Some(e) = v.error {
        return Err(e);
    }
    let meta_rev = |k: &[u8]| {
        v.meta
            .get(k)
            .and_then(|b| be_u64(b))
            .map_or(0, |x| x as i64)
    };
    let version = v
        .meta
        .get(&b"storageVersion"[..])
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let term = v.meta.get(&b"term"[..]).and_then(|b| be_u64(b));
    let written_by = if !version.is_empty() {
        WrittenBy::V3_6Plus
    } else if term.is_some() {
        WrittenBy::V3_5
    } else {
        WrittenBy::V3_4OrOlder
    };
    // Live keys per resource: those whose last revision is a put.
    let mut live = vec![(0u64, 0u64); v.resources.len()];
    let live_keys = tally_live(&mut v.runs, &mut live);
    let mut resources: Vec<ResourceStats> = v
        .resources
        .iter()
        .zip(&live)
        .map(|((name, r), &(keys, bytes))| ResourceStats {
            resource: if name.is_empty() {
                "(other)".into()
            } else {
                String::from_utf8_lossy(name).into_owned()
            },
            keys,
            bytes,
            revisions: r.revisions,
            revision_bytes: r.revision_bytes,
        })
        .collect();
    resources.sort_by(|a, b| a.resource.cmp(&b.resource));
    let mut members = v.members;
    members.sort_by(|a, b| a.id.cmp(&b.id));
    let hwm = stats.hwm_pages.max(1);
    Ok(Status {
        hash: v.crc,
        revision: v.revision,
        total_key: v.total_key,
        total_size: db.size(),
        version,
        live_keys,
        revisions: v.revisions,
        compact_revision: meta_rev(b"finishedCompactRev"),
        scheduled_compact_revision: meta_rev(b"scheduledCompactRev"),
        consistent_index: v
            .meta
            .get(&b"consistent_index"[..])
            .and_then(|b| be_u64(b))
            .unwrap_or(0),
        term,
        cluster_version: v.cluster_version,
        written_by,
        page_size: stats.page_size,
        used_pages: stats.used_pages,
        free_pages: stats.free_pages,
        free_bytes: stats.free_pages * stats.page_size,
        fragmentation_percent: (stats.free_pages as f64 * 1000.0 / hwm as f64).round() / 10.0,
        leases: v.leases,
        auth_enabled: v.auth_enabled,
        members,
        removed_members: v.removed_members,
        alarms: v.alarms,
        resources,
    })
}
/// [`Status`] of a file plus what the file itself says about its integrity.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileStatus {
    /// The figures.
    #[serde(flatten)]
    pub status: Status,
    /// Whether the file ends with etcd's SHA-256 trailer (false for a raw `member/snap/db`).
    pub sha256_trailer: bool,
    /// Warnings for the operator (e.g. a raw `member/snap/db` whose integrity cannot be checked).
    pub warnings: Vec<String>,
}

/// Opens `path` (snapshot or raw `member/snap/db`) and computes its [`Status`]. The SHA-256 trailer
/// is detected but not recomputed (that is `verify`'s job), as with `etcdutl snapshot status`.
pub fn status_file(path: &std::path::Path, opts: &StatusOptions) -> Result<FileStatus, Error> {
    let f = super::SnapshotFile::open(path)?;
    let db = f.db()?;
    let status = status(&db, opts)?;
    let sha256_trailer = matches!(f.trailer(), super::Trailer::Sha256(_));
    let mut warnings = Vec::new();
    if !sha256_trailer {
        warnings.push(format!(
            "{} has no SHA-256 trailer: it is a raw member/snap/db copy (or a truncated snapshot), so its integrity cannot be proven; prefer a snapshot taken with `kubemaint etcd snapshot save`",
            path.display()
        ));
    }
    Ok(FileStatus {
        status,
        sha256_trailer,
        warnings,
    })
}

/// Formats a byte count like go-humanize's `Bytes` (SI units, as etcdutl prints `total size`):
/// `"94 kB"`, `"2.1 MB"`, `"7 B"`.
pub fn humanize_bytes(s: u64) -> String {
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if s < 10 {
        return format!("{s} B");
    }
    let sf = s as f64;
    let e = (sf.ln() / 1000f64.ln()).floor();
    let suffix = SIZES[(e as usize).min(SIZES.len() - 1)];
    let val = (sf / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {suffix}")
    } else {
        format!("{val:.0} {suffix}")
    }
}

#[cfg(test)]
mod tests;
