//! `kubemaint backup` against a real S3-compatible store: Garage 2.5.0 (crates.io `garage`,
//! built by `scripts/build-garage.sh`) started on loopback by the test with a one-node layout,
//! and a real etcd 3.5.1 with TLS. Run -> list -> retention -> restore straight from the bucket
//! -> the real etcd boots on the restored data dir with every original key. Then the bad inputs:
//! wrong credentials, a missing bucket, an unreachable endpoint — clear errors, nothing deleted.
//!
//! Needs `kubemaint-lab prepare` and `scripts/build-garage.sh` (the tests fail, naming what is
//! missing, if they were not run).

mod common;

use common::*;

#[test]
fn runs_retention_and_restore_on_garage() {
    let dir = tempfile::tempdir().unwrap();
    let garage = start_garage(&dir.path().join("garage"));
    let env = garage.env();
    let etcd = start_etcd(&dir.path().join("src"), None);
    let pki = etcd.pki.dir.display().to_string();
    let dest = format!("s3://{}/clusters/lab", garage.bucket);
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "garage test passphrase\n").unwrap();
    let pass_s = pass.display().to_string();

    let mut ids = Vec::new();
    for round in 0..3 {
        seed(&etcd, 20 + round);
        if round > 0 {
            next_second();
        }
        let out = kubemaint(
            &env,
            &[
                "backup",
                "run",
                "--to",
                &dest,
                "--endpoints",
                &etcd.client_url,
                "--pki-dir",
                &pki,
                "--passphrase-file",
                &pass_s,
                "--keep-last",
                "2",
                "-o",
                "json",
            ],
        );
        assert!(out.status.success(), "round {round}: {}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        ids.push(v["backup"]["id"].as_str().unwrap().to_string());
        if round == 2 {
            assert_eq!(v["deleted"], serde_json::json!([ids[0].clone()]), "{v}");
        }
    }
    let listed = list_ids(&env, &dest);
    assert_eq!(listed, [ids[2].clone(), ids[1].clone()]);
    // Garage itself holds exactly the two backups' four objects.
    let info = garage.cli(&["bucket", "info", &garage.bucket]).unwrap();
    assert!(
        info.lines()
            .any(|l| l.contains("Objects:") && l.split_whitespace().any(|w| w == "4")),
        "{info}"
    );

    // Dry-run prune names what would go and why, deletes nothing.
    let out = kubemaint(
        &env,
        &[
            "backup",
            "prune",
            "--from",
            &dest,
            "--keep-last",
            "1",
            "--dry-run",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("would delete {}", ids[1])),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("not selected by keep-last or any tier"),
        "{}",
        text(&out)
    );
    assert_eq!(list_ids(&env, &dest).len(), 2);

    // Restore the newest straight from the bucket; the real etcd boots with every key.
    let want = all_keys(&etcd);
    let data = dir.path().join("restored.etcd");
    let out = kubemaint(
        &env,
        &[
            "etcd",
            "snapshot",
            "restore",
            &ids[2],
            "--from",
            &dest,
            "--passphrase-file",
            &pass_s,
            "--data-dir",
            &data.display().to_string(),
            "--name",
            "lab",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    drop(etcd);
    let restored = start_etcd(&dir.path().join("dst"), Some(&data));
    assert_eq!(all_keys(&restored), want);
}

#[test]
fn bad_credentials_bucket_and_endpoint_are_named_and_nothing_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let garage = start_garage(&dir.path().join("garage"));
    let env = garage.env();
    let etcd = start_etcd(&dir.path().join("src"), None);
    seed(&etcd, 10);
    let pki = etcd.pki.dir.display().to_string();
    let dest = format!("s3://{}/p", garage.bucket);
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "another passphrase\n").unwrap();
    let pass_s = pass.display().to_string();
    let run = |env: &[(&str, String)], dest: &str| {
        kubemaint(
            env,
            &[
                "backup",
                "run",
                "--to",
                dest,
                "--endpoints",
                &etcd.client_url,
                "--pki-dir",
                &pki,
                "--passphrase-file",
                &pass_s,
                "--keep-last",
                "1",
            ],
        )
    };
    let out = run(&env, &dest);
    assert!(out.status.success(), "{}", text(&out));
    let before = list_ids(&env, &dest);
    assert_eq!(before.len(), 1);

    let mut wrong = env.clone();
    wrong.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    wrong.push(("AWS_SECRET_ACCESS_KEY", "0".repeat(64)));
    let out = run(&wrong, &dest);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused the credentials"),
        "{}",
        text(&out)
    );

    let out = run(&env, "s3://no-such-bucket/p");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{}",
        text(&out)
    );

    let mut down = env.clone();
    down.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    down.push(("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")));
    let out = run(&down, &dest);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach"),
        "{}",
        text(&out)
    );

    assert_eq!(list_ids(&env, &dest), before);
}
