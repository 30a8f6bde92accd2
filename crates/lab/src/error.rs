//! The lab's error type, shared by every module that starts, seeds or talks to a lab.

use std::path::PathBuf;

use crate::process;

/// Errors bringing a lab up or down.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Binaries missing or prepare failed.
    #[error(transparent)]
    Binaries(#[from] crate::binaries::BinariesError),
    /// PKI generation failed.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// etcd failed.
    #[error(transparent)]
    Etcd(#[from] crate::etcd::EtcdError),
    /// The load balancer of an HA lab failed.
    #[error(transparent)]
    Haproxy(#[from] crate::haproxy::HaproxyError),
    /// A process failed.
    #[error(transparent)]
    Process(#[from] process::ProcessError),
    /// The state file failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// A lab already runs in the directory.
    #[error(
        "a lab is already running in {0} (see `kubemaint-lab status --dir {0}`); stop it with `kubemaint-lab down --dir {0}` or pick another --dir"
    )]
    AlreadyRunning(String),
    /// Filesystem trouble.
    #[error("cannot use lab directory {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Talking to the API server failed.
    #[error("Kubernetes API call failed: {context}")]
    Kube {
        /// What we were doing.
        context: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The kubeconfig could not be used.
    #[error("cannot load the lab's kubeconfig {0}")]
    Kubeconfig(PathBuf, #[source] Box<dyn std::error::Error + Send + Sync>),
    /// Something did not become ready in time.
    #[error("timed out after {secs} s waiting for {what}; logs are in {logs}")]
    Timeout {
        /// What.
        what: String,
        /// How long.
        secs: u64,
        /// Where to look.
        logs: PathBuf,
    },
    /// Bad option.
    #[error("{0}")]
    Invalid(String),
}
