//! Greedy first-fit placement of the pods a drain moves, node by node through the scheduler's
//! filters.
//!
//! What the nodes host before a drain is computed once ([`CapacityBase::new`]: the pods bound
//! to each node and the sum of their requests) and shared by every simulated drain
//! ([`CapacityBase::check`]): a simulation only takes the moving pods off their nodes and adds
//! the pods it places, copying a node's pod list and usage the first time it changes. The
//! upgrade plan simulates the drain of many nodes of a cluster of thousands; recomputing every
//! node's usage from every pod for each of them dominated its cost.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// A pod's identity as [`PodRef`] compares it, borrowed (no allocation per lookup).
type RefKey<'a> = (&'a str, &'a str, &'a str);

fn ref_key(pod: &Pod) -> RefKey<'_> {
    let m = &pod.metadata;
    (
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default(),
    )
}

/// One node before any drain.
struct BaseNode<'a> {
    node: &'a Node,
    name: &'a str,
    /// `status.allocatable`, or why it could not be read.
    allocatable: Result<Resources, String>,
    /// Sum of the requests of [`BaseNode::pods`].
    used: Resources,
    /// Pods bound to the node that are not finished.
    pods: Vec<&'a Pod>,
}

/// What every node hosts before a drain, computed once for any number of simulated drains.
pub struct CapacityBase<'a> {
    /// Sorted by name (first fit goes in name order).
    nodes: Vec<BaseNode<'a>>,
    /// Where each pod in place is, by identity: `(node index, position in its pod list)`.
    at: HashMap<RefKey<'a>, Vec<(usize, usize)>>,
    /// Pods in place with required anti-affinity terms, with their node index.
    guarded: Vec<(usize, &'a Pod)>,
}

impl<'a> CapacityBase<'a> {
    /// Indexes `all_pods` (every pod of the cluster; finished ones and pods bound to no listed
    /// node are left out) by node and adds up each node's requests.
    pub fn new(nodes: &'a [Node], all_pods: &'a [Pod]) -> Self {
        // Pods by node name: one pass over the pods, not one per node.
        let mut by_node: HashMap<&str, Vec<&Pod>> = HashMap::new();
        for p in all_pods {
            if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.as_deref())
                && !is_finished(p)
            {
                by_node.entry(node).or_default().push(p);
            }
        }
        // Built in input order (a name listed twice gets its pods on its first node), then sorted.
        let mut base: Vec<BaseNode<'a>> = nodes
            .iter()
            .map(|n| {
                let name = n.metadata.name.as_deref().unwrap_or_default();
                let pods = by_node.remove(name).unwrap_or_default();
                let mut used = Resources::new();
                for p in &pods {
                    // A pod with unreadable requests was admitted by the server, so this cannot
                    // happen for real objects; count it as nothing.
                    if let Ok(req) = pod_requests(p) {
                        add(&mut used, &req, 1);
                    }
                }
                BaseNode {
                    node: n,
                    name,
                    allocatable: node_allocatable(n).map_err(|e| e.to_string()),
                    used,
                    pods,
                }
            })
            .collect();
        base.sort_by(|a, b| a.name.cmp(b.name));
        let mut at: HashMap<RefKey<'a>, Vec<(usize, usize)>> = HashMap::new();
        let mut guarded = Vec::new();
        for (i, n) in base.iter().enumerate() {
            for (j, p) in n.pods.iter().enumerate() {
                at.entry(ref_key(p)).or_default().push((i, j));
                if !required_anti_affinity(p).is_empty() {
                    guarded.push((i, *p));
                }
            }
        }
        CapacityBase {
            nodes: base,
            at,
            guarded,
        }
    }

    /// Places `to_place` greedily on the nodes minus `excluded` (the nodes being drained). Pods
    /// in `to_place` are not counted as already placed where they are bound (they move); the
    /// base itself is left as it was, for the next simulation.
    pub fn check(
        &self,
        to_place: &[&'a Pod],
        volumes: &VolumeAffinity,
        excluded: &BTreeSet<String>,
    ) -> CapacityReport {
        let mut states: Vec<NodeState<'_, 'a>> = self
            .nodes
            .iter()
            .map(|n| NodeState {
                node: n.node,
                name: n.name,
                allocatable: &n.allocatable,
                used: Cow::Borrowed(&n.used),
                excluded: excluded.contains(n.name),
                pods: Cow::Borrowed(&n.pods),
            })
            .collect();
        // Take the moving pods off their nodes (each identity once, however often it is listed).
        let moving: BTreeSet<RefKey<'_>> = to_place.iter().map(|p| ref_key(p)).collect();
        let mut gone: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for key in &moving {
            for &(i, j) in self.at.get(key).into_iter().flatten() {
                gone.entry(i).or_default().push(j);
            }
        }
        for (i, mut positions) in gone {
            positions.sort_unstable();
            let st = &mut states[i];
            let used = st.used.to_mut();
            for &j in &positions {
                if let Ok(req) = pod_requests(self.nodes[i].pods[j]) {
                    add(used, &req, -1);
                }
            }
            let pods = st.pods.to_mut();
            for &j in positions.iter().rev() {
                pods.remove(j);
            }
        }
        let mut guarded: Vec<(usize, &'a Pod)> = self
            .guarded
            .iter()
            .filter(|(_, p)| !moving.contains(&ref_key(p)))
            .copied()
            .collect();
        place_all(to_place, &mut states, &mut guarded, volumes)
    }
}

/// `into += sign × what`, resource by resource.
fn add(into: &mut Resources, what: &Resources, sign: i128) {
    for (k, v) in what {
        match into.get_mut(k) {
            Some(e) => *e += sign * v,
            None => {
                into.insert(k.clone(), sign * v);
            }
        }
    }
}

/// One node during a simulated drain: the base's data until the simulation changes it.
struct NodeState<'b, 'a> {
    node: &'a Node,
    name: &'a str,
    allocatable: &'b Result<Resources, String>,
    /// Requests of [`NodeState::pods`].
    used: Cow<'b, Resources>,
    excluded: bool,
    /// Pods staying on the node plus the ones placed there so far.
    pods: Cow<'b, [&'a Pod]>,
}

