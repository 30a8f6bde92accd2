//! Restore against real etcd 3.4.23 and 3.5.1: snapshot with the real etcdctl, restore with
//! kubemaint, boot the real etcd on the result and compare everything.

mod restore_common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kubemaint_etcd::bbolt::Db;
use kubemaint_etcd::restore::{RestoreError, RestoreOptions, restore};
use kubemaint_etcd::wal;
use restore_common::*;

fn opts(snapshot: &Path, data: &Path, name: &str, cluster: &str, peer: &str) -> RestoreOptions {
    let mut o = RestoreOptions::new(snapshot);
    o.data_dir = Some(data.to_path_buf());
    o.name = name.to_string();
    o.initial_cluster = Some(cluster.to_string());
    o.initial_advertise_peer_urls = vec![peer.to_string()];
    o
}

/// Restores with the reference tool (etcdutl 3.5.1, or etcdctl 3.4.23 for 3.4) into `data`.
fn reference_restore(
    v: Version,
    snapshot: &Path,
    data: &Path,
    name: &str,
    cluster: &str,
    peer: &str,
) {
    let mut cmd = match v {
        Version::V3_5 => Command::new(etcdutl()),
        Version::V3_4 => {
            let mut c = Command::new(etcdctl(v));
            c.env("ETCDCTL_API", "3");
            c
        }
    };
    let out = cmd
        .args(["snapshot", "restore"])
        .arg(snapshot)
        .arg("--data-dir")
        .arg(data)
        .args([
            "--name",
            name,
            "--initial-cluster",
            cluster,
            "--initial-advertise-peer-urls",
            peer,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reference restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Byte equality with a short message (the first differing offset), not a megabyte dump.
fn assert_same_bytes(ours: &[u8], theirs: &[u8], what: &str) {
    if ours != theirs {
        let at = ours
            .iter()
            .zip(theirs)
            .position(|(a, b)| a != b)
            .unwrap_or(ours.len().min(theirs.len()));
        panic!(
            "{what}: ours ({} bytes) and the reference's ({} bytes) differ first at offset {at}",
            ours.len(),
            theirs.len()
        );
    }
}

fn bucket(db: &Db, name: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    match db.bucket(name).unwrap() {
        None => Vec::new(),
        Some(b) => b
            .cursor()
            .map(|e| {
                let e = e.unwrap();
                (e.key.to_vec(), e.value.to_vec())
            })
            .collect(),
    }
}

fn single_member_round_trip(v: Version) {
    let tmp = tempfile::tempdir().unwrap();
    let src = single(v, tmp.path(), "src");
    write_data(&src, "/app/", 400);
    let (kvs, rev) = all_kvs(&src);
    let snapf = tmp.path().join("snap.db");
    snapshot(&src, &snapf);
    let leases_before = src.ctl_ok(&["lease", "list"]);
    src.stop();

    let peer_port = free_port();
    let peer = format!("http://127.0.0.1:{peer_port}");
    let cluster = format!("m1={peer}");
    let data = tmp.path().join("restored");
    let report = restore(&opts(&snapf, &data, "m1", &cluster, &peer)).unwrap();
    assert!(report.hash_verified);
    assert_eq!(report.bump, None, "no /registry/ keys: revisions kept");

    // Same IDs and same key bucket as the reference tool's restore of the same file.
    let refdata = tmp.path().join("reference");
    reference_restore(v, &snapf, &refdata, "m1", &cluster, &peer);
    let ref_wal = std::fs::read(refdata.join("member/wal").join(wal::segment_name(0, 0))).unwrap();
    let ref_md = wal::read_segment(&ref_wal).unwrap().metadata.unwrap();
    let our_wal = std::fs::read(data.join("member/wal").join(wal::segment_name(0, 0))).unwrap();
    let ours = wal::read_segment(&our_wal).unwrap();
    assert_eq!(
        ours.metadata.unwrap(),
        ref_md,
        "member and cluster IDs equal the reference's"
    );
    let mut theirs = wal::read_segment(&ref_wal).unwrap();
    if v == Version::V3_4 {
        // etcd 3.4's walpb.Snapshot has no conf_state; we write the 3.5 form, which 3.4 ignores.
        theirs.snapshots.last_mut().unwrap().conf_state =
            ours.snapshots.last().unwrap().conf_state.clone();
    } else {
        assert_same_bytes(&our_wal, &ref_wal, "WAL segment");
    }
    assert_eq!(ours, theirs, "WAL records equal the reference's");
    let our_db = Db::open(&data.join("member/snap/db")).unwrap();
    let st = kubemaint_etcd::bbolt::check::check(&our_db, &mut ()).unwrap();
    assert_eq!(st.free_pages, 0, "defragmented: no free page");
    assert!(st.warnings.is_empty(), "{:?}", st.warnings);
    let ref_db = Db::open(&refdata.join("member/snap/db")).unwrap();
    for b in [
        &b"key"[..],
        b"lease",
        b"auth",
        b"authUsers",
        b"authRoles",
        b"alarm",
        b"cluster",
    ] {
        assert_eq!(
            bucket(&our_db, b),
            bucket(&ref_db, b),
            "bucket {}",
            String::from_utf8_lossy(b)
        );
    }
    if v == Version::V3_5 {
        // (etcdctl 3.4's restore leaves the old members in the backend; 3.4 reads the .snap.)
        assert_eq!(bucket(&our_db, b"members"), bucket(&ref_db, b"members"));
    }
    let snap_name = "0000000000000001-0000000000000001.snap";
    assert_same_bytes(
        &std::fs::read(data.join("member/snap").join(snap_name)).unwrap(),
        &std::fs::read(refdata.join("member/snap").join(snap_name)).unwrap(),
        ".snap file",
    );
    // Defragmented: not larger than the source image.
    assert!(
        report.db.file_size <= report.source_size,
        "{:?} vs {}",
        report.db,
        report.source_size
    );

    let e = Etcd::start(
        v,
        &Member {
            name: "m1",
            data_dir: &data,
            client_port: free_port(),
            peer_port,
            initial_cluster: cluster.clone(),
            wal_dir: None,
        },
    );
    let (kvs2, rev2) = all_kvs(&e);
    assert_eq!(kvs2.len(), kvs.len());
    assert_eq!(
        kvs2, kvs,
        "every key, value, create/mod revision and version"
    );
    assert_eq!(rev2, rev, "revision");
    assert_eq!(ids(&e), (ref_md.node_id, ref_md.cluster_id));
    assert_eq!(e.ctl_ok(&["lease", "list"]), leases_before);
    let members = member_list(&e);
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].2, vec![peer.clone()]);
    // The restored member accepts writes at the next revision.
    e.ctl_ok(&["put", "/app/after", "x"]);
    assert_eq!(all_kvs(&e).1, rev + 1);
}

#[test]
fn restore_single_member_etcd_3_5() {
    single_member_round_trip(Version::V3_5);
}

#[test]
fn restore_single_member_etcd_3_4() {
    single_member_round_trip(Version::V3_4);
}

fn three_members(v: Version) {
    let tmp = tempfile::tempdir().unwrap();
    let src = single(v, tmp.path(), "src");
    write_data(&src, "/three/", 120);
    let (kvs, rev) = all_kvs(&src);
    let snapf = tmp.path().join("snap.db");
    snapshot(&src, &snapf);
    src.stop();

    let peers: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let cluster = (0..3)
        .map(|i| format!("n{i}=http://127.0.0.1:{}", peers[i]))
        .collect::<Vec<_>>()
        .join(",");
    let mut reports = Vec::new();
    for (i, port) in peers.iter().enumerate() {
        let data = tmp.path().join(format!("n{i}"));
        let peer = format!("http://127.0.0.1:{port}");
        reports.push(restore(&opts(&snapf, &data, &format!("n{i}"), &cluster, &peer)).unwrap());
    }
    let cluster_id = reports[0].membership.cluster_id;
    assert!(
        reports
            .iter()
            .all(|r| r.membership.cluster_id == cluster_id)
    );
    let members: Vec<Etcd> = (0..3)
        .map(|i| {
            Etcd::spawn(
                v,
                &Member {
                    name: &format!("n{i}"),
                    data_dir: &tmp.path().join(format!("n{i}")),
                    client_port: free_port(),
                    peer_port: peers[i],
                    initial_cluster: cluster.clone(),
                    wal_dir: None,
                },
            )
        })
        .collect();
    for m in &members {
        m.wait_healthy(Duration::from_secs(60));
    }
    let list = member_list(&members[0]);
    assert_eq!(list.len(), 3);
    let want: Vec<u64> = reports[0].membership.ids();
    assert_eq!(list.iter().map(|m| m.0).collect::<Vec<_>>(), want);
    for m in &members {
        assert_eq!(ids(m).1, cluster_id, "one cluster, not three");
        let (kvs2, rev2) = all_kvs(m);
        assert_eq!(kvs2, kvs);
        assert_eq!(rev2, rev);
    }
    members[0].ctl_ok(&["put", "/three/after", "replicated"]);
    let got = members[2].ctl_ok(&["get", "/three/after", "--print-value-only"]);
    assert_eq!(got.trim(), "replicated");
}

#[test]
fn restore_three_members_etcd_3_5() {
    three_members(Version::V3_5);
}

#[test]
fn restore_three_members_etcd_3_4() {
    three_members(Version::V3_4);
}

fn kubernetes_bump(v: Version) {
    let tmp = tempfile::tempdir().unwrap();
    let src = single(v, tmp.path(), "src");
    write_data(&src, "/registry/configmaps/default/", 60);
    let (kvs, rev) = all_kvs(&src);
    let snapf = tmp.path().join("snap.db");
    snapshot(&src, &snapf);
    src.stop();

    let peer_port = free_port();
    let peer = format!("http://127.0.0.1:{peer_port}");
    let cluster = format!("m1={peer}");
    let data = tmp.path().join("restored");
    let report = restore(&opts(&snapf, &data, "m1", &cluster, &peer)).unwrap();
    let bump = report
        .bump
        .expect("Kubernetes snapshot is bumped by default");
    assert_eq!(report.key_facts.latest_revision, rev as u64);
    let e = Etcd::start(
        v,
        &Member {
            name: "m1",
            data_dir: &data,
            client_port: free_port(),
            peer_port,
            initial_cluster: cluster,
            wal_dir: None,
        },
    );
    let (kvs2, rev2) = all_kvs(&e);
    assert_eq!(kvs2, kvs, "data unchanged");
    assert_eq!(rev2 as u64, rev as u64 + bump, "revision bumped");
    // Reads and watches at older revisions are refused as compacted.
    let old = e.ctl(&[
        "get",
        "/registry/configmaps/default/key-0001",
        "--rev",
        &rev.to_string(),
    ]);
    assert!(!old.status.success());
    assert!(
        String::from_utf8_lossy(&old.stderr).contains("compacted"),
        "{old:?}"
    );
    let mut watch = Command::new(etcdctl(v))
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &e.client_url,
            "watch",
            "--prefix",
            "/registry/",
            "--rev",
            "2",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while watch.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("compacted"),
        "watch from an old revision: {text}"
    );
    // New writes land after the bump.
    e.ctl_ok(&["put", "/registry/new", "x"]);
    assert_eq!(all_kvs(&e).1 as u64, rev as u64 + bump + 1);
}

