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
use super::config::NodeOrder;
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

/// kubectl's per-pod start line: `evicting pod ns/name`, with ` (dry run)` /
/// ` (server dry run)`.
pub fn evicting_line(pod: &PodRef, dry_run: Option<DryRun>) -> String {
    match dry_run {
        None => format!("evicting pod {pod}"),
        Some(DryRun::Client) => format!("evicting pod {pod} (dry run)"),
        Some(DryRun::Server) => format!("evicting pod {pod} (server dry run)"),
    }
}

/// kubectl's per-pod completion line: `pod/name evicted` or `pod/name deleted`.
pub fn removed_line(pod: &PodRef, method: RemovalMethod) -> String {
    match method {
        RemovalMethod::Evict(_) => format!("pod/{} evicted", pod.name),
        RemovalMethod::Delete => format!("pod/{} deleted", pod.name),
    }
}

/// kubectl's per-node completion line: `node/x drained` (with dry-run suffixes).
pub fn drained_line(node: &str, dry_run: Option<DryRun>) -> String {
    match dry_run {
        None => format!("node/{node} drained"),
        Some(DryRun::Client) => format!("node/{node} drained (dry run)"),
        Some(DryRun::Server) => format!("node/{node} drained (server dry run)"),
    }
}

/// kubectl's per-node failure line on stderr, from the node's errors. kubectl 1.27 prints
/// `due to error:%s` with no space before the (aggregated) error.
pub fn node_failed_line(node: &str, errors: &[String]) -> String {
    format!(
        "error: unable to drain node \"{node}\" due to error:{}, continuing command...",
        aggregate(errors).unwrap_or_default()
    )
}

/// The order to drain the plan's nodes in (indices into `plan.nodes`).
pub fn node_order(plan: &DrainPlan, order: NodeOrder) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..plan.nodes.len()).collect();
    match order {
        NodeOrder::Given => {}
        NodeOrder::Name => idx.sort_by(|&a, &b| plan.nodes[a].node.cmp(&plan.nodes[b].node)),
        NodeOrder::LeastBlocked => idx.sort_by_key(|&i| {
            let n = &plan.nodes[i];
            let blocking = n
                .pdb_blockers
                .iter()
                .filter(|b| b.kind != BlockerKind::Paced)
                .count();
            // A node kubectl's filters refuse fails at once: no reason to hold it back.
            (blocking, n.pods_to_remove().count(), n.node.clone())
        }),
    }
    idx
}

/// How many nodes to drain at once, decided before any change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parallelism {
    /// As asked.
    Keep(usize),
    /// Fewer than asked, and why.
    Lower {
        /// Nodes at once.
        to: usize,
        /// Why.
        why: String,
    },
    /// Refused: these pods (with the scheduler-like reason) fit on no node that stays, so
    /// draining several nodes at once would leave them Pending together.
    Refuse {
        /// The pods and why each fits nowhere.
        pods: Vec<(PodRef, String)>,
    },
}

/// The batch decision for `--max-parallel-nodes requested`: the plan placed the pods of every
/// selected node together on the nodes that stay (all selected nodes are cordoned first). One
/// node at a time keeps kubectl's behaviour (pods that fit nowhere are named by the preflight
/// and stay Pending); several at once are refused when any pod fits nowhere.
pub fn parallelism(plan: &DrainPlan, requested: usize) -> Parallelism {
    let nodes = plan.nodes.len().max(1);
    if requested <= 1 {
        return Parallelism::Keep(1);
    }
    let pods: Vec<(PodRef, String)> = plan
        .nodes
        .iter()
        .flat_map(|n| n.pods_to_remove())
        .filter_map(|p| match &p.placement {
            Some(Placement::NoFit { reason }) => Some((p.pod.clone(), reason.clone())),
            _ => None,
        })
        .collect();
    if !pods.is_empty() {
        return Parallelism::Refuse { pods };
    }
    if requested > nodes {
        return Parallelism::Lower {
            to: nodes,
            why: format!("only {nodes} node(s) selected"),
        };
    }
    Parallelism::Keep(requested)
}

