//! Cordon / uncordon decisions (kubectl's `CordonHelper`) and kubemaint's cordon ownership
//! annotations.
//!
//! kubectl sends `{"spec":{"unschedulable":true}}` (cordon) or `{"spec":{"unschedulable":null}}`
//! (uncordon) as a strategic-merge patch, and nothing when the node is already in the wanted
//! state. kubemaint sends the same `spec` change and, when it is the one cordoning, also
//! records [`CORDONED_BY_ANNOTATION`] and [`CORDONED_AT_ANNOTATION`] on the node, so that its
//! automated flows (`--uncordon-on-failure`, upgrades) only ever undo a cordon they made.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use serde::Serialize;
use serde_json::{Value, json};

/// Annotation naming who cordoned the node through kubemaint (`kubemaint/<command>`).
pub const CORDONED_BY_ANNOTATION: &str = "kubemaint.io/cordoned-by";
/// Annotation with the RFC 3339 time kubemaint cordoned the node.
pub const CORDONED_AT_ANNOTATION: &str = "kubemaint.io/cordoned-at";

/// Content type of the patches below.
pub const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";

/// What to send for a cordon or uncordon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CordonDecision {
    /// Already in the wanted state: print `node/X already cordoned|uncordoned`, no request.
    Already,
    /// Send this strategic-merge patch, then print `node/X cordoned|uncordoned`.
    Patch {
        /// Patch body.
        patch: Value,
    },
    /// Already uncordoned but carrying stale kubemaint annotations: print
    /// `node/X already uncordoned` and send this patch that only removes them (so a later
    /// manual cordon is never mistaken for kubemaint's).
    CleanupAnnotations {
        /// Patch body.
        patch: Value,
    },
}

/// Whether the node is cordoned (`spec.unschedulable`).
pub fn is_cordoned(node: &Node) -> bool {
    node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
}

/// The kubemaint ownership record on the node, if any: (`cordoned-by`, `cordoned-at`).
pub fn cordon_owner(node: &Node) -> Option<(String, String)> {
    let a = node.metadata.annotations.as_ref()?;
    let by = a.get(CORDONED_BY_ANNOTATION)?;
    Some((
        by.clone(),
        a.get(CORDONED_AT_ANNOTATION).cloned().unwrap_or_default(),
    ))
}

/// Decision for `cordon` (and the first step of `drain`). `by` names the flow
/// (e.g. `kubemaint/drain`).
pub fn cordon(node: &Node, by: &str, now: Timestamp) -> CordonDecision {
    if is_cordoned(node) {
        return CordonDecision::Already;
    }
    CordonDecision::Patch {
        patch: json!({
            "metadata": { "annotations": {
                CORDONED_BY_ANNOTATION: by,
                CORDONED_AT_ANNOTATION: now.to_string(),
            }},
            "spec": { "unschedulable": true },
        }),
    }
}

fn clear_annotations() -> Value {
    json!({ CORDONED_BY_ANNOTATION: null, CORDONED_AT_ANNOTATION: null })
}

/// Decision for an explicit `uncordon` by the user: uncordons whoever cordoned it.
pub fn uncordon(node: &Node) -> CordonDecision {
    if !is_cordoned(node) {
        return match cordon_owner(node) {
            Some(_) => CordonDecision::CleanupAnnotations {
                patch: json!({ "metadata": { "annotations": clear_annotations() } }),
            },
            None => CordonDecision::Already,
        };
    }
    let mut patch = json!({ "spec": { "unschedulable": null } });
    if cordon_owner(node).is_some() {
        patch["metadata"] = json!({ "annotations": clear_annotations() });
    }
    CordonDecision::Patch { patch }
}

/// Decision for an automated uncordon (after a failed drain with `--uncordon-on-failure`, or
/// at the end of an upgrade step).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AutoUncordon {
    /// kubemaint cordoned it: send this patch.
    Uncordon {
        /// Patch body.
        patch: Value,
    },
    /// The node was cordoned by someone else (no kubemaint annotation): leave it.
    LeaveCordoned {
        /// Explanation for the user.
        reason: String,
    },
    /// Nothing to do.
    NotCordoned,
}

/// The field manager the API server records as owning `spec.unschedulable` (from
/// `metadata.managedFields`), if the server tracks it.
pub fn unschedulable_manager(node: &Node) -> Option<&str> {
    node.metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0["f:spec"].get("f:unschedulable").is_some())
        })
        .and_then(|m| m.manager.as_deref())
}

/// Automated uncordon: only undo a cordon kubemaint recorded, and only if nobody cordoned the
/// node again since (the server's field ownership of `spec.unschedulable` says who last set it:
/// an annotation left by kubemaint survives a `kubectl uncordon` and a later manual cordon).
/// `our_manager` is the field manager kubemaint patches with.
pub fn auto_uncordon(node: &Node, our_manager: &str) -> AutoUncordon {
    if !is_cordoned(node) {
        return AutoUncordon::NotCordoned;
    }
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if cordon_owner(node).is_some()
        && let Some(manager) = unschedulable_manager(node)
        && manager != our_manager
    {
        return AutoUncordon::LeaveCordoned {
            reason: format!(
                "node {name} was cordoned again by {manager} after kubemaint's cordon; leaving it cordoned. Run `kubemaint uncordon {name}` to undo."
            ),
        };
    }
    match cordon_owner(node) {
        Some(_) => AutoUncordon::Uncordon {
            patch: json!({
                "metadata": { "annotations": clear_annotations() },
                "spec": { "unschedulable": null },
            }),
        },
        None => AutoUncordon::LeaveCordoned {
            reason: format!(
                "node {} was cordoned before kubemaint (no {CORDONED_BY_ANNOTATION} annotation); leaving it cordoned. Run `kubemaint uncordon {}` to undo.",
                node.metadata.name.as_deref().unwrap_or_default(),
                node.metadata.name.as_deref().unwrap_or_default()
            ),
        },
    }
}

