//! Kubernetes release versions (`v1.20.2`) and minor arithmetic.
//!
//! Only what upgrade planning needs: a version is `major.minor.patch` with an optional
//! pre-release (`-rc.1`) and build suffix (`+k3s1`, `-gke.100` is treated as a pre-release as
//! semver says). Comparison follows semver precedence: a pre-release sorts before its release.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a version string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The text is not `[v]MAJOR.MINOR.PATCH[-pre][+build]`.
    #[error("`{text}` is not a Kubernetes version like v1.20.2 ({reason})")]
    Malformed {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A Kubernetes release version such as `v1.20.2`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    /// Major version (1 for every Kubernetes release so far).
    pub major: u32,
    /// Minor version: the unit of the skew policy.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
    /// Pre-release suffix without the `-` (`rc.1`), empty for a release.
    pub pre: String,
}

/// A `major.minor` pair: what the skew policy and the release index are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minor {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl Minor {
    /// `1.N`.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// The next minor (`1.20` → `1.21`).
    pub const fn next(self) -> Self {
        Self {
            major: self.major,
            minor: self.minor + 1,
        }
    }

    /// How many minors `self` is above `other` (negative when below). Kubernetes has only ever
    /// had major 1; a different major counts 1000 minors apart so it never looks within skew.
    pub fn minus(self, other: Minor) -> i64 {
        (i64::from(self.major) - i64::from(other.major)) * 1000 + i64::from(self.minor)
            - i64::from(other.minor)
    }

    /// Parses `1.21` or `v1.21`.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let trimmed = text.trim();
        let body = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let malformed = |reason| VersionError::Malformed {
            text: text.to_string(),
            reason,
        };
        let (major, minor) = body
            .split_once('.')
            .ok_or_else(|| malformed("expected MAJOR.MINOR"))?;
        Ok(Self {
            major: parse_number(major).ok_or_else(|| malformed("major is not a number"))?,
            minor: parse_number(minor).ok_or_else(|| malformed("minor is not a number"))?,
        })
    }
}

impl Serialize for Minor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for Minor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // "01" is not a semver number; Kubernetes never prints one.
    if text.len() > 1 && text.starts_with('0') {
        return None;
    }
    text.parse().ok()
}

impl Version {
    /// A release version `vMAJOR.MINOR.PATCH`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
            pre: String::new(),
        }
    }

    /// Parses `v1.20.2`, `1.20.2`, `v1.21.0-rc.1` or `v1.20.2+k3s1` (the build part is dropped).
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let trimmed = text.trim();
        let malformed = |reason| VersionError::Malformed {
            text: text.to_string(),
            reason,
        };
        let body = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let body = body.split_once('+').map_or(body, |(core, _build)| core);
        let (core, pre) = match body.split_once('-') {
            Some((core, pre)) if !pre.is_empty() => (core, pre),
            Some(_) => return Err(malformed("empty pre-release after `-`")),
            None => (body, ""),
        };
        let mut parts = core.split('.');
        let major = parts.next().and_then(parse_number);
        let minor = parts.next().and_then(parse_number);
        let patch = parts.next().and_then(parse_number);
        if parts.next().is_some() {
            return Err(malformed("more than three numbers"));
        }
        match (major, minor, patch) {
            (Some(major), Some(minor), Some(patch)) => Ok(Self {
                major,
                minor,
                patch,
                pre: pre.to_string(),
            }),
            _ => Err(malformed("expected MAJOR.MINOR.PATCH with decimal numbers")),
        }
    }

    /// The version's `major.minor`.
    pub const fn minor_of(&self) -> Minor {
        Minor::new(self.major, self.minor)
    }

    /// How many minors `self` is above `other` (negative when below).
    pub fn minors_above(&self, other: &Version) -> i64 {
        self.minor_of().minus(other.minor_of())
    }

    /// True for a release (no pre-release suffix).
    pub fn is_release(&self) -> bool {
        self.pre.is_empty()
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        Ok(())
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| compare_pre(&self.pre, &other.pre))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Semver pre-release precedence: none sorts after any; dot-separated identifiers compare
/// numerically when both are numbers, else as text; numbers sort before text.
fn compare_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Version::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The version in a container image reference's tag: `registry.k8s.io/kube-apiserver:v1.20.2`
/// → `v1.20.2`. A digest (`@sha256:…`) or a missing tag gives `None`, as does a tag that is not
/// a version (`latest`).
pub fn version_from_image(image: &str) -> Option<Version> {
    let tag = image_tag(image)?;
    Version::parse(tag).ok()
}

