//! Client-side PodDisruptionBudget evaluation, with the API server's eviction rules
//! (`pkg/registry/core/pod/storage/eviction.go`) and the disruption controller's arithmetic.
//!
//! The point is to say *before* evicting which budget will block which pod and why, including
//! budgets that can never allow an eviction at the current scale and pods covered by several
//! budgets (which the eviction subresource refuses with a 500).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Serialize;

use super::{PodRef, is_finished, is_ready};

mod budget;
mod selector;
#[cfg(test)]
mod tests;

pub use budget::{BudgetNumbers, budget_numbers, explain, never_allows, scaled_value};
pub use selector::{
    SelectorSemantics, label_selector_matches, pdb_key, pdb_selects, pdbs_for_pod, selector_string,
};

/// What the API server will do with an eviction of one pod, judged from the PDBs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PodPdbVerdict {
    /// No PDB covers the pod.
    NotCovered,
    /// The server deletes the pod without a PDB check (terminal, Pending or already deleting).
    Ignored {
        /// Why.
        reason: String,
    },
    /// More than one PDB covers the pod: the server answers 500 and never evicts it.
    MultiplePdbs {
        /// `namespace/name` of every covering PDB.
        pdbs: Vec<String>,
    },
    /// The pod is not Ready and the budget lets unhealthy pods go.
    UnhealthyAllowed {
        /// The PDB.
        pdb: String,
    },
    /// The budget currently allows at least one disruption.
    Allowed {
        /// The PDB.
        pdb: String,
        /// `status.disruptionsAllowed`.
        disruptions_allowed: i64,
    },
    /// The server will refuse (429) until the controller processed the PDB's latest spec.
    Stale {
        /// The PDB.
        pdb: String,
    },
    /// The budget allows no disruption now; eviction waits for pods to become healthy.
    Blocked {
        /// The PDB.
        pdb: String,
        /// Human explanation with numbers.
        explanation: String,
    },
    /// The budget can never allow an eviction at the current scale: the drain would hang.
    NeverAllowed {
        /// The PDB.
        pdb: String,
        /// Human explanation with numbers.
        explanation: String,
    },
}

/// The server's `canIgnorePDB`: terminal or Pending pods, and pods already being deleted.
pub fn can_ignore_pdb(pod: &Pod) -> Option<String> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Some("pod is already being deleted".to_owned());
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    match phase {
        Some(p @ ("Succeeded" | "Failed" | "Pending")) => Some(format!("pod phase is {p}")),
        _ if is_finished(pod) => Some("pod has finished".to_owned()),
        _ => None,
    }
}

/// Judges one pod's eviction against the PDBs, in the server's order: ignorable pods,
/// several PDBs, unhealthy-pod policy, stale status, then `disruptionsAllowed`.
pub fn evaluate_pod(
    pod: &Pod,
    pdbs: &[PodDisruptionBudget],
    sem: SelectorSemantics,
) -> PodPdbVerdict {
    if let Some(reason) = can_ignore_pdb(pod) {
        return PodPdbVerdict::Ignored { reason };
    }
    let covering = pdbs_for_pod(pod, pdbs, sem);
    let pdb = match covering.as_slice() {
        [] => return PodPdbVerdict::NotCovered,
        [one] => *one,
        many => {
            return PodPdbVerdict::MultiplePdbs {
                pdbs: many.iter().map(|p| pdb_key(p)).collect(),
            };
        }
    };
    let key = pdb_key(pdb);
    let n = budget_numbers(pdb);
    if !is_ready(pod) {
        let always = pdb
            .spec
            .as_ref()
            .and_then(|s| s.unhealthy_pod_eviction_policy.as_deref())
            == Some("AlwaysAllow");
        if always || (n.current_healthy >= n.desired_healthy && n.desired_healthy > 0) {
            return PodPdbVerdict::UnhealthyAllowed { pdb: key };
        }
    }
    if n.stale {
        return PodPdbVerdict::Stale { pdb: key };
    }
    if n.disruptions_allowed > 0 {
        return PodPdbVerdict::Allowed {
            pdb: key,
            disruptions_allowed: n.disruptions_allowed,
        };
    }
    if never_allows(pdb).is_some() {
        return PodPdbVerdict::NeverAllowed {
            pdb: key,
            explanation: explain(pdb),
        };
    }
    PodPdbVerdict::Blocked {
        pdb: key,
        explanation: explain(pdb),
    }
}

