//! A real etcd (3.5.1 unless asked otherwise) with TLS client certificates, data written through
//! the real etcdctl, and the real etcdutl's view of a snapshot.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use kubemaint_lab::binaries::{Binaries, EtcdVersion};
use kubemaint_lab::etcd::{EtcdOptions, EtcdServer};

use super::run::{run_ok, text};

/// The real etcd binaries (fails naming `kubemaint-lab prepare` when they are missing).
pub fn binaries() -> Binaries {
    Binaries::locate().unwrap_or_else(|e| panic!("real etcd binaries are needed: {e}"))
}

/// Starts a real etcd as `opts` says (waiting until it answers).
pub fn start_etcd_with(opts: EtcdOptions) -> EtcdServer {
    let version = opts.version.as_str();
    EtcdServer::start(&binaries(), opts)
        .unwrap_or_else(|e| panic!("cannot start etcd {version}: {e}"))
}

/// Starts a real etcd of `version` under `dir`.
pub fn start_etcd_version(version: EtcdVersion, dir: &Path) -> EtcdServer {
    start_etcd_with(EtcdOptions::new(version, dir))
}

/// Starts a real etcd 3.5.1 under `dir` (on `data_dir` if given).
pub fn start_etcd(dir: &Path, data_dir: Option<&Path>) -> EtcdServer {
    let mut opts = EtcdOptions::new(EtcdVersion::V3_5, dir);
    opts.data_dir = data_dir.map(Path::to_path_buf);
    start_etcd_with(opts)
}

/// A free loopback port, never one handed out before in this test binary.
pub fn free_port() -> u16 {
    kubemaint_lab::process::free_port().expect("a free loopback port")
}

/// Every key and value under `/`, as etcdctl prints them (key line, value line).
pub fn all_keys(etcd: &EtcdServer) -> Vec<String> {
    let out = run_ok(etcd.etcdctl().args(["get", "--prefix", "/"]));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Writes `n` small Kubernetes-like keys with the real etcdctl.
pub fn seed(etcd: &EtcdServer, n: usize) {
    for i in 0..n {
        run_ok(etcd.etcdctl().args([
            "put",
            &format!("/registry/configmaps/ns-{}/cm-{i}", i % 5),
            &format!("data-{i}-{}", "y".repeat(50 + i * 17)),
        ]));
    }
}

/// Writes `n` values of `size` bytes that zstd cannot shrink much (random letters), passing
/// each value on etcdctl's stdin.
pub fn seed_incompressible(etcd: &EtcdServer, n: usize, size: usize) {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..n {
        let value: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ALPHABET[(x >> 58) as usize]
            })
            .collect();
        let mut child = etcd
            .etcdctl()
            .args(["put", &format!("/registry/secrets/big/s-{i}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run etcdctl");
        child.stdin.take().unwrap().write_all(&value).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "etcdctl put: {}", text(&out));
    }
}

/// The member's database size in bytes (etcdctl endpoint status).
pub fn db_size(etcd: &EtcdServer) -> u64 {
    let out = run_ok(etcd.etcdctl().args(["endpoint", "status", "-w", "json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["Status"]["dbSize"].as_u64().expect("dbSize")
}

/// `etcdutl snapshot status -w json` (3.5.1) of a snapshot file: hash, revision, totalKey,
/// totalSize.
pub fn etcdutl_status(file: &Path) -> serde_json::Value {
    let out = run_ok(
        Command::new(binaries().etcdutl())
            .args(["snapshot", "status", "-w", "json"])
            .arg(file),
    );
    serde_json::from_slice(&out.stdout).expect("etcdutl status json")
}

/// Writes Kubernetes-shaped keys through etcdctl: a few hundred objects via `etcdctl txn`
/// (100 puts per transaction), then updates and deletes so there is history.
pub fn seed_txn(etcd: &EtcdServer) {
    for batch in 0..3 {
        // etcdctl txn's interactive format: compares, blank line, success ops, blank line,
        // failure ops, blank line.
        let mut script = String::from("\n");
        for i in 0..100 {
            let (res, ns) = match i % 4 {
                0 => ("pods", "default"),
                1 => ("configmaps", "kube-system"),
                2 => ("secrets", "demo"),
                _ => ("services/specs", "default"),
            };
            let value = format!("kind={res};n={i};pad={}", "x".repeat(200 + i * 7));
            script.push_str(&format!(
                "put /registry/{res}/{ns}/obj-{batch}-{i} {value}\n"
            ));
        }
        script.push_str("\n\n");
        let mut child = etcd
            .etcdctl()
            .arg("txn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn etcdctl txn");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("SUCCESS"),
            "etcdctl txn failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    run_ok(
        etcd.etcdctl()
            .args(["put", "/registry/pods/default/obj-0-0", "updated"]),
    );
    run_ok(
        etcd.etcdctl()
            .args(["del", "/registry/secrets/demo/obj-1-2"]),
    );
    run_ok(
        etcd.etcdctl()
            .args(["put", "/registry/minions/node-1", "{\"kind\":\"Node\"}"]),
    );
}

/// Grows the database to about `mib` MiB through etcdctl (1 MiB values; old revisions are kept).
pub fn grow(etcd: &EtcdServer, mib: usize) {
    let value: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8 | 1)
        .collect();
    let value = String::from_utf8_lossy(&value).replace('\u{FFFD}', "x");
    let value = &value[..1_000_000.min(value.len())];
    let mut children = Vec::new();
    for i in 0..mib {
        let mut c = etcd
            .etcdctl()
            .args(["put", &format!("/registry/configmaps/big/cm-{}", i % 8)])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(value.as_bytes()).unwrap();
        children.push(c);
        if children.len() == 4 {
            for c in children.drain(..) {
                let out = c.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "etcdctl put: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    for c in children {
        assert!(c.wait_with_output().unwrap().status.success());
    }
}

/// `etcdctl endpoint status -w json` of one endpoint: (member id, leader id, is learner).
pub fn endpoint_status(etcd: &EtcdServer, url: &str) -> Option<(u64, u64, bool)> {
    // Not `etcd.etcdctl()`: a second --endpoints would be appended to its own.
    let (ca, cert, key) = etcd.client_tls();
    let out = Command::new(binaries().etcdctl(EtcdVersion::V3_5))
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={url}"))
        .arg(format!("--cacert={}", ca.display()))
        .arg(format!("--cert={}", cert.display()))
        .arg(format!("--key={}", key.display()))
        .args(["endpoint", "status", "-w", "json"])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let s = &v[0]["Status"];
    Some((
        s["header"]["member_id"].as_u64()?,
        s["leader"].as_u64()?,
        s["isLearner"].as_bool().unwrap_or(false),
    ))
}
