//! The manifest stored beside each backup's data (`ID.manifest.json`), and backup IDs.

use jiff::Timestamp;
use kubemaint_etcd::save::manifest::{ManifestMember, RevisionSource, SourceMember};
use serde::{Deserialize, Serialize};

/// The manifest's format tag.
pub const FORMAT: &str = "kubemaint.etcd-backup/v1";

/// Suffix of manifest objects.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// Prefix of backup IDs.
pub const ID_PREFIX: &str = "etcd-";

/// The ID of a backup taken at `t`: `etcd-20261204T164700Z` (sorts by time).
pub fn backup_id(t: Timestamp) -> String {
    format!("{ID_PREFIX}{}", t.strftime("%Y%m%dT%H%M%SZ"))
}

/// The ID of a backup taken at `t` that no object in `existing` uses yet: [`backup_id`], or,
/// when a backup was already taken in that second, the same with `-2`, `-3`, ... appended (the
/// ID has one-second resolution; an S3 upload would silently replace an object of the same name).
pub fn unique_id<'a>(t: Timestamp, existing: impl IntoIterator<Item = &'a str> + Clone) -> String {
    let base = backup_id(t);
    let taken = |id: &str| {
        existing.clone().into_iter().any(|name| {
            name.strip_prefix(id)
                .is_some_and(|rest| rest.starts_with('.'))
        })
    };
    if !taken(&base) {
        return base;
    }
    (2u32..)
        .map(|n| format!("{base}-{n}"))
        .find(|id| !taken(id))
        .expect("a free suffix")
}

/// The manifest object's name for a backup ID.
pub fn manifest_name(id: &str) -> String {
    format!("{id}{MANIFEST_SUFFIX}")
}

/// The data object's name for a backup ID.
pub fn data_name(id: &str, encrypted: bool) -> String {
    if encrypted {
        format!("{id}.db.zst.age")
    } else {
        format!("{id}.db.zst")
    }
}

/// True for a plausible backup ID (`etcd-` followed by letters, digits, `-`, `_`, `.`),
/// so IDs given on the command line cannot name paths outside the store.
pub fn valid_id(id: &str) -> bool {
    id.starts_with(ID_PREFIX)
        && id.len() > ID_PREFIX.len()
        && !id.contains("..")
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// How the data object is compressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    /// Always `zstd`.
    pub algorithm: String,
    /// The zstd level used.
    pub level: i32,
}

/// How the data object is encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// Always `age` (age-encryption.org/v1).
    pub format: String,
    /// The x25519 recipients (public keys) it was encrypted to.
    pub recipients: Vec<String>,
    /// Whether it was encrypted to a passphrase (scrypt) instead.
    pub passphrase: bool,
}

/// One backup's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// [`FORMAT`].
    pub format: String,
    /// The backup ID.
    pub id: String,
    /// The data object's name (relative to the destination).
    pub object: String,
    /// When the snapshot was started (RFC 3339, UTC).
    pub created: String,
    /// How long the snapshot and upload took, in seconds.
    pub duration_seconds: f64,
    /// The tool that wrote it.
    pub written_by: String,
    /// The member's store revision when the snapshot started (etcd does not send the
    /// snapshot's revision, etcd #9037; the snapshot holds at least this revision).
    pub revision: i64,
    /// Where [`BackupManifest::revision`] came from.
    pub revision_source: RevisionSource,
    /// Database bytes (snapshot size minus the 32-byte SHA-256 trailer).
    pub db_size: u64,
    /// Snapshot size as etcdctl writes it (database + trailer); `backup fetch` restores exactly
    /// these bytes.
    pub file_size: u64,
    /// SHA-256 of the database bytes, hex (equal to the trailer; checked during the stream).
    pub sha256: String,
    /// Size of the stored (compressed, maybe encrypted) object.
    pub stored_size: u64,
    /// SHA-256 of the stored object, hex: tells a corrupted object from a wrong key.
    pub object_sha256: String,
    /// Compression.
    pub compression: Compression,
    /// Encryption, if any.
    pub encryption: Option<Encryption>,
    /// The SHA-256 trailer matched during the stream and the object was stored whole.
    pub verified: bool,
    /// Cluster ID (16 hex digits).
    pub cluster_id: String,
    /// etcd server version of the source member.
    pub etcd_version: String,
    /// The member the snapshot came from.
    pub source: SourceMember,
    /// The member list at backup time.
    pub members: Vec<ManifestMember>,
}

impl BackupManifest {
    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serialises");
        v.push(b'\n');
        v
    }

    /// When the backup was taken, parsed.
    pub fn created_at(&self) -> Option<Timestamp> {
        self.created.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names() {
        let t: Timestamp = "2026-12-04T16:47:05.123Z".parse().unwrap();
        let id = backup_id(t);
        assert_eq!(id, "etcd-20261204T164705Z");
        assert!(valid_id(&id));
        assert_eq!(data_name(&id, true), "etcd-20261204T164705Z.db.zst.age");
        assert_eq!(data_name(&id, false), "etcd-20261204T164705Z.db.zst");
        assert_eq!(manifest_name(&id), "etcd-20261204T164705Z.manifest.json");
        assert_eq!(unique_id(t, ["etcd-20261204T164704Z.db.zst"]), id);
        assert_eq!(
            unique_id(t, ["etcd-20261204T164705Z.db.zst.age"]),
            "etcd-20261204T164705Z-2"
        );
        assert_eq!(
            unique_id(
                t,
                [
                    "etcd-20261204T164705Z.manifest.json",
                    "etcd-20261204T164705Z-2.db.zst.part",
                    "etcd-20261204T164705Z-3.manifest.json",
                ]
            ),
            "etcd-20261204T164705Z-4"
        );
        assert!(valid_id("etcd-20261204T164705Z-2"));
        for bad in ["", "etcd-", "x-1", "etcd-../x", "etcd-a/b", "etcd-a b"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
