//! Writing the restored member: the rewritten bbolt database (new membership, meta, the revision
//! bump), the WAL segment and the `.snap` file.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::BufWriter;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::staging::fsync_dir;
use super::{KeyFacts, RestoreError, RevisionPolicy, io_err, plan};
use crate::bbolt::Db;
use crate::bbolt::write::{DbWriter, WriteOptions, WriteStats};
use crate::ids::Membership;
use crate::proto::raft;
use crate::snap;
use crate::wal;

/// Bucket names etcd uses that restore touches.
const KEY_BUCKET: &[u8] = b"key";
const META_BUCKET: &[u8] = b"meta";
const MEMBERS_BUCKET: &[u8] = b"members";
const MEMBERS_REMOVED_BUCKET: &[u8] = b"members_removed";

/// Reads the `key` bucket's facts without writing (dry run).
pub(super) fn scan_keys(db: &Db, path: &Path) -> Result<KeyFacts, RestoreError> {
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
/// Writes db, WAL and .snap into the staging dirs; fsyncs them.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_all(
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
