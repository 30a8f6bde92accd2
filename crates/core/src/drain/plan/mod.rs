//! The drain plan: for each node to drain, every pod with its action and reason, the errors
//! that fail the node before any eviction (kubectl's filter errors), kubectl's warning line,
//! PDB blockers and the capacity verdict. Serializable for `-o json`.
//!
//! The plan is a pure function of a [`ClusterSnapshot`], the pods listed on each node, the
//! options and `now`; the same input always gives the same plan.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Serialize;

use super::capacity::{CapacityReport, Placement, VolumeAffinity, check_capacity};
use super::cordon::{DryRun, cordon_owner, is_cordoned};
use super::eviction::RemovalMethod;
use super::filters::{
    DaemonSetLookup, FilterName, FilterOptions, FilterOutcome, PodFilterResult, Verdict, aggregate,
    filter_pods,
};
use super::pdb::{
    BlockerKind, PdbBlocker, PodPdbVerdict, SelectorSemantics, evaluate_pod, node_blockers,
};
use super::{PodRef, controller_of, is_daemonset_ref, is_finished};

mod batch;
mod lines;
#[cfg(test)]
mod tests;

pub use batch::{Parallelism, node_order, parallelism};
pub use lines::{closing_error_lines, drained_line, evicting_line, node_failed_line, removed_line};

/// Everything the planner reads from the cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterSnapshot {
    /// All nodes.
    pub nodes: Vec<Node>,
    /// All pods of the cluster (for capacity: what the remaining nodes already host).
    pub pods: Vec<Pod>,
    /// All PodDisruptionBudgets.
    pub pdbs: Vec<PodDisruptionBudget>,
    /// The API version the PDBs were read through.
    pub pdb_semantics: SelectorSemantics,
    /// Results of `GET DaemonSet` for the pairs [`super::filters::daemonsets_to_look_up`] named.
    pub daemonsets: BTreeMap<(String, String), DaemonSetLookup>,
    /// Node affinity of the volumes bound to claims ([`super::capacity::volume_node_affinity`]).
    pub volumes: VolumeAffinity,
}

/// A node to drain and the pods kubectl would list on it (`spec.nodeName=<node>` plus
/// `--pod-selector`).
#[derive(Clone, Debug)]
pub struct NodeTarget {
    /// Node name.
    pub name: String,
    /// Its pods.
    pub pods: Vec<Pod>,
}

/// Drain options the planner needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DrainOptions {
    /// Filter flags.
    pub filters: FilterOptions,
    /// Evict (with which API version) or delete.
    pub method: RemovalMethod,
    /// `--dry-run`.
    pub dry_run: Option<DryRun>,
}

/// What happens to a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PodAction {
    /// Evicted through the Eviction API.
    Evict,
    /// Deleted (`--disable-eviction` or no eviction support).
    Delete,
    /// Left alone.
    Skip,
    /// Prevents the node's drain (kubectl fails the node before any eviction).
    Error,
}

/// One pod in the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodPlan {
    /// The pod.
    pub pod: PodRef,
    /// The action.
    pub action: PodAction,
    /// Human reason (kubectl's wording where kubectl has one).
    pub reason: String,
    /// The filter that decided.
    pub decided_by: FilterName,
    /// Every warning raised by the filters (kubectl keeps only the last).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Controller that recreates the pod (`Kind/name`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    /// PDB verdict for evicted pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdb: Option<PodPdbVerdict>,
    /// Where a replacement would fit (pods recreated by a controller only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

/// Overall verdict for a node, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeVerdict {
    /// A pod filter failed: the drain of this node stops before any eviction.
    FilterErrors,
    /// Some eviction can never succeed (several PDBs on a pod, a PDB that never allows a
    /// disruption, or a PDB waiting for replacements that fit on no remaining node): the drain
    /// would hang until `--timeout` or fail.
    PdbDeadlock,
    /// Some PDB allows no disruption right now: the drain waits for pods to become healthy.
    WaitsOnPdb,
    /// Some evicted pods would fit on no remaining node: they will stay Pending.
    InsufficientCapacity,
    /// Nothing in the way.
    Ready,
}

