//! The files a connection uses: which TLS files ([`TlsFiles`]), and read-only access to the file
//! system ([`FileProbe`]) so that finding them (`--pki-dir`, `--kubeadm`) is unit-tested.
//!
//! Shared by [`super::config`] (resolving the settings) and [`super::kubeadm`] (reading kubeadm's
//! manifest), which depend on this module and not on each other's internals.

use std::path::{Path, PathBuf};

/// Read-only access to files, for `--pki-dir` and `--kubeadm`.
pub trait FileProbe {
    /// Whether `path` exists (and is a file).
    fn is_file(&self, path: &Path) -> bool;
    /// The contents of `path`.
    fn read_to_string(&self, path: &Path) -> std::io::Result<String>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFiles;

impl FileProbe for RealFiles {
    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }
    fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// TLS files to use.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TlsFiles {
    /// CA bundle that signed the server certificates (`None`: TLS without a CA is only possible
    /// with `--insecure-skip-tls-verify`).
    pub cacert: Option<PathBuf>,
    /// Client certificate and key.
    pub client: Option<(PathBuf, PathBuf)>,
    /// Skip server certificate verification (only when asked for).
    pub insecure_skip_verify: bool,
}
