//! The release index: the latest patch of each minor, with the etcd and CoreDNS versions
//! kubeadm deploys for it.
//!
//! # Sources of the built-in table
//! * Latest patches 1.19–1.31: `finalPatchRelease` of each branch in
//!   `kubernetes/website:data/releases/eol.yaml` (final: those branches are end of life).
//!   1.33 and 1.34 are the newest patches in the stored `kubernetes/kubernetes`
//!   `CHANGELOG/CHANGELOG-1.33.md` / `-1.34.md` tables of contents (v1.33.7, v1.34.3). 1.32.11:
//!   no stored kubernetes/kubernetes changelog or website `eol.yaml` lists it (the stored copies
//!   stop at v1.32.5 and 1.31); kind's node images of the same round are v1.34.3, v1.33.7,
//!   v1.32.11, v1.31.14, and a kind image resolver that knows v1.34.11 and v1.36.4 still maps
//!   1.32 to v1.32.11 — secondary evidence that it is 1.32's last patch. Newer patches exist
//!   for 1.33 and 1.34: pass `--online` or `--releases FILE`.
//! * etcd: kubeadm's `SupportedEtcdVersion` map in `cmd/kubeadm/app/constants/constants.go`,
//!   value for the minor itself in kubeadm of that minor. Checked at the source: the v1.20.2
//!   tree (Debian's `kubernetes_1.20.5+really1.20.2` orig tarball: 19 and 20 → `3.4.13-0`,
//!   `CoreDNSVersion = "1.7.0"`), a release-1.32 `constants.go` (32 → `3.5.24-0`,
//!   `CoreDNSVersion = "v1.11.3"`), a release-1.34 one (33 → `3.5.24-0`, 34 → `3.6.5-0`) and
//!   etcd's "Bump etcd Version in Kubernetes" guide (30–33 → `3.5.21-0`). The rest follows the
//!   backport history compiled in `shared/reference/upgrade.md` §3 (1.22.17 → 3.5.6-0,
//!   1.25.15+ → 3.5.9-0, 1.26.13+ → 3.5.10-0, 1.27.12+ / 1.28.8+ → 3.5.12-0). 1.21 →
//!   `3.4.13-0`: the map on kubernetes/kubernetes master in April 2022 (the diff context of
//!   `kubernetes/kubernetes#109471`) still reads `21: "3.4.13-0"`, and the stored PR threads
//!   show no etcd bump picked into release-1.21. 1.29 → `3.5.16-0`: release-1.29 took 3.5.15 (`#126397`, its
//!   diff sets `29: "3.5.15-0"`) and then 3.5.16 (`#127951`, merged; approved November 2024); the 3.5.17
//!   pick for release-1.29 (`#129671`) was closed unmerged, so 1.29.14 (the last) pins 3.5.16-0.
//! * CoreDNS: kubeadm's `CoreDNSVersion` of the same files and the same table (1.19/1.20
//!   `1.7.0`; 1.21 `v1.8.0`; 1.22 `v1.8.4`; 1.23/1.24 `v1.8.6`; 1.25/1.26 `v1.9.3`; 1.27/1.28
//!   `v1.10.1`; 1.29 `v1.11.1`; 1.30–1.32 `v1.11.3`; 1.33 `v1.12.0`; 1.34 `v1.12.1`).
//!
//! kubeadm moves etcd's patch within a minor's life (the etcd maintainers bump the last three
//! supported minors), so the etcd value is "what the latest patch of that minor deploys".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::version::{Minor, Version};

/// One minor's latest release and the add-on versions kubeadm pins for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The latest patch of the minor (`v1.20.15`).
    pub version: Version,
    /// etcd image tag kubeadm deploys (`3.4.13-0`).
    pub etcd: String,
    /// CoreDNS image tag kubeadm deploys (`1.7.0`, `v1.8.0`).
    pub coredns: String,
}

