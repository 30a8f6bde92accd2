//! Member and cluster IDs, computed exactly as etcd does when bootstrapping or restoring.
//!
//! * Peer URLs are parsed as `types.NewURLs` does (release-3.4/3.5 `client/pkg/types/urls.go`):
//!   scheme http/https/unix/unixs, `host:port`, no path; the list is sorted.
//! * `--initial-cluster` is split as `types.NewURLsMap`/`parse` does: `name=url` pairs separated by
//!   commas, a name may repeat to give several URLs.
//! * Member ID = first 8 bytes (big-endian) of SHA-1(sorted peer URLs joined with "" ++ token)
//!   (`membership.computeMemberId` with no timestamp, as restore calls it).
//! * Cluster ID = first 8 bytes of SHA-1 of the ascending member IDs as big-endian u64s
//!   (`RaftCluster.genID`).
//! * The checks of `ServerConfig.VerifyBootstrap` (local name present, advertised URLs match,
//!   no duplicate URL) and `NewClusterFromURLsMap` (no zero or repeated ID).

use std::collections::BTreeMap;

use sha1::{Digest, Sha1};

/// Why a membership cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// A URL does not parse or is not acceptable to etcd.
    #[error(
        "invalid peer URL {url:?}: {reason}; use scheme://host:port, e.g. https://10.0.0.1:2380"
    )]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `--initial-cluster` is empty.
    #[error(
        "--initial-cluster is empty; give name=peer-url pairs, e.g. node1=https://10.0.0.1:2380"
    )]
    EmptyCluster,
    /// An entry of `--initial-cluster` has no name.
    #[error("--initial-cluster entry {entry:?} has no member name; write name=peer-url")]
    MissingName {
        /// The entry.
        entry: String,
    },
    /// The local member is not in `--initial-cluster`.
    #[error(
        "couldn't find local name {name:?} in the initial cluster configuration ({cluster}); add {name}=<peer-url> to --initial-cluster or fix --name"
    )]
    LocalNameMissing {
        /// `--name`.
        name: String,
        /// The cluster as given.
        cluster: String,
    },
    /// `--initial-advertise-peer-urls` and this member's `--initial-cluster` URLs differ.
    #[error(
        "--initial-advertise-peer-urls {advertised} does not match --initial-cluster {name}={in_cluster}; make them the same"
    )]
    AdvertiseMismatch {
        /// This member's name.
        name: String,
        /// Advertised URLs, sorted.
        advertised: String,
        /// URLs in the cluster, sorted.
        in_cluster: String,
    },
    /// A URL appears twice in `--initial-cluster`.
    #[error("initial cluster has duplicate url {url}; each member needs its own peer URLs")]
    DuplicateUrl {
        /// The URL.
        url: String,
    },
    /// Two members hash to the same ID, or one hashes to zero.
    #[error(
        "member {name:?} has an unusable ID {id:016x}; change its peer URLs or the cluster token"
    )]
    BadId {
        /// Member name.
        name: String,
        /// Its ID.
        id: u64,
    },
}

/// Parses and normalises a list of peer URLs as `types.NewURLs`; returns them sorted.
pub fn parse_urls<S: AsRef<str>>(list: &[S]) -> Result<Vec<String>, IdError> {
    if list.is_empty() {
        return Err(IdError::BadUrl {
            url: String::new(),
            reason: "no valid URLs given",
        });
    }
    let mut out = Vec::with_capacity(list.len());
    for s in list {
        out.push(normalize_url(s.as_ref())?);
    }
    out.sort();
    Ok(out)
}

/// One URL, as `url.Parse(...).String()` prints the forms etcd accepts.
fn normalize_url(input: &str) -> Result<String, IdError> {
    let s = input.trim();
    let bad = |reason| IdError::BadUrl {
        url: input.to_string(),
        reason,
    };
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(bad("URL scheme must be http, https, unix, or unixs"));
    };
    // Go lowercases the scheme; it must start with a letter and use [a-z0-9+-.].
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https" | "unix" | "unixs") {
        return Err(bad("URL scheme must be http, https, unix, or unixs"));
    }
    if rest.contains(['?', '#']) {
        return Err(bad("URL must not contain a query or fragment"));
    }
    if rest.contains('@') {
        return Err(bad("URL must not contain user information"));
    }
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if !path.is_empty() {
        return Err(bad("URL must not contain a path"));
    }
    if host.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(bad("URL host contains whitespace"));
    }
    // net.SplitHostPort: "host:port" or "[v6]:port"; port may be empty but the colon must exist.
    let ok = if let Some(r) = host.strip_prefix('[') {
        match r.split_once(']') {
            Some((h, p)) => !h.is_empty() && p.starts_with(':') && !p[1..].contains(':'),
            None => false,
        }
    } else {
        host.matches(':').count() == 1
    };
    if !ok {
        return Err(bad("URL address does not have the form \"host:port\""));
    }
    let port = &host[host.rfind(':').expect("checked")..][1..];
    if !port.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad("URL port is not a number"));
    }
    Ok(format!("{scheme}://{host}"))
}

