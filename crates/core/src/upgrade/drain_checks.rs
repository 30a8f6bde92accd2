//! The drain's own preflight for an upgrade: every kubelet upgrade drains its node, so the
//! budgets that would block a drain and the room the other nodes have for a drained node's
//! pods are judged before anything is touched.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Serialize;

use super::preflight::{Check, Status, list};
use crate::drain::capacity::{CapacityBase, Placement, VolumeAffinity, pod_requests};
use crate::drain::pdb::{BlockerKind, SelectorSemantics, node_blockers};
use crate::drain::{controller_of, is_daemonset_ref, is_finished, is_mirror_pod};

/// A PDB problem for draining one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrainBlocker {
    /// The node.
    pub node: String,
    /// The drain core's explanation.
    pub explanation: String,
    /// Whether it can never resolve by waiting (deadlock PDB, several PDBs over one pod).
    pub permanent: bool,
}

/// Drain blockers: permanent ones fail (every kubelet upgrade drains its node), temporary ones
/// warn.
pub fn check_drain(nodes_checked: usize, blockers: &[DrainBlocker]) -> Check {
    if blockers.is_empty() {
        return Check::pass(
            "drain-pdb",
            format!("no PodDisruptionBudget blocks draining any of {nodes_checked} node(s)"),
        );
    }
    let permanent: Vec<String> = blockers
        .iter()
        .filter(|b| b.permanent)
        .map(|b| format!("{}: {}", b.node, b.explanation))
        .collect();
    let temporary: Vec<String> = blockers
        .iter()
        .filter(|b| !b.permanent)
        .map(|b| format!("{}: {}", b.node, b.explanation))
        .collect();
    if !permanent.is_empty() {
        Check::new(
            "drain-pdb",
            Status::Fail,
            format!("draining would hang: {}", list(&permanent)),
            Some("fix the budgets (scale up, relax minAvailable/maxUnavailable, remove overlapping PDBs) before upgrading kubelets".into()),
        )
    } else {
        Check::new(
            "drain-pdb",
            Status::Warn,
            format!("draining would wait: {}", list(&temporary)),
            Some("wait for the workloads to become healthy, or expect slow drains".into()),
        )
    }
}

/// Whether a drain removes the pod (not a mirror pod, not a DaemonSet pod, not finished).
fn drained(pod: &Pod) -> bool {
    !is_mirror_pod(pod) && !is_finished(pod) && !controller_of(pod).is_some_and(is_daemonset_ref)
}

/// The drain's PDB preflight for every node: the pods a drain would evict (not mirror pods,
/// not DaemonSet pods, not finished) judged against the PDBs of their namespace.
pub fn drain_blockers(
    nodes: &[Node],
    pods: &[Pod],
    pdbs: &[PodDisruptionBudget],
    sem: SelectorSemantics,
) -> Vec<DrainBlocker> {
    let mut pdbs_by_ns: HashMap<&str, Vec<PodDisruptionBudget>> = HashMap::new();
    for pdb in pdbs {
        pdbs_by_ns
            .entry(pdb.metadata.namespace.as_deref().unwrap_or(""))
            .or_default()
            .push(pdb.clone());
    }
    // node → namespace → pods to evict (only namespaces that have PDBs matter).
    let mut per_node: HashMap<&str, BTreeMap<&str, Vec<&Pod>>> = HashMap::new();
    for pod in pods {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        if !pdbs_by_ns.contains_key(ns) || !drained(pod) {
            continue;
        }
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            per_node
                .entry(node)
                .or_default()
                .entry(ns)
                .or_default()
                .push(pod);
        }
    }
    let mut out = Vec::new();
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let Some(namespaces) = per_node.get(name) else {
            continue;
        };
        for (ns, pods) in namespaces {
            for blocker in node_blockers(pods, &pdbs_by_ns[ns], sem) {
                let permanent = match blocker.kind {
                    BlockerKind::MultiplePdbs | BlockerKind::NeverAllows => true,
                    BlockerKind::NoDisruptionsNow | BlockerKind::Stale => false,
                    BlockerKind::Paced => continue,
                };
                out.push(DrainBlocker {
                    node: name.to_string(),
                    explanation: blocker.explanation,
                    permanent,
                });
            }
        }
    }
    out
}