/// kubectl's closing lines after `There are pending nodes to be drained:`: drain returns the
/// aggregate of the failed nodes' aggregated errors, and kubectl's `CheckErr` unwraps an
/// aggregate of one and prints an aggregate one error per line, without an `error: ` prefix.
/// So one failed node prints each of its errors on its own line; several nodes print one line
/// per node, each that node's aggregate (`[a, b]` when it has several).
pub fn closing_error_lines(failed_nodes: &[Vec<String>]) -> Vec<String> {
    match failed_nodes {
        [one] => one.clone(),
        many => many.iter().filter_map(|errs| aggregate(errs)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use proptest::prelude::*;

    use super::*;
    use crate::drain::eviction::EvictionVersion;
    use crate::drain::testing::{NodeBuilder, PodBuilder, now, pdb};

    fn pods() -> Vec<Pod> {
        vec![
            PodBuilder::new("app", "web-1")
                .rs("web")
                .label("app", "web")
                .requests("1", "1Gi")
                .build(),
            PodBuilder::new("app", "web-2")
                .rs("web")
                .label("app", "web")
                .requests("1", "1Gi")
                .build(),
            PodBuilder::new("kube-system", "kube-proxy-x")
                .ds("kube-proxy")
                .build(),
            PodBuilder::new("kube-system", "etcd-node1")
                .mirror()
                .build(),
            PodBuilder::new("app", "bare").build(),
            PodBuilder::new("app", "job-done")
                .owned("batch/v1", "Job", "j")
                .phase("Succeeded")
                .build(),
            PodBuilder::new("app", "cache")
                .rs("cache")
                .empty_dir()
                .build(),
        ]
    }

    fn snapshot(pdbs: Vec<PodDisruptionBudget>) -> ClusterSnapshot {
        let mut ds = BTreeMap::new();
        ds.insert(
            ("kube-system".to_owned(), "kube-proxy".to_owned()),
            DaemonSetLookup::Found,
        );
        ClusterSnapshot {
            nodes: vec![
                NodeBuilder::new("node1").build(),
                NodeBuilder::new("node2").alloc("1500m", "4Gi").build(),
                NodeBuilder::new("cp")
                    .taint("node-role.kubernetes.io/control-plane", None, "NoSchedule")
                    .build(),
            ],
            pods: pods(),
            pdbs,
            pdb_semantics: SelectorSemantics::V1,
            daemonsets: ds,
            volumes: VolumeAffinity::new(),
        }
    }

    fn options(force: bool, ignore: bool, emptydir: bool) -> DrainOptions {
        DrainOptions {
            filters: FilterOptions {
                force,
                ignore_daemonsets: ignore,
                delete_emptydir_data: emptydir,
                skip_wait_for_delete_timeout_seconds: 0,
            },
            method: RemovalMethod::Evict(EvictionVersion::V1),
            dry_run: None,
        }
    }

    fn target() -> Vec<NodeTarget> {
        vec![NodeTarget {
            name: "node1".into(),
            pods: pods(),
        }]
    }

    #[test]
    fn default_flags_fail_the_node_before_eviction() {
        let plan = plan_drain(
            &snapshot(vec![]),
            &target(),
            &options(false, false, false),
            now(),
        );
        let n = &plan.nodes[0];
        assert_eq!(n.verdict, NodeVerdict::FilterErrors);
        assert_eq!(
            n.errors,
            vec![
                "cannot delete Pods declare no controller (use --force to override): app/bare",
                "cannot delete Pods with local storage (use --delete-emptydir-data to override): app/cache",
                "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): kube-system/kube-proxy-x",
            ]
        );
        assert!(plan.has_filter_errors());
    }

    #[test]
    fn full_plan_with_flags() {
        let budget = pdb(
            "app",
            "web-pdb",
            "web",
            None,
            Some(IntOrString::Int(1)),
            (1, 2, 1, 2),
        );
        let plan = plan_drain(
            &snapshot(vec![budget]),
            &target(),
            &options(true, true, true),
            now(),
        );
        let n = &plan.nodes[0];
        let actions: Vec<(String, PodAction, String)> = n
            .pods
            .iter()
            .map(|p| (p.pod.to_string(), p.action, p.reason.clone()))
            .collect();
        assert_eq!(
            actions,
            vec![
                (
                    "app/bare".into(),
                    PodAction::Evict,
                    "deleting Pods that declare no controller".into()
                ),
                (
                    "app/cache".into(),
                    PodAction::Evict,
                    "managed by ReplicaSet/cache".into()
                ),
                (
                    "app/job-done".into(),
                    PodAction::Evict,
                    "finished pod (Succeeded)".into()
                ),
                (
                    "app/web-1".into(),
                    PodAction::Evict,
                    "managed by ReplicaSet/web".into()
                ),
                (
                    "app/web-2".into(),
                    PodAction::Evict,
                    "managed by ReplicaSet/web".into()
                ),
                (
                    "kube-system/etcd-node1".into(),
                    PodAction::Skip,
                    "mirror pod of a static pod (managed by the kubelet)".into()
                ),
                (
                    "kube-system/kube-proxy-x".into(),
                    PodAction::Skip,
                    "ignoring DaemonSet-managed Pods".into()
                ),
            ]
        );
        assert_eq!(
            n.warnings,
            "deleting Pods that declare no controller: app/bare; ignoring DaemonSet-managed Pods: kube-system/kube-proxy-x"
        );
        assert_eq!(n.pods[1].notes, vec!["deleting Pods with local storage"]);
        // web-1 and web-2 share a budget allowing 1: paced, not blocked.
        assert_eq!(n.pdb_blockers.len(), 1);
        assert_eq!(n.pdb_blockers[0].kind, BlockerKind::Paced);
        // cache (no requests) and web-1 fit on node2; web-2 does not (cp is tainted).
        let placed: Vec<_> = n
            .pods
            .iter()
            .filter_map(|p| p.placement.clone().map(|pl| (p.pod.name.clone(), pl)))
            .collect();
        assert_eq!(placed.len(), 3, "bare and finished pods are not recreated");
        assert_eq!(
            placed[1],
            (
                "web-1".into(),
                Placement::Fits {
                    node: "node2".into()
                }
            )
        );
        assert!(matches!(placed[2].1, Placement::NoFit { .. }));
        // web-2 is under a budget that only frees when a replacement is healthy, and its
        // replacement fits nowhere: a deadlock.
        assert_eq!(n.verdict, NodeVerdict::PdbDeadlock);
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["nodes"][0]["pods"][3]["pdb"]["kind"], "allowed");
        assert_eq!(json["options"]["method"]["version"], "policy/v1");
    }

    #[test]
    fn deadlock_and_delete_mode() {
        let never = pdb(
            "app",
            "web-pdb",
            "web",
            Some(IntOrString::Int(2)),
            None,
            (0, 2, 2, 2),
        );
        let plan = plan_drain(
            &snapshot(vec![never.clone()]),
            &target(),
            &options(true, true, true),
            now(),
        );
        assert_eq!(plan.nodes[0].verdict, NodeVerdict::PdbDeadlock);
        let mut o = options(true, true, true);
        o.method = RemovalMethod::Delete;
        let plan = plan_drain(&snapshot(vec![never]), &target(), &o, now());
        assert!(
            plan.nodes[0].pdb_blockers.is_empty(),
            "DELETE bypasses PDBs"
        );
        assert!(
            plan.nodes[0]
                .pods
                .iter()
                .all(|p| p.action != PodAction::Evict && p.pdb.is_none())
        );
    }

    proptest! {
        /// The plan does not depend on the order pods are listed in, and pods with filter
        /// errors are never removed.
        #[test]
        fn deterministic(perm in Just(pods()).prop_shuffle(), force in any::<bool>(), ignore in any::<bool>(), emptydir in any::<bool>()) {
            let o = options(force, ignore, emptydir);
            let budget = pdb("app", "web-pdb", "web", None, Some(IntOrString::Int(1)), (1, 2, 1, 2));
            let a = plan_drain(&snapshot(vec![budget.clone()]), &target(), &o, now());
            let b = plan_drain(&snapshot(vec![budget]), &[NodeTarget { name: "node1".into(), pods: perm }], &o, now());
            prop_assert_eq!(&a, &b);
            for n in &a.nodes {
                for p in &n.pods {
                    if p.pod.name == "etcd-node1" { prop_assert_eq!(p.action, PodAction::Skip); }
                }
                prop_assert_eq!(n.errors.is_empty(), n.pods.iter().all(|p| p.action != PodAction::Error));
                if !n.errors.is_empty() { prop_assert_eq!(n.verdict, NodeVerdict::FilterErrors); }
            }
        }
    }

    #[test]
    fn lines() {
        let p = PodRef {
            namespace: "ns".into(),
            name: "p".into(),
            uid: String::new(),
        };
        assert_eq!(evicting_line(&p, None), "evicting pod ns/p");
        assert_eq!(
            evicting_line(&p, Some(DryRun::Server)),
            "evicting pod ns/p (server dry run)"
        );
        assert_eq!(
            removed_line(&p, RemovalMethod::Evict(EvictionVersion::V1beta1)),
            "pod/p evicted"
        );
        assert_eq!(
            drained_line("n", Some(DryRun::Client)),
            "node/n drained (dry run)"
        );
        assert_eq!(
            node_failed_line("n", &["x".into()]),
            "error: unable to drain node \"n\" due to error:x, continuing command..."
        );
        assert_eq!(
            node_failed_line("n", &["a".into(), "b".into()]),
            "error: unable to drain node \"n\" due to error:[a, b], continuing command..."
        );
    }

    #[test]
    fn parallelism_decisions() {
        let node = |name: &str, placements: &[Option<Placement>]| NodePlan {
            node: name.into(),
            found: true,
            cordoned_before: false,
            cordon_owner: None,
            pods: placements
                .iter()
                .enumerate()
                .map(|(i, pl)| PodPlan {
                    pod: PodRef {
                        namespace: "ns".into(),
                        name: format!("{name}-p{i}"),
                        uid: String::new(),
                    },
                    action: PodAction::Evict,
                    reason: String::new(),
                    decided_by: FilterName::Unreplicated,
                    notes: vec![],
                    controller: None,
                    pdb: None,
                    placement: pl.clone(),
                })
                .collect(),
            errors: vec![],
            error: None,
            warnings: String::new(),
            pdb_blockers: vec![],
            verdict: NodeVerdict::Ready,
        };
        let fits = Some(Placement::Fits { node: "w9".into() });
        let nofit = Some(Placement::NoFit {
            reason: "0/3 nodes are available: 3 Insufficient cpu.".into(),
        });
        let plan = |nodes: Vec<NodePlan>| DrainPlan {
            options: DrainOptions {
                filters: FilterOptions::default(),
                method: RemovalMethod::Delete,
                dry_run: None,
            },
            nodes,
            capacity: CapacityReport { pods: vec![] },
        };
        let fit_all = plan(vec![
            node("a", std::slice::from_ref(&fits)),
            node("b", &[fits.clone(), None]),
        ]);
        assert_eq!(parallelism(&fit_all, 1), Parallelism::Keep(1));
        assert_eq!(parallelism(&fit_all, 2), Parallelism::Keep(2));
        assert_eq!(
            parallelism(&fit_all, 4),
            Parallelism::Lower {
                to: 2,
                why: "only 2 node(s) selected".into()
            }
        );
        let short = plan(vec![
            node("a", std::slice::from_ref(&fits)),
            node("b", std::slice::from_ref(&nofit)),
        ]);
        // One at a time is kubectl's behaviour: the preflight names the pod, the drain goes on.
        assert_eq!(parallelism(&short, 1), Parallelism::Keep(1));
        assert_eq!(
            parallelism(&short, 2),
            Parallelism::Refuse {
                pods: vec![(
                    PodRef {
                        namespace: "ns".into(),
                        name: "b-p0".into(),
                        uid: String::new()
                    },
                    "0/3 nodes are available: 3 Insufficient cpu.".into()
                )]
            }
        );
    }

    #[test]
    fn node_order_table() {
        use crate::drain::config::NodeOrder;
        use crate::drain::pdb::{BlockerKind, PdbBlocker};
        let node = |name: &str, pods: usize, blockers: &[BlockerKind]| NodePlan {
            node: name.into(),
            found: true,
            cordoned_before: false,
            cordon_owner: None,
            pods: (0..pods)
                .map(|i| PodPlan {
                    pod: PodRef {
                        namespace: "ns".into(),
                        name: format!("{name}-p{i}"),
                        uid: String::new(),
                    },
                    action: PodAction::Evict,
                    reason: String::new(),
                    decided_by: FilterName::Unreplicated,
                    notes: vec![],
                    controller: None,
                    pdb: None,
                    placement: None,
                })
                .collect(),
            errors: vec![],
            error: None,
            warnings: String::new(),
            pdb_blockers: blockers
                .iter()
                .map(|&kind| PdbBlocker {
                    kind,
                    pdbs: vec!["ns/x".into()],
                    pods: vec![],
                    explanation: String::new(),
                })
                .collect(),
            verdict: NodeVerdict::Ready,
        };
        let plan = DrainPlan {
            options: DrainOptions {
                filters: FilterOptions::default(),
                method: RemovalMethod::Delete,
                dry_run: None,
            },
            nodes: vec![
                // A paced budget is normal operation, not a blocker; work is the tie-breaker.
                node("c", 3, &[BlockerKind::Paced]),
                node("b", 1, &[BlockerKind::NoDisruptionsNow]),
                node("a", 2, &[]),
                node("d", 1, &[]),
                node("e", 0, &[BlockerKind::NoDisruptionsNow, BlockerKind::Stale]),
            ],
            capacity: CapacityReport { pods: vec![] },
        };
        let cases = [
            (NodeOrder::Given, vec![0, 1, 2, 3, 4]),
            (NodeOrder::Name, vec![2, 1, 0, 3, 4]),
            // Fewest blocking budgets, then fewest pods to remove, then by name.
            (NodeOrder::LeastBlocked, vec![3, 2, 0, 1, 4]),
        ];
        for (order, want) in cases {
            assert_eq!(node_order(&plan, order), want, "{order:?}");
        }
    }

    #[test]
    fn closing_lines_follow_kubectls_check_err() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases: Vec<(Vec<Vec<String>>, Vec<String>)> = vec![
            (vec![], vec![]),
            // One node: each of its errors on its own line, no prefix.
            (vec![v(&["a"])], v(&["a"])),
            (vec![v(&["a", "b", "c"])], v(&["a", "b", "c"])),
            // Several nodes: one line per node, its errors aggregated.
            (vec![v(&["a"]), v(&["b", "c"])], v(&["a", "[b, c]"])),
            // Go's aggregate drops repeated messages.
            (vec![v(&["a", "a"]), v(&["b"])], v(&["a", "b"])),
        ];
        for (nodes, want) in cases {
            assert_eq!(closing_error_lines(&nodes), want, "{nodes:?}");
        }
    }
}
