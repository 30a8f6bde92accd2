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
use crate::bbolt::check::{self, Visitor};
use crate::bbolt::{Db, Entry};
use crate::proto::mvcc::{AlarmMember, KeyValue};

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

struct Resource {
    revisions: u64,
    revision_bytes: u64,
}

/// One revision of a user key from bucket `key`, as the live-key tally needs it.
#[derive(Debug, Clone, Copy)]
struct KeyRevision<'a> {
    /// Hash of `key`, computed once while its bytes are in cache: the tally sorts and compares
    /// by it and reads the key again only when two hashes are equal (user keys lie across the
    /// whole file, so each re-read is a cache and TLB miss).
    hash: u64,
    key: &'a [u8],
    /// Value size.
    size: u64,
    /// Index into the visitor's resources.
    resource: u32,
    /// False for a deletion.
    live: bool,
}

/// Revisions of one run of bucket `key`, in revision order until sorted by hash (stably, so
/// equal keys stay in revision order). Appending is cheap; the dedupe happens once per run.
#[derive(Debug, Default)]
struct Run<'a> {
    revisions: Vec<KeyRevision<'a>>,
    sorted: bool,
}

impl Run<'_> {
    fn sort(&mut self) {
        if !self.sorted {
            self.revisions.sort_by_key(|r| r.hash);
            self.sorted = true;
        }
    }
}

struct StatusVisitor<'a, 'o> {
    opts: &'o StatusOptions,
    /// CRC-32C of the bytes fed so far, and how many (to append a forked half's CRC).
    crc: u32,
    crc_len: u64,
    total_key: u64,
    revision: i64,
    revisions: u64,
    /// Seeds the key hashes; shared with forks so that their maps can be compared with ours.
    key_hasher: foldhash::fast::RandomState,
    /// Runs of bucket `key` in order: ours, plus one per joined fork.
    runs: Vec<Run<'a>>,
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

impl<'a, 'o> StatusVisitor<'a, 'o> {
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
        let revision = KeyRevision {
            hash: std::hash::BuildHasher::hash_one(&self.key_hasher, kv.key),
            key: kv.key,
            size: kv.value.len() as u64,
            resource: ri as u32,
            live: !tombstone,
        };
        self.current_run().revisions.push(revision);
        Ok(())
    }

    /// The run that takes entries from now on: a fresh one once the last is sorted.
    fn current_run(&mut self) -> &mut Run<'a> {
        if self.runs.last().is_none_or(|r| r.sorted) {
            self.runs.push(Run::default());
        }
        let n = self.runs.len();
        &mut self.runs[n - 1]
    }

    fn feed(&mut self, piece: &[u8]) {
        self.crc = crc32c_append(self.crc, piece);
        self.crc_len += piece.len() as u64;
    }

    fn new(opts: &'o StatusOptions, key_hasher: foldhash::fast::RandomState) -> Self {
        StatusVisitor {
            opts,
            key_hasher,
            crc: 0,
            crc_len: 0,
            total_key: 0,
            revision: 0,
            revisions: 0,
            runs: vec![Run::default()],
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
        }
    }
}