/// Why a release index or a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// Two entries for one minor.
    #[error(
        "the release index lists minor {minor} twice ({first} and {second}); keep one entry per minor"
    )]
    Duplicate {
        /// The minor.
        minor: Minor,
        /// First version seen.
        first: Version,
        /// Second version seen.
        second: Version,
    },
    /// A pre-release in the index.
    #[error("the release index entry {version} is a pre-release; list released versions only")]
    PreRelease {
        /// The version.
        version: Version,
    },
    /// The index is empty.
    #[error("the release index lists no release")]
    Empty,
    /// An official `stable-1.N.txt` label that is not a release of its minor.
    #[error("the official label for {minor} says {label:?}: {reason}")]
    BadLabel {
        /// The minor whose label was read.
        minor: Minor,
        /// The label's text.
        label: String,
        /// Why it is refused.
        reason: String,
    },
    /// The target is not a release the index knows.
    #[error("{target} is not a known release: {reason}")]
    UnknownTarget {
        /// The target asked for.
        target: Version,
        /// Why it is unknown.
        reason: String,
    },
}

/// The serialised form of a release index (`--releases FILE`, YAML or JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseFile {
    /// One entry per minor.
    pub releases: Vec<Release>,
}

/// Latest patch per minor with add-on versions, keyed by minor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseIndex {
    releases: BTreeMap<Minor, Release>,
}

const BUILTIN: &[(u32, u32, &str, &str)] = &[
    (19, 16, "3.4.13-0", "1.7.0"),
    (20, 15, "3.4.13-0", "1.7.0"),
    (21, 14, "3.4.13-0", "v1.8.0"),
    (22, 17, "3.5.6-0", "v1.8.4"),
    (23, 17, "3.5.6-0", "v1.8.6"),
    (24, 17, "3.5.6-0", "v1.8.6"),
    (25, 16, "3.5.9-0", "v1.9.3"),
    (26, 15, "3.5.10-0", "v1.9.3"),
    (27, 16, "3.5.12-0", "v1.10.1"),
    (28, 15, "3.5.12-0", "v1.10.1"),
    (29, 14, "3.5.16-0", "v1.11.1"),
    (30, 14, "3.5.21-0", "v1.11.3"),
    (31, 14, "3.5.21-0", "v1.11.3"),
    (32, 11, "3.5.24-0", "v1.11.3"),
    (33, 7, "3.5.24-0", "v1.12.0"),
    (34, 3, "3.6.5-0", "v1.12.1"),
];

impl ReleaseIndex {
    /// The built-in table (1.19–1.34; sources in the module docs).
    pub fn builtin() -> Self {
        let releases = BUILTIN
            .iter()
            .map(|&(minor, patch, etcd, coredns)| {
                (
                    Minor::new(1, minor),
                    Release {
                        version: Version::new(1, minor, patch),
                        etcd: etcd.to_string(),
                        coredns: coredns.to_string(),
                    },
                )
            })
            .collect();
        Self { releases }
    }

    /// Builds an index from a parsed file, refusing duplicates, pre-releases and emptiness.
    pub fn from_file(file: ReleaseFile) -> Result<Self, ReleaseError> {
        let mut releases = BTreeMap::new();
        for release in file.releases {
            if !release.version.is_release() {
                return Err(ReleaseError::PreRelease {
                    version: release.version,
                });
            }
            let minor = release.version.minor_of();
            if let Some(first) = releases.get(&minor) {
                let first: &Release = first;
                return Err(ReleaseError::Duplicate {
                    minor,
                    first: first.version.clone(),
                    second: release.version,
                });
            }
            releases.insert(minor, release);
        }
        if releases.is_empty() {
            return Err(ReleaseError::Empty);
        }
        Ok(Self { releases })
    }

    /// The index as a file (the format `--releases` reads).
    pub fn to_file(&self) -> ReleaseFile {
        ReleaseFile {
            releases: self.releases.values().cloned().collect(),
        }
    }

    /// The entry of a minor.
    pub fn get(&self, minor: Minor) -> Option<&Release> {
        self.releases.get(&minor)
    }