/// Parses `--initial-cluster` (`name=url,name=url,...`) into name → sorted normalised URLs.
pub fn parse_initial_cluster(s: &str) -> Result<BTreeMap<String, Vec<String>>, IdError> {
    let mut raw: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in s.split(',') {
        if entry.is_empty() {
            continue;
        }
        let (name, url) = entry.split_once('=').unwrap_or((entry, ""));
        if name.trim().is_empty() {
            return Err(IdError::MissingName {
                entry: entry.to_string(),
            });
        }
        raw.entry(name.to_string())
            .or_default()
            .push(url.to_string());
    }
    if raw.is_empty() {
        return Err(IdError::EmptyCluster);
    }
    raw.into_iter()
        .map(|(name, urls)| Ok((name, parse_urls(&urls)?)))
        .collect()
}

/// etcd's member ID for sorted, normalised peer URLs and a cluster token.
pub fn member_id(sorted_peer_urls: &[String], token: &str) -> u64 {
    let mut h = Sha1::new();
    for u in sorted_peer_urls {
        h.update(u.as_bytes());
    }
    h.update(token.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("sha1 is 20 bytes"))
}

/// etcd's cluster ID for a set of member IDs (sorted here).
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("sha1 is 20 bytes"))
}

/// A member of the restored cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Member ID.
    pub id: u64,
    /// Name from `--initial-cluster`.
    pub name: String,
    /// Sorted, normalised peer URLs.
    pub peer_urls: Vec<String>,
}

impl Member {
    /// Lowercase hex ID without leading zeros (`types.ID.String()`), the `members` bucket key.
    pub fn hex_id(&self) -> String {
        format!("{:x}", self.id)
    }

    /// `json.Marshal(membership.Member)` as restore stores it: `{"id":..,"peerURLs":[..],"name":..}`
    /// (`isLearner`, `clientURLs` omitted when empty; `name` omitted when empty).
    pub fn to_json(&self) -> String {
        let mut s = format!(
            "{{\"id\":{},\"peerURLs\":{}",
            self.id,
            go_json_list(&self.peer_urls)
        );
        if !self.name.is_empty() {
            s.push_str(",\"name\":");
            s.push_str(&go_json_string(&self.name));
        }
        s.push('}');
        s
    }

    /// `json.Marshal(RaftAttributes)`: `{"peerURLs":[..]}`, the v2 store's `raftAttributes`.
    pub fn raft_attributes_json(&self) -> String {
        format!("{{\"peerURLs\":{}}}", go_json_list(&self.peer_urls))
    }
}

/// The membership of a restored cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// Cluster ID.
    pub cluster_id: u64,
    /// Members in ascending ID order (the order etcd writes them).
    pub members: Vec<Member>,
    /// Index in `members` of the member being restored (`--name`).
    pub local: usize,
    /// The cluster token.
    pub token: String,
}

impl Membership {
    /// The member being restored.
    pub fn local_member(&self) -> &Member {
        &self.members[self.local]
    }

    /// Member IDs in ascending order.
    pub fn ids(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.id).collect()
    }
}

