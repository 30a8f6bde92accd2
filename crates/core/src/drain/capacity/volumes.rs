//! The node affinity of bound persistent volumes: a pod using a claim bound to a local volume
//! or a zonal disk can only run where that volume's node affinity matches.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelector, PersistentVolume, PersistentVolumeClaim, Pod,
};

use crate::drain::node_selection::term_matches;

/// Required node affinity of the persistent volume bound to each claim `(namespace, claim)`
/// (local volumes, zonal disks): a pod using the claim can only run where it matches.
pub type VolumeAffinity = BTreeMap<(String, String), NodeSelector>;

/// Resolves claims to the node affinity of their bound volumes (claims not bound, or bound to
/// volumes without node affinity, are left out: they constrain nothing here).
pub fn volume_node_affinity(
    claims: &[PersistentVolumeClaim],
    volumes: &[PersistentVolume],
) -> VolumeAffinity {
    let by_name: BTreeMap<&str, &PersistentVolume> = volumes
        .iter()
        .filter_map(|v| Some((v.metadata.name.as_deref()?, v)))
        .collect();
    claims
        .iter()
        .filter_map(|c| {
            let pv = by_name.get(c.spec.as_ref()?.volume_name.as_deref()?)?;
            let selector = pv.spec.as_ref()?.node_affinity.as_ref()?.required.clone()?;
            Some((
                (
                    c.metadata.namespace.clone().unwrap_or_default(),
                    c.metadata.name.clone().unwrap_or_default(),
                ),
                selector,
            ))
        })
        .collect()
}

/// Whether every bound volume of the pod allows the node.
pub(super) fn volumes_allow(pod: &Pod, node: &Node, volumes: &VolumeAffinity) -> bool {
    // Called for every candidate node: no key built when no volume is pinned.
    if volumes.is_empty() {
        return true;
    }
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .filter_map(|c| volumes.get(&(ns.clone(), c.claim_name.clone())))
        .all(|sel| {
            sel.node_selector_terms
                .iter()
                .any(|t| term_matches(t, node))
        })
}
