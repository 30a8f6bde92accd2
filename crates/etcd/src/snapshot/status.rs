//! `snapshot status`: the figures `etcdutl snapshot status` (v3.5) prints, computed in one pass
//! that also runs the full structural check, plus what operators ask for.
//!
//! etcdutl 3.5 (`etcdutl/snapshot/v3_snapshot.go`, `Status`): runs `tx.Check()`, then feeds a
//! CRC-32C (Castagnoli) with every top-level bucket name followed by each of its keys and values
//! (in cursor order; a nested bucket's value counts as empty), counts every such entry in every
//! bucket as `totalKey`, takes `revision` from the main part of the last key of bucket `key`, and
//! `totalSize = tx.Size() = pgid * pageSize`. etcd 3.6 added `version` (`meta/storageVersion`) and
//! changed `totalKey` to the number of live user keys; we report that as `liveKeys`.

use std::collections::HashMap as StdHashMap;

/// Maps keyed by file bytes: foldhash is several times faster than SipHash and still seeded per process.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

use serde::Serialize;

use super::Error;
use super::proto::{AlarmMember, KeyValue};
use crate::bbolt::check::{self, Visitor};
use crate::bbolt::{Db, Entry};

/// Options for [`status`].
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// Key prefix under which kube-apiserver stores objects (`--etcd-prefix`, default `/registry`),
    /// with a trailing slash.
    pub registry_prefix: Vec<u8>,
}

