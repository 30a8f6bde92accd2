//! The straightforward capacity simulation, kept as the reference the shared base is checked
//! against: every simulation recomputes, from every pod, which pods stay on each node and each
//! node's free resources, then places the pods with the same filters.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, Node, Pod, PodAffinity, PodAffinityTerm, PodAntiAffinity,
    ResourceRequirements, Taint, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use proptest::prelude::*;

use super::super::placement::{CapacityBase, UNSCHEDULABLE_TAINT};
use super::super::{Placement, Resources, Unfit, VolumeAffinity, node_allocatable, pod_requests};
use crate::drain::interpod::{
    NodeView, check_inter_pod, host_port_conflict, required_affinity, required_anti_affinity,
};
use crate::drain::node_selection::{matches_node_selection, untolerated_taint};
use crate::drain::testing::{NodeBuilder, PodBuilder};
use crate::drain::{PodRef, is_finished};

struct Fresh<'a> {
    node: &'a Node,
    name: String,
    allocatable: Result<Resources, String>,
    free: Resources,
    excluded: bool,
    pods: Vec<&'a Pod>,
}

/// One simulated drain computed from scratch (no volumes: the property below uses none).
fn straightforward(
    to_place: &[&Pod],
    nodes: &[Node],
    all_pods: &[Pod],
    excluded: &BTreeSet<String>,
) -> Vec<Placement> {
    let moving: BTreeSet<PodRef> = to_place.iter().map(|p| PodRef::of(p)).collect();
    let mut states: Vec<Fresh<'_>> = Vec::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    for n in nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        // A name listed twice: its pods count on the first node of that name.
        let first = taken.insert(name.clone());
        let pods: Vec<&Pod> = all_pods
            .iter()
            .filter(|p| {
                first
                    && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
                    && !is_finished(p)
                    && !moving.contains(&PodRef::of(p))
            })
            .collect();
        let allocatable = node_allocatable(n).map_err(|e| e.to_string());
        let mut free = allocatable.clone().unwrap_or_default();
        for p in &pods {
            for (k, v) in pod_requests(p).unwrap_or_default() {
                *free.entry(k).or_default() -= v;
            }
        }
        states.push(Fresh {
            node: n,
            excluded: excluded.contains(&name),
            name,
            allocatable,
            free,
            pods,
        });
    }
    states.sort_by(|a, b| a.name.cmp(&b.name));
    let mut guarded: Vec<(usize, &Pod)> = Vec::new();
    for (i, st) in states.iter().enumerate() {
        for p in &st.pods {
            if !required_anti_affinity(p).is_empty() {
                guarded.push((i, p));
            }
        }
    }
    let mut placements: Vec<Option<Placement>> = vec![None; to_place.len()];
    let mut pending: Vec<usize> = (0..to_place.len()).collect();
    loop {
        let mut retry = Vec::new();
        let mut placed_any = false;
        for i in pending {
            let pod = to_place[i];
            let placement = place(pod, &mut states, &mut guarded);
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
    placements.into_iter().map(Option::unwrap).collect()
}

fn refusal(
    pod: &Pod,
    req: &Resources,
    states: &[Fresh<'_>],
    views: &[NodeView<'_, '_>],
    guarded: &[(usize, &Pod)],
    at: usize,
) -> Option<String> {
    let st = &states[at];
    if st.excluded {
        return Some(Unfit::Draining.to_string());
    }
    let spec = st.node.spec.clone().unwrap_or_default();
    if spec.unschedulable == Some(true) {
        let t = Taint {
            key: UNSCHEDULABLE_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if untolerated_taint(pod, &[t]).is_some() {
            return Some(Unfit::Unschedulable.to_string());
        }
    }
    let taints = spec.taints.unwrap_or_default();
    if let Some(t) = untolerated_taint(pod, &taints) {
        let value = t.value.clone().unwrap_or_default();
        return Some(
            Unfit::Taint {
                taint: format!("{}: {value}", t.key),
            }
            .to_string(),
        );
    }
    if !matches_node_selection(pod, st.node) {
        return Some(Unfit::Selection.to_string());
    }
    if host_port_conflict(pod, &st.pods) {
        return Some(Unfit::HostPorts.to_string());
    }
    let allocatable = match &st.allocatable {
        Ok(a) => a,
        Err(error) => {
            return Some(
                Unfit::BadNode {
                    error: error.clone(),
                }
                .to_string(),
            );
        }
    };
    for (res, want) in req {
        let room = match allocatable.get(res) {
            None => res == "ephemeral-storage",
            Some(_) => st.free[res] >= *want,
        };
        if *want > 0 && !room {
            return Some(
                Unfit::Insufficient {
                    resource: res.clone(),
                }
                .to_string(),
            );
        }
    }
    check_inter_pod(pod, views, guarded, at)
        .err()
        .map(|u| Unfit::from(u).to_string())
}

fn place<'a>(
    pod: &'a Pod,
    states: &mut [Fresh<'a>],
    guarded: &mut Vec<(usize, &'a Pod)>,
) -> Placement {
    let req = match pod_requests(pod) {
        Ok(r) => r,
        Err(e) => {
            return Placement::Invalid {
                error: e.to_string(),
            };
        }
    };
    let none = BTreeMap::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut chosen = None;
    {
        let views: Vec<NodeView<'_, '_>> = states
            .iter()
            .map(|st| NodeView {
                node: st.node,
                labels: st.node.metadata.labels.as_ref().unwrap_or(&none),
                pods: &st.pods,
            })
            .collect();
        for i in 0..states.len() {
            match refusal(pod, &req, states, &views, guarded, i) {
                None => {
                    chosen = Some(i);
                    break;
                }
                Some(r) => *reasons.entry(r).or_default() += 1,
            }
        }
    }
    let Some(i) = chosen else {
        let detail: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let mut reason = format!("0/{} nodes are available", states.len());
        if !detail.is_empty() {
            reason += &format!(": {}", detail.join(", "));
        }
        return Placement::NoFit {
            reason: reason + ".",
        };
    };
    states[i].pods.push(pod);
    if !required_anti_affinity(pod).is_empty() {
        guarded.push((i, pod));
    }
    for (k, v) in req {
        *states[i].free.entry(k).or_default() -= v;
    }
    Placement::Fits {
        node: states[i].name.clone(),
    }
}

/// A term over `app=<app>` in the pod's namespace.
fn app_term(app: &str, key: &str) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some([("app".to_owned(), app.to_owned())].into()),
            ..Default::default()
        }),
        topology_key: key.into(),
        ..Default::default()
    }
}