/// Places `to_place` greedily on `nodes` minus `excluded` (the nodes being drained), given
/// every pod of the cluster (`all_pods`, used for what nodes already host; pods in `to_place`
/// are not counted as already placed elsewhere even if they are bound to a kept node).
///
/// One simulation; several over the same cluster share one [`CapacityBase`].
pub fn check_capacity<'a>(
    to_place: &[&'a Pod],
    nodes: &'a [Node],
    all_pods: &'a [Pod],
    volumes: &VolumeAffinity,
    excluded: &BTreeSet<String>,
) -> CapacityReport {
    CapacityBase::new(nodes, all_pods).check(to_place, volumes, excluded)
}

/// A pod whose required affinity wants a pod that moves too can only fit once that one is
/// placed: pods with affinity terms that fit nowhere get further passes while passes place
/// something (the scheduler would retry them the same way).
fn place_all<'a>(
    to_place: &[&'a Pod],
    states: &mut [NodeState<'_, 'a>],
    guarded: &mut Vec<(usize, &'a Pod)>,
    volumes: &VolumeAffinity,
) -> CapacityReport {
    let mut placements: Vec<Option<Placement>> = vec![None; to_place.len()];
    let mut pending: Vec<usize> = (0..to_place.len()).collect();
    loop {
        let mut retry = Vec::new();
        let mut placed_any = false;
        for i in pending {
            let pod = to_place[i];
            let placement = place_one(pod, states, guarded, volumes);
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

fn taint_string(t: &Taint) -> String {
    match t.value.as_deref().filter(|v| !v.is_empty()) {
        Some(v) => format!("{}: {v}", t.key),
        None => format!("{}: ", t.key),
    }
}

/// Whether the node has `want` of `res` left. A node that does not report ephemeral storage
/// in its allocatable is not checked for it.
fn has_room(allocatable: &Resources, used: &Resources, res: &str, want: i128) -> bool {
    let Some(total) = allocatable.get(res) else {
        return res == "ephemeral-storage";
    };
    total - used.get(res).copied().unwrap_or(0) >= want
}

/// The scheduler's filters in its order: unschedulable, taints, node selection, host ports,
/// resources, then the inter-pod terms (which need every node: topology domains).
fn check_node(
    pod: &Pod,
    req: &Resources,
    states: &[NodeState<'_, '_>],
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
    let allocatable = st
        .allocatable
        .as_ref()
        .map_err(|e| Unfit::BadNode { error: e.clone() })?;
    for (res, want) in req {
        if *want > 0 && !has_room(allocatable, &st.used, res, *want) {
            return Err(Unfit::Insufficient {
                resource: res.clone(),
            });
        }
    }
    check_inter_pod(pod, views, guarded, at)?;
    Ok(())
}

/// First-fit placement of one pod; a fit is recorded on the chosen node.
fn place_one<'a>(
    pod: &'a Pod,
    states: &mut [NodeState<'_, 'a>],
    guarded: &mut Vec<(usize, &'a Pod)>,
    volumes: &VolumeAffinity,
) -> Placement {
    let req = match pod_requests(pod) {
        Ok(req) => req,
        Err(e) => {
            return Placement::Invalid {
                error: e.to_string(),
            };
        }
    };
    // Counted by verdict, worded once per kind at the end (not once per refusing node).
    let mut refusals: BTreeMap<Unfit, usize> = BTreeMap::new();
    let mut chosen = None;
    {
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
                Err(u) => *refusals.entry(u).or_default() += 1,
            }
        }
    }
    match chosen {
        Some(i) => {
            let st = &mut states[i];
            st.pods.to_mut().push(pod);
            if !required_anti_affinity(pod).is_empty() {
                guarded.push((i, pod));
            }
            add(st.used.to_mut(), &req, 1);
            Placement::Fits {
                node: st.name.to_owned(),
            }
        }
        None => {
            // The scheduler's message lists the reasons in the order of their wording.
            let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
            for (u, n) in refusals {
                *reasons.entry(u.to_string()).or_default() += n;
            }
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
