//! Placement verdicts: table tests of each scheduler filter the preflight models, and property
//! tests.

use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::drain::node_selection::untolerated_taint;
use crate::drain::testing::{NodeBuilder, PodBuilder};

mod inter_pod;
mod straightforward;

pub(super) fn place(pods: &[Pod], nodes: &[Node], all: &[Pod], drained: &[&str]) -> Vec<Placement> {
    let refs: Vec<&Pod> = pods.iter().collect();
    let ex = drained.iter().map(|s| (*s).to_owned()).collect();
    check_capacity(&refs, nodes, all, &VolumeAffinity::new(), &ex)
        .pods
        .into_iter()
        .map(|p| p.placement)
        .collect()
}

pub(super) fn fits(n: &str) -> Placement {
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

pub(super) fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
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
            reason: "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) being drained.".into()
        }
    );
    assert_eq!(got[2], fits("b"));
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
