//! `kubemaint etcd snapshot save` against real etcd 3.4.23 and 3.5.1 with TLS client-certificate
//! auth (kubeadm-shaped PKI from `kubemaint_lab`), data written through the real `etcdctl`, and
//! results checked with the real `etcdctl snapshot save` and `etcdutl snapshot status` (3.5.1).
//!
//! Needs `kubemaint-lab prepare` (the tests fail, naming what is missing, if it was not run).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use kubemaint_lab::binaries::EtcdVersion;
use kubemaint_lab::etcd::EtcdServer;
use kubemaint_lab::pki::Pki;
use sha2::{Digest, Sha256};

fn save_args<'a>(etcd: &'a EtcdServer, pki: &'a str, file: &'a str) -> Vec<&'a str> {
    vec![
        "etcd",
        "snapshot",
        "save",
        file,
        "--endpoints",
        &etcd.client_url,
        "--pki-dir",
        pki,
        "--no-progress",
    ]
}

fn check_save_against_etcdctl(version: EtcdVersion) {
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd_version(version, dir.path());
    seed_txn(&etcd);
    let pki = etcd.pki.dir.display().to_string();
    let ours = dir.path().join("ours.db");
    let theirs = dir.path().join("etcdctl.db");

    let out = kubemaint(&[], &save_args(&etcd, &pki, ours.to_str().unwrap()));
    assert!(
        out.status.success(),
        "kubemaint save failed: {}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("Snapshot saved at {}", ours.display())),
        "{}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("Taking the snapshot from {}", etcd.client_url)),
        "{}",
        text(&out)
    );
    assert!(!dir.path().join("ours.db.part").exists());

    run_ok(etcd.etcdctl().args(["snapshot", "save"]).arg(&theirs));

    // The file format: bbolt image + SHA-256 of it, mode 0600.
    let bytes = std::fs::read(&ours).unwrap();
    assert_eq!(bytes.len() % 512, 32, "size must be 32 mod 512");
    let (db, trailer) = bytes.split_at(bytes.len() - 32);
    assert_eq!(Sha256::digest(db).as_slice(), trailer);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&ours).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Same figures from etcdutl for both files, and (no writes in between) the same bytes.
    let a = etcdutl_status(&ours);
    let b = etcdutl_status(&theirs);
    for field in ["hash", "revision", "totalKey", "totalSize"] {
        assert_eq!(a[field], b[field], "{field}: ours {a} vs etcdctl's {b}");
    }
    // 3 transactions of 100 puts, then a put, a delete and a put: revision 7.
    assert_eq!(a["revision"], 7, "{a}");
    let theirs_bytes = std::fs::read(&theirs).unwrap();
    assert!(
        bytes == theirs_bytes,
        "our snapshot differs from etcdctl's of the same revision ({} vs {} bytes)",
        bytes.len(),
        theirs_bytes.len()
    );

    // The manifest.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("ours.db.manifest.json"))
            .expect("manifest beside the snapshot"),
    )
    .unwrap();
    assert_eq!(manifest["revision"], a["revision"], "{manifest}");
    assert_eq!(manifest["revision_source"], "snapshot-file");
    assert_eq!(manifest["etcd_version"], version.as_str());
    assert_eq!(manifest["db_size"].as_u64().unwrap() as usize, db.len());
    assert_eq!(
        manifest["file_size"].as_u64().unwrap() as usize,
        bytes.len()
    );
    let hex: String = trailer.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(manifest["sha256"], hex);
    assert_eq!(manifest["members"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["members"][0]["name"], "lab");
    assert_eq!(manifest["source"]["name"], "lab");
    assert_eq!(manifest["source"]["endpoint"], etcd.client_url);
    assert_eq!(manifest["cluster_id"].as_str().unwrap().len(), 16);

    // HashKV: the hash computed from the file equals the live member's at that revision.
    let again = dir.path().join("again.db");
    let mut args = save_args(&etcd, &pki, again.to_str().unwrap());
    args.push("--verify-hash-kv");
    args.extend(["-o", "json"]);
    let out = kubemaint(&[], &args);
    assert!(
        out.status.success(),
        "save --verify-hash-kv failed: {}",
        text(&out)
    );
    let m: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("-o json prints the manifest");
    assert_eq!(m["hash_kv"]["members"][0]["result"], "match", "{m}");
    assert_eq!(m["hash_kv"]["revision"], a["revision"]);
    // And etcdctl agrees on the live hash.
    let out = run_ok(etcd.etcdctl().args(["endpoint", "hashkv", "-w", "json"]));
    let live: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        live[0]["HashKV"]["hash"], m["hash_kv"]["file_hash"],
        "{live}"
    );
}

