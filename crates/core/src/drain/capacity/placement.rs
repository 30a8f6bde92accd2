//! Greedy first-fit placement of the pods a drain moves, node by node through the scheduler's
//! filters.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Pod, Taint};

use super::resources::{Resources, node_allocatable, pod_requests};
use super::volumes::{VolumeAffinity, volumes_allow};
use super::{CapacityReport, Placement, PodPlacement, Unfit};
use crate::drain::interpod::{
    NodeView, check_inter_pod, host_port_conflict, required_affinity, required_anti_affinity,
};
use crate::drain::node_selection::{matches_node_selection, untolerated_taint};
use crate::drain::{PodRef, is_finished};

/// Labels of a node that has none.
static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// Taint key the scheduler uses to represent `spec.unschedulable`.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

struct NodeState<'a> {
    node: &'a Node,
    name: String,
    free: Result<Resources, String>,
    excluded: bool,
    /// Pods staying on the node plus the ones placed there so far.
    pods: Vec<&'a Pod>,
}

fn taint_string(t: &Taint) -> String {
    match t.value.as_deref().filter(|v| !v.is_empty()) {
        Some(v) => format!("{}: {v}", t.key),
        None => format!("{}: ", t.key),
    }
}

/// The scheduler's filters in its order: unschedulable, taints, node selection, host ports,
/// resources, then the inter-pod terms (which need every node: topology domains).
fn check_node(
    pod: &Pod,
    req: &Resources,
    states: &[NodeState<'_>],
    views: &[NodeView<'_, '_>],
    guarded: &[(usize, &Pod)],
    volumes: &VolumeAffinity,
    at: usize,
) -> Result<(), Unfit> {
    let st = &states[at];
    if st.excluded {
        return Err(Unfit::Draining);
    }
    let node = st.node;
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        let t = Taint {
            key: UNSCHEDULABLE_TAINT.to_owned(),
            effect: "NoSchedule".to_owned(),
            ..Default::default()
        };
        if untolerated_taint(pod, std::slice::from_ref(&t)).is_some() {
            return Err(Unfit::Unschedulable);
        }
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    if let Some(t) = untolerated_taint(pod, taints) {
        return Err(Unfit::Taint {
            taint: taint_string(t),
        });
    }
    if !matches_node_selection(pod, node) {
        return Err(Unfit::Selection);
    }
    if host_port_conflict(pod, &st.pods) {
        return Err(Unfit::HostPorts);
    }
    if !volumes_allow(pod, node, volumes) {
        return Err(Unfit::VolumeNodeAffinity);
    }
    let free = st
        .free
        .as_ref()
        .map_err(|e| Unfit::BadNode { error: e.clone() })?;
    for (res, want) in req {
        if *want <= 0 {
            continue;
        }
        match free.get(res) {
            // Nodes that do not report ephemeral storage are not checked for it.
            None if res == "ephemeral-storage" => {}
            Some(have) if have >= want => {}
            _ => {
                return Err(Unfit::Insufficient {
                    resource: res.clone(),
                });
            }
        }
    }
    check_inter_pod(pod, views, guarded, at)?;
    Ok(())
}

/// Places `to_place` greedily on `nodes` minus `excluded` (the nodes being drained), given
/// every pod of the cluster (`all_pods`, used for what nodes already host; pods in `to_place`
/// are not counted as already placed elsewhere even if they are bound to a kept node).
pub fn check_capacity<'a>(
    to_place: &[&'a Pod],
    nodes: &'a [Node],
    all_pods: &'a [Pod],
    volumes: &VolumeAffinity,
    excluded: &BTreeSet<String>,
) -> CapacityReport {
    let moving: BTreeSet<PodRef> = to_place.iter().map(|p| PodRef::of(p)).collect();
    // Pods staying, by node: one pass over the pods instead of one per node (O(nodes × pods)
    // made a 1 000-node cluster take seconds).
    let mut staying: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for p in all_pods {
        if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.as_deref())
            && !is_finished(p)
            && !moving.contains(&PodRef::of(p))
        {
            staying.entry(node).or_default().push(p);
        }
    }
    let mut states: Vec<NodeState<'_>> = nodes
        .iter()
        .map(|n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            let mut free = node_allocatable(n).map_err(|e| e.to_string());
            let pods: Vec<&Pod> = staying.remove(name.as_str()).unwrap_or_default();
            if let Ok(free) = free.as_mut() {
                for p in &pods {
                    // A pod with unreadable requests was admitted by the server, so this
                    // cannot happen for real objects; count it as nothing.
                    if let Ok(req) = pod_requests(p) {
                        for (k, v) in req {
                            *free.entry(k).or_default() -= v;
                        }
                    }
                }
            }
            NodeState {
                excluded: excluded.contains(&name),
                node: n,
                name,
                free,
                pods,
            }
        })
        .collect();
    states.sort_by(|a, b| a.name.cmp(&b.name));
    let mut guarded: Vec<(usize, &Pod)> = states
        .iter()
        .enumerate()
        .flat_map(|(i, st)| st.pods.iter().map(move |p| (i, *p)))
        .filter(|(_, p)| !required_anti_affinity(p).is_empty())
        .collect();

    // A pod whose required affinity wants a pod that moves too can only fit once that one is
    // placed: pods with affinity terms that fit nowhere get further passes while passes place
    // something (the scheduler would retry them the same way).
    let mut placements: Vec<Option<Placement>> = vec![None; to_place.len()];
    let mut pending: Vec<usize> = (0..to_place.len()).collect();
    loop {
        let mut retry = Vec::new();
        let mut placed_any = false;
        for i in pending {
            let pod = to_place[i];
            let placement = place_one(pod, &mut states, &mut guarded, volumes);
            match placement {
                Placement::Fits { .. } => placed_any = true,
                Placement::NoFit { .. } if !required_affinity(pod).is_empty() => retry.push(i),
                _ => {}
            }
            placements[i] = Some(placement);
        }
        if !placed_any || retry.is_empty() {
            break;
        }
        pending = retry;
    }
    CapacityReport {
        pods: to_place
            .iter()
            .zip(placements)
            .map(|(pod, placement)| PodPlacement {
                pod: PodRef::of(pod),
                placement: placement.unwrap_or(Placement::Invalid {
                    error: "not evaluated".into(),
                }),
            })
            .collect(),
    }
}

