//! Facts read back from a freshly saved file: its true revision, and the `--verify-hash-kv`
//! comparison with the live members.
//!
//! The revision is the highest main revision in bucket `key` (what `etcdutl snapshot status`
//! reports). bbolt keeps keys sorted and etcd's keys are big-endian `main_sub`, so it is the last
//! key: we descend the rightmost path of the B+tree, touching a handful of pages, so memory stays
//! small even for multi-GiB files (the full walk is only done for `--verify-hash-kv`).

use std::path::Path;

use crate::bbolt::{Bucket, Db};
use crate::save::manifest::{HashKvCheck, HashKvMember};
use crate::snapshot::{self, HashKv, SnapshotFile};

/// Why the file could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the saved snapshot {path}: {detail}")]
pub struct ReadBackError {
    /// The file.
    pub path: String,
    /// The reader's message.
    pub detail: String,
}

/// What the file says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRevision {
    /// The snapshot's revision.
    pub revision: i64,
    /// `meta/finishedCompactRev` (0 if never compacted).
    pub compact_revision: i64,
}

fn err(path: &Path, e: impl std::fmt::Display) -> ReadBackError {
    ReadBackError {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

/// The last key of a bucket, by descending the rightmost path.
fn last_key<'a>(db: &'a Db, bucket: &Bucket<'a>) -> Result<Option<&'a [u8]>, crate::bbolt::Error> {
    let mut page = match bucket.inline_page() {
        Some(p) => p,
        None => db.page(bucket.header().root)?,
    };
    // A well-formed tree is a few levels deep; the bound keeps a hostile file from looping.
    for _ in 0..64 {
        let n = page.count();
        if n == 0 {
            return Ok(None);
        }
        if page.is_leaf() {
            return Ok(Some(page.leaf(n - 1)?.key));
        }
        let (_, child) = page.branch(n - 1)?;
        page = db.page(child)?;
    }
    Ok(None)
}

fn meta_rev(db: &Db, key: &[u8]) -> Result<i64, crate::bbolt::Error> {
    Ok(db
        .get(b"meta", key)?
        .and_then(|v| v.get(..8))
        .map_or(0, |b| i64::from_be_bytes(b.try_into().expect("8 bytes"))))
}

/// Reads the revision and compact revision of a saved snapshot (trailer excluded).
pub fn read_revision(path: &Path) -> Result<FileRevision, ReadBackError> {
    let file = SnapshotFile::open(path).map_err(|e| err(path, e))?;
    let db = file.db().map_err(|e| err(path, e))?;
    let revision = match db.bucket(b"key").map_err(|e| err(path, e))? {
        Some(b) => last_key(&db, &b)
            .map_err(|e| err(path, e))?
            .and_then(|k| k.get(..8))
            .map_or(0, |b| i64::from_be_bytes(b.try_into().expect("8 bytes"))),
        None => 0,
    };
    let compact_revision = meta_rev(&db, b"finishedCompactRev").map_err(|e| err(path, e))?;
    Ok(FileRevision {
        revision,
        compact_revision,
    })
}

/// Computes etcd's `HashKV` at `revision` from the file (walks the whole `key` bucket).
pub fn offline_hash_kv(path: &Path, revision: i64) -> Result<HashKv, ReadBackError> {
    let file = SnapshotFile::open(path).map_err(|e| err(path, e))?;
    let db = file.db().map_err(|e| err(path, e))?;
    snapshot::hash_kv(&db, revision).map_err(|e| err(path, e))
}

/// One live member's answer to `HashKV(revision)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveHashKv {
    /// Member ID.
    pub member_id: u64,
    /// The hash.
    pub hash: u32,
    /// The member's compact revision.
    pub compact_revision: i64,
}

/// Compares the file's KV hash with each member's answer. A member whose compact revision
/// differs hashes a different history, so it is reported as not comparable rather than as a
/// mismatch; a member that already compacted past the revision cannot answer at all.
pub fn compare_hash_kv(
    file: &HashKv,
    answers: Vec<(String, Result<LiveHashKv, String>)>,
) -> HashKvCheck {
    let members = answers
        .into_iter()
        .map(|(endpoint, answer)| match answer {
            Err(e) if e.contains("compacted") => HashKvMember {
                endpoint,
                id: None,
                result: "not-comparable".into(),
                hash: None,
                compact_revision: None,
                detail: Some(format!(
                    "revision {} is already compacted on this member ({e}); run the check right after saving",
                    file.revision
                )),
            },
            Err(e) => HashKvMember {
                endpoint,
                id: None,
                result: "error".into(),
                hash: None,
                compact_revision: None,
                detail: Some(e),
            },
            Ok(live) => {
                // etcd answers -1 when nothing was ever compacted; the file then says 0.
                let (result, detail) = if live.compact_revision.max(0) != file.compact_revision.max(0) {
                    (
                        "not-comparable",
                        Some(format!(
                            "the member's compact revision is {} but the file's is {}: the hashes cover different history",
                            live.compact_revision, file.compact_revision
                        )),
                    )
                } else if live.hash == file.hash {
                    ("match", None)
                } else {
                    (
                        "mismatch",
                        Some(format!(
                            "the member's KV hash at revision {} is {} but the file's is {}: the member's data and the snapshot disagree",
                            file.revision, live.hash, file.hash
                        )),
                    )
                };
                HashKvMember {
                    endpoint,
                    id: Some(format!("{:016x}", live.member_id)),
                    result: result.into(),
                    hash: Some(live.hash),
                    compact_revision: Some(live.compact_revision),
                    detail,
                }
            }
        })
        .collect();
    HashKvCheck {
        revision: file.revision,
        compact_revision: file.compact_revision,
        file_hash: file.hash,
        members,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> HashKv {
        HashKv {
            hash: 111,
            revision: 50,
            compact_revision: 10,
            compaction_pending: false,
        }
    }
    fn live(hash: u32, compact: i64) -> Result<LiveHashKv, String> {
        Ok(LiveHashKv {
            member_id: 1,
            hash,
            compact_revision: compact,
        })
    }

    #[test]
    fn classifies_answers() {
        let check = compare_hash_kv(
            &file(),
            vec![
                ("a".into(), live(111, 10)),
                ("b".into(), live(222, 10)),
                ("c".into(), live(111, 40)),
                (
                    "d".into(),
                    Err("etcdserver: mvcc: required revision has been compacted".into()),
                ),
                ("e".into(), Err("connection refused".into())),
            ],
        );
        let results: Vec<_> = check.members.iter().map(|m| m.result.as_str()).collect();
        assert_eq!(
            results,
            [
                "match",
                "mismatch",
                "not-comparable",
                "not-comparable",
                "error"
            ]
        );
        assert_eq!(check.file_hash, 111);
        assert!(
            check.members[1]
                .detail
                .as_ref()
                .unwrap()
                .contains("disagree")
        );
    }

    #[test]
    fn never_compacted_is_minus_one_live_and_zero_in_the_file() {
        let mut f = file();
        f.compact_revision = 0;
        let check = compare_hash_kv(&f, vec![("a".into(), live(111, -1))]);
        assert_eq!(check.members[0].result, "match");
    }
}
