//! Times `kubemaint upgrade plan`'s pure work on a large cluster held in memory: discovery's
//! versions for 5 000 nodes (3 control-plane nodes mid-upgrade, kubelets over three minors),
//! the skew check, the path planner to a target four minors away, the drain PDB preflight
//! over 150 000 pods and 3 000 PDBs, and the capacity to absorb one drained node (the
//! heaviest nodes' pods placed on the others). Run by `bench/upgrade-plan.sh`, which reports CPU time.
//! The process's own CPU time (Linux `/proc/self/stat`) is printed separately for building the
//! objects in memory and for each part of the plan's work, so the figure for the plan is not the
//! cost of making 150 000 pods.
//!
//! Usage: `upgrade_plan_bench [NODES] [PODS] [ROUNDS]`.

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::api::core::v1::{
    Container, Node, NodeStatus, Pod, PodCondition, PodSpec, PodStatus, ResourceRequirements,
};
use k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubemaint_core::drain::capacity::VolumeAffinity;
use kubemaint_core::drain::pdb::SelectorSemantics;
use kubemaint_core::upgrade::drain_checks::{
    check_capacity_for_drain, check_drain, drain_blockers, drain_capacity,
};
use kubemaint_core::upgrade::plan::{ClusterState, EtcdMember, plan};
use kubemaint_core::upgrade::skew::{self, ClusterVersions, Instance};
use kubemaint_core::upgrade::{ReleaseIndex, Version};

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// This process's CPU time so far, user and system, in seconds (`/proc/self/stat` fields 14 and
/// 15, in clock ticks of 1/100 s: Linux's `USER_HZ`).
fn cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat (Linux)");
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')').expect("stat: command name") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks = |i: usize| fields[i - 3].parse::<f64>().expect("stat: CPU ticks") / 100.0;
    (ticks(14), ticks(15))
}

/// CPU time spent since `from`, printed as `what: U s user + S s sys`.
fn report(what: &str, from: (f64, f64)) -> (f64, f64) {
    let now = cpu();
    println!(
        "cpu {what}: {:.2} s user + {:.2} s sys",
        now.0 - from.0,
        now.1 - from.1
    );
    now
}

fn quantities(pairs: &[(&str, String)]) -> Option<BTreeMap<String, Quantity>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.clone())))
            .collect(),
    )
}

fn labels(app: &str) -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([("app".to_string(), app.to_string())]))
}