/// The tag of an image reference, if it has one (`repo/name:tag@digest` → `tag`).
pub fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split_once('@').map_or(image, |(name, _)| name);
    // The tag follows the last ':' after the last '/' (a registry port has a ':' before a '/').
    let last_segment = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let (_, tag) = last_segment.rsplit_once(':')?;
    (!tag.is_empty()).then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let table = [
            ("v1.20.2", "v1.20.2"),
            ("1.20.2", "v1.20.2"),
            (" v1.19.16 ", "v1.19.16"),
            ("v1.21.0-rc.1", "v1.21.0-rc.1"),
            ("v1.20.2+k3s1", "v1.20.2"),
            ("v1.28.3-gke.1203001", "v1.28.3-gke.1203001"),
        ];
        for (text, shown) in table {
            assert_eq!(Version::parse(text).unwrap().to_string(), shown, "{text}");
        }
    }

    #[test]
    fn refuses_malformed() {
        for text in [
            "",
            "v1",
            "v1.20",
            "1.20.x",
            "v1.20.2.1",
            "v01.20.2",
            "v1.20.2-",
            "latest",
            "v-1.2.3",
        ] {
            assert!(Version::parse(text).is_err(), "{text:?} should not parse");
        }
    }

    #[test]
    fn orders_by_semver_precedence() {
        let ordered = [
            "v1.19.16",
            "v1.20.0-alpha.1",
            "v1.20.0-beta.0",
            "v1.20.0-rc.1",
            "v1.20.0-rc.2",
            "v1.20.0",
            "v1.20.2",
            "v1.20.10",
            "v1.21.0",
            "v2.0.0",
        ];
        for pair in ordered.windows(2) {
            let (a, b) = (
                Version::parse(pair[0]).unwrap(),
                Version::parse(pair[1]).unwrap(),
            );
            assert!(a < b, "{a} < {b}");
        }
    }

    #[test]
    fn minor_arithmetic() {
        let v = |s| Version::parse(s).unwrap();
        assert_eq!(v("v1.21.3").minors_above(&v("v1.18.20")), 3);
        assert_eq!(v("v1.18.20").minors_above(&v("v1.21.3")), -3);
        assert_eq!(v("v1.20.2").minors_above(&v("v1.20.15")), 0);
        assert_eq!(Minor::new(1, 20).next(), Minor::new(1, 21));
        assert!(v("v2.0.0").minors_above(&v("v1.34.0")) > 3);
        assert_eq!(Minor::parse("1.25").unwrap(), Minor::new(1, 25));
        assert_eq!(Minor::parse("v1.25").unwrap(), Minor::new(1, 25));
        assert!(Minor::parse("1").is_err());
        assert!(Minor::parse("1.x").is_err());
    }

    #[test]
    fn image_tags() {
        let table = [
            ("registry.k8s.io/kube-apiserver:v1.20.2", Some("v1.20.2")),
            ("localhost:5000/kube-proxy:v1.19.16", Some("v1.19.16")),
            ("localhost:5000/kube-proxy", None),
            ("kube-proxy:v1.20.2@sha256:abcd", Some("v1.20.2")),
            ("kube-proxy@sha256:abcd", None),
        ];
        for (image, want) in table {
            assert_eq!(
                version_from_image(image).map(|v| v.to_string()),
                want.map(str::to_string),
                "{image}"
            );
        }
        assert_eq!(image_tag("k8s.gcr.io/etcd:3.4.13-0"), Some("3.4.13-0"));
        assert_eq!(image_tag("k8s.gcr.io/coredns:1.7.0"), Some("1.7.0"));
    }
}
