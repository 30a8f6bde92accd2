use std::collections::BTreeMap;

use super::*;
use crate::bbolt::write::{DbWriter, WriteOptions};
use std::io::{Cursor, Write};

/// mvccpb.KeyValue{key, create_revision, mod_revision, version, value}.
fn kv(key: &str, rev: u64, value: &str) -> Vec<u8> {
    let mut out = Vec::new();
    crate::proto::put_bytes_field(&mut out, 1, key.as_bytes());
    crate::proto::put_uvarint_field(&mut out, 2, rev);
    crate::proto::put_uvarint_field(&mut out, 3, rev);
    crate::proto::put_uvarint_field(&mut out, 4, 1);
    crate::proto::put_bytes_field(&mut out, 5, value.as_bytes());
    out
}

/// A small etcd-shaped snapshot (with trailer) written by our own writer.
fn snapshot_file(dir: &Path, prefix: &str, n: u64) -> PathBuf {
    let mut w = DbWriter::new(Cursor::new(Vec::new()), WriteOptions::default()).unwrap();
    w.begin_bucket(b"alarm", 0).unwrap();
    w.end_bucket().unwrap();
    w.begin_bucket(b"cluster", 0).unwrap();
    w.put(b"clusterVersion", b"3.5.0").unwrap();
    w.end_bucket().unwrap();
    w.begin_bucket(b"key", 0).unwrap();
    for i in 2..n + 2 {
        w.put(
            &plan::revision_key(i, 0),
            &kv(&format!("{prefix}k{i:06}"), i, "v"),
        )
        .unwrap();
    }
    w.end_bucket().unwrap();
    w.begin_bucket(b"members", 0).unwrap();
    w.put(
        b"8e9e05c52164694d",
        br#"{"id":10276657743932975437,"peerURLs":["http://localhost:2380"],"name":"default"}"#,
    )
    .unwrap();
    w.end_bucket().unwrap();
    w.begin_bucket(b"members_removed", 0).unwrap();
    w.put(b"1234", b"removed").unwrap();
    w.end_bucket().unwrap();
    w.begin_bucket(b"meta", 0).unwrap();
    w.put(
        b"confState",
        br#"{"voters":[10276657743932975437],"auto_leave":false}"#,
    )
    .unwrap();
    w.put(b"consistent_index", &77u64.to_be_bytes()).unwrap();
    w.put(b"term", &3u64.to_be_bytes()).unwrap();
    w.end_bucket().unwrap();
    let (c, _) = w.finish().unwrap();
    let mut bytes = c.into_inner();
    let sha: [u8; 32] = Sha256::digest(&bytes).into();
    bytes.extend_from_slice(&sha);
    let p = dir.join("snap.db");
    File::create(&p).unwrap().write_all(&bytes).unwrap();
    p
}

fn opts(snapshot: &Path, data: &Path) -> RestoreOptions {
    let mut o = RestoreOptions::new(snapshot);
    o.data_dir = Some(data.to_path_buf());
    o.name = "m1".into();
    o.initial_cluster = Some("m1=http://127.0.0.1:2380,m2=http://127.0.0.2:2380".into());
    o.initial_advertise_peer_urls = vec!["http://127.0.0.1:2380".into()];
    o
}

fn dump(db: &Db, bucket: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.bucket(bucket)
        .unwrap()
        .unwrap()
        .cursor()
        .map(|e| {
            let e = e.unwrap();
            (e.key.to_vec(), e.value.to_vec())
        })
        .collect()
}

