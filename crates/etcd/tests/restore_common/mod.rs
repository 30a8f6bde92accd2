//! Harness for restore tests against real etcd: plain-HTTP members on free loopback ports, started
//! by the lab's etcd launcher ([`kubemaint_lab::EtcdServer`], the harness's only one), driven with
//! the real etcdctl. Binaries come from `kubemaint-lab prepare` (`$KUBEMAINT_LAB_CACHE`, default
//! `~/.cache/kubemaint-lab`); a missing binary fails the test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kubemaint_lab::{Binaries, EtcdOptions, EtcdServer};

/// An etcd release under test.
pub use kubemaint_lab::EtcdVersion as Version;

/// The lab's binaries; panics with the next step if `kubemaint-lab prepare` was not run.
pub fn binaries() -> Binaries {
    Binaries::locate().unwrap_or_else(|e| panic!("{e}"))
}

/// `etcdctl` of one release.
pub fn etcdctl(v: Version) -> PathBuf {
    binaries().etcdctl(v)
}

/// `etcdutl` 3.5.1 (restore reference).
pub fn etcdutl() -> PathBuf {
    binaries().etcdutl()
}

/// A free TCP port on 127.0.0.1 (the lab's allocator: never one this test binary handed out before).
pub fn free_port() -> u16 {
    kubemaint_lab::process::free_port().expect("a free loopback port")
}

/// A running etcd member, stopped on drop.
pub struct Etcd {
    server: EtcdServer,
    /// `http://127.0.0.1:<port>`.
    pub client_url: String,
    /// Version.
    pub version: Version,
    /// Log file.
    pub log: PathBuf,
}

/// How to start a member.
pub struct Member<'a> {
    /// `--name`.
    pub name: &'a str,
    /// `--data-dir`.
    pub data_dir: &'a Path,
    /// Client port.
    pub client_port: u16,
    /// Peer port.
    pub peer_port: u16,
    /// `--initial-cluster` (only used when the data dir is new).
    pub initial_cluster: String,
    /// `--wal-dir`, if separate.
    pub wal_dir: Option<&'a Path>,
}

impl Etcd {
    /// Starts a member and waits until it answers `endpoint health` (or panics with its log).
    pub fn start(v: Version, m: &Member<'_>) -> Etcd {
        let e = Etcd::spawn(v, m);
        e.wait_healthy(Duration::from_secs(30));
        e
    }

    /// Starts a member without waiting (multi-member clusters need all started first).
    pub fn spawn(v: Version, m: &Member<'_>) -> Etcd {
        // Logs and pid files go next to the data dir, named after it (members share a directory).
        let dir = m.data_dir.parent().expect("data dir has a parent");
        let stem = m.data_dir.file_name().expect("data dir has a name");
        let mut opts = EtcdOptions::new(v, dir);
        opts.tls = false;
        opts.name = m.name.to_string();
        opts.data_dir = Some(m.data_dir.to_path_buf());
        opts.process_name = format!("etcd-{}", stem.to_string_lossy());
        opts.client_port = Some(m.client_port);
        opts.peer_port = Some(m.peer_port);
        opts.initial_cluster = Some(m.initial_cluster.clone());
        if let Some(w) = m.wal_dir {
            opts.extra_args.push(format!("--wal-dir={}", w.display()));
        }
        let server = EtcdServer::spawn(&binaries(), opts)
            .unwrap_or_else(|e| panic!("start etcd {v:?}: {e}"));
        Etcd {
            client_url: server.client_url.clone(),
            version: v,
            log: server.process.log.clone(),
            server,
        }
    }

    /// Polls `endpoint health` until healthy; panics with the log tail on timeout or exit.
    pub fn wait_healthy(&self, timeout: Duration) {
        if let Err(e) = self.server.wait_healthy(timeout) {
            panic!("etcd {:?} at {}: {e}", self.version, self.client_url);
        }
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        !self.server.process.alive()
    }

    /// Runs this version's etcdctl (API v3) against this member.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.server
            .etcdctl()
            .args(args)
            .output()
            .expect("run etcdctl")
    }

    /// This version's etcdctl (API v3) for this member, to add arguments and stdio to.
    pub fn ctl_command(&self) -> Command {
        self.server.etcdctl()
    }

    /// Runs etcdctl and panics (with stderr) unless it succeeds; returns stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed: {}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Stops the member with SIGTERM so it commits its backend (needed before copying
    /// `member/snap/db`); panics if it does not exit within 20 s.
    pub fn terminate(self) {
        assert!(
            self.server.terminate(Duration::from_secs(20)),
            "etcd did not stop on SIGTERM"
        );
    }

    /// Stops the member (tests snapshot before stopping).
    pub fn stop(self) {
        self.server.stop();
    }
}