/// kubectl's output line: `node/X cordoned`, `node/X already uncordoned`, with ` (dry run)` /
/// ` (server dry run)` suffixes as kubectl's printer adds them.
pub fn output_line(node: &str, desired: bool, already: bool, dry_run: Option<DryRun>) -> String {
    let verb = match (desired, already) {
        (true, true) => "already cordoned",
        (true, false) => "cordoned",
        (false, true) => "already uncordoned",
        (false, false) => "uncordoned",
    };
    let suffix = match dry_run {
        None => "",
        Some(DryRun::Client) => " (dry run)",
        Some(DryRun::Server) => " (server dry run)",
    };
    format!("node/{node} {verb}{suffix}")
}

/// kubectl's `--dry-run` strategies (none is `Option::None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DryRun {
    /// `--dry-run=client`: no mutating request.
    Client,
    /// `--dry-run=server`: requests carry `dryRun=All`.
    Server,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drain::testing::{NodeBuilder, now};

    #[test]
    fn cordon_decisions() {
        let free = NodeBuilder::new("n").build();
        let manual = NodeBuilder::new("n").cordoned().build();
        let ours = NodeBuilder::new("n")
            .cordoned()
            .annotate(CORDONED_BY_ANNOTATION, "kubemaint/drain")
            .annotate(CORDONED_AT_ANNOTATION, "2026-01-01T00:00:00Z")
            .build();
        let stale = NodeBuilder::new("n")
            .annotate(CORDONED_BY_ANNOTATION, "kubemaint/drain")
            .build();

        assert_eq!(
            cordon(&free, "kubemaint/drain", now()),
            CordonDecision::Patch {
                patch: json!({"metadata":{"annotations":{
                    "kubemaint.io/cordoned-by":"kubemaint/drain",
                    "kubemaint.io/cordoned-at":"2026-01-01T00:00:00Z"}},
                    "spec":{"unschedulable":true}})
            }
        );
        assert_eq!(cordon(&manual, "x", now()), CordonDecision::Already);
        assert_eq!(cordon(&ours, "x", now()), CordonDecision::Already);

        assert_eq!(uncordon(&free), CordonDecision::Already);
        assert_eq!(
            uncordon(&manual),
            CordonDecision::Patch {
                patch: json!({"spec":{"unschedulable":null}})
            }
        );
        assert_eq!(
            uncordon(&ours),
            CordonDecision::Patch {
                patch: json!({"spec":{"unschedulable":null},"metadata":{"annotations":{
                    "kubemaint.io/cordoned-by":null,"kubemaint.io/cordoned-at":null}}})
            }
        );
        assert!(matches!(
            uncordon(&stale),
            CordonDecision::CleanupAnnotations { .. }
        ));

        assert!(matches!(
            auto_uncordon(&manual, "kubemaint"),
            AutoUncordon::LeaveCordoned { .. }
        ));
        assert!(matches!(
            auto_uncordon(&ours, "kubemaint"),
            AutoUncordon::Uncordon { .. }
        ));
        assert_eq!(auto_uncordon(&free, "kubemaint"), AutoUncordon::NotCordoned);
        assert_eq!(
            auto_uncordon(&stale, "kubemaint"),
            AutoUncordon::NotCordoned
        );
    }

    /// kubemaint cordons (annotation), `kubectl uncordon` leaves the annotation, `kubectl
    /// cordon` cordons again: the server's field owner of `spec.unschedulable` tells.
    #[test]
    fn a_cordon_made_again_by_someone_else_is_not_ours() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
        let owned_by = |manager: &str| {
            let mut n = NodeBuilder::new("n1")
                .cordoned()
                .annotate(CORDONED_BY_ANNOTATION, "kubemaint/drain")
                .build();
            n.metadata.managed_fields = Some(vec![
                ManagedFieldsEntry {
                    manager: Some("kubelet".into()),
                    fields_v1: Some(FieldsV1(json!({"f:status": {"f:conditions": {}}}))),
                    ..Default::default()
                },
                ManagedFieldsEntry {
                    manager: Some(manager.into()),
                    fields_v1: Some(FieldsV1(json!({"f:spec": {"f:unschedulable": {}}}))),
                    ..Default::default()
                },
            ]);
            n
        };
        assert!(matches!(
            auto_uncordon(&owned_by("kubemaint"), "kubemaint"),
            AutoUncordon::Uncordon { .. }
        ));
        match auto_uncordon(&owned_by("kubectl-cordon"), "kubemaint") {
            AutoUncordon::LeaveCordoned { reason } => {
                assert!(
                    reason.contains("cordoned again by kubectl-cordon"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lines() {
        assert_eq!(output_line("n1", true, false, None), "node/n1 cordoned");
        assert_eq!(
            output_line("n1", true, true, None),
            "node/n1 already cordoned"
        );
        assert_eq!(
            output_line("n1", false, false, Some(DryRun::Client)),
            "node/n1 uncordoned (dry run)"
        );
        assert_eq!(
            output_line("n1", false, true, Some(DryRun::Server)),
            "node/n1 already uncordoned (server dry run)"
        );
    }
}
