//! `kubemaint backup run|list|fetch` and `etcd snapshot restore ID --from DEST` against a real
//! etcd 3.5.1 with TLS client certificates (the lab's kubeadm-shaped PKI): keys written with
//! the real etcdctl, backed up (zstd + age), listed, fetched, restored, and the restored data
//! dir booted by the real etcd, which must serve every original key.
//!
//! Needs `kubemaint-lab prepare` (the tests fail, naming what is missing, if it was not run).

mod common;

use common::*;
use kubemaint_lab::etcd::EtcdServer;

/// Three kinds of objects and a deletion, so the restored history is not trivial.
fn seed_history(etcd: &EtcdServer) {
    for i in 0..60 {
        let (res, ns) = match i % 3 {
            0 => ("pods", "default"),
            1 => ("secrets", "kube-system"),
            _ => ("configmaps", "demo"),
        };
        run_ok(etcd.etcdctl().args([
            "put",
            &format!("/registry/{res}/{ns}/obj-{i}"),
            &format!("value-{i}-{}", "x".repeat(100 + i * 13)),
        ]));
    }
    run_ok(etcd.etcdctl().args(["del", "/registry/pods/default/obj-0"]));
}

#[test]
fn run_list_fetch_restore_boots_etcd_with_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd(&dir.path().join("src"), None);
    seed_history(&etcd);
    let want = all_keys(&etcd);
    assert!(want.len() > 100);
    let pki = etcd.pki.dir.display().to_string();
    let dest = dir.path().join("backups");
    let dest_s = dest.display().to_string();
    let (recipient, key_file) = keygen(dir.path());
    let key_s = key_file.display().to_string();

    let out = kubemaint(
        &[],
        &[
            "backup",
            "run",
            "--to",
            &dest_s,
            "--endpoints",
            &etcd.client_url,
            "--pki-dir",
            &pki,
            "--recipient",
            &recipient,
            "--keep-last",
            "1",
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = run["backup"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        run["backup"]["encryption"]["recipients"][0],
        recipient.as_str()
    );
    assert!(run["backup"]["verified"].as_bool().unwrap());

    // An unencrypted run warns loudly (a second later, so it lists as the newer one).
    next_second();
    let out = kubemaint(
        &[],
        &[
            "backup",
            "run",
            "--to",
            &dest_s,
            "--endpoints",
            &etcd.client_url,
            "--pki-dir",
            &pki,
            "--keep-last",
            "5",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NOT encrypted"),
        "{}",
        text(&out)
    );

    let ids = list_ids(&[], &dest_s);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[1], id);

    // fetch: byte for byte what etcdctl saves is checked by restore's hash check below;
    // here the wrong key and a missing key are refused.
    let fetched = dir.path().join("fetched.db");
    let fetched_s = fetched.display().to_string();
    let out = kubemaint(
        &[],
        &[
            "backup", "fetch", &id, "--from", &dest_s, "--to", &fetched_s,
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("encrypted with age"),
        "{}",
        text(&out)
    );
    let other = tempfile::tempdir().unwrap();
    let (_, other_key) = keygen(other.path());
    let out = kubemaint(
        &[],
        &[
            "backup",
            "fetch",
            &id,
            "--from",
            &dest_s,
            "--to",
            &fetched_s,
            "-i",
            &other_key.display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong key"),
        "{}",
        text(&out)
    );
    assert!(!fetched.exists());
    let out = kubemaint(
        &[],
        &[
            "backup", "fetch", &id, "--from", &dest_s, "--to", &fetched_s, "-i", &key_s,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    // The real etcdutl accepts the fetched file (its SHA-256 trailer included).
    let st = etcdutl_status(&fetched);
    assert!(st["totalKey"].as_u64().unwrap() > 60, "{st}");

    // restore straight from the backup ID, then boot the real etcd on it.
    let data = dir.path().join("restored.etcd");
    let out = kubemaint(
        &[],
        &[
            "etcd",
            "snapshot",
            "restore",
            &id,
            "--from",
            &dest_s,
            "-i",
            &key_s,
            "--data-dir",
            &data.display().to_string(),
            "--name",
            "lab",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!dir.path().join(format!(".{id}.fetched.db")).exists());
    drop(etcd);
    let restored = start_etcd(&dir.path().join("dst"), Some(&data));
    assert_eq!(all_keys(&restored), want);
}

#[test]
fn corrupted_object_and_bad_destinations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd(&dir.path().join("src"), None);
    seed_history(&etcd);
    let pki = etcd.pki.dir.display().to_string();
    let dest = dir.path().join("backups");
    let dest_s = dest.display().to_string();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "a long passphrase for tests\n").unwrap();
    let pass_s = pass.display().to_string();
    let out = kubemaint(
        &[],
        &[
            "backup",
            "run",
            "--to",
            &dest_s,
            "--endpoints",
            &etcd.client_url,
            "--pki-dir",
            &pki,
            "--passphrase-file",
            &pass_s,
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = run["backup"]["id"].as_str().unwrap().to_string();
    let object = dest.join(run["backup"]["object"].as_str().unwrap());

    let fetched = dir.path().join("f.db");
    let out = kubemaint(
        &[],
        &[
            "backup",
            "fetch",
            &id,
            "--from",
            &dest_s,
            "--to",
            &fetched.display().to_string(),
            "--passphrase-file",
            &pass_s,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    std::fs::remove_file(&fetched).unwrap();

    let mut bytes = std::fs::read(&object).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    std::fs::write(&object, &bytes).unwrap();
    let out = kubemaint(
        &[],
        &[
            "backup",
            "fetch",
            &id,
            "--from",
            &dest_s,
            "--to",
            &fetched.display().to_string(),
            "--passphrase-file",
            &pass_s,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is corrupted"),
        "{}",
        text(&out)
    );
    assert!(!fetched.exists());

    // A destination that is a file: refused before etcd is touched, nothing deleted.
    let file_dest = dir.path().join("not-a-dir");
    std::fs::write(&file_dest, "x").unwrap();
    let out = kubemaint(
        &[],
        &[
            "backup",
            "run",
            "--to",
            &file_dest.display().to_string(),
            "--endpoints",
            &etcd.client_url,
            "--pki-dir",
            &pki,
            "--passphrase-file",
            &pass_s,
            "--keep-last",
            "1",
        ],
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no backup was taken"),
        "{}",
        text(&out)
    );
    // etcd unreachable: the run fails, and retention deletes nothing.
    let before = std::fs::read_dir(&dest).unwrap().count();
    let out = kubemaint(
        &[],
        &[
            "backup",
            "run",
            "--to",
            &dest_s,
            "--endpoints",
            "https://127.0.0.1:1",
            "--pki-dir",
            &pki,
            "--passphrase-file",
            &pass_s,
            "--keep-last",
            "1",
            "--dial-timeout",
            "1s",
        ],
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), before);
}