    /// The newest release listed.
    pub fn newest(&self) -> Option<&Release> {
        self.releases.values().next_back()
    }

    /// Every entry, oldest minor first.
    pub fn iter(&self) -> impl Iterator<Item = &Release> {
        self.releases.values()
    }

    /// Checks that `target` is a release of a listed minor no newer than its latest patch.
    pub fn check_target(&self, target: &Version) -> Result<&Release, ReleaseError> {
        let unknown = |reason: String| ReleaseError::UnknownTarget {
            target: target.clone(),
            reason,
        };
        if !target.is_release() {
            return Err(unknown("pre-releases are not upgrade targets".into()));
        }
        let minors = || {
            let first = self.releases.keys().next();
            let last = self.releases.keys().next_back();
            match (first, last) {
                (Some(a), Some(b)) => format!("{a}–{b}"),
                _ => "none".into(),
            }
        };
        let release = self.get(target.minor_of()).ok_or_else(|| {
            unknown(format!(
                "minor {} is not in the release index (it lists {}); pass --releases FILE to add it",
                target.minor_of(),
                minors()
            ))
        })?;
        if target.patch > release.version.patch {
            return Err(unknown(format!(
                "the latest {} release in the index is {}; pass --releases FILE if a newer patch exists",
                target.minor_of(),
                release.version
            )));
        }
        Ok(release)
    }
}

/// What reading the official `stable-1.N.txt` labels changed in an index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnlineUpdate {
    /// `1.N: vOLD -> vNEW` for each minor whose latest patch moved.
    pub updated: Vec<String>,
    /// Minors published upstream that the index has no etcd/CoreDNS pins for.
    pub unpinned: Vec<String>,
}

