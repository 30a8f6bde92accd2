//! Pure decisions of a restore: options → membership, paths, revision policy. No I/O.

use std::path::{Path, PathBuf};

use crate::ids::{self, Membership};

/// Default `--initial-cluster-token` (etcd's).
pub const DEFAULT_TOKEN: &str = "etcd-cluster";
/// Default `--name` (etcd's).
pub const DEFAULT_NAME: &str = "default";
/// Default `--initial-advertise-peer-urls` (etcd's).
pub const DEFAULT_PEER_URL: &str = "http://localhost:2380";
/// Smallest automatic Kubernetes bump: etcd's recovery guide recommends 1,000,000,000 ("a week old
/// snapshot … assuming < 1500 writes per second").
pub const KUBERNETES_MIN_BUMP: u64 = 1_000_000_000;
/// Key prefix under which the Kubernetes API server stores objects.
pub const KUBERNETES_PREFIX: &[u8] = b"/registry/";

/// What to do with the revision after restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisionPolicy {
    /// Default: behave as [`RevisionPolicy::Kubernetes`] when the snapshot holds `/registry/` keys,
    /// else as [`RevisionPolicy::Keep`].
    Auto,
    /// `--for-kubernetes`: bump by [`kubernetes_bump`] and mark compacted, whatever the keys.
    Kubernetes,
    /// `--no-kubernetes-defaults` without explicit flags: keep revisions as they are (etcdutl's default).
    Keep,
    /// `--bump-revision N --mark-compacted` (etcdutl ≥ 3.5.10).
    Explicit {
        /// Amount added to the latest revision.
        bump: u64,
    },
}

/// Why the options are unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// Membership flags are wrong.
    #[error(transparent)]
    Membership(#[from] ids::IdError),
    /// `--bump-revision` and `--mark-compacted` must come together (etcdutl's rule).
    #[error(
        "--mark-compacted required if --bump-revision > 0 (and only then); give both, or neither"
    )]
    BumpWithoutCompact,
    /// Explicit revision flags conflict with `--no-kubernetes-defaults`/`--for-kubernetes`.
    #[error("{0}")]
    Conflict(&'static str),
    /// The bump would overflow etcd's int64 revision.
    #[error("latest revision {latest} + bump {bump} exceeds etcd's maximum revision {max}; use a smaller --bump-revision", max = i64::MAX)]
    RevisionOverflow {
        /// Latest revision in the snapshot.
        latest: u64,
        /// Requested bump.
        bump: u64,
    },
}

/// Revision-related flags as given on the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevisionFlags {
    /// `--bump-revision`.
    pub bump_revision: u64,
    /// `--mark-compacted`.
    pub mark_compacted: bool,
    /// `--for-kubernetes`.
    pub for_kubernetes: bool,
    /// `--no-kubernetes-defaults`.
    pub no_kubernetes_defaults: bool,
}

/// Resolves revision flags into a policy.
pub fn revision_policy(f: RevisionFlags) -> Result<RevisionPolicy, PlanError> {
    if f.for_kubernetes && f.no_kubernetes_defaults {
        return Err(PlanError::Conflict(
            "--for-kubernetes and --no-kubernetes-defaults contradict each other; choose one",
        ));
    }
    if (f.bump_revision > 0) != f.mark_compacted {
        return Err(PlanError::BumpWithoutCompact);
    }
    if f.bump_revision > 0 {
        if f.for_kubernetes {
            return Err(PlanError::Conflict(
                "--for-kubernetes computes the bump itself; drop --bump-revision/--mark-compacted or --for-kubernetes",
            ));
        }
        return Ok(RevisionPolicy::Explicit {
            bump: f.bump_revision,
        });
    }
    Ok(if f.for_kubernetes {
        RevisionPolicy::Kubernetes
    } else if f.no_kubernetes_defaults {
        RevisionPolicy::Keep
    } else {
        RevisionPolicy::Auto
    })
}

/// What the snapshot's `key` bucket tells the revision decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyFacts {
    /// Main part of the greatest revision key (0 if the bucket is empty).
    pub latest_revision: u64,
    /// Whether any key starts with `/registry/`.
    pub has_kubernetes_keys: bool,
}

/// The bump used for Kubernetes: at least [`KUBERNETES_MIN_BUMP`], and at least the snapshot's own
/// latest revision, so the restored revision is at least double what the snapshot saw. A cluster
/// that wrote R revisions over its life is unlikely to have written more than R again since the
/// snapshot was taken, and 1e9 covers a week at 1500 writes/s (etcd's guidance).
pub fn kubernetes_bump(latest_revision: u64) -> u64 {
    KUBERNETES_MIN_BUMP.max(latest_revision)
}

/// The bump to apply (with mark-compacted), or `None` to keep revisions.
pub fn decide_bump(policy: RevisionPolicy, facts: KeyFacts) -> Result<Option<u64>, PlanError> {
    let bump = match policy {
        RevisionPolicy::Keep => None,
        RevisionPolicy::Explicit { bump } => Some(bump),
        RevisionPolicy::Kubernetes => Some(kubernetes_bump(facts.latest_revision)),
        RevisionPolicy::Auto if facts.has_kubernetes_keys => {
            Some(kubernetes_bump(facts.latest_revision))
        }
        RevisionPolicy::Auto => None,
    };
    if let Some(b) = bump
        && facts
            .latest_revision
            .checked_add(b)
            .is_none_or(|r| r > i64::MAX as u64)
    {
        return Err(PlanError::RevisionOverflow {
            latest: facts.latest_revision,
            bump: b,
        });
    }
    Ok(bump)
}

