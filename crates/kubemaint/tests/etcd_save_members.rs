//! `kubemaint etcd snapshot save` against a real three-member etcd 3.5.1 (two voters and a
//! learner, TLS client certificates): with several endpoints it saves from a voting follower,
//! never from the learner. Split from `etcd_save.rs` (same helpers, `tests/common`).
//!
//! Needs `kubemaint-lab prepare` (the test fails, naming what is missing, if it was not run).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use kubemaint_lab::binaries::EtcdVersion;
use kubemaint_lab::etcd::{EtcdOptions, EtcdServer};

#[test]
fn several_members_prefers_a_voting_follower_and_never_a_learner() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_etcd_version(EtcdVersion::V3_5, &dir.path().join("a"));
    run_ok(a.etcdctl().args(["put", "/registry/pods/default/a", "1"]));
    // Every member shares a's PKI (server and peer certificates are for 127.0.0.1).
    let copy_pki = |to: &Path| {
        run_ok(
            Command::new("cp")
                .arg("-r")
                .arg(&a.pki.dir)
                .arg(to.join("pki")),
        );
    };

    // b: a second voting member.
    let b_dir = dir.path().join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    copy_pki(&b_dir);
    let b_peer_port = free_port();
    let b_peer = format!("https://127.0.0.1:{b_peer_port}");
    run_ok(
        a.etcdctl()
            .args(["member", "add", "b", "--peer-urls", &b_peer]),
    );
    let mut opts = EtcdOptions::new(EtcdVersion::V3_5, &b_dir);
    opts.name = "b".into();
    // Join a's cluster at the announced peer URL.
    opts.peer_port = Some(b_peer_port);
    opts.initial_cluster = Some(format!("lab={},b={b_peer}", a.peer_url));
    opts.extra_args = vec!["--initial-cluster-state=existing".into()];
    let b = EtcdServer::start(&binaries(), opts)
        .unwrap_or_else(|e| panic!("cannot start member b: {e}"));

    // c: a learner (spawned without the launcher's health wait, which needs a voting member).
    let c_dir = dir.path().join("c");
    std::fs::create_dir_all(&c_dir).unwrap();
    copy_pki(&c_dir);
    let c_peer_port = free_port();
    let c_peer = format!("https://127.0.0.1:{c_peer_port}");
    // etcd refuses membership changes until the new member has been connected for a while.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = a
            .etcdctl()
            .args(["member", "add", "c", "--learner", "--peer-urls", &c_peer])
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "member add c: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut opts = EtcdOptions::new(EtcdVersion::V3_5, &c_dir);
    opts.name = "c".into();
    opts.peer_port = Some(c_peer_port);
    opts.initial_cluster = Some(format!("lab={},b={b_peer},c={c_peer}", a.peer_url));
    opts.extra_args = vec!["--initial-cluster-state=existing".into()];
    let c = EtcdServer::spawn(&binaries(), opts)
        .unwrap_or_else(|e| panic!("cannot start learner c: {e}"));
    let c_client = c.client_url.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !endpoint_status(&a, &c_client).is_some_and(|s| s.2) {
        assert!(Instant::now() < deadline, "learner c did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Which of a and b leads?
    let (a_id, leader, _) = endpoint_status(&a, &a.client_url).expect("status of a");
    let (follower, leader_url) = if a_id == leader {
        (&b.client_url, &a.client_url)
    } else {
        (&a.client_url, &b.client_url)
    };

    let pki = a.pki.dir.display().to_string();
    let file = dir.path().join("multi.db");
    let endpoints = format!("{c_client},{leader_url},{follower}");
    let out = kubemaint(
        &[],
        &[
            "etcd",
            "snapshot",
            "save",
            file.to_str().unwrap(),
            "--no-progress",
            "--endpoints",
            &endpoints,
            "--pki-dir",
            &pki,
            "--verify-hash-kv",
        ],
    );
    assert!(
        out.status.success(),
        "save from a 3-member cluster failed: {}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("Taking the snapshot from {follower}"))
            && stderr.contains("healthy follower"),
        "the voting follower should be chosen: {}",
        text(&out)
    );
    assert!(
        stderr.contains(&format!("not using {c_client}: is a learner")),
        "{}",
        text(&out)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("multi.db.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(
        manifest["members"].as_array().unwrap().len(),
        3,
        "{manifest}"
    );
    assert_eq!(manifest["source"]["was_leader"], false);
    // HashKV is asked of the voting members only, and both agree with the file.
    let hk = manifest["hash_kv"]["members"].as_array().unwrap();
    assert_eq!(hk.len(), 2, "{manifest}");
    assert!(hk.iter().all(|m| m["result"] == "match"), "{manifest}");

    // Only the learner given: refused, saying why.
    let file = dir.path().join("learner.db");
    let out = kubemaint(
        &[],
        &[
            "etcd",
            "snapshot",
            "save",
            file.to_str().unwrap(),
            "--endpoints",
            &c_client,
            "--pki-dir",
            &pki,
        ],
    );
    assert_fails_with(
        &out,
        &["no healthy voting etcd member", "is a learner"],
        &file,
    );
}