/// Kind of a drain blocker found in the PDBs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockerKind {
    /// Pods covered by several PDBs: eviction fails with a 500, always.
    MultiplePdbs,
    /// The PDB can never allow an eviction at the current scale.
    NeverAllows,
    /// The PDB allows no disruption right now.
    NoDisruptionsNow,
    /// The PDB status is stale; the server answers 429 until it is processed.
    Stale,
    /// More pods of this node are under the PDB than it allows at once: evictions are paced by
    /// replacements becoming healthy (not a deadlock).
    Paced,
}

/// A PDB problem affecting the drain of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PdbBlocker {
    /// What kind of problem.
    pub kind: BlockerKind,
    /// `namespace/name` of the PDB(s) involved.
    pub pdbs: Vec<String>,
    /// Pods of the node affected.
    pub pods: Vec<PodRef>,
    /// Human explanation.
    pub explanation: String,
}

/// Groups the PDB verdicts of the pods to evict from one node into blockers (sorted by kind,
/// then PDB name).
pub fn node_blockers(
    pods: &[&Pod],
    pdbs: &[PodDisruptionBudget],
    sem: SelectorSemantics,
) -> Vec<PdbBlocker> {
    let mut out: BTreeMap<(BlockerKind, Vec<String>), (Vec<PodRef>, String)> = BTreeMap::new();
    let mut per_pdb: BTreeMap<String, (i64, Vec<PodRef>, String)> = BTreeMap::new();
    for pod in pods {
        let v = evaluate_pod(pod, pdbs, sem);
        let (kind, keys, text) = match &v {
            PodPdbVerdict::MultiplePdbs { pdbs: keys } => (
                BlockerKind::MultiplePdbs,
                keys.clone(),
                format!(
                    "pod is covered by {} PodDisruptionBudgets ({}); the eviction API refuses such pods (HTTP 500). Remove the overlap or use --disable-eviction",
                    keys.len(),
                    keys.join(", ")
                ),
            ),
            PodPdbVerdict::NeverAllowed { pdb, explanation } => (
                BlockerKind::NeverAllows,
                vec![pdb.clone()],
                explanation.clone(),
            ),
            PodPdbVerdict::Blocked { pdb, explanation } => (
                BlockerKind::NoDisruptionsNow,
                vec![pdb.clone()],
                explanation.clone(),
            ),
            PodPdbVerdict::Stale { pdb } => (
                BlockerKind::Stale,
                vec![pdb.clone()],
                format!(
                    "PDB {pdb} has not been processed by the disruption controller yet; evictions are refused until it is"
                ),
            ),
            PodPdbVerdict::Allowed {
                pdb,
                disruptions_allowed,
            } => {
                let e = per_pdb.entry(pdb.clone()).or_insert_with(|| {
                    let p = pdbs.iter().find(|p| &pdb_key(p) == pdb);
                    (
                        *disruptions_allowed,
                        Vec::new(),
                        p.map(explain).unwrap_or_default(),
                    )
                });
                e.1.push(PodRef::of(pod));
                continue;
            }
            _ => continue,
        };
        out.entry((kind, keys))
            .or_insert_with(|| (Vec::new(), text))
            .0
            .push(PodRef::of(pod));
    }
    for (pdb, (allowed, pods, text)) in per_pdb {
        if i64::try_from(pods.len()).unwrap_or(i64::MAX) > allowed {
            let text = format!(
                "{text}; {} pods of this node are covered, so evictions proceed as replacements become healthy",
                pods.len()
            );
            out.insert((BlockerKind::Paced, vec![pdb]), (pods, text));
        }
    }
    out.into_iter()
        .map(|((kind, pdbs), (pods, explanation))| PdbBlocker {
            kind,
            pdbs,
            pods,
            explanation,
        })
        .collect()
}
