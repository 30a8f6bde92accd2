//! The order nodes are drained in and how many at once, decided from the plan before any
//! change.

use super::DrainPlan;
use crate::drain::PodRef;
use crate::drain::capacity::Placement;
use crate::drain::config::NodeOrder;
use crate::drain::pdb::BlockerKind;

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