#[test]
fn save_matches_etcdctl_on_etcd_3_4() {
    check_save_against_etcdctl(EtcdVersion::V3_4);
}

#[test]
fn save_matches_etcdctl_on_etcd_3_5() {
    check_save_against_etcdctl(EtcdVersion::V3_5);
}

#[test]
fn connection_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd_version(EtcdVersion::V3_4, dir.path());
    let other = Pki::at(dir.path().join("other-pki"));
    other.generate().expect("second PKI");
    let (ca, cert, key) = etcd.client_tls();
    let (other_cert, other_key) = other.etcd_healthcheck_client();
    let file = dir.path().join("s.db");
    let f = file.to_str().unwrap();
    let s = |p: &Path| p.display().to_string();

    // A CA that did not sign etcd's server certificate.
    let out = kubemaint(
        &[],
        &[
            "etcd",
            "snapshot",
            "save",
            f,
            "--endpoints",
            &etcd.client_url,
            "--cacert",
            &s(&other.etcd_ca()),
            "--cert",
            &s(&cert),
            "--key",
            &s(&key),
        ],
    );
    assert_fails_with(
        &out,
        &["is not trusted", "--cacert", &s(&other.etcd_ca())],
        &file,
    );

    // A client certificate from another CA.
    let out = kubemaint(
        &[],
        &[
            "etcd",
            "snapshot",
            "save",
            f,
            "--endpoints",
            &etcd.client_url,
            "--cacert",
            &s(&ca),
            "--cert",
            &s(&other_cert),
            "--key",
            &s(&other_key),
        ],
    );
    assert_fails_with(
        &out,
        &["rejected our client certificate", &s(&other_cert)],
        &file,
    );

    // No client certificate at all.
    let out = kubemaint(
        &[],
        &[
            "etcd",
            "snapshot",
            "save",
            f,
            "--endpoints",
            &etcd.client_url,
            "--cacert",
            &s(&ca),
        ],
    );
    assert_fails_with(&out, &["requires a client certificate", "--pki-dir"], &file);

    // Nothing listening.
    let dead = format!("https://127.0.0.1:{}", free_port());
    let out = kubemaint(
        &[],
        &[
            "etcd",
            "snapshot",
            "save",
            f,
            "--endpoints",
            &dead,
            "--pki-dir",
            &s(&etcd.pki.dir),
        ],
    );
    assert_fails_with(
        &out,
        &["cannot connect to etcd at", &dead, "connection refused"],
        &file,
    );

    // A --pki-dir that is not one: a usage error (exit 2) naming what was looked for.
    let out = kubemaint(
        &[],
        &["etcd", "snapshot", "save", f, "--pki-dir", &s(dir.path())],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("etcd/ca.crt"),
        "{}",
        text(&out)
    );
    assert!(!file.exists());
}

