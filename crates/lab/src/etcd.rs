//! A real etcd server with TLS client-certificate auth, as on a kubeadm control-plane node.
//!
//! Used by the lab's control plane and directly by tests that need a bare etcd (3.4.23 or 3.5.1):
//! this is the one etcd launcher of the test harness. With `tls: false` a member speaks plain
//! http (the etcd crate's format tests); several members form a cluster through
//! `initial_cluster` and ports chosen beforehand.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::binaries::{Binaries, EtcdVersion};
use crate::pki::Pki;
use crate::process::{self, Managed, ProcessError};

/// Errors while starting etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// Starting the process failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// No free port.
    #[error("cannot find free loopback ports for etcd")]
    Ports(#[source] std::io::Error),
    /// Generating the PKI failed.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// etcd did not become healthy.
    #[error("etcd {version} did not become healthy within {secs} s; see {log}:\n{tail}")]
    Unhealthy {
        /// The version.
        version: &'static str,
        /// How long we waited.
        secs: u64,
        /// Its log.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
}

/// How to start an etcd member.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Which release.
    pub version: EtcdVersion,
    /// The directory holding `pki/` and where logs, pid files and the data dir go.
    pub dir: PathBuf,
    /// The member name.
    pub name: String,
    /// The data dir (default `DIR/etcd-data`).
    pub data_dir: Option<PathBuf>,
    /// The process name in the lab (log and pid file name).
    pub process_name: String,
    /// Extra flags.
    pub extra_args: Vec<String>,
    /// TLS with client-certificate auth for clients and peers (kubeadm's way, the default); `false`
    /// serves plain http and needs no PKI.
    pub tls: bool,
    /// The client port (default: a free one).
    pub client_port: Option<u16>,
    /// The peer port (default: a free one); members of one cluster need theirs known beforehand.
    pub peer_port: Option<u16>,
    /// `--initial-cluster` (default: this member alone at its peer URL).
    pub initial_cluster: Option<String>,
}

impl EtcdOptions {
    /// One member named `lab` under `dir`.
    pub fn new(version: EtcdVersion, dir: impl Into<PathBuf>) -> Self {
        Self {
            version,
            dir: dir.into(),
            name: "lab".into(),
            data_dir: None,
            process_name: "etcd".into(),
            extra_args: Vec::new(),
            tls: true,
            client_port: None,
            peer_port: None,
            initial_cluster: None,
        }
    }
}

/// A running etcd member; with TLS (the default) its server cert is `pki/etcd/server.crt` and
/// client certificates are required.
#[derive(Debug)]
pub struct EtcdServer {
    /// Which release.
    pub version: EtcdVersion,
    /// `https://127.0.0.1:PORT` (`http://` without TLS).
    pub client_url: String,
    /// `https://127.0.0.1:PORT` for peers (`http://` without TLS).
    pub peer_url: String,
    /// The data dir.
    pub data_dir: PathBuf,
    /// The PKI (kubeadm layout).
    pub pki: Pki,
    /// The process.
    pub process: Managed,
    /// The binaries used.
    pub binaries: Binaries,
    /// The flags etcd was started with (to restart it the same way).
    pub args: Vec<String>,
    dir: PathBuf,
    tls: bool,
}

impl EtcdServer {
    /// Starts a member under `opts.dir` (with TLS, generating a PKI there first if
    /// `pki/etcd/ca.crt` does not exist) and waits until it answers.
    pub fn start(binaries: &Binaries, opts: EtcdOptions) -> Result<Self, EtcdError> {
        let server = Self::spawn(binaries, opts)?;
        server.wait_healthy(Duration::from_secs(30))?;
        Ok(server)
    }