/// First-fit placement of one pod; a fit is recorded on the chosen node.
fn place_one<'a>(
    pod: &'a Pod,
    states: &mut [NodeState<'a>],
    guarded: &mut Vec<(usize, &'a Pod)>,
    volumes: &VolumeAffinity,
) -> Placement {
    match pod_requests(pod) {
        Err(e) => Placement::Invalid {
            error: e.to_string(),
        },
        Ok(req) => {
            let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
            let mut chosen = None;
            let views: Vec<NodeView<'_, '_>> = states
                .iter()
                .map(|st| NodeView {
                    node: st.node,
                    labels: st.node.metadata.labels.as_ref().unwrap_or(&NO_LABELS),
                    pods: &st.pods,
                })
                .collect();
            for i in 0..states.len() {
                match check_node(pod, &req, states, &views, guarded, volumes, i) {
                    Ok(()) => {
                        chosen = Some(i);
                        break;
                    }
                    Err(u) => *reasons.entry(u.to_string()).or_default() += 1,
                }
            }
            match chosen {
                Some(i) => {
                    states[i].pods.push(pod);
                    if !required_anti_affinity(pod).is_empty() {
                        guarded.push((i, pod));
                    }
                    if let Ok(free) = states[i].free.as_mut() {
                        for (k, v) in &req {
                            *free.entry(k.clone()).or_default() -= v;
                        }
                    }
                    Placement::Fits {
                        node: states[i].name.clone(),
                    }
                }
                None => {
                    let detail = reasons
                        .iter()
                        .map(|(r, n)| format!("{n} {r}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    Placement::NoFit {
                        reason: if detail.is_empty() {
                            format!("0/{} nodes are available.", states.len())
                        } else {
                            format!("0/{} nodes are available: {detail}.", states.len())
                        },
                    }
                }
            }
        }
    }
}
