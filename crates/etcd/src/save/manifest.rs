//! The JSON manifest written beside a snapshot (`FILE.manifest.json`).
//!
//! It records what the snapshot is (revision read from the file itself, size, SHA-256) and where
//! it came from (cluster, member, etcd version, member list, time), so an operator choosing a
//! backup to restore does not have to open it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The manifest's format tag.
pub const FORMAT: &str = "kubemaint.etcd-snapshot-manifest/v1";

/// `FILE.manifest.json` for snapshot `FILE`.
pub fn manifest_path(snapshot: &Path) -> PathBuf {
    let mut s = snapshot.as_os_str().to_owned();
    s.push(".manifest.json");
    PathBuf::from(s)
}

/// Where the recorded revision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevisionSource {
    /// Read from the saved file (the highest revision in its `key` bucket): exact.
    SnapshotFile,
    /// The member's store revision reported just before the stream started: a lower bound.
    StatusBeforeSave,
}

/// One member of the cluster at save time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestMember {
    /// Member ID (16 hex digits).
    pub id: String,
    /// Name.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs.
    pub client_urls: Vec<String>,
    /// Learner or voting member.
    pub is_learner: bool,
}

/// The member the snapshot was streamed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceMember {
    /// The endpoint used.
    pub endpoint: String,
    /// Member ID (16 hex digits).
    pub id: String,
    /// Name (from the member list).
    pub name: String,
    /// Whether it was the leader.
    pub was_leader: bool,
}

/// One live member's `HashKV` compared with the file's offline KV hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashKvMember {
    /// The endpoint asked.
    pub endpoint: String,
    /// Member ID (16 hex digits), if it answered.
    pub id: Option<String>,
    /// `match`, `mismatch`, `not-comparable` or `error`.
    pub result: String,
    /// The member's hash.
    pub hash: Option<u32>,
    /// The member's compact revision.
    pub compact_revision: Option<i64>,
    /// Explanation for anything but `match`.
    pub detail: Option<String>,
}

/// The `--verify-hash-kv` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashKvCheck {
    /// The revision hashed.
    pub revision: i64,
    /// The file's compact revision.
    pub compact_revision: i64,
    /// The hash computed from the file.
    pub file_hash: u32,
    /// Each member's answer.
    pub members: Vec<HashKvMember>,
}

/// The manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The snapshot's file name (in the same directory).
    pub file: String,
    /// When the save finished (RFC 3339, UTC).
    pub created: String,
    /// How long the transfer took, in seconds.
    pub duration_seconds: f64,
    /// The tool that wrote it.
    pub written_by: String,
    /// The snapshot's revision.
    pub revision: i64,
    /// Where [`Manifest::revision`] came from.
    pub revision_source: RevisionSource,
    /// The compaction revision recorded in the file, if read.
    pub compact_revision: Option<i64>,
    /// Database bytes (file size minus the 32-byte SHA-256 trailer).
    pub db_size: u64,
    /// File size (what etcdctl reports).
    pub file_size: u64,
    /// SHA-256 of the database bytes, hex (equal to the file's trailer; checked at save time).
    pub sha256: String,
    /// Cluster ID (16 hex digits).
    pub cluster_id: String,
    /// etcd server version of the source member.
    pub etcd_version: String,
    /// The source member.
    pub source: SourceMember,
    /// The member list at save time.
    pub members: Vec<ManifestMember>,
    /// The HashKV cross-check, when asked for.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hash_kv: Option<HashKvCheck>,
}

impl Manifest {
    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serialises");
        v.push(b'\n');
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_beside_the_snapshot() {
        assert_eq!(
            manifest_path(Path::new("/b/etcd-2024.db")),
            Path::new("/b/etcd-2024.db.manifest.json")
        );
    }

    #[test]
    fn round_trips() {
        let m = Manifest {
            format: FORMAT.into(),
            file: "s.db".into(),
            created: "2024-01-01T00:00:00Z".into(),
            duration_seconds: 1.5,
            written_by: "kubemaint 0.1.0".into(),
            revision: 42,
            revision_source: RevisionSource::SnapshotFile,
            compact_revision: Some(10),
            db_size: 4096,
            file_size: 4128,
            sha256: "00".repeat(32),
            cluster_id: format!("{:016x}", 7u64),
            etcd_version: "3.5.1".into(),
            source: SourceMember {
                endpoint: "https://127.0.0.1:2379".into(),
                id: format!("{:016x}", 1u64),
                name: "a".into(),
                was_leader: true,
            },
            members: vec![],
            hash_kv: None,
        };
        let text = String::from_utf8(m.to_json()).unwrap();
        assert!(
            text.contains("\"revision_source\": \"snapshot-file\""),
            "{text}"
        );
        assert!(!text.contains("hash_kv"));
        let back: Manifest = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m);
    }
}
