//! Resolving etcdctl-style connection settings into one [`ConnectionConfig`].
//!
//! The rules follow etcdctl (release-3.4/3.5 `etcdctl/ctlv3/ctl.go`, `command/global.go`,
//! `pkg/flags/flag.go`): defaults `127.0.0.1:2379`, dial timeout 2s, command timeout 5s; every
//! flag can come from `ETCDCTL_<FLAG>` (dashes to underscores, upper case; an empty variable counts
//! as unset); a flag given on the command line wins over its variable. Two deliberate differences:
//! etcdctl aborts when a flag shadows a set variable, we warn instead; and `--pki-dir`/`--kubeadm`
//! (ours) sit between explicit flags and the environment, because asking for them on the command
//! line is more specific than a variable exported in a shell profile.
//!
//! Everything here is pure: the environment and the file system come in through [`Env`] and
//! [`FileProbe`](super::files::FileProbe) so the precedence rules are unit-tested.
//!
//! The types are here; `endpoint.rs` parses one client URL (and Go's booleans), `resolve.rs` holds
//! the precedence rules.

use std::path::PathBuf;
use std::time::Duration;

use kubemaint_core::secret::{Secret, redact_user};

use super::files::TlsFiles;
use super::kubeadm;

mod endpoint;
mod resolve;
#[cfg(test)]
mod tests;

pub use endpoint::{Endpoint, parse_endpoint, parse_go_bool};
pub use resolve::{find_in_pki_dir, resolve};

/// etcdctl's default endpoint.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:2379";
/// etcdctl's default `--dial-timeout`.
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// etcdctl's default `--command-timeout`.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// kubeadm's static pod manifest for the local etcd member.
pub const DEFAULT_KUBEADM_MANIFEST: &str = "/etc/kubernetes/manifests/etcd.yaml";

/// Connection settings as given on the command line; `None` means "not given".
///
/// Its `Debug` shows no password (neither `--password` nor the one in `--user NAME:PASSWORD`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnectionArgs {
    /// `--endpoints` (already split at commas).
    pub endpoints: Option<Vec<String>>,
    /// `--cacert`.
    pub cacert: Option<PathBuf>,
    /// `--cert`.
    pub cert: Option<PathBuf>,
    /// `--key`.
    pub key: Option<PathBuf>,
    /// `--insecure-skip-tls-verify` (only `Some(true)` when the flag is present).
    pub insecure_skip_tls_verify: Option<bool>,
    /// `--dial-timeout`.
    pub dial_timeout: Option<Duration>,
    /// `--command-timeout`.
    pub command_timeout: Option<Duration>,
    /// `--user` (`name` or `name:password`).
    pub user: Option<String>,
    /// `--password`.
    pub password: Option<Secret>,
    /// `--pki-dir DIR`: kubeadm's PKI directory (e.g. `/etc/kubernetes/pki`).
    pub pki_dir: Option<PathBuf>,
    /// `--kubeadm [MANIFEST]`: read endpoint and certificates from kubeadm's etcd static pod.
    pub kubeadm_manifest: Option<PathBuf>,
}

impl std::fmt::Debug for ConnectionArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionArgs")
            .field("endpoints", &self.endpoints)
            .field("cacert", &self.cacert)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("dial_timeout", &self.dial_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("user", &self.user.as_deref().map(redact_user))
            .field("password", &self.password)
            .field("pki_dir", &self.pki_dir)
            .field("kubeadm_manifest", &self.kubeadm_manifest)
            .finish()
    }
}

/// Read-only access to environment variables.
pub trait Env {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Where a resolved value came from (printed with `-v` and in errors).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// etcdctl's default.
    Default,
    /// A command-line flag.
    Flag,
    /// An `ETCDCTL_*` environment variable (named).
    Env(String),
    /// Found under `--pki-dir`.
    PkiDir,
    /// Read from the kubeadm static pod manifest.
    Kubeadm,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Flag => f.write_str("flag"),
            Source::Env(name) => write!(f, "${name}"),
            Source::PkiDir => f.write_str("--pki-dir"),
            Source::Kubeadm => f.write_str("--kubeadm"),
        }
    }
}

/// A fully resolved way to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionConfig {
    /// Candidate endpoints, in the user's order.
    pub endpoints: Vec<Endpoint>,
    /// Where the endpoints came from.
    pub endpoints_source: Source,
    /// TLS settings (used for endpoints with `tls`).
    pub tls: TlsFiles,
    /// Where the CA, client certificate and key came from.
    pub tls_source: Option<Source>,
    /// Connect timeout per endpoint.
    pub dial_timeout: Duration,
    /// Timeout of short calls (status, member list, hash).
    pub command_timeout: Duration,
    /// Whether `--command-timeout` was given (etcdctl bounds `snapshot save` only then).
    pub command_timeout_explicit: bool,
    /// User name and password for etcd auth (the password never shown by `Debug`).
    #[serde(skip)]
    pub auth: Option<(String, Secret)>,
    /// Notes for the user (e.g. a variable shadowed by a flag).
    pub warnings: Vec<String>,
}

/// Why the settings cannot be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A malformed endpoint.
    #[error(
        "invalid endpoint {endpoint:?}: {why}; write it as https://HOST:PORT (or HOST:PORT, as etcdctl accepts)"
    )]
    BadEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong.
        why: String,
    },
    /// No endpoints at all.
    #[error("no etcd endpoint given: pass --endpoints https://HOST:2379")]
    NoEndpoints,
    /// A malformed value in an `ETCDCTL_*` variable.
    #[error("invalid value {value:?} in ${name}: {why}; fix or unset the variable")]
    BadEnv {
        /// Variable name.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong.
        why: String,
    },
    /// `--cert` without `--key` or the other way round.
    #[error(
        "{given} is set but {missing} is not: a client certificate needs both --cert and --key"
    )]
    HalfClientCert {
        /// What was given (with its source).
        given: String,
        /// What is missing.
        missing: String,
    },
    /// An empty string as a path.
    #[error("empty string passed to --{flag}")]
    EmptyFlag {
        /// The flag.
        flag: &'static str,
    },
    /// `--pki-dir` and `--kubeadm` together.
    #[error("--pki-dir and --kubeadm cannot be used together: pick one")]
    PkiDirAndKubeadm,
    /// Nothing usable under `--pki-dir`.
    #[error("{0}")]
    PkiDir(String),
    /// The kubeadm manifest could not be used.
    #[error(transparent)]
    Kubeadm(#[from] kubeadm::KubeadmError),
    /// `--password` without `--user`.
    #[error("--password needs --user")]
    PasswordWithoutUser,
    /// `--user NAME` without a password (etcdctl would prompt; we do not read the terminal).
    #[error("no password for etcd user {0:?}: pass --user NAME:PASSWORD or --password")]
    NoPassword(String),
}
