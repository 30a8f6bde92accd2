//! Preflight verdicts for an upgrade: each check a line with pass / warn / fail and what to do.
//!
//! The command gathers facts (nodes, etcd members, backups, certificates, objects in removed
//! API versions, the local kubectl) and these functions judge them; time is passed in. The
//! drain's own checks (PDB blockers, room for a drained node) are in
//! [`super::drain_checks`].

use std::fmt;

use jiff::SignedDuration;
use serde::Serialize;

mod certs;
mod cluster;
mod etcd;
mod removed_apis;

pub use certs::{CertFacts, check_certificates};
pub use cluster::{
    NodeFacts, check_current_skew, check_kubectl, check_kubelets_behind, check_nodes,
};
pub use etcd::{ETCD_MIN_BEFORE_3_6, EtcdMemberFacts, check_backup, check_etcd};
pub use removed_apis::{RemovedApiUse, check_removed_apis};

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to do.
    Pass,
    /// Worth a look; the upgrade can go on.
    Warn,
    /// Fix this before upgrading.
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
        })
    }
}

/// One preflight line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short stable name (`nodes-ready`, `etcd-health`, ...).
    pub name: String,
    /// The verdict.
    pub status: Status,
    /// What was found.
    pub message: String,
    /// What to do about it (absent on a pass).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl Check {
    pub(crate) fn new(name: &str, status: Status, message: String, action: Option<String>) -> Self {
        Self {
            name: name.to_string(),
            status,
            message,
            action,
        }
    }

    pub(crate) fn pass(name: &str, message: String) -> Self {
        Self::new(name, Status::Pass, message, None)
    }
}

/// The worst status of a list (pass for an empty list).
pub fn worst(checks: &[Check]) -> Status {
    checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Pass)
}

pub(crate) fn list(names: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

fn humanize(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests;
