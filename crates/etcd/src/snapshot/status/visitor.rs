//! The visitor that computes every status figure during the structural walk, on one or two
//! threads: what a fork computes is merged in order (CRC-32C combined, runs merged by hash).

use std::collections::HashMap as StdHashMap;

use super::{Alarm, Member, StatusOptions, parse_kv, parse_rev_key};
use crate::bbolt::Entry;
use crate::bbolt::check::Visitor;
use crate::proto::mvcc::AlarmMember;
use crate::snapshot::Error;

/// Maps keyed by file bytes: foldhash is several times faster than SipHash and still seeded per process.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

pub(super) struct Resource {
    pub(super) revisions: u64,
    pub(super) revision_bytes: u64,
}

/// One revision of a user key from bucket `key`, as the live-key tally needs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeyRevision<'a> {
    /// Hash of `key`, computed once while its bytes are in cache: the tally sorts and compares
    /// by it and reads the key again only when two hashes are equal (user keys lie across the
    /// whole file, so each re-read is a cache and TLB miss).
    pub(super) hash: u64,
    pub(super) key: &'a [u8],
    /// Value size.
    pub(super) size: u64,
    /// Index into the visitor's resources.
    pub(super) resource: u32,
    /// False for a deletion.
    pub(super) live: bool,
}

/// Revisions of one run of bucket `key`, in revision order until sorted by hash (stably, so
/// equal keys stay in revision order). Appending is cheap; the dedupe happens once per run.
#[derive(Debug, Default)]
pub(super) struct Run<'a> {
    pub(super) revisions: Vec<KeyRevision<'a>>,
    pub(super) sorted: bool,
}

impl Run<'_> {
    fn sort(&mut self) {
        if !self.sorted {
            self.revisions.sort_by_key(|r| r.hash);
            self.sorted = true;
        }
    }
}

pub(super) struct StatusVisitor<'a, 'o> {
    pub(super) opts: &'o StatusOptions,
    /// CRC-32C of the bytes fed so far, and how many (to append a forked half's CRC).
    pub(super) crc: u32,
    pub(super) crc_len: u64,
    pub(super) total_key: u64,
    pub(super) revision: i64,
    pub(super) revisions: u64,
    /// Seeds the key hashes; shared with forks so that their maps can be compared with ours.
    pub(super) key_hasher: foldhash::fast::RandomState,
    /// Runs of bucket `key` in order: ours, plus one per joined fork.
    pub(super) runs: Vec<Run<'a>>,
    pub(super) resource_index: HashMap<&'a [u8], usize>,
    pub(super) resources: Vec<(&'a [u8], Resource)>,
    pub(super) meta: HashMap<&'a [u8], &'a [u8]>,
    pub(super) cluster_version: Option<String>,
    pub(super) leases: u64,
    pub(super) auth_enabled: bool,
    pub(super) members: Vec<Member>,
    pub(super) removed_members: Vec<String>,
    pub(super) alarms: Vec<Alarm>,
    pub(super) error: Option<Error>,
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

    pub(super) fn new(opts: &'o StatusOptions, key_hasher: foldhash::fast::RandomState) -> Self {
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
/// CRC-32C (Castagnoli) continued from `crc` over `data`, as Go's `crc32.Update` with the
/// Castagnoli table. Large pieces use the carry-less-multiply folding of `crc-fast` (runtime CPU
/// detection; several times the throughput of the `crc32` instruction), small ones the `crc32`
/// instruction, whose setup cost is lower.
pub(super) fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
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
pub(super) fn tally_live(runs: &mut [Run<'_>], live: &mut [(u64, u64)]) -> u64 {
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
