//! Node drain decisions: kubectl's pod filters, PDB math, capacity preflight, eviction
//! request/response handling and cordon bookkeeping, all as pure functions.
//!
//! The I/O edge (the `kubemaint` binary) lists objects, feeds them in here with the current
//! time, and executes the resulting [`plan::DrainPlan`]. Behaviour that must match
//! `kubectl drain` follows `k8s.io/kubectl/pkg/drain` (filters.go, drain.go, cordon.go); where we
//! deliberately differ it is said in the item's docs.

pub mod capacity;
pub mod config;
pub mod cordon;
pub mod eviction;
pub mod filters;
pub mod gate;
pub mod interpod;
pub mod node_selection;
pub mod pdb;
pub mod plan;
pub mod quantity;
pub mod report;
pub mod stuck;

#[cfg(test)]
pub(crate) mod testing;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::Serialize;

/// Annotation the kubelet puts on mirror pods of static pods (`corev1.MirrorPodAnnotationKey`).
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Identity of a pod as printed by kubectl (`namespace/name`) plus its UID.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PodRef {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod UID (empty when the object carried none, e.g. in hand-written fixtures).
    pub uid: String,
}

impl PodRef {
    /// Builds the reference of `pod`.
    pub fn of(pod: &Pod) -> Self {
        PodRef {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The owner reference with `controller: true`, as `metav1.GetControllerOf` returns it.
pub fn controller_of(pod: &Pod) -> Option<&OwnerReference> {
    pod.metadata
        .owner_references
        .as_deref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether the pod reached a terminal phase (`Succeeded` or `Failed`).
pub fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether the controller reference names an `apps/v1` DaemonSet.
///
/// Current kubectl (since kubectl commit `6323c5bc5`) checks kind **and** apiVersion, so a
/// third-party `DaemonSet` kind (e.g. OpenKruise) is treated like any other controller.
/// kubectl 1.27 compared the kind only; we follow the newer, fixed rule.
pub fn is_daemonset_ref(r: &OwnerReference) -> bool {
    r.kind == "DaemonSet" && r.api_version == "apps/v1"
}

/// Whether the pod is the mirror of a static pod.
pub fn is_mirror_pod(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION))
}

/// Whether the pod is Ready (condition `Ready=True`).
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
