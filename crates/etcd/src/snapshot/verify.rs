//! `snapshot verify`: SHA-256 trailer, then the full structural and etcd-schema check; the first
//! fault is reported with its file offset and page.

use std::path::Path;

use serde::Serialize;

use super::Error;
use super::file::{SnapshotFile, Trailer};
use super::status::{Status, StatusOptions, status};

/// Outcome of the SHA-256 trailer check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum TrailerCheck {
    /// The trailer matches the image.
    Valid {
        /// Hex SHA-256.
        sha256: String,
    },
    /// The trailer does not match: the file is corrupt or was modified.
    Mismatch {
        /// Hex SHA-256 stored in the trailer.
        expected: String,
        /// Hex SHA-256 computed over the image.
        actual: String,
    },
    /// No trailer (size is not `32 mod 512`): a raw `member/snap/db` copy, or a truncated snapshot.
    Missing,
}

/// A structural fault, located as precisely as the check allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// Byte offset in the file, when known.
    pub offset: Option<u64>,
    /// Page id, when known.
    pub page: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl From<&Error> for Fault {
    fn from(e: &Error) -> Self {
        match e {
            Error::Bbolt(b) => Fault {
                offset: b.offset(),
                page: b.page(),
                message: crate::error_chain(b),
            },
            Error::BadRevisionKey { offset, .. } | Error::BadKeyValue { offset, .. } => Fault {
                offset: Some(*offset),
                page: None,
                message: e.to_string(),
            },
            _ => Fault {
                offset: None,
                page: None,
                message: crate::error_chain(e),
            },
        }
    }
}

/// Result of [`verify`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// File size in bytes.
    pub file_size: u64,
    /// SHA-256 trailer outcome.
    pub trailer: TrailerCheck,
    /// The first structural fault, if any.
    pub fault: Option<Fault>,
    /// Non-fatal observations (damaged spare meta page, bytes past the database end, ...).
    pub warnings: Vec<String>,
    /// The status figures, when the structure is sound.
    pub status: Option<Status>,
}

impl VerifyReport {
    /// Whether the file is a valid snapshot. A missing trailer is only acceptable when
    /// `allow_missing_trailer` (raw `member/snap/db`, like etcdutl's `--skip-hash-check`).
    pub fn is_valid(&self, allow_missing_trailer: bool) -> bool {
        self.fault.is_none()
            && match self.trailer {
                TrailerCheck::Valid { .. } => true,
                TrailerCheck::Missing => allow_missing_trailer,
                TrailerCheck::Mismatch { .. } => false,
            }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Verifies the file at `path`. Only I/O errors are returned as `Err`; every finding about the
/// content is in the report.
pub fn verify(path: &Path, opts: &StatusOptions) -> Result<VerifyReport, Error> {
    let f = SnapshotFile::open(path)?;
    let mut warnings = Vec::new();
    let trailer = match f.trailer() {
        Trailer::Sha256(expected) => {
            let actual = f.sha256()?;
            if actual == expected {
                TrailerCheck::Valid {
                    sha256: hex(&actual),
                }
            } else {
                TrailerCheck::Mismatch {
                    expected: hex(&expected),
                    actual: hex(&actual),
                }
            }
        }
        Trailer::Missing => {
            warnings.push(
                "no SHA-256 trailer: this is a raw member/snap/db copy or a truncated snapshot; content integrity cannot be proven"
                    .into(),
            );
            TrailerCheck::Missing
        }
    };
    let (fault, st) = match f.db() {
        Err(e) => (Some(Fault::from(&e)), None),
        Ok(db) => {
            for (i, m) in db.metas().iter().enumerate() {
                if let crate::bbolt::MetaState::Invalid(fault) = m {
                    warnings.push(format!(
                        "meta page {i} is invalid ({fault}); the other one is used"
                    ));
                }
            }
            if matches!(f.trailer(), Trailer::Sha256(_)) && db.len() != db.size() {
                warnings.push(format!(
                    "{} bytes between the database end ({}) and the trailer; etcd snapshots have none",
                    db.len() - db.size(),
                    db.size()
                ));
            }
            match status(&db, opts) {
                Ok(s) => (None, Some(s)),
                Err(e) => (Some(Fault::from(&e)), None),
            }
        }
    };
    Ok(VerifyReport {
        file_size: f.file_len(),
        trailer,
        fault,
        warnings,
        status: st,
    })
}