/// Up to this many nodes, the drain of every node is checked for capacity; above it, the
/// [`HEAVIEST`] nodes by CPU requests, by memory requests and by pod count (the drains most
/// likely to find no room; each simulated drain places its pods by first fit over every node).
pub const EVERY_NODE_UP_TO: usize = 100;
/// How many of the heaviest nodes per measure are checked above [`EVERY_NODE_UP_TO`].
pub const HEAVIEST: usize = 5;

/// One drained node whose pods would not all find room on the other nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapacityShortfall {
    /// The drained node.
    pub node: String,
    /// `namespace/pod: reason` for each pod that fits nowhere.
    pub pods: Vec<String>,
}

/// What the capacity preflight looked at and found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapacityFacts {
    /// Nodes whose drain was simulated, in the order checked.
    pub checked: Vec<String>,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Drains that leave pods without a place.
    pub shortfalls: Vec<CapacityShortfall>,
}

/// Simulates draining one node at a time (the pods a drain removes that a controller
/// recreates, placed by the drain's own capacity preflight on every other node) for every node
/// of a small cluster, or for the heaviest nodes of a big one (see [`EVERY_NODE_UP_TO`]).
pub fn drain_capacity(nodes: &[Node], pods: &[Pod], volumes: &VolumeAffinity) -> CapacityFacts {
    // node → pods a drain moves (recreated by their controller elsewhere).
    let mut moving: HashMap<&str, Vec<&Pod>> = HashMap::new();
    for pod in pods {
        if !drained(pod) || controller_of(pod).is_none() {
            continue;
        }
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            moving.entry(node).or_default().push(pod);
        }
    }
    let names: Vec<&str> = nodes
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    let checked: Vec<&str> = if names.len() <= EVERY_NODE_UP_TO {
        names.clone()
    } else {
        heaviest(&names, &moving)
    };
    let mut shortfalls = Vec::new();
    // What every node hosts is computed once; each simulated drain starts from it.
    let base = CapacityBase::new(nodes, pods);
    for name in &checked {
        let Some(to_place) = moving.get(name) else {
            continue;
        };
        let excluded = BTreeSet::from([name.to_string()]);
        let report = base.check(to_place, volumes, &excluded);
        let short: Vec<String> = report
            .pods
            .iter()
            .filter_map(|p| match &p.placement {
                Placement::Fits { .. } => None,
                Placement::NoFit { reason } => Some(format!("{}: {reason}", p.pod)),
                Placement::Invalid { error } => Some(format!("{}: {error}", p.pod)),
            })
            .collect();
        if !short.is_empty() {
            shortfalls.push(CapacityShortfall {
                node: name.to_string(),
                pods: short,
            });
        }
    }
    CapacityFacts {
        checked: checked.iter().map(|n| n.to_string()).collect(),
        nodes: names.len(),
        shortfalls,
    }
}