#[test]
fn connection_sources_env_kubeadm_and_several_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd_version(EtcdVersion::V3_5, dir.path());
    run_ok(
        etcd.etcdctl()
            .args(["put", "/registry/pods/default/a", "1"]),
    );
    let (ca, cert, key) = etcd.client_tls();

    // etcdctl's environment variables alone.
    let file = dir.path().join("env.db");
    let out = Command::new(KUBEMAINT)
        .args([
            "etcd",
            "snapshot",
            "save",
            file.to_str().unwrap(),
            "--no-progress",
        ])
        .env("ETCDCTL_ENDPOINTS", &etcd.client_url)
        .env("ETCDCTL_CACERT", &ca)
        .env("ETCDCTL_CERT", &cert)
        .env("ETCDCTL_KEY", &key)
        .env("ETCDCTL_DIAL_TIMEOUT", "3s")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ETCDCTL_* save failed: {}",
        text(&out)
    );
    assert!(file.is_file());

    // kubeadm's static pod manifest, pointing at the lab's PKI and client URL.
    let p = |rel: &str| etcd.pki.path(rel).display().to_string();
    let manifest = dir.path().join("etcd.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n  namespace: kube-system\nspec:\n  containers:\n  - name: etcd\n    image: k8s.gcr.io/etcd:3.5.1-0\n    command:\n    - etcd\n    - --advertise-client-urls={url}\n    - --cert-file={server}\n    - --client-cert-auth=true\n    - --key-file={server_key}\n    - --listen-client-urls={url}\n    - --name=lab\n    - --peer-cert-file={peer}\n    - --trusted-ca-file={ca}\n",
            url = etcd.client_url,
            server = p("etcd/server.crt"),
            server_key = p("etcd/server.key"),
            peer = p("etcd/peer.crt"),
            ca = p("etcd/ca.crt"),
        ),
    )
    .unwrap();
    let file = dir.path().join("kubeadm.db");
    let out = kubemaint(
        &[],
        &[
            "etcd",
            "snapshot",
            "save",
            file.to_str().unwrap(),
            "--no-progress",
            &format!("--kubeadm={}", manifest.display()),
        ],
    );
    assert!(
        out.status.success(),
        "--kubeadm save failed: {}",
        text(&out)
    );
    assert!(file.is_file());

    // --insecure-skip-tls-verify (only when asked): no CA, still a client certificate.
    let file = dir.path().join("insecure.db");
    let out = kubemaint(
        &[],
        &[
            "etcd",
            "snapshot",
            "save",
            file.to_str().unwrap(),
            "--no-progress",
            "--endpoints",
            &etcd.client_url,
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--insecure-skip-tls-verify",
        ],
    );
    assert!(
        out.status.success(),
        "--insecure-skip-tls-verify save failed: {}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NOT verified"),
        "{}",
        text(&out)
    );

    // Several endpoints, one dead: the live voting member is chosen and named.
    let dead = format!("https://127.0.0.1:{}", free_port());
    let file = dir.path().join("multi.db");
    let out = kubemaint(
        &[],
        &[
            "etcd",
            "snapshot",
            "save",
            file.to_str().unwrap(),
            "--no-progress",
            "--endpoints",
            &format!("{dead},{}", etcd.client_url),
            "--pki-dir",
            &etcd.pki.dir.display().to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "multi-endpoint save failed: {}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("Taking the snapshot from {}", etcd.client_url)),
        "{}",
        text(&out)
    );
    assert!(
        stderr.contains(&format!("not using {dead}: cannot connect")),
        "{}",
        text(&out)
    );
}

/// Starts a save and returns once more than 8 MiB have reached FILE.part.
fn start_save_and_wait_for_streaming(
    etcd: &EtcdServer,
    pki: &str,
    file: &Path,
    part: &Path,
) -> std::process::Child {
    let mut child = Command::new(KUBEMAINT)
        .args(save_args(etcd, pki, file.to_str().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::fs::metadata(part).is_ok_and(|m| m.len() > 8 << 20) {
            return child;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the save finished ({status}) before it could be stopped midway; grow the database"
            );
        }
        assert!(
            Instant::now() < deadline,
            "the save never started streaming"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn killed_save_leaves_nothing_at_file() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd_version(EtcdVersion::V3_5, dir.path());
    grow(&etcd, 160);
    let file = dir.path().join("big.db");
    let part = dir.path().join("big.db.part");
    let pki = etcd.pki.dir.display().to_string();

    // SIGTERM midway: kubemaint stops, removes its .part and says so; nothing at FILE.
    let child = start_save_and_wait_for_streaming(&etcd, &pki, &file, &part);
    run_ok(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted"),
        "{}",
        text(&out)
    );
    assert!(
        !file.exists() && !part.exists(),
        "SIGTERM must leave neither FILE nor FILE.part"
    );

    // SIGKILL midway: no chance to clean up, but still nothing at FILE.
    let mut child = start_save_and_wait_for_streaming(&etcd, &pki, &file, &part);
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    assert!(!file.exists(), "a killed save must leave nothing at FILE");
    assert!(
        partial > 0,
        "the killed save's .part should still be there (it cannot clean up after SIGKILL)"
    );

    // The next save removes the leftover and completes.
    let out = kubemaint(&[], &save_args(&etcd, &pki, file.to_str().unwrap()));
    assert!(
        out.status.success(),
        "save after kill failed: {}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("left by an interrupted save"),
        "{}",
        text(&out)
    );
    assert!(!part.exists());
    let status = etcdutl_status(&file);
    assert!(
        status["totalSize"].as_u64().unwrap() > 100 << 20,
        "{status}"
    );
}