/// Last 40 lines of a file.
pub fn tail(p: &Path) -> String {
    kubemaint_lab::process::tail(p, 40)
}

/// A one-member cluster on fresh ports in `dir/name`.
pub fn single(v: Version, dir: &Path, name: &str) -> Etcd {
    let peer = free_port();
    let data = dir.join(name);
    Etcd::start(
        v,
        &Member {
            name,
            data_dir: &data,
            client_port: free_port(),
            peer_port: peer,
            initial_cluster: format!("{name}=http://127.0.0.1:{peer}"),
            wal_dir: None,
        },
    )
}

/// One key as etcdctl reports it: key, value, create revision, mod revision, version.
pub type Kv = (Vec<u8>, Vec<u8>, i64, i64, i64);

/// All keys with values and the header revision, as `etcdctl get --prefix "" -w json` reports.
pub fn all_kvs(e: &Etcd) -> (Vec<Kv>, i64) {
    let out = e.ctl_ok(&["get", "--prefix", "", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rev = v["header"]["revision"].as_i64().unwrap();
    let kvs = v["kvs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|kv| {
                    (
                        b64(kv["key"].as_str().unwrap()),
                        kv["value"].as_str().map(b64).unwrap_or_default(),
                        kv["create_revision"].as_i64().unwrap_or(0),
                        kv["mod_revision"].as_i64().unwrap_or(0),
                        kv["version"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (kvs, rev)
}

/// `endpoint status` → (member id, cluster id, raft index? no: revision).
pub fn ids(e: &Etcd) -> (u64, u64) {
    let out = e.ctl_ok(&["endpoint", "status", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let h = &v[0]["Status"]["header"];
    (
        h["member_id"].as_u64().unwrap(),
        h["cluster_id"].as_u64().unwrap(),
    )
}

/// Member list as (id, name, peer urls), sorted by id.
pub fn member_list(e: &Etcd) -> Vec<(u64, String, Vec<String>)> {
    let out = e.ctl_ok(&["member", "list", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut m: Vec<_> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["ID"].as_u64().unwrap(),
                m["name"].as_str().unwrap_or("").to_string(),
                m["peerURLs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|u| u.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    m.sort();
    m
}

fn b64(s: &str) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        if c == b'=' {
            break;
        }
        let v = T.iter().position(|&x| x == c).expect("base64") as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

/// Writes a varied data set through etcdctl: puts, overwrites, deletes, a large value spanning
/// several bbolt pages, and a lease-attached key. `prefix` chooses Kubernetes-like keys or not.
pub fn write_data(e: &Etcd, prefix: &str, n: usize) {
    // `etcdctl txn` batches many puts per process: an empty compare section, the puts as the
    // success branch, an empty failure branch (each section ends with an empty line).
    let mut txn = String::from("\n");
    let mut ops = 0;
    for i in 0..n {
        txn.push_str(&format!(
            "put {prefix}key-{i:04} \"value-{i}-{}\"\n",
            "x".repeat(i % 97)
        ));
        ops += 1;
        if ops == 100 || i + 1 == n {
            txn.push_str("\n\n");
            run_txn(e, &txn);
            txn = String::from("\n");
            ops = 0;
        }
    }
    let (kvs, _) = all_kvs(e);
    assert!(kvs.len() >= n, "the txn puts landed ({} keys)", kvs.len());
    for i in (0..n).step_by(7) {
        e.ctl_ok(&[
            "put",
            &format!("{prefix}key-{i:04}"),
            &format!("overwritten-{i}"),
        ]);
    }
    for i in (3..n).step_by(11) {
        e.ctl_ok(&["del", &format!("{prefix}key-{i:04}")]);
    }
    let big: String = (0..20_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    e.ctl_ok(&["put", &format!("{prefix}big"), &big]);
    let lease = e.ctl_ok(&["lease", "grant", "3600"]);
    let id = lease.split_whitespace().nth(1).unwrap().to_string();
    e.ctl_ok(&["put", "--lease", &id, &format!("{prefix}leased"), "l"]);
}

fn run_txn(e: &Etcd, script: &str) {
    use std::io::Write;
    let mut child = e
        .ctl_command()
        .arg("txn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "etcdctl txn failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `etcdctl snapshot save` into `path`.
pub fn snapshot(e: &Etcd, path: &Path) {
    e.ctl_ok(&["snapshot", "save", path.to_str().unwrap()]);
}