    /// Starts a member without waiting for it: the members of a new cluster only become healthy
    /// once a quorum of them runs, so all are spawned first, then waited for.
    pub fn spawn(binaries: &Binaries, opts: EtcdOptions) -> Result<Self, EtcdError> {
        let pki = Pki::at(opts.dir.join("pki"));
        if opts.tls && !pki.etcd_ca().is_file() {
            pki.generate()?;
        }
        let port = |given: Option<u16>| match given {
            Some(p) => Ok(p),
            None => process::free_port().map_err(EtcdError::Ports),
        };
        let scheme = if opts.tls { "https" } else { "http" };
        let client_url = format!("{scheme}://127.0.0.1:{}", port(opts.client_port)?);
        let peer_url = format!("{scheme}://127.0.0.1:{}", port(opts.peer_port)?);
        let metrics_port = port(None)?;
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| opts.dir.join("etcd-data"));
        let initial_cluster = opts
            .initial_cluster
            .clone()
            .unwrap_or_else(|| format!("{}={peer_url}", opts.name));
        let p = |rel: &str| pki.path(rel).display().to_string();
        let mut args = vec![
            format!("--name={}", opts.name),
            format!("--data-dir={}", data_dir.display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster={initial_cluster}"),
            format!("--listen-metrics-urls=http://127.0.0.1:{metrics_port}"),
        ];
        if opts.tls {
            args.extend([
                format!("--cert-file={}", p("etcd/server.crt")),
                format!("--key-file={}", p("etcd/server.key")),
                "--client-cert-auth=true".into(),
                format!("--trusted-ca-file={}", p("etcd/ca.crt")),
                format!("--peer-cert-file={}", p("etcd/peer.crt")),
                format!("--peer-key-file={}", p("etcd/peer.key")),
                "--peer-client-cert-auth=true".into(),
                format!("--peer-trusted-ca-file={}", p("etcd/ca.crt")),
            ]);
        }
        // kubeadm's value; keeps the WAL small in long labs.
        args.push("--snapshot-count=10000".into());
        args.extend(opts.extra_args.iter().cloned());
        let process = process::spawn(
            &opts.dir,
            &opts.process_name,
            &binaries.etcd(opts.version),
            &args,
        )?;
        Ok(Self {
            version: opts.version,
            client_url,
            peer_url,
            data_dir,
            pki,
            process,
            binaries: binaries.clone(),
            args,
            dir: opts.dir,
            tls: opts.tls,
        })
    }

    /// Polls `etcdctl endpoint health` until it succeeds.
    pub fn wait_healthy(&self, timeout: Duration) -> Result<(), EtcdError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.process.ensure_alive()?;
            let ok = self
                .etcdctl()
                .args(["endpoint", "health", "--command-timeout=2s"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(EtcdError::Unhealthy {
                    version: self.version.as_str(),
                    secs: timeout.as_secs(),
                    log: self.process.log.clone(),
                    tail: process::tail(&self.process.log, 15),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The client TLS flags etcdctl needs: `(cacert, cert, key)` (the `healthcheck-client` pair).
    pub fn client_tls(&self) -> (PathBuf, PathBuf, PathBuf) {
        let (cert, key) = self.pki.etcd_healthcheck_client();
        (self.pki.etcd_ca(), cert, key)
    }

    /// The same version's `etcdctl`, with API v3, this endpoint and client certs (with TLS) preset.
    pub fn etcdctl(&self) -> Command {
        let mut cmd = Command::new(self.binaries.etcdctl(self.version));
        // etcdctl refuses a flag shadowing its ETCDCTL_* variable (set by `kubemaint-lab env`).
        process::strip_etcdctl_env(&mut cmd);
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.client_url));
        if self.tls {
            let (ca, cert, key) = self.client_tls();
            cmd.arg(format!("--cacert={}", ca.display()))
                .arg(format!("--cert={}", cert.display()))
                .arg(format!("--key={}", key.display()));
        }
        cmd
    }

    /// The directory holding this server's logs and pid file.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the process (SIGTERM, then SIGKILL).
    pub fn stop(&self) {
        process::stop(&self.dir, &self.process, Duration::from_secs(10));
    }

    /// Stops the process with SIGTERM only, so etcd commits its backend before exiting (needed
    /// before copying `member/snap/db`); `false` if it was still running after `grace` (it is
    /// then killed).
    pub fn terminate(&self, grace: Duration) -> bool {
        process::stop(&self.dir, &self.process, grace)
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}