/// Resolved layout of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Final data dir.
    pub data_dir: PathBuf,
    /// Final WAL dir (inside `data_dir` unless `--wal-dir`).
    pub wal_dir: PathBuf,
    /// Whether the WAL dir is separate from the data dir.
    pub separate_wal: bool,
}

impl Layout {
    /// `data_dir` defaults to `<name>.etcd`; `wal_dir` to `<data_dir>/member/wal` (etcdutl's rules).
    pub fn new(name: &str, data_dir: Option<&Path>, wal_dir: Option<&Path>) -> Self {
        let data_dir = data_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(format!("{name}.etcd")));
        match wal_dir {
            Some(w) => Layout {
                data_dir,
                wal_dir: w.to_path_buf(),
                separate_wal: true,
            },
            None => Layout {
                wal_dir: data_dir.join("member").join("wal"),
                data_dir,
                separate_wal: false,
            },
        }
    }
}

/// Membership from the etcdutl-style flags.
pub fn membership(
    name: &str,
    initial_cluster: Option<&str>,
    token: &str,
    advertise_peer_urls: &[String],
) -> Result<Membership, PlanError> {
    // etcdutl's `initialClusterFromName`: the default cluster is `<name>=http://localhost:2380`.
    let default_cluster = format!("{name}={DEFAULT_PEER_URL}");
    let cluster = initial_cluster.unwrap_or(&default_cluster);
    let adv: Vec<String> = if advertise_peer_urls.is_empty() {
        vec![DEFAULT_PEER_URL.to_string()]
    } else {
        advertise_peer_urls
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::to_string)
            .collect()
    };
    Ok(ids::build_membership(name, cluster, token, &adv)?)
}

/// etcd's 17-byte revision key: big-endian main, `'_'`, big-endian sub.
pub fn revision_key(main: u64, sub: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..8].copy_from_slice(&main.to_be_bytes());
    k[8] = b'_';
    k[9..].copy_from_slice(&sub.to_be_bytes());
    k
}

/// Main revision of a `key` bucket key, if it is long enough.
pub fn revision_main(key: &[u8]) -> Option<u64> {
    key.get(..8)
        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_table() {
        let f = |bump, mark, k8s, no| RevisionFlags {
            bump_revision: bump,
            mark_compacted: mark,
            for_kubernetes: k8s,
            no_kubernetes_defaults: no,
        };
        assert_eq!(
            revision_policy(f(0, false, false, false)),
            Ok(RevisionPolicy::Auto)
        );
        assert_eq!(
            revision_policy(f(0, false, true, false)),
            Ok(RevisionPolicy::Kubernetes)
        );
        assert_eq!(
            revision_policy(f(0, false, false, true)),
            Ok(RevisionPolicy::Keep)
        );
        assert_eq!(
            revision_policy(f(5, true, false, true)),
            Ok(RevisionPolicy::Explicit { bump: 5 })
        );
        assert_eq!(
            revision_policy(f(5, false, false, false)),
            Err(PlanError::BumpWithoutCompact)
        );
        assert_eq!(
            revision_policy(f(0, true, false, false)),
            Err(PlanError::BumpWithoutCompact)
        );
        assert!(revision_policy(f(0, false, true, true)).is_err());
        assert!(revision_policy(f(5, true, true, false)).is_err());
    }

    #[test]
    fn bump_decisions() {
        let k8s = KeyFacts {
            latest_revision: 5_000_000_000,
            has_kubernetes_keys: true,
        };
        let plain = KeyFacts {
            latest_revision: 10,
            has_kubernetes_keys: false,
        };
        assert_eq!(
            decide_bump(RevisionPolicy::Auto, k8s),
            Ok(Some(5_000_000_000))
        );
        assert_eq!(decide_bump(RevisionPolicy::Auto, plain), Ok(None));
        assert_eq!(
            decide_bump(RevisionPolicy::Kubernetes, plain),
            Ok(Some(1_000_000_000))
        );
        assert_eq!(decide_bump(RevisionPolicy::Keep, k8s), Ok(None));
        assert_eq!(
            decide_bump(RevisionPolicy::Explicit { bump: 7 }, k8s),
            Ok(Some(7))
        );
        assert!(matches!(
            decide_bump(RevisionPolicy::Explicit { bump: u64::MAX / 2 }, k8s),
            Err(PlanError::RevisionOverflow { .. })
        ));
    }

    #[test]
    fn layout_and_defaults() {
        let l = Layout::new("n1", None, None);
        assert_eq!(l.data_dir, PathBuf::from("n1.etcd"));
        assert_eq!(l.wal_dir, PathBuf::from("n1.etcd/member/wal"));
        let l = Layout::new("n1", Some(Path::new("/d")), Some(Path::new("/w")));
        assert!(l.separate_wal);
        let m = membership("default", None, DEFAULT_TOKEN, &[]).unwrap();
        assert_eq!(m.local_member().id, 0x8e9e05c52164694d);
        assert_eq!(revision_key(5, 0)[8], b'_');
        assert_eq!(revision_main(&revision_key(5, 1)), Some(5));
    }
}