/// Builds the membership a restore writes, with etcd's bootstrap checks.
pub fn build_membership(
    name: &str,
    initial_cluster: &str,
    token: &str,
    advertise_peer_urls: &[String],
) -> Result<Membership, IdError> {
    let cluster = parse_initial_cluster(initial_cluster)?;
    let advertised = parse_urls(advertise_peer_urls)?;
    let Some(local_urls) = cluster.get(name) else {
        return Err(IdError::LocalNameMissing {
            name: name.to_string(),
            cluster: initial_cluster.to_string(),
        });
    };
    if *local_urls != advertised {
        return Err(IdError::AdvertiseMismatch {
            name: name.to_string(),
            advertised: advertised.join(","),
            in_cluster: local_urls.join(","),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for u in cluster.values().flatten() {
        if !seen.insert(u.as_str()) {
            return Err(IdError::DuplicateUrl { url: u.clone() });
        }
    }
    let mut members: Vec<Member> = cluster
        .into_iter()
        .map(|(name, peer_urls)| Member {
            id: member_id(&peer_urls, token),
            name,
            peer_urls,
        })
        .collect();
    members.sort_by_key(|m| m.id);
    for (i, m) in members.iter().enumerate() {
        if m.id == 0 || (i > 0 && members[i - 1].id == m.id) {
            return Err(IdError::BadId {
                name: m.name.clone(),
                id: m.id,
            });
        }
    }
    let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    let local = members
        .iter()
        .position(|m| m.name == name)
        .expect("checked above");
    Ok(Membership {
        cluster_id: cluster_id(&ids),
        members,
        local,
        token: token.to_string(),
    })
}

/// A JSON string as Go's `encoding/json` writes it (HTML-safe escaping of `<`, `>`, `&`, and
/// U+2028/U+2029), so our JSON bytes equal etcd's.
pub fn go_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON array of strings, Go style.
pub fn go_json_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| go_json_string(s)).collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IDs produced by `etcdutl snapshot restore` 3.5.1 and `etcdctl snapshot restore` 3.4.23 for
    /// `--initial-cluster m1=http://127.0.0.1:2380,m2=http://127.0.0.2:2380` with the default token.
    #[test]
    fn ids_equal_etcdutl() {
        let m = build_membership(
            "m1",
            "m1=http://127.0.0.1:2380,m2=http://127.0.0.2:2380",
            "etcd-cluster",
            &["http://127.0.0.1:2380".to_string()],
        )
        .unwrap();
        assert_eq!(m.cluster_id, 0xe20c19704c51badd);
        assert_eq!(m.members[0].id, 0x23284278a2d8a0e6);
        assert_eq!(m.members[0].name, "m2");
        assert_eq!(m.members[1].id, 0xb71f75320dc06a6c);
        assert_eq!(m.local_member().name, "m1");
        assert_eq!(
            m.members[1].to_json(),
            r#"{"id":13195394291058371180,"peerURLs":["http://127.0.0.1:2380"],"name":"m1"}"#
        );
        // etcd's well-known default member (`default=http://localhost:2380`).
        assert_eq!(
            member_id(&["http://localhost:2380".to_string()], "etcd-cluster"),
            0x8e9e05c52164694d
        );
    }

    #[test]
    fn bad_inputs_are_named() {
        let adv = vec!["http://127.0.0.1:2380".to_string()];
        assert!(matches!(
            build_membership("m9", "m1=http://127.0.0.1:2380", "t", &adv),
            Err(IdError::LocalNameMissing { .. })
        ));
        assert!(matches!(
            build_membership("m1", "m1=127.0.0.1:2380", "t", &adv),
            Err(IdError::BadUrl { .. })
        ));
        assert!(matches!(
            build_membership("m1", "m1=http://127.0.0.1", "t", &adv),
            Err(IdError::BadUrl { .. })
        ));
        assert!(matches!(
            build_membership("m1", "m1=http://127.0.0.1:2380/x", "t", &adv),
            Err(IdError::BadUrl { .. })
        ));
        assert!(matches!(
            build_membership("m1", "m1=http://127.0.0.2:2380", "t", &adv),
            Err(IdError::AdvertiseMismatch { .. })
        ));
        assert!(matches!(
            build_membership(
                "m1",
                "m1=http://127.0.0.1:2380,m2=http://127.0.0.1:2380",
                "t",
                &adv
            ),
            Err(IdError::DuplicateUrl { .. })
        ));
        assert!(matches!(
            build_membership("m1", "=http://127.0.0.1:2380", "t", &adv),
            Err(IdError::MissingName { .. })
        ));
        assert!(matches!(
            build_membership("m1", "", "t", &adv),
            Err(IdError::EmptyCluster)
        ));
    }

    #[test]
    fn several_urls_per_member_are_sorted_and_joined() {
        let m = build_membership(
            "a",
            "a=https://10.0.0.2:2380,a=https://10.0.0.1:2380",
            "tok",
            &[
                "https://10.0.0.1:2380".into(),
                "https://10.0.0.2:2380".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            m.members[0].peer_urls,
            vec!["https://10.0.0.1:2380", "https://10.0.0.2:2380"]
        );
        let mut h = Sha1::new();
        h.update(b"https://10.0.0.1:2380https://10.0.0.2:2380tok");
        let d = h.finalize();
        assert_eq!(
            m.members[0].id,
            u64::from_be_bytes(d[..8].try_into().unwrap())
        );
    }

    #[test]
    fn go_json_escaping() {
        assert_eq!(
            go_json_string("a<b>&\"\\\n\u{1}"),
            r#""a\u003cb\u003e\u0026\"\\\n\u0001""#
        );
    }
}