/// Plan for one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodePlan {
    /// Node name.
    pub node: String,
    /// The node exists in the snapshot.
    pub found: bool,
    /// `spec.unschedulable` before kubemaint did anything.
    pub cordoned_before: bool,
    /// kubemaint's cordon record on the node (`cordoned-by`, `cordoned-at`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cordon_owner: Option<(String, String)>,
    /// Every pod listed on the node, sorted by namespace/name.
    pub pods: Vec<PodPlan>,
    /// kubectl's filter errors (`cannot delete ...: ns/p`); non-empty fails the node.
    pub errors: Vec<String>,
    /// The errors aggregated as kubectl prints them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// kubectl's warning line without the `Warning: ` prefix; empty if none.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub warnings: String,
    /// PDB problems for the pods to evict.
    pub pdb_blockers: Vec<PdbBlocker>,
    /// Overall verdict.
    pub verdict: NodeVerdict,
}

impl NodePlan {
    /// The pods to evict or delete, in order.
    pub fn pods_to_remove(&self) -> impl Iterator<Item = &PodPlan> {
        self.pods
            .iter()
            .filter(|p| matches!(p.action, PodAction::Evict | PodAction::Delete))
    }
}

/// The whole plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DrainPlan {
    /// Options it was made with.
    pub options: DrainOptions,
    /// Per node, in the order given.
    pub nodes: Vec<NodePlan>,
    /// Capacity preflight over all pods recreated elsewhere, with every target node excluded.
    pub capacity: CapacityReport,
}

impl DrainPlan {
    /// Whether any node has filter errors (kubectl would fail those nodes).
    pub fn has_filter_errors(&self) -> bool {
        self.nodes.iter().any(|n| !n.errors.is_empty())
    }
}

fn controller_label(pod: &Pod) -> Option<String> {
    controller_of(pod).map(|r| format!("{}/{}", r.kind, r.name))
}

/// Whether a controller will recreate the pod elsewhere after it is removed.
fn recreated(pod: &Pod) -> bool {
    !is_finished(pod) && controller_of(pod).is_some_and(|r| !is_daemonset_ref(r))
}

fn reason_for(r: &PodFilterResult, pod: &Pod, opts: &FilterOptions) -> String {
    match (r.verdict, r.decided_by) {
        (Verdict::Error, _) => format!("cannot delete {}", r.message),
        (Verdict::Warning, _) => r.message.clone(),
        (Verdict::Skip, FilterName::SkipDeleted) => format!(
            "pod has DeletionTimestamp older than {} seconds, skipping",
            opts.skip_wait_for_delete_timeout_seconds
        ),
        (Verdict::Skip, _) => "mirror pod of a static pod (managed by the kubelet)".to_owned(),
        (Verdict::Okay, _) => {
            if is_finished(pod) {
                let phase = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default();
                format!("finished pod ({phase})")
            } else if let Some(c) = controller_label(pod) {
                format!("managed by {c}")
            } else {
                "no filter objected".to_owned()
            }
        }
    }
}