/// The [`HEAVIEST`] nodes by CPU requests, memory requests and pod count of what a drain
/// moves, without repeats, heaviest first, ties by name.
fn heaviest<'a>(names: &[&'a str], moving: &HashMap<&str, Vec<&Pod>>) -> Vec<&'a str> {
    // Per node: [CPU milli, memory milli-bytes, pod count] of what its drain moves.
    let totals: Vec<(&str, [i128; 3])> = names
        .iter()
        .map(|name| {
            let pods = moving.get(name).map(Vec::as_slice).unwrap_or_default();
            let mut weight = [0, 0, pods.len() as i128];
            for pod in pods {
                if let Ok(req) = pod_requests(pod) {
                    weight[0] += req.get("cpu").copied().unwrap_or(0);
                    weight[1] += req.get("memory").copied().unwrap_or(0);
                }
            }
            (*name, weight)
        })
        .collect();
    let mut out: Vec<&str> = Vec::new();
    for measure in 0..3 {
        let mut order: Vec<&(&str, [i128; 3])> =
            totals.iter().filter(|t| t.1[measure] > 0).collect();
        order.sort_by(|a, b| b.1[measure].cmp(&a.1[measure]).then(a.0.cmp(b.0)));
        for (name, _) in order.into_iter().take(HEAVIEST) {
            if !out.contains(name) {
                out.push(name);
            }
        }
    }
    out
}

