use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;

use super::*;
use crate::drain::eviction::EvictionVersion;
use crate::drain::testing::{NodeBuilder, PodBuilder, now, pdb};

fn pods() -> Vec<Pod> {
    vec![
        PodBuilder::new("app", "web-1")
            .rs("web")
            .label("app", "web")
            .requests("1", "1Gi")
            .build(),
        PodBuilder::new("app", "web-2")
            .rs("web")
            .label("app", "web")
            .requests("1", "1Gi")
            .build(),
        PodBuilder::new("kube-system", "kube-proxy-x")
            .ds("kube-proxy")
            .build(),
        PodBuilder::new("kube-system", "etcd-node1")
            .mirror()
            .build(),
        PodBuilder::new("app", "bare").build(),
        PodBuilder::new("app", "job-done")
            .owned("batch/v1", "Job", "j")
            .phase("Succeeded")
            .build(),
        PodBuilder::new("app", "cache")
            .rs("cache")
            .empty_dir()
            .build(),
    ]
}

fn snapshot(pdbs: Vec<PodDisruptionBudget>) -> ClusterSnapshot {
    let mut ds = BTreeMap::new();
    ds.insert(
        ("kube-system".to_owned(), "kube-proxy".to_owned()),
        DaemonSetLookup::Found,
    );
    ClusterSnapshot {
        nodes: vec![
            NodeBuilder::new("node1").build(),
            NodeBuilder::new("node2").alloc("1500m", "4Gi").build(),
            NodeBuilder::new("cp")
                .taint("node-role.kubernetes.io/control-plane", None, "NoSchedule")
                .build(),
        ],
        pods: pods(),
        pdbs,
        pdb_semantics: SelectorSemantics::V1,
        daemonsets: ds,
        volumes: VolumeAffinity::new(),
    }
}

fn options(force: bool, ignore: bool, emptydir: bool) -> DrainOptions {
    DrainOptions {
        filters: FilterOptions {
            force,
            ignore_daemonsets: ignore,
            delete_emptydir_data: emptydir,
            skip_wait_for_delete_timeout_seconds: 0,
        },
        method: RemovalMethod::Evict(EvictionVersion::V1),
        dry_run: None,
    }
}

fn target() -> Vec<NodeTarget> {
    vec![NodeTarget {
        name: "node1".into(),
        pods: pods(),
    }]
}

#[test]
fn default_flags_fail_the_node_before_eviction() {
    let plan = plan_drain(
        &snapshot(vec![]),
        &target(),
        &options(false, false, false),
        now(),
    );
    let n = &plan.nodes[0];
    assert_eq!(n.verdict, NodeVerdict::FilterErrors);
    assert_eq!(
        n.errors,
        vec![
            "cannot delete Pods declare no controller (use --force to override): app/bare",
            "cannot delete Pods with local storage (use --delete-emptydir-data to override): app/cache",
            "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): kube-system/kube-proxy-x",
        ]
    );
    assert!(plan.has_filter_errors());
}

#[test]
fn full_plan_with_flags() {
    let budget = pdb(
        "app",
        "web-pdb",
        "web",
        None,
        Some(IntOrString::Int(1)),
        (1, 2, 1, 2),
    );
    let plan = plan_drain(
        &snapshot(vec![budget]),
        &target(),
        &options(true, true, true),
        now(),
    );
    let n = &plan.nodes[0];
    let actions: Vec<(String, PodAction, String)> = n
        .pods
        .iter()
        .map(|p| (p.pod.to_string(), p.action, p.reason.clone()))
        .collect();
    assert_eq!(
        actions,
        vec![
            (
                "app/bare".into(),
                PodAction::Evict,
                "deleting Pods that declare no controller".into()
            ),
            (
                "app/cache".into(),
                PodAction::Evict,
                "managed by ReplicaSet/cache".into()
            ),
            (
                "app/job-done".into(),
                PodAction::Evict,
                "finished pod (Succeeded)".into()
            ),
            (
                "app/web-1".into(),
                PodAction::Evict,
                "managed by ReplicaSet/web".into()
            ),
            (
                "app/web-2".into(),
                PodAction::Evict,
                "managed by ReplicaSet/web".into()
            ),
            (
                "kube-system/etcd-node1".into(),
                PodAction::Skip,
                "mirror pod of a static pod (managed by the kubelet)".into()
            ),
            (
                "kube-system/kube-proxy-x".into(),
                PodAction::Skip,
                "ignoring DaemonSet-managed Pods".into()
            ),
        ]
    );
    assert_eq!(
        n.warnings,
        "deleting Pods that declare no controller: app/bare; ignoring DaemonSet-managed Pods: kube-system/kube-proxy-x"
    );
    assert_eq!(n.pods[1].notes, vec!["deleting Pods with local storage"]);
    // web-1 and web-2 share a budget allowing 1: paced, not blocked.
    assert_eq!(n.pdb_blockers.len(), 1);
    assert_eq!(n.pdb_blockers[0].kind, BlockerKind::Paced);
    // cache (no requests) and web-1 fit on node2; web-2 does not (cp is tainted).
    let placed: Vec<_> = n
        .pods
        .iter()
        .filter_map(|p| p.placement.clone().map(|pl| (p.pod.name.clone(), pl)))
        .collect();
    assert_eq!(placed.len(), 3, "bare and finished pods are not recreated");
    assert_eq!(
        placed[1],
        (
            "web-1".into(),
            Placement::Fits {
                node: "node2".into()
            }
        )
    );
    assert!(matches!(placed[2].1, Placement::NoFit { .. }));
    // web-2 is under a budget that only frees when a replacement is healthy, and its
    // replacement fits nowhere: a deadlock.
    assert_eq!(n.verdict, NodeVerdict::PdbDeadlock);
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["nodes"][0]["pods"][3]["pdb"]["kind"], "allowed");
    assert_eq!(json["options"]["method"]["version"], "policy/v1");
}