/// Builds the plan. Pods within a node are sorted by namespace/name (the order the API lists
/// them in); nodes keep the given order.
pub fn plan_drain(
    snapshot: &ClusterSnapshot,
    targets: &[NodeTarget],
    options: &DrainOptions,
    now: Timestamp,
) -> DrainPlan {
    let lookup = |ns: &str, name: &str| {
        snapshot
            .daemonsets
            .get(&(ns.to_owned(), name.to_owned()))
            .cloned()
            .unwrap_or_else(|| {
                DaemonSetLookup::Failed(format!(
                    "DaemonSet {ns}/{name} was not looked up (internal error: report it)"
                ))
            })
    };
    let excluded: BTreeSet<String> = targets.iter().map(|t| t.name.clone()).collect();
    let evicting = matches!(options.method, RemovalMethod::Evict(_));

    let mut nodes = Vec::new();
    let mut to_place: Vec<&Pod> = Vec::new();
    for target in targets {
        let node = snapshot
            .nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(target.name.as_str()));
        let mut pods: Vec<&Pod> = target.pods.iter().collect();
        pods.sort_by_key(|p| PodRef::of(p));
        let owned: Vec<Pod> = pods.iter().map(|p| (*p).clone()).collect();
        let outcome: FilterOutcome = filter_pods(&owned, &options.filters, &lookup, now);

        let mut plans = Vec::new();
        let mut removed: Vec<&Pod> = Vec::new();
        for (pod, r) in pods.iter().zip(&outcome.results) {
            let action = match (r.delete, r.verdict) {
                (true, _) if evicting => PodAction::Evict,
                (true, _) => PodAction::Delete,
                (false, Verdict::Error) => PodAction::Error,
                (false, _) => PodAction::Skip,
            };
            let pdb = (action == PodAction::Evict)
                .then(|| evaluate_pod(pod, &snapshot.pdbs, snapshot.pdb_semantics));
            if matches!(action, PodAction::Evict | PodAction::Delete) {
                removed.push(pod);
                if recreated(pod) {
                    to_place.push(pod);
                }
            }
            plans.push(PodPlan {
                pod: r.pod.clone(),
                action,
                reason: reason_for(r, pod, &options.filters),
                decided_by: r.decided_by,
                notes: r.notes.clone(),
                controller: controller_label(pod),
                pdb,
                placement: None,
            });
        }
        let errors = outcome.errors();
        let pdb_blockers = if evicting {
            node_blockers(&removed, &snapshot.pdbs, snapshot.pdb_semantics)
        } else {
            Vec::new()
        };
        nodes.push(NodePlan {
            node: target.name.clone(),
            found: node.is_some(),
            cordoned_before: node.is_some_and(is_cordoned),
            cordon_owner: node.and_then(cordon_owner),
            pods: plans,
            error: aggregate(&errors),
            errors,
            warnings: outcome.warnings(),
            pdb_blockers,
            verdict: NodeVerdict::Ready,
        });
    }

    let capacity = check_capacity(
        &to_place,
        &snapshot.nodes,
        &snapshot.pods,
        &snapshot.volumes,
        &excluded,
    );
    let by_pod: BTreeMap<&PodRef, &Placement> = capacity
        .pods
        .iter()
        .map(|p| (&p.pod, &p.placement))
        .collect();
    for n in &mut nodes {
        let mut short = false;
        for p in &mut n.pods {
            if let Some(pl) = by_pod.get(&p.pod) {
                short |= !matches!(pl, Placement::Fits { .. });
                p.placement = Some((*pl).clone());
            }
        }
        // Pods under a budget with no disruption to spare need their replacements to become
        // healthy elsewhere first; if those replacements fit nowhere, the budget never frees.
        let unplaceable: BTreeSet<&PodRef> = n
            .pods
            .iter()
            .filter(|p| matches!(p.placement, Some(Placement::NoFit { .. })))
            .map(|p| &p.pod)
            .collect();
        let starved = n.pdb_blockers.iter().any(|b| {
            matches!(b.kind, BlockerKind::Paced | BlockerKind::NoDisruptionsNow)
                && b.pods.iter().any(|p| unplaceable.contains(p))
        });
        let worst_pdb = n.pdb_blockers.iter().map(|b| b.kind).min();
        n.verdict = if !n.errors.is_empty() {
            NodeVerdict::FilterErrors
        } else if starved
            || matches!(
                worst_pdb,
                Some(BlockerKind::MultiplePdbs | BlockerKind::NeverAllows)
            )
        {
            NodeVerdict::PdbDeadlock
        } else if matches!(
            worst_pdb,
            Some(BlockerKind::NoDisruptionsNow | BlockerKind::Stale)
        ) {
            NodeVerdict::WaitsOnPdb
        } else if short {
            NodeVerdict::InsufficientCapacity
        } else {
            NodeVerdict::Ready
        };
    }
    DrainPlan {
        options: options.clone(),
        nodes,
        capacity,
    }
}