/// The capacity verdict: a drained node whose pods fit nowhere fails (the drain would wait on
/// pods that stay Pending, and budgets over them never free).
pub fn check_capacity_for_drain(facts: &CapacityFacts) -> Check {
    let scope = if facts.checked.len() == facts.nodes {
        format!("draining any one of {} node(s)", facts.nodes)
    } else {
        format!(
            "draining any one of the {} heaviest of {} nodes ({})",
            facts.checked.len(),
            facts.nodes,
            list(&facts.checked)
        )
    };
    if facts.shortfalls.is_empty() {
        return Check::pass(
            "drain-capacity",
            format!("the other nodes have room for the pods of {scope}"),
        );
    }
    let lines: Vec<String> = facts
        .shortfalls
        .iter()
        .map(|s| format!("{} ({})", s.node, list(&s.pods)))
        .collect();
    Check::new(
        "drain-capacity",
        Status::Fail,
        format!("no room on the other nodes when draining {}", list(&lines)),
        Some("add a node or free requests before upgrading kubelets (each kubelet upgrade drains its node)".into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drain::testing::{NodeBuilder, PodBuilder, pdb};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    #[test]
    fn drain_blockers_per_node() {
        let nodes = vec![
            NodeBuilder::new("w1").build(),
            NodeBuilder::new("w2").build(),
        ];
        let pods = vec![
            PodBuilder::new("db", "db-0")
                .on("w1")
                .label("app", "db")
                .rs("db")
                .build(),
            PodBuilder::new("web", "web-0")
                .on("w2")
                .label("app", "web")
                .rs("web")
                .build(),
            // DaemonSet and mirror pods are not evicted by a drain: never blockers.
            PodBuilder::new("db", "agent")
                .on("w2")
                .label("app", "db")
                .ds("agent")
                .build(),
            PodBuilder::new("db", "static")
                .on("w2")
                .label("app", "db")
                .mirror()
                .build(),
        ];
        let budgets = vec![
            // maxUnavailable 0: a deadlock whatever the scale.
            pdb(
                "db",
                "db-pdb",
                "db",
                None,
                Some(IntOrString::Int(0)),
                (0, 1, 1, 1),
            ),
            // Healthy budget with room: no blocker.
            pdb(
                "web",
                "web-pdb",
                "web",
                None,
                Some(IntOrString::Int(1)),
                (1, 2, 1, 2),
            ),
        ];
        let found = drain_blockers(&nodes, &pods, &budgets, SelectorSemantics::V1);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].node, "w1");
        assert!(found[0].permanent);
        assert!(
            found[0].explanation.contains("db/db-pdb"),
            "{}",
            found[0].explanation
        );
        assert_eq!(check_drain(2, &found).status, Status::Fail);
    }

    #[test]
    fn drain_verdicts() {
        assert_eq!(check_drain(3, &[]).status, Status::Pass);
        let temp = DrainBlocker {
            node: "w1".into(),
            explanation: "PDB x allows 0".into(),
            permanent: false,
        };
        assert_eq!(
            check_drain(3, std::slice::from_ref(&temp)).status,
            Status::Warn
        );
        let perm = DrainBlocker {
            permanent: true,
            ..temp.clone()
        };
        assert_eq!(check_drain(3, &[temp, perm]).status, Status::Fail);
    }

    fn web(name: &str, node: &str, cpu: &str) -> Pod {
        PodBuilder::new("web", name)
            .on(node)
            .rs("web")
            .requests(cpu, "100Mi")
            .build()
    }

    #[test]
    fn capacity_for_one_drained_node() {
        // Three 2-CPU workers, 1.5 CPU used on each: the pods of any one fit nowhere else.
        let nodes: Vec<Node> = ["w1", "w2", "w3"]
            .iter()
            .map(|n| NodeBuilder::new(n).alloc("2", "8Gi").build())
            .collect();
        let full: Vec<Pod> = ["w1", "w2", "w3"]
            .iter()
            .map(|n| web(&format!("web-{n}"), n, "1500m"))
            .collect();
        let facts = drain_capacity(&nodes, &full, &VolumeAffinity::new());
        assert_eq!(facts.checked, ["w1", "w2", "w3"]);
        assert_eq!(facts.shortfalls.len(), 3);
        assert!(
            facts.shortfalls[0].pods[0].contains("web/web-w1")
                && facts.shortfalls[0].pods[0].contains("Insufficient cpu"),
            "{:?}",
            facts.shortfalls
        );
        let check = check_capacity_for_drain(&facts);
        assert_eq!(check.status, Status::Fail);
        assert!(
            check.message.contains("w1 (web/web-w1"),
            "{}",
            check.message
        );

        // 0.5 CPU each: any one node's pods fit on the others.
        let light: Vec<Pod> = ["w1", "w2", "w3"]
            .iter()
            .map(|n| web(&format!("web-{n}"), n, "500m"))
            .collect();
        let facts = drain_capacity(&nodes, &light, &VolumeAffinity::new());
        assert!(facts.shortfalls.is_empty(), "{:?}", facts.shortfalls);
        assert_eq!(check_capacity_for_drain(&facts).status, Status::Pass);

        // DaemonSet, mirror and bare pods do not move: they never need room.
        let stay = vec![
            PodBuilder::new("kube-system", "proxy")
                .on("w1")
                .ds("proxy")
                .requests("1900m", "1Gi")
                .build(),
            PodBuilder::new("kube-system", "static")
                .on("w2")
                .mirror()
                .requests("1900m", "1Gi")
                .build(),
            PodBuilder::new("default", "bare")
                .on("w3")
                .requests("1900m", "1Gi")
                .build(),
        ];
        let facts = drain_capacity(&nodes, &stay, &VolumeAffinity::new());
        assert!(facts.shortfalls.is_empty(), "{:?}", facts.shortfalls);
    }

    #[test]
    fn big_clusters_check_the_heaviest_nodes() {
        let n = EVERY_NODE_UP_TO + 20;
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                NodeBuilder::new(&format!("n{i:03}"))
                    .alloc("4", "8Gi")
                    .build()
            })
            .collect();
        let mut pods: Vec<Pod> = (0..n)
            .map(|i| web(&format!("p{i}"), &format!("n{i:03}"), "100m"))
            .collect();
        // n007 holds the most CPU; n050 the most pods.
        pods.push(web("big", "n007", "3"));
        for k in 0..4 {
            pods.push(web(&format!("many-{k}"), "n050", "10m"));
        }
        let facts = drain_capacity(&nodes, &pods, &VolumeAffinity::new());
        assert_eq!(facts.nodes, n);
        assert!(facts.checked.len() <= 3 * HEAVIEST, "{:?}", facts.checked);
        assert_eq!(facts.checked[0], "n007");
        assert!(facts.checked.contains(&"n050".to_string()));
        let check = check_capacity_for_drain(&facts);
        assert_eq!(check.status, Status::Pass);
        assert!(check.message.contains("heaviest"), "{}", check.message);
    }
}
