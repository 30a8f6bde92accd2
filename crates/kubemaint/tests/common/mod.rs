//! Helpers shared by the backup tests: a real etcd 3.5.1 with TLS (the lab's kubeadm-shaped
//! PKI), a real Garage on loopback, and kubemaint run with a clean environment.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kubemaint_lab::binaries::{Binaries, EtcdVersion};
use kubemaint_lab::etcd::{EtcdOptions, EtcdServer};
use kubemaint_lab::garage::Garage;

pub const KUBEMAINT: &str = env!("CARGO_BIN_EXE_kubemaint");

/// Starts a real etcd 3.5.1 under `dir` (on `data_dir` if given).
pub fn start_etcd(dir: &Path, data_dir: Option<&Path>) -> EtcdServer {
    let bins = Binaries::locate().unwrap_or_else(|e| panic!("real etcd binaries are needed: {e}"));
    let mut opts = EtcdOptions::new(EtcdVersion::V3_5, dir);
    opts.data_dir = data_dir.map(Path::to_path_buf);
    EtcdServer::start(&bins, opts).unwrap_or_else(|e| panic!("cannot start etcd 3.5.1: {e}"))
}

/// Starts a real Garage with a bucket `etcd-backups`.
pub fn start_garage(dir: &Path) -> Garage {
    Garage::start(dir, "etcd-backups").unwrap_or_else(|e| panic!("cannot start Garage: {e}"))
}

/// Runs `cmd` and fails the test if it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
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

/// kubemaint with no ETCDCTL_* variables, no ~/.aws, and `env` set.
pub fn kubemaint_cmd(env: &[(&str, String)], args: &[&str]) -> Command {
    let mut cmd = Command::new(KUBEMAINT);
    cmd.args(args)
        .env_remove("ETCDCTL_ENDPOINTS")
        .env_remove("ETCDCTL_CACERT")
        .env_remove("ETCDCTL_CERT")
        .env_remove("ETCDCTL_KEY")
        .env("HOME", "/nonexistent-kubemaint-home");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs kubemaint and returns its output.
pub fn kubemaint(env: &[(&str, String)], args: &[&str]) -> Output {
    kubemaint_cmd(env, args).output().expect("run kubemaint")
}

/// Exit code, stdout and stderr, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every key and value under `/`, as etcdctl prints them.
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

/// The backup IDs `backup list` shows, newest first.
pub fn list_ids(env: &[(&str, String)], dest: &str) -> Vec<String> {
    let out = kubemaint(env, &["backup", "list", "--from", dest, "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

/// Polls `check` every 100 ms until it returns `Some` or `timeout` passes (then panics with
/// `what` and the last state `describe` gives).
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!(
                "timed out after {timeout:?} waiting for {what}; state:\n{}",
                describe()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One sample of a Prometheus text file (`name{labels} value`), by metric name.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split(['{', ' ']).next() == Some(name))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}