#[test]
fn restore_writes_db_wal_and_snap() {
    let tmp = tempfile::tempdir().unwrap();
    let snapf = snapshot_file(tmp.path(), "/plain/", 500);
    let data = tmp.path().join("out");
    let r = restore(&opts(&snapf, &data)).unwrap();
    assert!(r.hash_verified);
    assert_eq!(r.bump, None, "no /registry/ keys: revisions kept");
    assert_eq!(r.key_facts.latest_revision, 501);

    let db = Db::open(&data.join("member/snap/db")).unwrap();
    assert_eq!(dump(&db, b"key").len(), 500);
    let members = dump(&db, b"members");
    assert_eq!(members.len(), 2);
    assert_eq!(members[0].0, b"23284278a2d8a0e6");
    assert!(dump(&db, b"members_removed").is_empty());
    let meta: BTreeMap<_, _> = dump(&db, b"meta").into_iter().collect();
    assert_eq!(meta[b"consistent_index".as_slice()], 2u64.to_be_bytes());
    assert_eq!(meta[b"term".as_slice()], 1u64.to_be_bytes());
    assert_eq!(
        meta[b"confState".as_slice()],
        br#"{"voters":[2533347876291518694,13195394291058371180],"auto_leave":false}"#
    );
    assert_eq!(dump(&db, b"cluster")[0].1, b"3.5.0");

    let walb =
        std::fs::read(data.join("member/wal/0000000000000000-0000000000000000.wal")).unwrap();
    assert_eq!(walb.len() as u64, wal::SEGMENT_SIZE_BYTES);
    let c = wal::read_segment(&walb).unwrap();
    assert_eq!(c.metadata.unwrap().cluster_id, 0xe20c19704c51badd);
    assert_eq!(c.metadata.unwrap().node_id, 0xb71f75320dc06a6c);
    assert_eq!(c.entries.len(), 2);
    assert_eq!(c.hard_state.unwrap().vote, 0x23284278a2d8a0e6);
    assert_eq!(c.snapshots.last().unwrap().index, 2);

    let s = snap::decode(
        &std::fs::read(data.join("member/snap/0000000000000001-0000000000000002.snap")).unwrap(),
    )
    .unwrap();
    assert_eq!(s.index, 2);
    assert_eq!(s.conf_state.voters.len(), 2);
    // No staging leftovers beside the target.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn kubernetes_snapshot_is_bumped_and_marked_compacted_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let snapf = snapshot_file(tmp.path(), "/registry/pods/", 10);
    let data = tmp.path().join("out");
    let r = restore(&opts(&snapf, &data)).unwrap();
    assert_eq!(r.bump, Some(plan::KUBERNETES_MIN_BUMP));
    let db = Db::open(&data.join("member/snap/db")).unwrap();
    let keys = dump(&db, b"key");
    let marker = plan::revision_key(11 + plan::KUBERNETES_MIN_BUMP, 0);
    assert_eq!(keys.last().unwrap(), &(marker.to_vec(), vec![]));
    let meta: BTreeMap<_, _> = dump(&db, b"meta").into_iter().collect();
    assert_eq!(meta[b"scheduledCompactRev".as_slice()], marker.to_vec());

    // Opting out keeps revisions.
    let data2 = tmp.path().join("out2");
    let mut o = opts(&snapf, &data2);
    o.revision.no_kubernetes_defaults = true;
    assert_eq!(restore(&o).unwrap().bump, None);
}

#[test]
fn corrupt_snapshot_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let snapf = snapshot_file(tmp.path(), "/plain/", 50);
    let mut b = std::fs::read(&snapf).unwrap();
    b[5000] ^= 0x01;
    std::fs::write(&snapf, &b).unwrap();
    let data = tmp.path().join("out");
    let e = restore(&opts(&snapf, &data)).unwrap_err();
    assert!(matches!(e, RestoreError::HashMismatch { .. }), "{e}");
    assert!(!data.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "staging removed"
    );
}

#[test]
fn refuses_non_empty_data_dir_and_missing_trailer() {
    let tmp = tempfile::tempdir().unwrap();
    let snapf = snapshot_file(tmp.path(), "/plain/", 5);
    let data = tmp.path().join("out");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("x"), b"keep me").unwrap();
    let e = restore(&opts(&snapf, &data)).unwrap_err();
    assert!(matches!(e, RestoreError::DataDirNotEmpty(_)), "{e}");
    assert_eq!(std::fs::read(data.join("x")).unwrap(), b"keep me");

    // An empty existing dir is fine (etcdutl 3.5 accepts it); it is filled in place (it may be
    // a mount point), with no staging directory left inside.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    restore(&opts(&snapf, &empty)).unwrap();
    assert!(empty.join("member/snap/db").exists());
    let inside: Vec<_> = std::fs::read_dir(&empty)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(inside, vec![std::ffi::OsString::from("member")]);
    // A failed restore into an existing empty dir leaves it empty.
    let empty2 = tmp.path().join("empty2");
    std::fs::create_dir(&empty2).unwrap();
    let mut b = std::fs::read(&snapf).unwrap();
    b[100] ^= 1;
    let bad = tmp.path().join("bad.db");
    std::fs::write(&bad, &b).unwrap();
    assert!(restore(&opts(&bad, &empty2)).is_err());
    assert_eq!(std::fs::read_dir(&empty2).unwrap().count(), 0);

    let raw = tmp.path().join("raw.db");
    let b = std::fs::read(&snapf).unwrap();
    std::fs::write(&raw, &b[..b.len() - 32]).unwrap();
    let e = restore(&opts(&raw, &tmp.path().join("o3"))).unwrap_err();
    assert!(matches!(e, RestoreError::MissingHash(_)), "{e}");
    let mut o = opts(&raw, &tmp.path().join("o3"));
    o.skip_hash_check = true;
    assert!(!restore(&o).unwrap().hash_verified);
}

#[test]
fn bad_membership_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let snapf = snapshot_file(tmp.path(), "/plain/", 5);
    let data = tmp.path().join("out");
    let mut o = opts(&snapf, &data);
    o.initial_cluster = Some("m2=http://127.0.0.2:2380".into());
    assert!(matches!(
        restore(&o),
        Err(RestoreError::Plan(PlanError::Membership(_)))
    ));
    o.initial_cluster = Some("m1=127.0.0.1:2380".into());
    assert!(restore(&o).is_err());
    assert!(!data.exists());
}

