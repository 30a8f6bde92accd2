//! `kubemaint backup run|list|fetch` and `etcd snapshot restore ID --from DEST` against a real
//! etcd 3.5.1 with TLS client certificates (the lab's kubeadm-shaped PKI): keys written with
//! the real etcdctl, backed up (zstd + age), listed, fetched, restored, and the restored data
//! dir booted by the real etcd, which must serve every original key.
//!
//! Needs `kubemaint-lab prepare` (the tests fail, naming what is missing, if it was not run).

use std::path::Path;
use std::process::{Command, Output};

use kubemaint_lab::binaries::{Binaries, EtcdVersion};
use kubemaint_lab::etcd::{EtcdOptions, EtcdServer};

const KUBEMAINT: &str = env!("CARGO_BIN_EXE_kubemaint");

fn binaries() -> Binaries {
    Binaries::locate().unwrap_or_else(|e| panic!("real etcd binaries are needed: {e}"))
}

fn start(dir: &Path, data_dir: Option<&Path>) -> EtcdServer {
    let mut opts = EtcdOptions::new(EtcdVersion::V3_5, dir);
    opts.data_dir = data_dir.map(Path::to_path_buf);
    EtcdServer::start(&binaries(), opts).unwrap_or_else(|e| panic!("cannot start etcd 3.5.1: {e}"))
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn kubemaint(args: &[&str]) -> Output {
    Command::new(KUBEMAINT)
        .args(args)
        .env_remove("ETCDCTL_ENDPOINTS")
        .env_remove("ETCDCTL_CACERT")
        .env_remove("ETCDCTL_CERT")
        .env_remove("ETCDCTL_KEY")
        .output()
        .expect("run kubemaint")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every key and value under `/`, as etcdctl prints them (key line, value line).
fn all_keys(etcd: &EtcdServer) -> Vec<String> {
    let out = run_ok(etcd.etcdctl().args(["get", "--prefix", "/"]));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn seed(etcd: &EtcdServer) {
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

fn keygen(dir: &Path) -> (String, std::path::PathBuf) {
    // The key pair comes from the age crate here; the file format is age-keygen's.
    let key = age::x25519::Identity::generate();
    let path = dir.join("key.txt");
    std::fs::write(
        &path,
        format!(
            "# public key: {}\n{}\n",
            key.to_public(),
            age::secrecy::ExposeSecret::expose_secret(&key.to_string())
        ),
    )
    .unwrap();
    (key.to_public().to_string(), path)
}

#[test]
fn run_list_fetch_restore_boots_etcd_with_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = start(&dir.path().join("src"), None);
    seed(&etcd);
    let want = all_keys(&etcd);
    assert!(want.len() > 100);
    let pki = etcd.pki.dir.display().to_string();
    let dest = dir.path().join("backups");
    let dest_s = dest.display().to_string();
    let (recipient, key_file) = keygen(dir.path());
    let key_s = key_file.display().to_string();

    let out = kubemaint(&[
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
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = run["backup"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        run["backup"]["encryption"]["recipients"][0],
        recipient.as_str()
    );
    assert!(run["backup"]["verified"].as_bool().unwrap());

    // An unencrypted run warns loudly.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = kubemaint(&[
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
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NOT encrypted"),
        "{}",
        text(&out)
    );

    let out = kubemaint(&["backup", "list", "--from", &dest_s, "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<_> = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert_eq!(ids[1], id);

    // fetch: byte for byte what etcdctl saves is checked by restore's hash check below;
    // here the wrong key and a missing key are refused.
    let fetched = dir.path().join("fetched.db");
    let fetched_s = fetched.display().to_string();
    let out = kubemaint(&[
        "backup", "fetch", &id, "--from", &dest_s, "--to", &fetched_s,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("encrypted with age"),
        "{}",
        text(&out)
    );
    let other = tempfile::tempdir().unwrap();
    let (_, other_key) = keygen(other.path());
    let out = kubemaint(&[
        "backup",
        "fetch",
        &id,
        "--from",
        &dest_s,
        "--to",
        &fetched_s,
        "-i",
        &other_key.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong key"),
        "{}",
        text(&out)
    );
    assert!(!fetched.exists());
    let out = kubemaint(&[
        "backup", "fetch", &id, "--from", &dest_s, "--to", &fetched_s, "-i", &key_s,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // The real etcdutl accepts the fetched file (its SHA-256 trailer included).
    let st = run_ok(
        Command::new(binaries().etcdutl())
            .args(["snapshot", "status", "-w", "json"])
            .arg(&fetched),
    );
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert!(st["totalKey"].as_u64().unwrap() > 60, "{st}");

    // restore straight from the backup ID, then boot the real etcd on it.
    let data = dir.path().join("restored.etcd");
    let out = kubemaint(&[
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
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!dir.path().join(format!(".{id}.fetched.db")).exists());
    drop(etcd);
    let restored = start(&dir.path().join("dst"), Some(&data));
    assert_eq!(all_keys(&restored), want);
}

#[test]
fn corrupted_object_and_bad_destinations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = start(&dir.path().join("src"), None);
    seed(&etcd);
    let pki = etcd.pki.dir.display().to_string();
    let dest = dir.path().join("backups");
    let dest_s = dest.display().to_string();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "a long passphrase for tests\n").unwrap();
    let pass_s = pass.display().to_string();
    let out = kubemaint(&[
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
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = run["backup"]["id"].as_str().unwrap().to_string();
    let object = dest.join(run["backup"]["object"].as_str().unwrap());

    let fetched = dir.path().join("f.db");
    let out = kubemaint(&[
        "backup",
        "fetch",
        &id,
        "--from",
        &dest_s,
        "--to",
        &fetched.display().to_string(),
        "--passphrase-file",
        &pass_s,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::remove_file(&fetched).unwrap();

    let mut bytes = std::fs::read(&object).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    std::fs::write(&object, &bytes).unwrap();
    let out = kubemaint(&[
        "backup",
        "fetch",
        &id,
        "--from",
        &dest_s,
        "--to",
        &fetched.display().to_string(),
        "--passphrase-file",
        &pass_s,
    ]);
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
    let out = kubemaint(&[
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
    ]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no backup was taken"),
        "{}",
        text(&out)
    );
    // etcd unreachable: the run fails, and retention deletes nothing.
    let before = std::fs::read_dir(&dest).unwrap().count();
    let out = kubemaint(&[
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
    ]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), before);
}
