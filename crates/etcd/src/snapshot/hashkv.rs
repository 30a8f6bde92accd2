//! Offline `HashKV`: the hash a live etcd 3.4/3.5 member returns from `Maintenance.HashKV(rev)`,
//! computed from the snapshot file, so a saved snapshot can be proven equal to the cluster.
//!
//! etcd 3.4 `mvcc/kvstore.go` and 3.5 `server/mvcc/kvstore.go` (`HashByRev`): CRC-32C seeded with
//! the bucket name `key`, then, for every entry of bucket `key` in revision order with
//! `main <= rev`, its key and value bytes — except that entries with `main <= compactRev` are only
//! included if they are in `kvindex.Keep(rev)` (when that set is not empty). `Keep(rev)` holds, for
//! each key, its newest revision `<= rev` unless that revision is a deletion. We rebuild exactly
//! the key index etcd rebuilds from this file on start (`restoreIntoIndex`: a deletion of a key
//! not yet seen, or of a key already deleted, is ignored).

use std::collections::{HashMap as StdHashMap, HashSet as StdHashSet};

type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = StdHashSet<K, foldhash::fast::RandomState>;

use serde::Serialize;

use super::Error;
use super::status::{Rev, parse_kv, parse_rev_key};
use crate::bbolt::Db;

/// Result of [`hash_kv`], comparable with `etcdctl endpoint hashkv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HashKv {
    /// The hash (`HashKVResponse.hash`).
    pub hash: u32,
    /// The revision hashed (the requested one, or the current revision for 0).
    pub revision: i64,
    /// The compact revision used (`HashKVResponse.compact_revision`).
    pub compact_revision: i64,
    /// True if a compaction was scheduled but not finished when the snapshot was taken: the
    /// live member's hash may then legitimately differ.
    pub compaction_pending: bool,
}

fn meta_main(db: &Db, key: &[u8]) -> Result<i64, Error> {
    Ok(db
        .get(b"meta", key)?
        .and_then(|v| v.get(0..8))
        .map_or(0, |b| i64::from_be_bytes(b.try_into().unwrap_or_default())))
}

/// Computes etcd's `HashKV` at `rev` (0 = the snapshot's current revision) from the file.
pub fn hash_kv(db: &Db, rev: i64) -> Result<HashKv, Error> {
    let finished = meta_main(db, b"finishedCompactRev")?;
    let scheduled = meta_main(db, b"scheduledCompactRev")?;
    // A live member uses the compaction it has scheduled (`compactMainRev`); when the compaction
    // finished, both are equal.
    let compact = finished.max(scheduled);
    let Some(bucket) = db.bucket(b"key")? else {
        return Ok(HashKv {
            hash: crc32c::crc32c(b"key"),
            revision: rev.max(compact),
            compact_revision: compact,
            compaction_pending: scheduled > finished,
        });
    };

    // Pass 1: newest revision <= rev of every key in the rebuilt index.
    let mut last = 0i64;
    let mut newest: HashMap<&[u8], (Rev, bool)> = HashMap::default();
    for e in bucket.cursor() {
        let e = e?;
        let (r, tomb) = parse_rev_key(e.key, e.offset)?;
        last = r.main;
        if rev != 0 && r.main > rev {
            continue;
        }
        let kv = parse_kv(e.value, e.offset)?;
        match newest.get_mut(kv.key) {
            // A deletion of a key whose last generation is already closed is ignored.
            Some((_, true)) if tomb => {}
            Some(slot) => *slot = (r, tomb),
            None if tomb => {}
            None => {
                newest.insert(kv.key, (r, false));
            }
        }
    }
    let current = last.max(compact);
    if rev > 0 && rev <= compact {
        return Err(Error::Compacted { rev, compact });
    }
    if rev > current {
        return Err(Error::FutureRevision { rev, current });
    }
    let rev = if rev == 0 { current } else { rev };
    let keep: HashSet<Rev> = newest
        .values()
        .filter(|(_, tomb)| !tomb)
        .map(|(r, _)| *r)
        .collect();
    drop(newest);

    // Pass 2: the hash.
    let mut crc = crc32c::crc32c(b"key");
    for e in bucket.cursor() {
        let e = e?;
        let (r, _) = parse_rev_key(e.key, e.offset)?;
        if r.main > rev {
            break; // keys are sorted by revision
        }
        if r.main <= compact && !keep.is_empty() && !keep.contains(&r) {
            continue;
        }
        crc = crc32c::crc32c_append(crc, e.key);
        crc = crc32c::crc32c_append(crc, e.value);
    }
    Ok(HashKv {
        hash: crc,
        revision: rev,
        compact_revision: compact,
        compaction_pending: scheduled > finished,
    })
}