impl ReleaseIndex {
    /// Applies the official labels (`stable-1.N.txt` bodies, by minor): a newer patch replaces
    /// the listed one, keeping the minor's etcd and CoreDNS pins (kubeadm's pins move within a
    /// minor's life, so they may lag: the module docs say where they come from). A minor the
    /// index does not list is reported, not added: without its pins it cannot be planned.
    /// A label that is not a release of its own minor is refused.
    pub fn with_labels(
        &self,
        labels: &[(Minor, String)],
    ) -> Result<(Self, OnlineUpdate), ReleaseError> {
        let mut out = self.clone();
        let mut update = OnlineUpdate::default();
        for (minor, body) in labels {
            let text = body.trim();
            let version = Version::parse(text).map_err(|e| ReleaseError::BadLabel {
                minor: *minor,
                label: text.to_string(),
                reason: e.to_string(),
            })?;
            if version.minor_of() != *minor || !version.is_release() {
                return Err(ReleaseError::BadLabel {
                    minor: *minor,
                    label: text.to_string(),
                    reason: format!("not a release of {minor}"),
                });
            }
            match out.releases.get_mut(minor) {
                Some(release) if release.version < version => {
                    update
                        .updated
                        .push(format!("{minor}: {} -> {version}", release.version));
                    release.version = version;
                }
                Some(_) => {}
                None => update.unpinned.push(format!("{minor} ({version})")),
            }
        }
        Ok((out, update))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_covers_every_minor_from_1_19_to_1_34() {
        let index = ReleaseIndex::builtin();
        for minor in 19..=34 {
            let release = index.get(Minor::new(1, minor)).expect("listed");
            assert_eq!(release.version.minor, minor);
            assert!(release.version.is_release());
            assert!(!release.etcd.is_empty() && !release.coredns.is_empty());
        }
        assert_eq!(index.newest().unwrap().version.minor, 34);
        // Values checked at the source (see module docs).
        assert_eq!(
            index.get(Minor::new(1, 19)).unwrap().version,
            Version::new(1, 19, 16)
        );
        assert_eq!(index.get(Minor::new(1, 20)).unwrap().etcd, "3.4.13-0");
        assert_eq!(index.get(Minor::new(1, 20)).unwrap().coredns, "1.7.0");
        assert_eq!(index.get(Minor::new(1, 32)).unwrap().etcd, "3.5.24-0");
        assert_eq!(index.get(Minor::new(1, 34)).unwrap().etcd, "3.6.5-0");
    }

    #[test]
    fn targets() {
        let index = ReleaseIndex::builtin();
        assert!(index.check_target(&Version::new(1, 20, 2)).is_ok());
        assert!(index.check_target(&Version::new(1, 20, 15)).is_ok());
        assert!(index.check_target(&Version::new(1, 20, 16)).is_err());
        assert!(index.check_target(&Version::new(1, 99, 0)).is_err());
        assert!(
            index
                .check_target(&Version::parse("v1.21.0-rc.1").unwrap())
                .is_err()
        );
        let err = index.check_target(&Version::new(1, 18, 0)).unwrap_err();
        assert!(err.to_string().contains("1.19–1.34"), "{err}");
    }

    #[test]
    fn file_round_trip_and_refusals() {
        let index = ReleaseIndex::builtin();
        let json = serde_json::to_string(&index.to_file()).unwrap();
        let back: ReleaseFile = serde_json::from_str(&json).unwrap();
        assert_eq!(ReleaseIndex::from_file(back).unwrap(), index);

        let dup: ReleaseFile = serde_json::from_str(
            r#"{"releases":[{"version":"v1.20.2","etcd":"3.4.13-0","coredns":"1.7.0"},
                           {"version":"v1.20.15","etcd":"3.4.13-0","coredns":"1.7.0"}]}"#,
        )
        .unwrap();
        assert!(matches!(
            ReleaseIndex::from_file(dup),
            Err(ReleaseError::Duplicate { .. })
        ));
        let pre: ReleaseFile = serde_json::from_str(
            r#"{"releases":[{"version":"v1.21.0-rc.0","etcd":"3.4.13-0","coredns":"1.7.0"}]}"#,
        )
        .unwrap();
        assert!(matches!(
            ReleaseIndex::from_file(pre),
            Err(ReleaseError::PreRelease { .. })
        ));
        assert!(matches!(
            ReleaseIndex::from_file(ReleaseFile { releases: vec![] }),
            Err(ReleaseError::Empty)
        ));
        assert!(
            serde_json::from_str::<ReleaseFile>(r#"{"releases":[{"version":"v1.x"}]}"#).is_err()
        );
        assert!(serde_json::from_str::<ReleaseFile>(r#"{"releses":[]}"#).is_err());
    }

    #[test]
    fn official_labels_move_patches_only() {
        let index = ReleaseIndex::builtin();
        let labels = vec![
            (Minor::new(1, 33), "v1.33.12\n".to_string()),
            // Same or older than the built-in entry: kept.
            (Minor::new(1, 32), "v1.32.11\n".to_string()),
            (Minor::new(1, 31), "v1.31.2".to_string()),
            // Not in the index: reported, not planned (no etcd/CoreDNS pins).
            (Minor::new(1, 35), "v1.35.1\n".to_string()),
        ];
        let (updated, report) = index.with_labels(&labels).unwrap();
        let r33 = updated.get(Minor::new(1, 33)).unwrap();
        assert_eq!(r33.version, Version::new(1, 33, 12));
        assert_eq!(r33.etcd, index.get(Minor::new(1, 33)).unwrap().etcd);
        assert_eq!(
            updated.get(Minor::new(1, 31)).unwrap().version,
            Version::new(1, 31, 14)
        );
        assert_eq!(report.updated, ["1.33: v1.33.7 -> v1.33.12"]);
        assert_eq!(report.unpinned, ["1.35 (v1.35.1)"]);
        assert!(updated.get(Minor::new(1, 35)).is_none());
        // A label of another minor, a pre-release or garbage is refused.
        for bad in ["v1.34.0", "v1.33.0-rc.1", "<html>"] {
            let err = index
                .with_labels(&[(Minor::new(1, 33), bad.to_string())])
                .unwrap_err();
            assert!(matches!(err, ReleaseError::BadLabel { .. }), "{bad}: {err}");
        }
    }
}
