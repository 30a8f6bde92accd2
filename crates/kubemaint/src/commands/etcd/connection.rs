//! etcdctl-style connection flags shared by the live etcd commands.
//!
//! Only the raw flags live here; precedence (flag > `--pki-dir`/`--kubeadm` > `ETCDCTL_*` >
//! etcdctl's defaults) and kubeadm discovery are resolved by `kubemaint_etcd::client::config`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use kubemaint_core::duration;
use kubemaint_core::secret::{Secret, redact_user};
use kubemaint_etcd::client::config::{
    self, ConnectionArgs as LibArgs, ConnectionConfig, DEFAULT_KUBEADM_MANIFEST, ProcessEnv,
};
use kubemaint_etcd::client::files::RealFiles;

use crate::exit::CodedError;

/// How to reach etcd: etcdctl's flags, each also read from `ETCDCTL_<FLAG>` (e.g.
/// `ETCDCTL_ENDPOINTS`, `ETCDCTL_CACERT`, `ETCDCTL_CERT`, `ETCDCTL_KEY`, `ETCDCTL_DIAL_TIMEOUT`),
/// plus kubeadm discovery. Its `Debug` shows no password.
#[derive(Clone, Args)]
#[command(
    next_help_heading = "etcd connection (etcdctl flags; each also read from ETCDCTL_<FLAG>)"
)]
pub struct ConnectionArgs {
    /// Comma-separated client URLs [env: ETCDCTL_ENDPOINTS] [default: 127.0.0.1:2379].
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    pub endpoints: Vec<String>,
    /// CA bundle that signed etcd's server certificate [env: ETCDCTL_CACERT].
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Client certificate [env: ETCDCTL_CERT].
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Client key [env: ETCDCTL_KEY].
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Do not verify the server certificate (testing only) [env: ETCDCTL_INSECURE_SKIP_TLS_VERIFY].
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    /// Connect timeout per endpoint, Go syntax (2s, 500ms) [env: ETCDCTL_DIAL_TIMEOUT] [default: 2s].
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub dial_timeout: Option<Duration>,
    /// Timeout of short calls; bounds `snapshot save` only when given, as in etcdctl
    /// [env: ETCDCTL_COMMAND_TIMEOUT] [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub command_timeout: Option<Duration>,
    /// etcd user, `NAME` or `NAME:PASSWORD` [env: ETCDCTL_USER].
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Password for --user [env: ETCDCTL_PASSWORD].
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<Secret>,
    /// kubeadm PKI directory: uses DIR/etcd/ca.crt and DIR/etcd/healthcheck-client.{crt,key}
    /// (else DIR/apiserver-etcd-client.{crt,key}).
    #[arg(long, value_name = "DIR", conflicts_with = "kubeadm")]
    pub pki_dir: Option<PathBuf>,
    /// Read the local member's URL and certificates from kubeadm's etcd static pod
    /// (default /etc/kubernetes/manifests/etcd.yaml; another path with --kubeadm=PATH).
    #[arg(
        long,
        value_name = "MANIFEST",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = DEFAULT_KUBEADM_MANIFEST
    )]
    pub kubeadm: Option<PathBuf>,
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
            .field("kubeadm", &self.kubeadm)
            .finish()
    }
}

impl ConnectionArgs {
    /// Resolves the flags with the environment and kubeadm's files; bad input exits with 2.
    pub fn resolve(self) -> anyhow::Result<ConnectionConfig> {
        let args = LibArgs {
            endpoints: (!self.endpoints.is_empty()).then_some(self.endpoints),
            cacert: self.cacert,
            cert: self.cert,
            key: self.key,
            insecure_skip_tls_verify: self.insecure_skip_tls_verify.then_some(true),
            dial_timeout: self.dial_timeout,
            command_timeout: self.command_timeout,
            user: self.user,
            password: self.password,
            pki_dir: self.pki_dir,
            kubeadm_manifest: self.kubeadm,
        };
        config::resolve(args, &ProcessEnv, &RealFiles).map_err(|e| CodedError::usage(e.to_string()))
    }
}