impl<'a> Visitor<'a> for StatusVisitor<'a, '_> {
    fn entry(&mut self, path: &[&'a [u8]], e: &Entry<'a>) {
        match path {
            [] => self.feed(e.key),
            [bucket] => {
                self.total_key += 1;
                self.feed(e.key);
                if e.is_bucket() {
                    // bbolt's ForEach yields a nil value for a nested bucket.
                    return;
                }
                self.feed(e.value);
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

    fn fork(&self) -> Option<Self> {
        self.opts
            .parallel
            .then(|| StatusVisitor::new(self.opts, self.key_hasher.clone()))
    }

    fn half_done(&mut self) {
        for run in &mut self.runs {
            run.sort();
        }
    }

    fn join(&mut self, later: Self) {
        self.crc = crc32c::crc32c_combine(self.crc, later.crc, later.crc_len as usize);
        self.crc_len += later.crc_len;
        self.total_key += later.total_key;
        if later.revisions > 0 {
            self.revision = later.revision;
        }
        self.revisions += later.revisions;
        let remap: Vec<usize> = later
            .resources
            .iter()
            .map(|(name, r)| {
                let i = self.resource(name);
                self.resources[i].1.revisions += r.revisions;
                self.resources[i].1.revision_bytes += r.revision_bytes;
                i
            })
            .collect();
        for mut run in later.runs {
            for rev in &mut run.revisions {
                rev.resource = remap[rev.resource as usize] as u32;
            }
            match self.runs.last_mut() {
                // Both in revision order: one run.
                Some(last) if !last.sorted && !run.sorted => {
                    last.revisions.append(&mut run.revisions)
                }
                _ => self.runs.push(run),
            }
        }
        self.meta.extend(later.meta);
        if later.cluster_version.is_some() {
            self.cluster_version = later.cluster_version;
        }
        self.leases += later.leases;
        self.auth_enabled |= later.auth_enabled;
        self.members.extend(later.members);
        self.removed_members.extend(later.removed_members);
        self.alarms.extend(later.alarms);
        if self.error.is_none() {
            self.error = later.error;
        }
    }
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

/// Counts, per resource, the keys whose last revision across `runs` (in order) is a put, and
/// their value bytes; returns the total. Merges the runs by hash, so a key's revisions meet in
/// one group, in revision order.
fn tally_live(runs: &mut [Run<'_>], live: &mut [(u64, u64)]) -> u64 {
    for run in runs.iter_mut() {
        run.sort();
    }
    let mut heads = vec![0usize; runs.len()];
    let mut group: Vec<KeyRevision<'_>> = Vec::new();
    let mut total = 0;
    loop {
        let next = runs
            .iter()
            .zip(&heads)
            .filter_map(|(r, &i)| r.revisions.get(i).map(|e| e.hash))
            .min();
        let Some(hash) = next else { break };
        group.clear();
        for (run, head) in runs.iter().zip(heads.iter_mut()) {
            while let Some(e) = run.revisions.get(*head)
                && e.hash == hash
            {
                group.push(*e);
                *head += 1;
            }
        }
        for (j, e) in group.iter().enumerate() {
            // The last revision of each distinct key (equal hashes rarely mean equal keys).
            if e.live && !group[j + 1..].iter().any(|later| later.key == e.key) {
                let slot = &mut live[e.resource as usize];
                slot.0 += 1;
                slot.1 += e.size;
                total += 1;
            }
        }
    }
    total
}

/// Below this many bytes the plain `crc32` instruction is as fast as folding.
const CRC_FAST_MIN: usize = 512;

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
    use crate::bbolt::write::{DbWriter, WriteOptions};
    use crate::proto::mvcc::tests::encode_kv;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const USER_KEYS: [&str; 6] = [
        "/registry/pods/demo/web-1",
        "/registry/pods/demo/web-2",
        "/registry/configmaps/kube-system/kubeadm-config",
        "/registry/apiregistration.k8s.io/apiservices/v1.apps",
        "/registry/leases/kube-node-lease/node-1",
        "/compact_rev_key",
    ];

    /// A bucket `key` replaying `ops` (user key index, value size or `None` for a deletion) at
    /// revisions 2, 3, ..., on small pages so that a few thousand revisions make three levels.
    fn history_db(ops: &[(usize, Option<usize>)]) -> Db {
        let opts = WriteOptions {
            page_size: 1024,
            ..WriteOptions::default()
        };
        let mut w = DbWriter::new(std::io::Cursor::new(Vec::new()), opts).unwrap();
        w.begin_bucket(b"key", 0).unwrap();
        let filler = [b'x'; 200];
        for (i, &(k, size)) in ops.iter().enumerate() {
            let main = i as i64 + 2;
            let mut rev = main.to_be_bytes().to_vec();
            rev.push(b'_');
            rev.extend_from_slice(&0i64.to_be_bytes());
            let kv = KeyValue {
                key: USER_KEYS[k].as_bytes(),
                mod_revision: main,
                value: &filler[..size.unwrap_or(0)],
                ..KeyValue::default()
            };
            if size.is_none() {
                rev.push(b't');
            }
            w.put(&rev, &encode_kv(&kv)).unwrap();
        }
        w.end_bucket().unwrap();
        w.begin_bucket(b"meta", 0).unwrap();
        w.put(b"consistent_index", &9u64.to_be_bytes()).unwrap();
        w.end_bucket().unwrap();
        let (out, _) = w.finish().unwrap();
        Db::from_bytes(out.into_inner()).unwrap()
    }

    /// Whether the walk splits bucket `key` across two threads.
    fn splits(db: &Db) -> bool {
        struct Joins(usize);
        impl<'a> Visitor<'a> for Joins {
            fn entry(&mut self, _: &[&'a [u8]], _: &Entry<'a>) {}
            fn fork(&self) -> Option<Self> {
                Some(Joins(0))
            }
            fn join(&mut self, later: Self) {
                self.0 += 1 + later.0;
            }
        }
        let mut v = Joins(0);
        check::check(db, &mut v).unwrap();
        v.0 > 0
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Live keys and bytes per resource equal a replay of the history, and two threads give
        /// exactly the figures one does.
        #[test]
        fn live_keys_match_a_replay_on_one_and_two_threads(
            ops in prop::collection::vec((0..USER_KEYS.len(), prop::option::weighted(0.8, 0..200usize)), 1500..3000)
        ) {
            let db = history_db(&ops);
            prop_assert!(splits(&db), "bucket key was not split; make the history longer");
            let sequential = status(&db, &StatusOptions { parallel: false, ..StatusOptions::default() }).unwrap();
            let parallel = status(&db, &StatusOptions::default()).unwrap();
            prop_assert_eq!(&sequential, &parallel);

            let mut last: BTreeMap<usize, Option<usize>> = BTreeMap::new();
            for &(k, size) in &ops {
                last.insert(k, size);
            }
            let mut want: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for (k, size) in &last {
                let resource = match USER_KEYS[*k].split('/').nth(2) {
                    Some(r) if USER_KEYS[*k].starts_with("/registry/") && r.contains('.') => {
                        format!("{r}/{}", USER_KEYS[*k].split('/').nth(3).unwrap_or_default())
                    }
                    Some(r) if USER_KEYS[*k].starts_with("/registry/") => r.to_string(),
                    _ => "(other)".to_string(),
                };
                let e = want.entry(resource).or_default();
                if let Some(size) = size {
                    e.0 += 1;
                    e.1 += *size as u64;
                }
            }
            let got: BTreeMap<String, (u64, u64)> = parallel
                .resources
                .iter()
                .map(|r| (r.resource.clone(), (r.keys, r.bytes)))
                .collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(parallel.live_keys, last.values().filter(|s| s.is_some()).count() as u64);
            prop_assert_eq!(parallel.revisions, ops.len() as u64);
            prop_assert_eq!(parallel.revision, ops.len() as i64 + 1);
        }
    }

    #[test]
    fn runs_keep_the_last_revision_of_keys_whose_hashes_collide() {
        let rev = |hash, key: &'static [u8], live| KeyRevision {
            hash,
            key,
            size: key.len() as u64,
            resource: 0,
            live,
        };
        // Two different keys under one hash, spread over two runs.
        let mut runs = vec![
            Run {
                revisions: vec![rev(7, b"a", true), rev(7, b"b", true), rev(3, b"c", true)],
                sorted: false,
            },
            Run {
                revisions: vec![rev(7, b"a", false), rev(9, b"d", true), rev(7, b"b", true)],
                sorted: false,
            },
        ];
        let mut live = vec![(0, 0)];
        // Live: b (its last revision, in run 2), c, d; a was deleted in run 2.
        assert_eq!(tally_live(&mut runs, &mut live), 3);
        assert_eq!(live[0], (3, 3));
    }

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