impl Default for StatusOptions {
    fn default() -> Self {
        StatusOptions {
            registry_prefix: b"/registry/".to_vec(),
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

struct Resource {
    live_keys: u64,
    live_bytes: u64,
    revisions: u64,
    revision_bytes: u64,
}

struct StatusVisitor<'a, 'o> {
    opts: &'o StatusOptions,
    crc: CrcFeed<'a>,
    total_key: u64,
    revision: i64,
    revisions: u64,
    /// user key -> (resource index, value size) for keys whose latest revision is a put.
    live: HashMap<&'a [u8], (usize, u64)>,
    resource_index: HashMap<&'a [u8], usize>,
    resources: Vec<(&'a [u8], Resource)>,
    meta: HashMap<&'a [u8], &'a [u8]>,
    cluster_version: Option<String>,
    leases: u64,
    auth_enabled: bool,
    members: Vec<Member>,
    removed_members: Vec<String>,
    alarms: Vec<Alarm>,
    error: Option<Error>,
}

impl<'a> StatusVisitor<'a, '_> {
    /// The resource a user key belongs to: a sub-slice of the key, or empty for "(other)".
    fn resource_of(&self, key: &'a [u8]) -> &'a [u8] {
        let Some(rest) = key.strip_prefix(self.opts.registry_prefix.as_slice()) else {
            return &[];
        };
        let start = key.len() - rest.len();
        let seg_end = |from: usize| {
            key[from..]
                .iter()
                .position(|&c| c == b'/')
                .map_or(key.len(), |p| from + p)
        };
        let first = seg_end(start);
        // CRDs and aggregated APIs live under /registry/<group>/<resource>/...
        if key[start..first].contains(&b'.') && first < key.len() {
            return &key[start..seg_end(first + 1)];
        }
        &key[start..first]
    }

    fn resource(&mut self, name: &'a [u8]) -> usize {
        if let Some(&i) = self.resource_index.get(name) {
            return i;
        }
        let i = self.resources.len();
        self.resources.push((
            name,
            Resource {
                live_keys: 0,
                live_bytes: 0,
                revisions: 0,
                revision_bytes: 0,
            },
        ));
        self.resource_index.insert(name, i);
        i
    }

    fn key_entry(&mut self, e: &Entry<'a>) -> Result<(), Error> {
        let (rev, tombstone) = parse_rev_key(e.key, e.offset)?;
        self.revision = rev.main;
        self.revisions += 1;
        let kv = parse_kv(e.value, e.offset)?;
        let r = self.resource_of(kv.key);
        let ri = self.resource(r);
        let res = &mut self.resources[ri].1;
        res.revisions += 1;
        res.revision_bytes += (e.key.len() + e.value.len()) as u64;
        if tombstone {
            if let Some((i, size)) = self.live.remove(kv.key) {
                let res = &mut self.resources[i].1;
                res.live_keys -= 1;
                res.live_bytes -= size;
            }
        } else {
            let size = kv.value.len() as u64;
            if let Some((i, old)) = self.live.insert(kv.key, (ri, size)) {
                let res = &mut self.resources[i].1;
                res.live_keys -= 1;
                res.live_bytes -= old;
            }
            let res = &mut self.resources[ri].1;
            res.live_keys += 1;
            res.live_bytes += size;
        }
        Ok(())
    }
}

impl<'a> Visitor<'a> for StatusVisitor<'a, '_> {
    fn entry(&mut self, path: &[&'a [u8]], e: &Entry<'a>) {
        match path {
            [] => self.crc.feed(e.key),
            [bucket] => {
                self.total_key += 1;
                self.crc.feed(e.key);
                if e.is_bucket() {
                    // bbolt's ForEach yields a nil value for a nested bucket.
                    return;
                }
                self.crc.feed(e.value);
                let r = match *bucket {
                    b"key" => self.key_entry(e),
                    b"meta" => {
                        self.meta.insert(e.key, e.value);
                        Ok(())
                    }
                    b"cluster" if e.key == b"clusterVersion" => {
                        self.cluster_version = Some(String::from_utf8_lossy(e.value).into_owned());
                        Ok(())
                    }
                    b"lease" => {
                        self.leases += 1;
                        Ok(())
                    }
                    b"auth" if e.key == b"authEnabled" => {
                        self.auth_enabled = e.value.first() == Some(&1);
                        Ok(())
                    }
                    b"members" => {
                        if let Ok(mut m) = serde_json::from_slice::<Member>(e.value) {
                            m.id = String::from_utf8_lossy(e.key).into_owned();
                            self.members.push(m);
                        }
                        Ok(())
                    }
                    b"members_removed" => {
                        self.removed_members
                            .push(String::from_utf8_lossy(e.key).into_owned());
                        Ok(())
                    }
                    b"alarm" => {
                        if let Ok(a) = AlarmMember::decode(e.key) {
                            self.alarms.push(Alarm {
                                member_id: format!("{:x}", a.member_id),
                                alarm: a.alarm_name(),
                            });
                        }
                        Ok(())
                    }
                    _ => Ok(()),
                };
                if let Err(err) = r
                    && self.error.is_none()
                {
                    self.error = Some(err);
                }
            }
            _ => {}
        }
    }
}

/// Computes the status of an opened database: runs the full structural check (like etcdutl's
/// `tx.Check`) and every figure in the same pass.
pub fn status(db: &Db, opts: &StatusOptions) -> Result<Status, Error> {
    // The CRC is a third of the work and needs only the byte slices in cursor order, so a second
    // thread folds them while this one walks the tree and counts keys. Memory stays bounded: the
    // channel holds at most a few batches of slice references into the map, never copies.
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<&[u8]>>(CRC_QUEUE_BATCHES);
        let worker = std::thread::Builder::new()
            .name("status-crc".into())
            .spawn_scoped(scope, move || {
                let mut crc = 0u32;
                for batch in rx {
                    for piece in batch {
                        crc = crc32c_append(crc, piece);
                    }
                }
                crc
            })
            .ok();
        // Without a worker thread (spawn failed) the CRC is folded inline.
        let feed = CrcFeed {
            tx: worker.as_ref().map(|_| tx),
            batch: Vec::new(),
            batch_bytes: 0,
            crc: 0,
        };
        status_with(db, opts, feed, worker)
    })
}

/// Batches handed to the CRC thread: each holds up to [`CRC_BATCH_BYTES`] of slices.
const CRC_QUEUE_BATCHES: usize = 4;
/// Bytes per batch: big enough that the hand-over cost vanishes, small enough to pipeline.
const CRC_BATCH_BYTES: usize = 4 << 20;
/// Slices per batch (bounds the batch vector when entries are tiny).
const CRC_BATCH_SLICES: usize = 16 << 10;

/// CRC-32C (Castagnoli) continued from `crc` over `data`, as Go's `crc32.Update` with the
/// Castagnoli table. Large pieces use the carry-less-multiply folding of `crc-fast` (runtime CPU
/// detection; several times the throughput of the `crc32` instruction), small ones the `crc32`
/// instruction, whose setup cost is lower.
fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    if data.len() < CRC_FAST_MIN {
        return crc32c::crc32c_append(crc, data);
    }
    let mut d =
        crc_fast::Digest::new_with_init_state(crc_fast::CrcAlgorithm::Crc32Iscsi, u64::from(!crc));
    d.update(data);
    d.finalize() as u32
}

/// Below this many bytes the plain `crc32` instruction is as fast as folding.
const CRC_FAST_MIN: usize = 512;

/// Where the visitor sends the bytes the etcdutl hash covers, in order.
struct CrcFeed<'a> {
    /// `None`: fold inline into `crc`.
    tx: Option<std::sync::mpsc::SyncSender<Vec<&'a [u8]>>>,
    batch: Vec<&'a [u8]>,
    batch_bytes: usize,
    crc: u32,
}

impl<'a> CrcFeed<'a> {
    fn feed(&mut self, piece: &'a [u8]) {
        if self.tx.is_none() {
            self.crc = crc32c_append(self.crc, piece);
            return;
        }
        self.batch.push(piece);
        self.batch_bytes += piece.len();
        if self.batch_bytes >= CRC_BATCH_BYTES || self.batch.len() >= CRC_BATCH_SLICES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        if let Some(tx) = &self.tx
            && tx.send(batch).is_err()
        {
            // Only a panicked worker drops its receiver; `finish` re-raises that panic.
            self.tx = None;
        }
    }