#[test]
fn restore_kubernetes_bump_and_compact_etcd_3_5() {
    kubernetes_bump(Version::V3_5);
}

#[test]
fn restore_kubernetes_bump_and_compact_etcd_3_4() {
    kubernetes_bump(Version::V3_4);
}

#[test]
fn restore_bad_inputs_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = single(Version::V3_5, tmp.path(), "src");
    write_data(&src, "/bad/", 30);
    let snapf = tmp.path().join("snap.db");
    snapshot(&src, &snapf);
    src.stop();
    let peer = "http://127.0.0.1:2380";
    let data = tmp.path().join("out");
    let listing = || {
        let mut v: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = listing();

    // Corrupted file: one flipped bit.
    let bad = tmp.path().join("corrupt.db");
    let mut b = std::fs::read(&snapf).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x10;
    std::fs::write(&bad, &b).unwrap();
    let err = restore(&opts(&bad, &data, "m1", &format!("m1={peer}"), peer)).unwrap_err();
    assert!(matches!(err, RestoreError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains("take a new snapshot"), "{err}");
    std::fs::remove_file(&bad).unwrap();
    assert_eq!(listing(), before);

    // Truncated file.
    let trunc = tmp.path().join("trunc.db");
    std::fs::write(&trunc, &std::fs::read(&snapf).unwrap()[..4096 * 3]).unwrap();
    let err = restore(&opts(&trunc, &data, "m1", &format!("m1={peer}"), peer)).unwrap_err();
    assert!(matches!(err, RestoreError::MissingHash(_)), "{err}");
    let mut o = opts(&trunc, &data, "m1", &format!("m1={peer}"), peer);
    o.skip_hash_check = true;
    let err = restore(&o).unwrap_err();
    assert!(matches!(err, RestoreError::Source { .. }), "{err}");
    std::fs::remove_file(&trunc).unwrap();
    assert_eq!(listing(), before);

    // --initial-cluster without our name.
    let err = restore(&opts(&snapf, &data, "m1", &format!("other={peer}"), peer)).unwrap_err();
    assert!(
        err.to_string().contains("couldn't find local name \"m1\""),
        "{err}"
    );
    // Malformed URL.
    let err = restore(&opts(&snapf, &data, "m1", "m1=127.0.0.1:2380", peer)).unwrap_err();
    assert!(err.to_string().contains("invalid peer URL"), "{err}");
    let err = restore(&opts(
        &snapf,
        &data,
        "m1",
        "m1=http://127.0.0.1:2380/path",
        peer,
    ))
    .unwrap_err();
    assert!(err.to_string().contains("path"), "{err}");
    assert_eq!(listing(), before);

    // Existing, non-empty data dir: refused and untouched.
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("precious"), b"data").unwrap();
    let err = restore(&opts(&snapf, &data, "m1", &format!("m1={peer}"), peer)).unwrap_err();
    assert!(matches!(err, RestoreError::DataDirNotEmpty(_)), "{err}");
    assert_eq!(std::fs::read(data.join("precious")).unwrap(), b"data");
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 1);
}