#[test]
fn deadlock_and_delete_mode() {
    let never = pdb(
        "app",
        "web-pdb",
        "web",
        Some(IntOrString::Int(2)),
        None,
        (0, 2, 2, 2),
    );
    let plan = plan_drain(
        &snapshot(vec![never.clone()]),
        &target(),
        &options(true, true, true),
        now(),
    );
    assert_eq!(plan.nodes[0].verdict, NodeVerdict::PdbDeadlock);
    let mut o = options(true, true, true);
    o.method = RemovalMethod::Delete;
    let plan = plan_drain(&snapshot(vec![never]), &target(), &o, now());
    assert!(
        plan.nodes[0].pdb_blockers.is_empty(),
        "DELETE bypasses PDBs"
    );
    assert!(
        plan.nodes[0]
            .pods
            .iter()
            .all(|p| p.action != PodAction::Evict && p.pdb.is_none())
    );
}

proptest! {
    /// The plan does not depend on the order pods are listed in, and pods with filter
    /// errors are never removed.
    #[test]
    fn deterministic(perm in Just(pods()).prop_shuffle(), force in any::<bool>(), ignore in any::<bool>(), emptydir in any::<bool>()) {
        let o = options(force, ignore, emptydir);
        let budget = pdb("app", "web-pdb", "web", None, Some(IntOrString::Int(1)), (1, 2, 1, 2));
        let a = plan_drain(&snapshot(vec![budget.clone()]), &target(), &o, now());
        let b = plan_drain(&snapshot(vec![budget]), &[NodeTarget { name: "node1".into(), pods: perm }], &o, now());
        prop_assert_eq!(&a, &b);
        for n in &a.nodes {
            for p in &n.pods {
                if p.pod.name == "etcd-node1" { prop_assert_eq!(p.action, PodAction::Skip); }
            }
            prop_assert_eq!(n.errors.is_empty(), n.pods.iter().all(|p| p.action != PodAction::Error));
            if !n.errors.is_empty() { prop_assert_eq!(n.verdict, NodeVerdict::FilterErrors); }
        }
    }
}

#[test]
fn lines() {
    let p = PodRef {
        namespace: "ns".into(),
        name: "p".into(),
        uid: String::new(),
    };
    assert_eq!(evicting_line(&p, None), "evicting pod ns/p");
    assert_eq!(
        evicting_line(&p, Some(DryRun::Server)),
        "evicting pod ns/p (server dry run)"
    );
    assert_eq!(
        removed_line(&p, RemovalMethod::Evict(EvictionVersion::V1beta1)),
        "pod/p evicted"
    );
    assert_eq!(
        drained_line("n", Some(DryRun::Client)),
        "node/n drained (dry run)"
    );
    assert_eq!(
        node_failed_line("n", &["x".into()]),
        "error: unable to drain node \"n\" due to error:x, continuing command..."
    );
    assert_eq!(
        node_failed_line("n", &["a".into(), "b".into()]),
        "error: unable to drain node \"n\" due to error:[a, b], continuing command..."
    );
}