/// Node: (cordoned, taint 0..4 (3: none), zone 0..3 (2: no label), CPU milli, pods).
type NodeSpec = (bool, u8, u8, u32, u8);
/// Pod: (node 0..8 (past the nodes: bound to a node not listed), app, CPU milli,
/// ephemeral storage, host port, rule 0..6, finished, toleration 0..4 (3: none)).
type PodSpec = (u8, u8, u32, bool, bool, u8, bool, u8);

fn cluster(node_specs: &[NodeSpec], pod_specs: &[PodSpec]) -> (Vec<Node>, Vec<Pod>) {
    let keys = ["a", "b", "c"];
    let effects = ["NoSchedule", "NoExecute", "PreferNoSchedule"];
    let nodes: Vec<Node> = node_specs
        .iter()
        .enumerate()
        .map(|(i, &(cordoned, taint, zone, cpu, pods))| {
            let mut b = NodeBuilder::new(&format!("n{i}"))
                .alloc(&format!("{cpu}m"), "8Gi")
                .label("kubernetes.io/hostname", &format!("n{i}"));
            if cordoned {
                b = b.cordoned();
            }
            if taint < 3 {
                b = b.taint(keys[taint as usize], None, effects[taint as usize]);
            }
            if zone < 2 {
                b = b.label("zone", &format!("z{zone}"));
            }
            let mut n = b.build();
            let alloc = n.status.as_mut().unwrap().allocatable.as_mut().unwrap();
            alloc.insert("pods".into(), Quantity(pods.to_string()));
            if i % 2 == 0 {
                alloc.insert("ephemeral-storage".into(), Quantity("1Gi".into()));
            }
            n
        })
        .collect();
    let pods: Vec<Pod> = pod_specs
        .iter()
        .enumerate()
        .map(
            |(i, &(node, app, cpu, storage, port, rule, finished, tol))| {
                let app = ["web", "db"][app as usize % 2];
                let mut b = PodBuilder::new("ns", &format!("p{i}"))
                    .label("app", app)
                    .requests(&format!("{cpu}m"), "1Mi")
                    .on(&format!("n{node}"));
                if finished {
                    b = b.phase("Succeeded");
                }
                if tol < 3 {
                    b = b.tolerate(keys[tol as usize], "Exists", None, None);
                }
                let mut p = b.build();
                let spec = p.spec.as_mut().unwrap();
                let c: &mut Container = &mut spec.containers[0];
                if storage {
                    let r = c
                        .resources
                        .get_or_insert_with(ResourceRequirements::default);
                    r.requests
                        .get_or_insert_with(Default::default)
                        .insert("ephemeral-storage".into(), Quantity("600Mi".into()));
                }
                if port {
                    c.ports = Some(vec![ContainerPort {
                        container_port: 80,
                        host_port: Some(80),
                        ..Default::default()
                    }]);
                }
                let key = ["kubernetes.io/hostname", "zone"][rule as usize % 2];
                spec.affinity = match rule {
                    0 | 1 => Some(Affinity {
                        pod_anti_affinity: Some(PodAntiAffinity {
                            required_during_scheduling_ignored_during_execution: Some(vec![
                                app_term(app, key),
                            ]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    2 | 3 => Some(Affinity {
                        pod_affinity: Some(PodAffinity {
                            required_during_scheduling_ignored_during_execution: Some(vec![
                                app_term("db", key),
                            ]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    _ => None,
                };
                if rule == 4 {
                    spec.topology_spread_constraints = Some(vec![TopologySpreadConstraint {
                        max_skew: 1,
                        topology_key: "zone".into(),
                        when_unsatisfiable: "DoNotSchedule".into(),
                        label_selector: app_term(app, "zone").label_selector,
                        ..Default::default()
                    }]);
                }
                p
            },
        )
        .collect();
    (nodes, pods)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    /// One base shared by successive simulated drains (every node in turn, then pods taken
    /// from kept nodes too) gives, for each, the verdicts of computing it from scratch, and
    /// a simulation leaves the base as it found it.
    #[test]
    fn shared_base_gives_the_straightforward_verdicts(
        node_specs in proptest::collection::vec(
            (any::<bool>(), 0u8..4, 0u8..3, 100u32..3000, 1u8..6), 1..6),
        pod_specs in proptest::collection::vec(
            (0u8..7, 0u8..2, 50u32..1500, any::<bool>(), any::<bool>(), 0u8..7, proptest::bool::weighted(0.1), 0u8..4),
            0..16),
        extra_mask in any::<u16>(),
    ) {
        let (nodes, pods) = cluster(&node_specs, &pod_specs);
        let base = CapacityBase::new(&nodes, &pods);
        let none = VolumeAffinity::new();
        for (i, node) in nodes.iter().enumerate() {
            let name = node.metadata.name.clone().unwrap();
            let mut to_place: Vec<&Pod> = pods
                .iter()
                .filter(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some(name.as_str()))
                .collect();
            // Also pods that move from other nodes (and one listed twice).
            to_place.extend(pods.iter().enumerate().filter(|(j, _)| extra_mask & (1 << ((i + j) % 16)) != 0).map(|(_, p)| p));
            if let Some(p) = to_place.first().copied() {
                to_place.push(p);
            }
            let excluded = BTreeSet::from([name]);
            let got: Vec<Placement> = base
                .check(&to_place, &none, &excluded)
                .pods
                .into_iter()
                .map(|p| p.placement)
                .collect();
            prop_assert_eq!(got, straightforward(&to_place, &nodes, &pods, &excluded));
        }
        // Nothing moves, nothing is excluded: the same as from scratch after all those drains.
        let p = PodBuilder::new("ns", "new").requests("100m", "1Mi").build();
        let got: Vec<Placement> = base.check(&[&p], &none, &BTreeSet::new()).pods.into_iter().map(|p| p.placement).collect();
        prop_assert_eq!(got, straightforward(&[&p], &nodes, &pods, &BTreeSet::new()));
    }
}
