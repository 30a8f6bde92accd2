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

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, Node, NodeSelector, PersistentVolume, PersistentVolumeClaim, Pod, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::Serialize;

use super::interpod::{
    InterPodUnfit, NodeView, check_inter_pod, host_port_conflict, required_affinity,
    required_anti_affinity,
};
use super::node_selection::{matches_node_selection, term_matches, untolerated_taint};
use super::quantity::{QuantityError, parse_milli};
use super::{PodRef, is_finished};

/// Resource amounts in milli-units by resource name (`cpu`, `memory`, `pods`, ...).
pub type Resources = BTreeMap<String, i128>;

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
fn volumes_allow(pod: &Pod, node: &Node, volumes: &VolumeAffinity) -> bool {
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

/// Labels of a node that has none.
static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// Taint key the scheduler uses to represent `spec.unschedulable`.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

fn add_quantities(
    into: &mut Resources,
    q: Option<&BTreeMap<String, Quantity>>,
) -> Result<(), QuantityError> {
    for (k, v) in q.into_iter().flatten() {
        *into.entry(k.clone()).or_default() += parse_milli(&v.0)?;
    }
    Ok(())
}

fn container_requests(c: &Container) -> Result<Resources, QuantityError> {
    let mut r = Resources::new();
    add_quantities(
        &mut r,
        c.resources.as_ref().and_then(|r| r.requests.as_ref()),
    )?;
    Ok(r)
}

fn max_into(into: &mut Resources, other: &Resources) {
    for (k, v) in other {
        let e = into.entry(k.clone()).or_default();
        *e = (*e).max(*v);
    }
}

fn sum_into(into: &mut Resources, other: &Resources) {
    for (k, v) in other {
        *into.entry(k.clone()).or_default() += v;
    }
}

/// The pod's effective requests as the scheduler computes them: max(sum of app containers +
/// sidecars, each init container + the sidecars started before it) + overhead, plus one `pods`.
pub fn pod_requests(pod: &Pod) -> Result<Resources, QuantityError> {
    let mut total = Resources::new();
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(total);
    };
    for c in &spec.containers {
        sum_into(&mut total, &container_requests(c)?);
    }
    let mut sidecars = Resources::new();
    let mut init_max = Resources::new();
    for c in spec.init_containers.iter().flatten() {
        let req = container_requests(c)?;
        if c.restart_policy.as_deref() == Some("Always") {
            sum_into(&mut sidecars, &req);
            max_into(&mut init_max, &sidecars);
        } else {
            let mut with = sidecars.clone();
            sum_into(&mut with, &req);
            max_into(&mut init_max, &with);
        }
    }
    sum_into(&mut total, &sidecars);
    max_into(&mut total, &init_max);
    add_quantities(&mut total, spec.overhead.as_ref())?;
    total.retain(|_, v| *v != 0);
    total.insert("pods".to_owned(), 1000);
    Ok(total)
}

/// `status.allocatable` of a node.
pub fn node_allocatable(node: &Node) -> Result<Resources, QuantityError> {
    let mut r = Resources::new();
    add_quantities(
        &mut r,
        node.status.as_ref().and_then(|s| s.allocatable.as_ref()),
    )?;
    Ok(r)
}

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