fn main() {
    let nodes_n = arg(1, 5_000);
    let pods_n = arg(2, 150_000);
    let rounds = arg(3, 1);
    let namespaces = 300;
    let apps_per_ns = 10;
    let started = cpu();

    let nodes: Vec<Node> = (0..nodes_n)
        .map(|i| Node {
            metadata: ObjectMeta {
                name: Some(format!("node-{i:05}")),
                ..Default::default()
            },
            status: Some(NodeStatus {
                allocatable: quantities(&[
                    ("cpu", "16".into()),
                    ("memory", "64Gi".into()),
                    ("pods", "110".into()),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let pods: Vec<Pod> = (0..pods_n)
        .map(|i| {
            let ns = i % namespaces;
            let app = (i / namespaces) % apps_per_ns;
            Pod {
                metadata: ObjectMeta {
                    namespace: Some(format!("ns-{ns}")),
                    name: Some(format!("pod-{i}")),
                    uid: Some(format!("uid-{i}")),
                    labels: labels(&format!("app-{app}")),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: format!("app-{app}"),
                        uid: format!("rs-{ns}-{app}"),
                        controller: Some(true),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                spec: Some(PodSpec {
                    node_name: Some(format!("node-{:05}", i % nodes_n)),
                    containers: vec![Container {
                        name: "app".into(),
                        resources: Some(ResourceRequirements {
                            requests: quantities(&[
                                ("cpu", format!("{}m", 50 + (i % 7) * 25)),
                                ("memory", format!("{}Mi", 64 + (i % 5) * 32)),
                            ]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                status: Some(PodStatus {
                    phase: Some("Running".into()),
                    conditions: Some(vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            }
        })
        .collect();
    // One PDB per app; every 7th allows nothing now (a blocker on the nodes of its pods).
    let pdbs: Vec<PodDisruptionBudget> = (0..namespaces * apps_per_ns)
        .map(|k| {
            let (ns, app) = (k / apps_per_ns, k % apps_per_ns);
            let allowed = if k % 7 == 0 { 0 } else { 1 };
            PodDisruptionBudget {
                metadata: ObjectMeta {
                    namespace: Some(format!("ns-{ns}")),
                    name: Some(format!("app-{app}")),
                    generation: Some(1),
                    ..Default::default()
                },
                spec: Some(PodDisruptionBudgetSpec {
                    max_unavailable: Some(IntOrString::Int(1)),
                    selector: Some(LabelSelector {
                        match_labels: labels(&format!("app-{app}")),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                status: Some(PodDisruptionBudgetStatus {
                    disruptions_allowed: Some(allowed),
                    current_healthy: Some(50),
                    desired_healthy: Some(49),
                    expected_pods: Some(50),
                    observed_generation: Some(1),
                    ..Default::default()
                }),
            }
        })
        .collect();

    let v = |s: &str| Version::parse(s).unwrap();
    let cps = ["node-00000", "node-00001", "node-00002"];
    let state = ClusterState {
        versions: ClusterVersions {
            apiservers: vec![
                Instance::on(cps[0], v("v1.28.15")),
                Instance::on(cps[1], v("v1.27.16")),
                Instance::on(cps[2], v("v1.27.16")),
            ],
            controller_managers: cps
                .iter()
                .map(|n| Instance::on(*n, v("v1.27.16")))
                .collect(),
            schedulers: cps
                .iter()
                .map(|n| Instance::on(*n, v("v1.27.16")))
                .collect(),
            kube_proxy: Some(v("v1.27.16")),
            kubelets: (0..nodes_n)
                .map(|i| {
                    let version = ["v1.27.16", "v1.26.15", "v1.25.16"][i % 3];
                    Instance::on(format!("node-{i:05}"), v(version))
                })
                .collect(),
            ..Default::default()
        },
        etcd: cps
            .iter()
            .map(|n| EtcdMember {
                node: Some(n.to_string()),
                version: "3.5.12-0".into(),
            })
            .collect(),
        coredns: Some("v1.10.1".into()),
        kubeadm: true,
    };
    let index = ReleaseIndex::builtin();
    let target = v("v1.31.14");

    let built = report("building the objects", started);
    let start = Instant::now();
    let mut summary = String::new();
    for _ in 0..rounds {
        let t = cpu();
        let findings = skew::check(&state.versions);
        let upgrade = plan(&state, &target, &index).expect("plan");
        let t = report("skew check and path", t);
        let blockers = drain_blockers(&nodes, &pods, &pdbs, SelectorSemantics::V1);
        let check = check_drain(nodes.len(), &blockers);
        let t = report("drain PDB preflight", t);
        let capacity = drain_capacity(&nodes, &pods, &VolumeAffinity::new());
        let room = check_capacity_for_drain(&capacity);
        report("drain capacity preflight", t);
        let actions: usize = upgrade.steps.iter().map(|s| s.actions.len()).sum();
        summary = format!(
            "nodes={nodes_n} pods={pods_n} pdbs={} findings_now={} steps={} actions={actions} keeps_policy={} drain_blockers={} drain_check={} capacity_nodes_checked={} capacity_check={}",
            pdbs.len(),
            findings.len(),
            upgrade.steps.len(),
            upgrade.keeps_policy(),
            blockers.len(),
            check.status,
            capacity.checked.len(),
            room.status
        );
    }
    let elapsed = start.elapsed();
    report(&format!("plan computation, {rounds} round(s)"), built);
    println!("{summary}");
    println!(
        "compute: {:.3} s wall for {rounds} round(s), {:.3} s per round",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() / rounds as f64
    );
}
