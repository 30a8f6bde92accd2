//! Objects stored in API versions the upgrade path removes.

use serde::Serialize;

use super::{Check, Status, list};
use crate::upgrade::removed::RemovedApi;
use crate::upgrade::version::Minor;

/// An object found using a removed API version, and how that was established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedApiUse {
    /// `apiVersion` in use (`policy/v1beta1`).
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// `namespace/name` or `name`.
    pub object: String,
    /// How it was detected (`only policy/v1beta1 is served`, `managedFields: kubectl-create`, ...).
    pub detected_by: String,
}

/// Objects in API versions the path removes: each removal crossed with objects fails, the
/// others pass. `checked` names the removals whose objects were actually listed.
pub fn check_removed_apis(
    from: Minor,
    to: Minor,
    removals: &[&RemovedApi],
    found: &[RemovedApiUse],
    not_checked: &[String],
) -> Vec<Check> {
    let mut out = Vec::new();
    for removal in removals {
        let api_version = removal.api_version();
        let objects: Vec<String> = found
            .iter()
            .filter(|f| f.api_version == api_version && f.kind == removal.kind)
            .map(|f| format!("{} [{}]", f.object, f.detected_by))
            .collect();
        if !objects.is_empty() {
            out.push(Check::new(
                "removed-api",
                Status::Fail,
                format!(
                    "{} {} is removed in {}; {} object(s) use it: {}",
                    api_version,
                    removal.kind,
                    removal.removed_in,
                    objects.len(),
                    list(&objects)
                ),
                Some(format!(
                    "migrate manifests and clients to {} before the {} step (re-apply the objects with the new apiVersion)",
                    removal.replacement, removal.removed_in
                )),
            ));
        }
    }
    if out.is_empty() {
        let message = if removals.is_empty() {
            format!("no API version is removed between {from} and {to}")
        } else {
            format!(
                "{} removed API version(s) between {from} and {to}; no object found using them",
                removals.len()
            )
        };
        out.push(Check::pass("removed-api", message));
    }
    if !not_checked.is_empty() {
        out.push(Check::new(
            "removed-api",
            Status::Warn,
            format!("could not list: {}", list(not_checked)),
            Some("check these with an account that may list them".into()),
        ));
    }
    out
}