#[test]
fn dry_run_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let snapf = snapshot_file(tmp.path(), "/registry/x/", 5);
    let data = tmp.path().join("out");
    let mut o = opts(&snapf, &data);
    o.dry_run = true;
    let r = restore(&o).unwrap();
    assert!(r.dry_run);
    assert_eq!(r.bump, Some(plan::KUBERNETES_MIN_BUMP));
    assert!(!data.exists());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[test]
fn separate_wal_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let snapf = snapshot_file(tmp.path(), "/plain/", 5);
    let data = tmp.path().join("out");
    let mut o = opts(&snapf, &data);
    o.wal_dir = Some(tmp.path().join("wal"));
    restore(&o).unwrap();
    assert!(
        tmp.path()
            .join("wal/0000000000000000-0000000000000000.wal")
            .exists()
    );
    assert!(!data.join("member/wal").exists());
    let mut o = opts(&snapf, &tmp.path().join("out2"));
    o.wal_dir = Some(tmp.path().join("wal"));
    assert!(matches!(restore(&o), Err(RestoreError::WalDirExists(_))));
}

#[test]
fn wal_dir_inside_the_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let snapf = snapshot_file(tmp.path(), "/plain/", 5);
    let data = tmp.path().join("out");
    let mut o = opts(&snapf, &data);
    o.wal_dir = Some(data.join("wal"));
    restore(&o).unwrap();
    assert!(
        data.join("wal/0000000000000000-0000000000000000.wal")
            .exists()
    );
    assert!(data.join("member/snap/db").exists());
    assert!(!data.join("member/wal").exists());
}

#[test]
fn wal_dir_inside_an_existing_empty_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let snapf = snapshot_file(tmp.path(), "/plain/", 5);
    let data = tmp.path().join("out");
    std::fs::create_dir(&data).unwrap();
    let mut o = opts(&snapf, &data);
    o.wal_dir = Some(data.join("wal"));
    restore(&o).unwrap();
    assert!(
        data.join("wal/0000000000000000-0000000000000000.wal")
            .exists()
    );
    assert!(data.join("member/snap/db").exists());
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 2);
}

/// The pid of a process that has exited (a realistic name for a leftover staging dir).
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn leftovers_of_a_killed_restore_are_removed_not_mistaken_for_data() {
    let tmp = tempfile::tempdir().unwrap();
    let snapf = snapshot_file(tmp.path(), "/plain/", 5);
    let junk = |dir: &Path| {
        std::fs::create_dir_all(dir.join("member/snap")).unwrap();
        std::fs::write(dir.join("member/snap/db"), b"half written").unwrap();
    };
    let pid = dead_pid();

    // Killed while staging inside an existing empty data dir (a mount point, say): the dir is
    // not "non-empty" for that, a dry run says what it would remove, the restore removes it.
    let data = tmp.path().join("mounted");
    let inside = data.join(format!(".kubemaint-restore-{pid}"));
    junk(&inside);
    let mut dry = opts(&snapf, &data);
    dry.dry_run = true;
    assert_eq!(restore(&dry).unwrap().leftovers, vec![inside.clone()]);
    assert!(inside.exists(), "a dry run removed something");
    let r = restore(&opts(&snapf, &data)).unwrap();
    assert_eq!(r.leftovers, vec![inside.clone()]);
    assert!(!inside.exists());
    assert!(data.join("member/snap/db").exists());

    // Killed while staging beside the data and WAL dirs.
    let data = tmp.path().join("fresh.etcd");
    let wal = tmp.path().join("wal.d");
    let beside = tmp
        .path()
        .join(format!(".fresh.etcd.kubemaint-restore-{pid}"));
    let beside_wal = tmp.path().join(format!(".wal.d.kubemaint-restore-{pid}"));
    junk(&beside);
    std::fs::create_dir(&beside_wal).unwrap();
    let mut o = opts(&snapf, &data);
    o.wal_dir = Some(wal.clone());
    let mut r = restore(&o).unwrap();
    r.leftovers.sort();
    let mut want = vec![beside.clone(), beside_wal.clone()];
    want.sort();
    assert_eq!(r.leftovers, want);
    assert!(!beside.exists() && !beside_wal.exists());
    assert!(wal.join(wal::segment_name(0, 0)).exists());

    // One whose restore still runs (it holds the lock on its staging dir, maybe from another
    // PID namespace) is left alone, and the data dir holding it is not empty.
    let busy = tmp.path().join("busy");
    let live = busy.join(".kubemaint-restore-1");
    junk(&live);
    let holder = File::open(&live).unwrap();
    holder.lock().unwrap();
    let e = restore(&opts(&snapf, &busy)).unwrap_err();
    assert!(matches!(e, RestoreError::DataDirNotEmpty(_)), "{e}");
    assert!(live.join("member/snap/db").exists());
    // Once that restore is gone, its leftover is.
    drop(holder);
    assert_eq!(
        restore(&opts(&snapf, &busy)).unwrap().leftovers,
        vec![live.clone()]
    );
    assert!(!live.exists());
}