    /// Sends what is left, closes the channel and returns the final CRC.
    fn finish(mut self, worker: Option<std::thread::ScopedJoinHandle<'_, u32>>) -> u32 {
        self.flush();
        drop(self.tx.take());
        match worker {
            Some(w) => match w.join() {
                Ok(crc) => crc,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            None => self.crc,
        }
    }
}

fn status_with<'a>(
    db: &'a Db,
    opts: &StatusOptions,
    feed: CrcFeed<'a>,
    worker: Option<std::thread::ScopedJoinHandle<'_, u32>>,
) -> Result<Status, Error> {
    let mut v = StatusVisitor {
        opts,
        crc: feed,
        total_key: 0,
        revision: 0,
        revisions: 0,
        live: HashMap::default(),
        resource_index: HashMap::default(),
        resources: Vec::new(),
        meta: HashMap::default(),
        cluster_version: None,
        leases: 0,
        auth_enabled: false,
        members: Vec::new(),
        removed_members: Vec::new(),
        alarms: Vec::new(),
        error: None,
    };
    let checked = check::check(db, &mut v);
    let crc = std::mem::replace(
        &mut v.crc,
        CrcFeed {
            tx: None,
            batch: Vec::new(),
            batch_bytes: 0,
            crc: 0,
        },
    )
    .finish(worker);
    let stats = checked?;
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
    let mut resources: Vec<ResourceStats> = v
        .resources
        .iter()
        .map(|(name, r)| ResourceStats {
            resource: if name.is_empty() {
                "(other)".into()
            } else {
                String::from_utf8_lossy(name).into_owned()
            },
            keys: r.live_keys,
            bytes: r.live_bytes,
            revisions: r.revisions,
            revision_bytes: r.revision_bytes,
        })
        .collect();
    resources.sort_by(|a, b| a.resource.cmp(&b.resource));
    let mut members = v.members;
    members.sort_by(|a, b| a.id.cmp(&b.id));
    let hwm = stats.hwm_pages.max(1);
    Ok(Status {
        hash: crc,
        revision: v.revision,
        total_key: v.total_key,
        total_size: db.size(),
        version,
        live_keys: v.live.len() as u64,
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
mod tests {
    use super::*;

    #[test]
    fn humanize_matches_go_humanize() {
        assert_eq!(humanize_bytes(0), "0 B");
        assert_eq!(humanize_bytes(9), "9 B");
        assert_eq!(humanize_bytes(10), "10 B");
        assert_eq!(humanize_bytes(94208), "94 kB");
        assert_eq!(humanize_bytes(2_100_000), "2.1 MB");
        assert_eq!(humanize_bytes(1_000_000_000), "1.0 GB");
        assert_eq!(humanize_bytes(20480), "20 kB");
    }

    #[test]
    fn crc_matches_the_crc32_instruction_path_for_every_piece_size() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 + i / 7) as u8).collect();
        let mut ours = 0x1234_5678;
        let mut reference = 0x1234_5678;
        let mut at = 0;
        for len in [0, 1, 7, 17, 511, 512, 513, 1000, 2047, 64, 3] {
            let piece = &data[at..at + len];
            ours = crc32c_append(ours, piece);
            reference = crc32c::crc32c_append(reference, piece);
            assert_eq!(ours, reference, "after a piece of {len} bytes");
            at += len;
        }
        assert_eq!(crc32c_append(0, b"123456789"), 0xe306_9283);
    }

    #[test]
    fn rev_keys() {
        let mut k = Vec::new();
        k.extend_from_slice(&5i64.to_be_bytes());
        k.push(b'_');
        k.extend_from_slice(&1i64.to_be_bytes());
        assert_eq!(
            parse_rev_key(&k, 0).unwrap(),
            (Rev { main: 5, sub: 1 }, false)
        );
        k.push(b't');
        assert!(parse_rev_key(&k, 0).unwrap().1);
        assert!(parse_rev_key(&k[..10], 0).is_err());
    }
}
