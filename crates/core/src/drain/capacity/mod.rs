//! Capacity preflight: can the remaining schedulable nodes host the pods a drain evicts?
//!
//! A simplified kube-scheduler filter pass: node `spec.unschedulable`, `NoSchedule`/`NoExecute`
//! taints vs tolerations, `nodeSelector`, required node affinity (`matchExpressions` with
//! In/NotIn/Exists/DoesNotExist/Gt/Lt and `matchFields` on `metadata.name`; these three in
//! [`super::node_selection`]) and resource
//! requests (incl. the `pods` count) against allocatable minus what is already requested.
//! Host ports and required pod affinity / anti-affinity (the pod's own terms and those of the
//! pods in place) and `DoNotSchedule` topology spread constraints are checked by
//! [`super::interpod`]; the node affinity of bound persistent volumes here. Placement is greedy
//! first-fit over nodes sorted by name; volume limits, unbound claims and scoring are not
//! modelled, so "fits" is necessary, not sufficient.

mod placement;
mod resources;
#[cfg(test)]
mod tests;
mod volumes;

use serde::Serialize;

use super::PodRef;
use super::interpod::InterPodUnfit;

pub use placement::{CapacityBase, UNSCHEDULABLE_TAINT, check_capacity};
pub use resources::{Resources, node_allocatable, pod_requests};
pub use volumes::{VolumeAffinity, volume_node_affinity};

/// Why a pod does not fit a node, worded like the kube-scheduler's `FailedScheduling` reasons.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Unfit {
    /// The node is being drained by this plan.
    Draining,
    /// `spec.unschedulable` without a matching toleration.
    Unschedulable,
    /// A NoSchedule/NoExecute taint is not tolerated.
    Taint {
        /// `key=value:effect`.
        taint: String,
    },
    /// `nodeSelector` or required node affinity does not match.
    Selection,
    /// A requested host port is taken.
    HostPorts,
    /// A bound persistent volume's node affinity excludes the node.
    VolumeNodeAffinity,
    /// Not enough of a resource left.
    Insufficient {
        /// Resource name.
        resource: String,
    },
    /// A required pod affinity term has no matching pod in the node's topology domain.
    PodAffinity,
    /// A required pod anti-affinity term matches a pod in the node's topology domain.
    PodAntiAffinity,
    /// A pod in the node's topology domain has required anti-affinity against this pod.
    ExistingPodsAntiAffinity,
    /// A `DoNotSchedule` topology spread constraint would be exceeded.
    TopologySpread,
    /// The node's allocatable could not be read.
    BadNode {
        /// The parse error.
        error: String,
    },
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfit::Draining => write!(f, "node(s) being drained"),
            Unfit::Unschedulable => write!(f, "node(s) were unschedulable"),
            Unfit::Taint { taint } => write!(f, "node(s) had untolerated taint {{{taint}}}"),
            Unfit::Selection => write!(f, "node(s) didn't match Pod's node affinity/selector"),
            Unfit::HostPorts => write!(f, "{}", InterPodUnfit::HostPorts),
            Unfit::VolumeNodeAffinity => write!(f, "node(s) had volume node affinity conflict"),
            Unfit::PodAffinity => write!(f, "{}", InterPodUnfit::PodAffinity),
            Unfit::PodAntiAffinity => write!(f, "{}", InterPodUnfit::PodAntiAffinity),
            Unfit::ExistingPodsAntiAffinity => {
                write!(f, "{}", InterPodUnfit::ExistingPodsAntiAffinity)
            }
            Unfit::TopologySpread => write!(f, "{}", InterPodUnfit::TopologySpread),
            Unfit::Insufficient { resource } if resource == "pods" => write!(f, "Too many pods"),
            Unfit::Insufficient { resource } => write!(f, "Insufficient {resource}"),
            Unfit::BadNode { error } => write!(f, "node(s) with unreadable allocatable ({error})"),
        }
    }
}

/// Where a pod would go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Placement {
    /// First node that fits.
    Fits {
        /// Node name.
        node: String,
    },
    /// No node fits; `reason` reads like the scheduler's
    /// `0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu.`
    NoFit {
        /// Summary line.
        reason: String,
    },
    /// The pod's requests could not be read.
    Invalid {
        /// The parse error.
        error: String,
    },
}

/// Placement verdict for one pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodPlacement {
    /// The pod.
    pub pod: PodRef,
    /// The verdict.
    pub placement: Placement,
}

/// Result of a capacity preflight.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CapacityReport {
    /// One entry per pod to place, in input order.
    pub pods: Vec<PodPlacement>,
}

impl From<InterPodUnfit> for Unfit {
    fn from(u: InterPodUnfit) -> Self {
        match u {
            InterPodUnfit::HostPorts => Unfit::HostPorts,
            InterPodUnfit::PodAffinity => Unfit::PodAffinity,
            InterPodUnfit::PodAntiAffinity => Unfit::PodAntiAffinity,
            InterPodUnfit::ExistingPodsAntiAffinity => Unfit::ExistingPodsAntiAffinity,
            InterPodUnfit::TopologySpread => Unfit::TopologySpread,
        }
    }
}