struct NodeState<'a> {
    node: &'a Node,
    name: String,
    free: Result<Resources, String>,
    excluded: bool,
    /// Pods staying on the node plus the ones placed there so far.
    pods: Vec<&'a Pod>,
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

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        Affinity, ContainerPort, NodeAffinity, NodeSelector, NodeSelectorRequirement,
        NodeSelectorTerm, PodAffinity, PodAffinityTerm, PodAntiAffinity, TopologySpreadConstraint,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use proptest::prelude::*;

    use super::*;
    use crate::drain::testing::{NodeBuilder, PodBuilder};

    fn place(pods: &[Pod], nodes: &[Node], all: &[Pod], drained: &[&str]) -> Vec<Placement> {
        let refs: Vec<&Pod> = pods.iter().collect();
        let ex = drained.iter().map(|s| (*s).to_owned()).collect();
        check_capacity(&refs, nodes, all, &VolumeAffinity::new(), &ex)
            .pods
            .into_iter()
            .map(|p| p.placement)
            .collect()
    }

    fn fits(n: &str) -> Placement {
        Placement::Fits { node: n.into() }
    }

    fn affinity(terms: Vec<NodeSelectorTerm>) -> Affinity {
        Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: terms,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    #[test]
    fn requests_are_effective_requests() {
        let mut pod = PodBuilder::new("ns", "p").requests("500m", "1Gi").build();
        let spec = pod.spec.as_mut().unwrap();
        let mut init = spec.containers[0].clone();
        init.name = "init".into();
        init.resources
            .as_mut()
            .unwrap()
            .requests
            .as_mut()
            .unwrap()
            .insert("cpu".into(), Quantity("2".into()));
        spec.init_containers = Some(vec![init]);
        let r = pod_requests(&pod).unwrap();
        assert_eq!(r["cpu"], 2000, "init container dominates");
        assert_eq!(r["memory"], 1_073_741_824_000, "milli-bytes");
        assert_eq!(r["pods"], 1000);
    }

    #[test]
    fn first_fit_respects_usage_and_exclusions() {
        let nodes = [
            NodeBuilder::new("a").alloc("1", "1Gi").build(),
            NodeBuilder::new("b").alloc("2", "2Gi").build(),
            NodeBuilder::new("node1").build(),
        ];
        let existing = [PodBuilder::new("x", "busy")
            .on("a")
            .requests("800m", "100Mi")
            .build()];
        let pods = [
            PodBuilder::new("ns", "p1")
                .requests("500m", "100Mi")
                .build(),
            PodBuilder::new("ns", "p2")
                .requests("1600m", "100Mi")
                .build(),
            PodBuilder::new("ns", "p3").requests("1", "100Mi").build(),
        ];
        let got = place(&pods, &nodes, &existing, &["node1"]);
        assert_eq!(got[0], fits("b"));
        assert_eq!(
            got[1],
            Placement::NoFit {
                reason: "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) being drained."
                    .into()
            }
        );
        assert_eq!(got[2], fits("b"));
    }

    fn host_port(mut pod: Pod, port: i32, proto: &str) -> Pod {
        pod.spec.as_mut().unwrap().containers[0].ports = Some(vec![ContainerPort {
            container_port: port,
            host_port: Some(port),
            protocol: Some(proto.into()),
            ..Default::default()
        }]);
        pod
    }

    fn term(app: &str, key: &str) -> PodAffinityTerm {
        PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some([("app".to_owned(), app.to_owned())].into()),
                ..Default::default()
            }),
            topology_key: key.into(),
            ..Default::default()
        }
    }

    fn with_pod_affinity(
        mut pod: Pod,
        affinity: Vec<PodAffinityTerm>,
        anti: Vec<PodAffinityTerm>,
    ) -> Pod {
        pod.spec.as_mut().unwrap().affinity = Some(Affinity {
            pod_affinity: (!affinity.is_empty()).then(|| PodAffinity {
                required_during_scheduling_ignored_during_execution: Some(affinity),
                ..Default::default()
            }),
            pod_anti_affinity: (!anti.is_empty()).then(|| PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(anti),
                ..Default::default()
            }),
            ..Default::default()
        });
        pod
    }

    #[test]
    fn host_ports_taken_by_pods_in_place_or_placed_before() {
        let nodes = [NodeBuilder::new("a").build(), NodeBuilder::new("b").build()];
        let in_place = [host_port(
            PodBuilder::new("ns", "x").on("a").build(),
            80,
            "TCP",
        )];
        let web = |n| host_port(PodBuilder::new("ns", n).on("gone").build(), 80, "TCP");
        let dns = host_port(PodBuilder::new("ns", "dns").on("gone").build(), 80, "UDP");
        assert_eq!(
            place(&[web("w1"), dns, web("w2")], &nodes, &in_place, &[]),
            vec![
                fits("b"),
                fits("a"),
                Placement::NoFit {
                    reason: "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports.".into()
                },
            ]
        );
    }

    /// Three replicas, one per node by required anti-affinity: draining one node leaves its
    /// replica nowhere to go, and kubectl would evict it into Pending.
    #[test]
    fn one_replica_per_node_has_nowhere_to_go() {
        let db = |i: usize, node: &str| {
            with_pod_affinity(
                PodBuilder::new("ns", &format!("db-{i}"))
                    .label("app", "db")
                    .on(node)
                    .build(),
                vec![],
                vec![term("db", "kubernetes.io/hostname")],
            )
        };
        let nodes = [
            NodeBuilder::new("a").build(),
            NodeBuilder::new("b").build(),
            NodeBuilder::new("c").build(),
        ];
        let all = [db(0, "a"), db(1, "b"), db(2, "c")];
        assert_eq!(
            place(&all[2..], &nodes, &all, &["c"]),
            vec![Placement::NoFit {
                reason: "0/3 nodes are available: 1 node(s) being drained, 2 node(s) didn't match pod anti-affinity rules.".into()
            }]
        );
        let four = [
            nodes[0].clone(),
            nodes[1].clone(),
            nodes[2].clone(),
            NodeBuilder::new("d").build(),
        ];
        assert_eq!(place(&all[2..], &four, &all, &["c"]), vec![fits("d")]);
        // Another namespace's pods are not seen by the term.
        let other_ns = [db(0, "a"), db(2, "c")].map(|mut p| {
            p.metadata.namespace = Some("other".into());
            p
        });
        let mine = with_pod_affinity(
            PodBuilder::new("ns", "db-9")
                .label("app", "db")
                .on("c")
                .build(),
            vec![],
            vec![term("db", "kubernetes.io/hostname")],
        );
        assert_eq!(place(&[mine], &nodes, &other_ns, &["c"]), vec![fits("a")]);
    }

    #[test]
    fn anti_affinity_of_pods_in_place_keeps_pods_off_their_domain() {
        let nodes = [
            NodeBuilder::new("a").label("zone", "z1").build(),
            NodeBuilder::new("b").label("zone", "z1").build(),
            NodeBuilder::new("c").label("zone", "z2").build(),
        ];
        let loner = with_pod_affinity(
            PodBuilder::new("ns", "loner").on("a").build(),
            vec![],
            vec![term("web", "zone")],
        );
        let web = PodBuilder::new("ns", "web-1")
            .label("app", "web")
            .on("x")
            .build();
        let report = place(&[web], &nodes, &[loner], &["c"]);
        assert_eq!(
            report,
            vec![Placement::NoFit {
                reason: "0/3 nodes are available: 1 node(s) being drained, 2 node(s) didn't satisfy existing pods anti-affinity rules.".into()
            }]
        );
    }

    #[test]
    fn affinity_needs_a_matching_pod_in_the_domain_except_for_the_first_of_a_group() {
        let nodes = [
            NodeBuilder::new("a").label("zone", "z1").build(),
            NodeBuilder::new("b").label("zone", "z2").build(),
            NodeBuilder::new("c").label("zone", "z2").build(),
            NodeBuilder::new("nozone").build(),
        ];
        let cache = PodBuilder::new("ns", "cache")
            .label("app", "cache")
            .on("c")
            .build();
        let app = |n: &str| {
            with_pod_affinity(
                PodBuilder::new("ns", n).on("gone").build(),
                vec![term("cache", "zone")],
                vec![],
            )
        };
        // Next to the cache's zone: b (same zone as c), not a.
        assert_eq!(
            place(&[app("app-1")], &nodes, std::slice::from_ref(&cache), &[]),
            vec![fits("b")]
        );
        // The cache's node drained and nothing else in z2 but b.
        assert_eq!(
            place(&[app("app-2")], &nodes[..1], &[cache], &[]),
            vec![Placement::NoFit {
                reason: "0/1 nodes are available: 1 node(s) didn't match pod affinity rules."
                    .into()
            }]
        );
        // The first cache of a group that wants to be with caches may go anywhere with a zone.
        let first = with_pod_affinity(
            PodBuilder::new("ns", "cache-0")
                .label("app", "cache")
                .on("gone")
                .build(),
            vec![term("cache", "zone")],
            vec![],
        );
        assert_eq!(place(&[first], &nodes, &[], &[]), vec![fits("a")]);
    }

    #[test]
    fn affinity_to_a_pod_that_moves_too_is_met_once_it_is_placed() {
        let nodes = [
            NodeBuilder::new("a").label("zone", "z1").build(),
            NodeBuilder::new("b").label("zone", "z2").build(),
            NodeBuilder::new("gone").label("zone", "z9").build(),
        ];
        // Listed first, the app finds no cache yet; the cache lands on a, then the app follows.
        let app = with_pod_affinity(
            PodBuilder::new("ns", "app").on("gone").build(),
            vec![term("cache", "zone")],
            vec![],
        );
        let cache = PodBuilder::new("ns", "cache")
            .label("app", "cache")
            .on("gone")
            .build();
        assert_eq!(
            place(&[app, cache], &nodes, &[], &["gone"]),
            vec![fits("a"), fits("a")]
        );
    }

    #[test]
    fn one_pod_must_match_every_affinity_term() {
        let nodes = [NodeBuilder::new("a").label("zone", "z1").build()];
        let mut tier = term("x", "zone");
        tier.label_selector = Some(LabelSelector {
            match_labels: Some([("tier".to_owned(), "fast".to_owned())].into()),
            ..Default::default()
        });
        let pod = with_pod_affinity(
            PodBuilder::new("ns", "p").on("gone").build(),
            vec![term("cache", "zone"), tier],
            vec![],
        );
        // One pod per term is not enough (the scheduler counts pods matching all terms).
        let cache = PodBuilder::new("ns", "c")
            .label("app", "cache")
            .on("a")
            .build();
        let fast = PodBuilder::new("ns", "f")
            .label("tier", "fast")
            .on("a")
            .build();
        assert!(matches!(
            place(std::slice::from_ref(&pod), &nodes, &[cache, fast], &[])[0],
            Placement::NoFit { .. }
        ));
        let both = PodBuilder::new("ns", "cf")
            .label("app", "cache")
            .label("tier", "fast")
            .on("a")
            .build();
        assert_eq!(place(&[pod], &nodes, &[both], &[]), vec![fits("a")]);
    }

    fn spread(mut pod: Pod, key: &str, max_skew: i32, when: &str) -> Pod {
        pod.spec.as_mut().unwrap().topology_spread_constraints =
            Some(vec![TopologySpreadConstraint {
                max_skew,
                topology_key: key.into(),
                when_unsatisfiable: when.into(),
                label_selector: Some(LabelSelector {
                    match_labels: Some([("app".to_owned(), "web".to_owned())].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }]);
        pod
    }

    /// One replica per zone, maxSkew 1: the drained node's zone still counts (the scheduler
    /// ignores the cordon), now with zero, so the replica can go nowhere else.
    #[test]
    fn spread_pods_cannot_leave_a_zone_that_then_counts_zero() {
        let web = |i: usize, node: &str, when: &str| {
            spread(
                PodBuilder::new("ns", &format!("web-{i}"))
                    .label("app", "web")
                    .on(node)
                    .build(),
                "zone",
                1,
                when,
            )
        };
        let nodes = [
            NodeBuilder::new("a").label("zone", "z1").build(),
            NodeBuilder::new("b").label("zone", "z2").build(),
            NodeBuilder::new("c").label("zone", "z3").cordoned().build(),
        ];
        let all = [
            web(0, "a", "DoNotSchedule"),
            web(1, "b", "DoNotSchedule"),
            web(2, "c", "DoNotSchedule"),
        ];
        assert_eq!(
            place(&all[2..], &nodes, &all, &["c"]),
            vec![Placement::NoFit {
                reason: "0/3 nodes are available: 1 node(s) being drained, 2 node(s) didn't match pod topology spread constraints.".into()
            }]
        );
        // Another node in z3 takes it; a soft constraint never refuses.
        let four = [
            nodes[0].clone(),
            nodes[1].clone(),
            nodes[2].clone(),
            NodeBuilder::new("d").label("zone", "z3").build(),
        ];
        assert_eq!(place(&all[2..], &four, &all, &["c"]), vec![fits("d")]);
        let soft = [
            web(0, "a", "ScheduleAnyway"),
            web(1, "b", "ScheduleAnyway"),
            web(2, "c", "ScheduleAnyway"),
        ];
        assert_eq!(place(&soft[2..], &nodes, &soft, &["c"]), vec![fits("a")]);
        // maxSkew 2 allows z1 to hold two while z3 holds none.
        let loose = spread(
            PodBuilder::new("ns", "web-9")
                .label("app", "web")
                .on("c")
                .build(),
            "zone",
            2,
            "DoNotSchedule",
        );
        assert_eq!(place(&[loose], &nodes, &all[..2], &["c"]), vec![fits("a")]);
    }

    /// A StatefulSet pod on a local volume pinned to its node has nowhere else to go.
    #[test]
    fn a_pod_on_a_node_local_volume_stays_with_its_node() {
        use k8s_openapi::api::core::v1::{
            PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PersistentVolumeSpec,
            Volume, VolumeNodeAffinity,
        };
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let pv = |name: &str, node: Option<&str>| PersistentVolume {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                node_affinity: node.map(|n| VolumeNodeAffinity {
                    required: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: Some(vec![req(
                                "kubernetes.io/hostname",
                                "In",
                                &[n],
                            )]),
                            match_fields: None,
                        }],
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pvc = |name: &str, volume: Option<&str>| PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                volume_name: volume.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        };
        let volumes = volume_node_affinity(
            &[
                pvc("data-db-0", Some("local-a")),
                pvc("shared", Some("nfs")),
                pvc("pending", None),
            ],
            &[pv("local-a", Some("a")), pv("nfs", None)],
        );
        assert_eq!(
            volumes.len(),
            1,
            "only the bound, node-pinned volume constrains"
        );
        let with_claim = |claim: &str| {
            let mut p = PodBuilder::new("ns", "db-0").on("a").build();
            p.spec.as_mut().unwrap().volumes = Some(vec![Volume {
                name: "data".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.into(),
                    read_only: None,
                }),
                ..Default::default()
            }]);
            p
        };
        let nodes = [NodeBuilder::new("a").build(), NodeBuilder::new("b").build()];
        let refs = [with_claim("data-db-0"), with_claim("shared")];
        let ex = ["a".to_owned()].into();
        let got: Vec<Placement> = check_capacity(&[&refs[0], &refs[1]], &nodes, &[], &volumes, &ex)
            .pods
            .into_iter()
            .map(|p| p.placement)
            .collect();
        assert_eq!(
            got,
            vec![
                Placement::NoFit {
                    reason: "0/2 nodes are available: 1 node(s) being drained, 1 node(s) had volume node affinity conflict.".into()
                },
                fits("b"),
            ]
        );
    }

    #[test]
    fn taints_selectors_affinity() {
        let nodes = [
            NodeBuilder::new("cp")
                .taint("node-role.kubernetes.io/control-plane", None, "NoSchedule")
                .build(),
            NodeBuilder::new("gpu")
                .label("gpu", "true")
                .label("gen", "5")
                .taint("gpu", Some("yes"), "NoExecute")
                .build(),
            NodeBuilder::new("w1").label("zone", "a").build(),
            NodeBuilder::new("w2")
                .label("zone", "b")
                .taint("soft", None, "PreferNoSchedule")
                .build(),
            NodeBuilder::new("off").cordoned().build(),
        ];
        let plain = PodBuilder::new("ns", "plain").build();
        let zone_b = PodBuilder::new("ns", "zb")
            .node_selector("zone", "b")
            .build();
        let gpu = PodBuilder::new("ns", "gpu")
            .node_selector("gpu", "true")
            .build();
        let gpu_tol = PodBuilder::new("ns", "gpu2")
            .node_selector("gpu", "true")
            .tolerate("gpu", "Equal", Some("yes"), Some("NoExecute"))
            .build();
        let cp_tol = PodBuilder::new("ns", "cp")
            .tolerate("", "Exists", None, None)
            .build();
        let mut gt = PodBuilder::new("ns", "gt")
            .tolerate("gpu", "Exists", None, None)
            .build();
        gt.spec.as_mut().unwrap().affinity = Some(affinity(vec![NodeSelectorTerm {
            match_expressions: Some(vec![req("gen", "Gt", &["4"])]),
            match_fields: None,
        }]));
        let mut by_name = PodBuilder::new("ns", "byname").build();
        by_name.spec.as_mut().unwrap().affinity = Some(affinity(vec![
            NodeSelectorTerm {
                match_expressions: None,
                match_fields: None,
            },
            NodeSelectorTerm {
                match_expressions: Some(vec![req("zone", "NotIn", &["a"])]),
                match_fields: Some(vec![req("metadata.name", "In", &["w2", "cp"])]),
            },
        ]));
        let mut nowhere = PodBuilder::new("ns", "nowhere").build();
        nowhere.spec.as_mut().unwrap().affinity = Some(affinity(vec![NodeSelectorTerm {
            match_expressions: Some(vec![
                req("zone", "DoesNotExist", &[]),
                req("gen", "Lt", &["3"]),
            ]),
            match_fields: None,
        }]));
        let got = place(
            &[plain, zone_b, gpu, gpu_tol, cp_tol, gt, by_name, nowhere],
            &nodes,
            &[],
            &[],
        );
        assert_eq!(got[0], fits("w1"));
        assert_eq!(got[1], fits("w2"));
        assert_eq!(
            got[2],
            Placement::NoFit {
                reason: "0/5 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {gpu: yes}, 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 1 node(s) were unschedulable.".into()
            }
        );
        assert_eq!(got[3], fits("gpu"));
        assert_eq!(
            got[4],
            fits("cp"),
            "a wildcard toleration tolerates every taint incl. unschedulable"
        );
        assert_eq!(got[5], fits("gpu"));
        assert_eq!(got[6], fits("w2"));
        assert!(matches!(got[7], Placement::NoFit { .. }));
    }

    #[test]
    fn unschedulable_is_reported() {
        let nodes = [NodeBuilder::new("off").cordoned().build()];
        let got = place(&[PodBuilder::new("ns", "p").build()], &nodes, &[], &[]);
        assert_eq!(
            got[0],
            Placement::NoFit {
                reason: "0/1 nodes are available: 1 node(s) were unschedulable.".into()
            }
        );
    }

    #[test]
    fn pod_count_limit() {
        let mut n = NodeBuilder::new("tiny").build();
        n.status
            .as_mut()
            .unwrap()
            .allocatable
            .as_mut()
            .unwrap()
            .insert("pods".into(), Quantity("1".into()));
        let got = place(
            &[
                PodBuilder::new("ns", "a").build(),
                PodBuilder::new("ns", "b").build(),
            ],
            &[n],
            &[],
            &[],
        );
        assert_eq!(got[0], fits("tiny"));
        assert_eq!(
            got[1],
            Placement::NoFit {
                reason: "0/1 nodes are available: 1 Too many pods.".into()
            }
        );
    }

    proptest! {
        /// A pod is never placed on a node whose NoSchedule/NoExecute taints it does not
        /// tolerate, nor on an excluded or cordoned node, and placements never overcommit.
        #[test]
        fn placement_is_sound(
            node_specs in proptest::collection::vec((any::<bool>(), 0u8..3, 1u32..4000), 1..6),
            pod_specs in proptest::collection::vec((0u8..3, 0u8..3, 1u32..3000), 0..12),
            excluded_mask in any::<u8>(),
        ) {
            let keys = ["a", "b", "c"];
            let effects = ["NoSchedule", "NoExecute", "PreferNoSchedule"];
            let nodes: Vec<Node> = node_specs.iter().enumerate().map(|(i, (cordoned, taint, cpu))| {
                let mut b = NodeBuilder::new(&format!("n{i}")).alloc(&format!("{cpu}m"), "8Gi");
                if *cordoned { b = b.cordoned(); }
                b = b.taint(keys[*taint as usize], None, effects[*taint as usize]);
                b.build()
            }).collect();
            let pods: Vec<Pod> = pod_specs.iter().enumerate().map(|(i, (tol, eff, cpu))| {
                let mut b = PodBuilder::new("ns", &format!("p{i}")).requests(&format!("{cpu}m"), "1Mi");
                if *tol < 3 { b = b.tolerate(keys[*tol as usize], "Exists", None, Some(effects[*eff as usize])); }
                b.build()
            }).collect();
            let excluded: BTreeSet<String> = (0..nodes.len()).filter(|i| excluded_mask & (1 << i) != 0).map(|i| format!("n{i}")).collect();
            let refs: Vec<&Pod> = pods.iter().collect();
            let report = check_capacity(&refs, &nodes, &[], &VolumeAffinity::new(), &excluded);
            let mut used: BTreeMap<String, i128> = BTreeMap::new();
            for (pod, pl) in pods.iter().zip(&report.pods) {
                if let Placement::Fits { node } = &pl.placement {
                    let n = nodes.iter().find(|n| n.metadata.name.as_deref() == Some(node)).unwrap();
                    prop_assert!(!excluded.contains(node));
                    prop_assert!(n.spec.as_ref().unwrap().unschedulable != Some(true));
                    let taints = n.spec.as_ref().unwrap().taints.clone().unwrap_or_default();
                    prop_assert!(untolerated_taint(pod, &taints).is_none());
                    *used.entry(node.clone()).or_default() += pod_requests(pod).unwrap()["cpu"];
                }
            }
            for (node, u) in used {
                let n = nodes.iter().find(|n| n.metadata.name.as_deref() == Some(node.as_str())).unwrap();
                prop_assert!(u <= node_allocatable(n).unwrap()["cpu"]);
            }
        }
    }
}
