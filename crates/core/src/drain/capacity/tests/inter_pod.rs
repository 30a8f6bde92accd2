//! The inter-pod filters in placement: host ports, pod affinity and anti-affinity, topology
//! spread, and bound volumes' node affinity.

use k8s_openapi::api::core::v1::{
    Affinity, ContainerPort, NodeSelector, NodeSelectorTerm, PersistentVolume,
    PersistentVolumeClaim, Pod, PodAffinity, PodAffinityTerm, PodAntiAffinity,
    TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::super::{Placement, check_capacity, volume_node_affinity};
use super::{fits, place, req};
use crate::drain::testing::{NodeBuilder, PodBuilder};

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
            reason: "0/1 nodes are available: 1 node(s) didn't match pod affinity rules.".into()
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
    pod.spec.as_mut().unwrap().topology_spread_constraints = Some(vec![TopologySpreadConstraint {
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
        PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PersistentVolumeSpec, Volume,
        VolumeNodeAffinity,
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
                        match_expressions: Some(vec![req("kubernetes.io/hostname", "In", &[n])]),
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