/// A raw `member/snap/db` copied from a stopped member (no trailer, file larger than the bbolt
/// high-water mark, no persisted freelist) restores with `--skip-hash-check` and boots.
#[test]
fn restore_raw_member_db_etcd_3_5() {
    let v = Version::V3_5;
    let tmp = tempfile::tempdir().unwrap();
    let src = single(v, tmp.path(), "src");
    write_data(&src, "/raw/", 150);
    let (kvs, rev) = all_kvs(&src);
    // A clean stop commits the backend; after SIGKILL the newest writes live only in the WAL.
    src.terminate();
    let raw = tmp.path().join("raw.db");
    std::fs::copy(tmp.path().join("src/member/snap/db"), &raw).unwrap();

    let peer_port = free_port();
    let peer = format!("http://127.0.0.1:{peer_port}");
    let cluster = format!("m1={peer}");
    let data = tmp.path().join("restored");
    let err = restore(&opts(&raw, &data, "m1", &cluster, &peer)).unwrap_err();
    assert!(matches!(err, RestoreError::MissingHash(_)), "{err}");
    let mut o = opts(&raw, &data, "m1", &cluster, &peer);
    o.skip_hash_check = true;
    let report = restore(&o).unwrap();
    assert!(!report.hash_verified && !report.had_trailer);
    let e = Etcd::start(
        v,
        &Member {
            name: "m1",
            data_dir: &data,
            client_port: free_port(),
            peer_port,
            initial_cluster: cluster,
            wal_dir: None,
        },
    );
    let (kvs2, rev2) = all_kvs(&e);
    assert_eq!(kvs2, kvs);
    assert_eq!(rev2, rev);
}