#[test]
fn parallelism_decisions() {
    let node = |name: &str, placements: &[Option<Placement>]| NodePlan {
        node: name.into(),
        found: true,
        cordoned_before: false,
        cordon_owner: None,
        pods: placements
            .iter()
            .enumerate()
            .map(|(i, pl)| PodPlan {
                pod: PodRef {
                    namespace: "ns".into(),
                    name: format!("{name}-p{i}"),
                    uid: String::new(),
                },
                action: PodAction::Evict,
                reason: String::new(),
                decided_by: FilterName::Unreplicated,
                notes: vec![],
                controller: None,
                pdb: None,
                placement: pl.clone(),
            })
            .collect(),
        errors: vec![],
        error: None,
        warnings: String::new(),
        pdb_blockers: vec![],
        verdict: NodeVerdict::Ready,
    };
    let fits = Some(Placement::Fits { node: "w9".into() });
    let nofit = Some(Placement::NoFit {
        reason: "0/3 nodes are available: 3 Insufficient cpu.".into(),
    });
    let plan = |nodes: Vec<NodePlan>| DrainPlan {
        options: DrainOptions {
            filters: FilterOptions::default(),
            method: RemovalMethod::Delete,
            dry_run: None,
        },
        nodes,
        capacity: CapacityReport { pods: vec![] },
    };
    let fit_all = plan(vec![
        node("a", std::slice::from_ref(&fits)),
        node("b", &[fits.clone(), None]),
    ]);
    assert_eq!(parallelism(&fit_all, 1), Parallelism::Keep(1));
    assert_eq!(parallelism(&fit_all, 2), Parallelism::Keep(2));
    assert_eq!(
        parallelism(&fit_all, 4),
        Parallelism::Lower {
            to: 2,
            why: "only 2 node(s) selected".into()
        }
    );
    let short = plan(vec![
        node("a", std::slice::from_ref(&fits)),
        node("b", std::slice::from_ref(&nofit)),
    ]);
    // One at a time is kubectl's behaviour: the preflight names the pod, the drain goes on.
    assert_eq!(parallelism(&short, 1), Parallelism::Keep(1));
    assert_eq!(
        parallelism(&short, 2),
        Parallelism::Refuse {
            pods: vec![(
                PodRef {
                    namespace: "ns".into(),
                    name: "b-p0".into(),
                    uid: String::new()
                },
                "0/3 nodes are available: 3 Insufficient cpu.".into()
            )]
        }
    );
}

#[test]
fn node_order_table() {
    use crate::drain::config::NodeOrder;
    use crate::drain::pdb::{BlockerKind, PdbBlocker};
    let node = |name: &str, pods: usize, blockers: &[BlockerKind]| NodePlan {
        node: name.into(),
        found: true,
        cordoned_before: false,
        cordon_owner: None,
        pods: (0..pods)
            .map(|i| PodPlan {
                pod: PodRef {
                    namespace: "ns".into(),
                    name: format!("{name}-p{i}"),
                    uid: String::new(),
                },
                action: PodAction::Evict,
                reason: String::new(),
                decided_by: FilterName::Unreplicated,
                notes: vec![],
                controller: None,
                pdb: None,
                placement: None,
            })
            .collect(),
        errors: vec![],
        error: None,
        warnings: String::new(),
        pdb_blockers: blockers
            .iter()
            .map(|&kind| PdbBlocker {
                kind,
                pdbs: vec!["ns/x".into()],
                pods: vec![],
                explanation: String::new(),
            })
            .collect(),
        verdict: NodeVerdict::Ready,
    };
    let plan = DrainPlan {
        options: DrainOptions {
            filters: FilterOptions::default(),
            method: RemovalMethod::Delete,
            dry_run: None,
        },
        nodes: vec![
            // A paced budget is normal operation, not a blocker; work is the tie-breaker.
            node("c", 3, &[BlockerKind::Paced]),
            node("b", 1, &[BlockerKind::NoDisruptionsNow]),
            node("a", 2, &[]),
            node("d", 1, &[]),
            node("e", 0, &[BlockerKind::NoDisruptionsNow, BlockerKind::Stale]),
        ],
        capacity: CapacityReport { pods: vec![] },
    };
    let cases = [
        (NodeOrder::Given, vec![0, 1, 2, 3, 4]),
        (NodeOrder::Name, vec![2, 1, 0, 3, 4]),
        // Fewest blocking budgets, then fewest pods to remove, then by name.
        (NodeOrder::LeastBlocked, vec![3, 2, 0, 1, 4]),
    ];
    for (order, want) in cases {
        assert_eq!(node_order(&plan, order), want, "{order:?}");
    }
}

#[test]
fn closing_lines_follow_kubectls_check_err() {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let cases: Vec<(Vec<Vec<String>>, Vec<String>)> = vec![
        (vec![], vec![]),
        // One node: each of its errors on its own line, no prefix.
        (vec![v(&["a"])], v(&["a"])),
        (vec![v(&["a", "b", "c"])], v(&["a", "b", "c"])),
        // Several nodes: one line per node, its errors aggregated.
        (vec![v(&["a"]), v(&["b", "c"])], v(&["a", "[b, c]"])),
        // Go's aggregate drops repeated messages.
        (vec![v(&["a", "a"]), v(&["b"])], v(&["a", "b"])),
    ];
    for (nodes, want) in cases {
        assert_eq!(closing_error_lines(&nodes), want, "{nodes:?}");
    }
}
