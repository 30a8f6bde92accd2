use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::upgrade::plan::{ClusterState, EtcdMember, plan};
use crate::upgrade::releases::ReleaseIndex;
use crate::upgrade::skew::{ClusterVersions, Instance};

fn v(text: &str) -> Version {
    Version::parse(text).unwrap()
}

/// A kubeadm cluster: control planes `cp-N` and workers `w-N`, every component at `at`, the
/// kubelets of `old` workers at `old_at`.
fn cluster(cps: usize, workers: usize, at: &str, old: &[usize], old_at: &str) -> ClusterState {
    let cp_names: Vec<String> = (1..=cps).map(|i| format!("cp-{i}")).collect();
    let on_cps = |version: &str| {
        cp_names
            .iter()
            .map(|n| Instance::on(n.clone(), v(version)))
            .collect::<Vec<_>>()
    };
    let mut kubelets = on_cps(at);
    for i in 1..=workers {
        let version = if old.contains(&i) { old_at } else { at };
        kubelets.push(Instance::on(format!("w-{i}"), v(version)));
    }
    ClusterState {
        versions: ClusterVersions {
            apiservers: on_cps(at),
            controller_managers: on_cps(at),
            schedulers: on_cps(at),
            kube_proxy: Some(v(at)),
            kubelets,
            ..Default::default()
        },
        etcd: cp_names
            .iter()
            .map(|n| EtcdMember {
                node: Some(n.clone()),
                version: "3.4.9-1".into(),
            })
            .collect(),
        coredns: Some("1.7.0".into()),
        kubeadm: true,
    }
}

fn apply_plan(state: &ClusterState, target: &str) -> ApplyPlan {
    let upgrade = plan(state, &v(target), &ReleaseIndex::builtin()).unwrap();
    let cps: Vec<String> = state
        .versions
        .apiservers
        .iter()
        .filter_map(|i| i.node.clone())
        .collect();
    ApplyPlan::from_upgrade(&upgrade, &cps)
}

fn stage_summary(plan: &ApplyPlan) -> Vec<String> {
    plan.stages
        .iter()
        .map(|s| {
            let jobs: Vec<String> = s
                .jobs
                .iter()
                .map(|j| format!("{}{}", j.node, if j.first { "*" } else { "" }))
                .collect();
            format!("{:?} {} {}: {}", s.kind, s.role, s.version, jobs.join(","))
        })
        .collect()
}

#[test]
fn the_issue_lab_plan_is_control_planes_then_workers() {
    let plan = apply_plan(&cluster(3, 4, "v1.19.16", &[], ""), "v1.20.2");
    assert_eq!(
        stage_summary(&plan),
        [
            "ControlPlane control-plane v1.20.2: cp-1*,cp-2,cp-3",
            "Workers worker v1.20.2: w-1,w-2,w-3,w-4",
        ]
    );
    assert_eq!(plan.job_count(), 7);
}

#[test]
fn a_multi_minor_target_follows_the_chain_and_catches_old_kubelets_up_first() {
    let plan = apply_plan(&cluster(1, 3, "v1.19.16", &[2], "v1.18.20"), "v1.21.14");
    assert_eq!(
        stage_summary(&plan),
        [
            "CatchUp worker v1.19.16: w-2",
            "ControlPlane control-plane v1.20.15: cp-1*",
            "Workers worker v1.20.15: w-1,w-2,w-3",
            "ControlPlane control-plane v1.21.14: cp-1*",
            "Workers worker v1.21.14: w-1,w-2,w-3",
        ]
    );
}

fn facts_all(cps: usize, workers: usize, at: &str) -> Facts {
    let mut nodes = BTreeMap::new();
    for i in 1..=cps {
        nodes.insert(
            format!("cp-{i}"),
            NodeFacts {
                ready: true,
                unschedulable: false,
                kubelet: Some(v(at)),
                control_plane: Some(v(at)),
            },
        );
    }
    for i in 1..=workers {
        nodes.insert(
            format!("w-{i}"),
            NodeFacts {
                ready: true,
                unschedulable: false,
                kubelet: Some(v(at)),
                control_plane: None,
            },
        );
    }
    Facts { nodes }
}

const OPTS: Options = Options {
    max_unavailable: 2,
    snapshot: true,
};

#[test]
fn table_of_decisions() {
    let plan = apply_plan(&cluster(2, 3, "v1.19.16", &[], ""), "v1.20.2");
    let facts = facts_all(2, 3, "v1.19.16");
    let s = |state: &RunState| next(state, &facts, &plan, &OPTS);

    // Fresh: snapshot before the control plane, then cp-1 alone.
    let mut state = RunState::default();
    assert_eq!(s(&state), Action::Snapshot { stage: 0 });
    state.record(&Action::Snapshot { stage: 0 });
    let start = s(&state);
    assert_eq!(
        start,
        Action::StartBatch {
            stage: 0,
            nodes: vec!["cp-1".into()]
        }
    );
    state.record(&start);
    let cordon = s(&state);
    assert_eq!(
        cordon,
        Action::Cordon {
            nodes: vec!["cp-1".into()]
        }
    );
    state.begin(&cordon);
    assert!(
        state.cordoned.contains("cp-1"),
        "recorded before the request"
    );
    state.record(&cordon);
    assert_eq!(
        s(&state),
        Action::Drain {
            nodes: vec!["cp-1".into()]
        }
    );
    state.record(&s(&state));
    match s(&state) {
        Action::RunCommands { job } => {
            assert!(job.first);
            assert_eq!(job.role, Role::ControlPlane);
            state.record(&Action::RunCommands { job });
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s(&state),
        Action::Wait {
            nodes: vec!["cp-1".into()],
            version: v("v1.20.2"),
            control_plane: true
        }
    );
    state.record(&s(&state));
    assert_eq!(
        s(&state),
        Action::Uncordon {
            nodes: vec!["cp-1".into()]
        }
    );
    state.record(&s(&state));
    assert!(state.cordoned.is_empty());
    assert_eq!(s(&state), Action::HealthGate { stage: 0 });
    state.record(&s(&state));
    assert!(state.batch.is_none());
    // The snapshot is taken once per control-plane stage.
    assert_eq!(
        s(&state),
        Action::StartBatch {
            stage: 0,
            nodes: vec!["cp-2".into()]
        }
    );
}

#[test]
fn a_node_cordoned_before_goes_first_and_is_never_uncordoned() {
    let plan = apply_plan(&cluster(1, 3, "v1.19.16", &[], ""), "v1.20.2");
    let mut facts = facts_all(1, 3, "v1.19.16");
    facts.nodes.get_mut("w-3").unwrap().unschedulable = true;
    let mut state = RunState::default();
    state.done.insert(JobKey {
        stage: 0,
        node: "cp-1".into(),
    });
    let start = next(&state, &facts, &plan, &OPTS);
    assert_eq!(
        start,
        Action::StartBatch {
            stage: 1,
            nodes: vec!["w-3".into(), "w-1".into()]
        }
    );
    state.record(&start);
    assert_eq!(
        next(&state, &facts, &plan, &OPTS),
        Action::Cordon {
            nodes: vec!["w-1".into()]
        }
    );
    // Skip to uncordon: only w-1 is ours.
    state.begin(&Action::Cordon {
        nodes: vec!["w-1".into()],
    });
    state.batch.as_mut().unwrap().phase = BatchPhase::Uncordon;
    assert_eq!(
        next(&state, &facts, &plan, &OPTS),
        Action::Uncordon {
            nodes: vec!["w-1".into()]
        }
    );
}

#[test]
fn nodes_already_at_the_version_are_skipped_and_missing_nodes_stop_the_run() {
    let plan = apply_plan(&cluster(1, 2, "v1.19.16", &[], ""), "v1.20.2");
    let mut facts = facts_all(1, 2, "v1.19.16");
    let state = RunState {
        done: [JobKey {
            stage: 0,
            node: "cp-1".into(),
        }]
        .into(),
        ..Default::default()
    };
    facts.nodes.get_mut("w-2").unwrap().kubelet = Some(v("v1.20.2"));
    assert_eq!(
        next(&state, &facts, &plan, &OPTS),
        Action::Skip {
            stage: 1,
            nodes: vec!["w-2".into()]
        }
    );
    facts.nodes.remove("w-1");
    assert_eq!(
        next(&state, &facts, &plan, &OPTS),
        Action::Stop {
            reason: StopReason::NodeGone { node: "w-1".into() }
        }
    );
    // A control-plane node whose kubelet is new but whose static pods are not is not done.
    let fresh = facts_all(1, 2, "v1.19.16");
    let mut cp_half = fresh.clone();
    cp_half.nodes.get_mut("cp-1").unwrap().kubelet = Some(v("v1.20.2"));
    let no_snapshot = Options {
        snapshot: false,
        ..OPTS
    };
    assert!(matches!(
        next(&RunState::default(), &cp_half, &plan, &no_snapshot),
        Action::StartBatch { stage: 0, .. }
    ));
}

// ---- The simulator: a fake cluster, a driver with kills, and the invariants. ----

#[derive(Debug, Clone, PartialEq, Eq)]
struct SimNode {
    unschedulable: bool,
    kubelet: Version,
    control_plane: Option<Version>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sim {
    nodes: BTreeMap<String, SimNode>,
    /// Cordoned before the run.
    foreign: BTreeSet<String>,
    /// (stage, node) of every drain, in order.
    drains: Vec<(usize, String)>,
    /// Nodes whose next command fails once.
    fail_once: BTreeSet<String>,
    snapshots: usize,
}

impl Sim {
    fn facts(&self) -> Facts {
        Facts {
            nodes: self
                .nodes
                .iter()
                .map(|(name, n)| {
                    (
                        name.clone(),
                        NodeFacts {
                            ready: true,
                            unschedulable: n.unschedulable,
                            kubelet: Some(n.kubelet.clone()),
                            control_plane: n.control_plane.clone(),
                        },
                    )
                })
                .collect(),
        }
    }
}

#[derive(Debug)]
enum Outcome {
    Finished(RunState),
    /// Killed, or stopped by a failing command: the last persisted state.
    Interrupted(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillAt {
    /// After `begin` was persisted, before the action ran.
    BeforeRun(usize),
    /// After the action ran, before `record` was persisted.
    AfterRun(usize),
}

/// Runs the machine from `persisted` on `sim`, checking the invariants at every action.
fn drive(
    persisted: &str,
    sim: &mut Sim,
    plan: &ApplyPlan,
    options: &Options,
    kill: Option<KillAt>,
) -> Result<Outcome, TestCaseError> {
    let mut state: RunState = serde_json::from_str(persisted).unwrap();
    for step in 0..10_000 {
        let action = next(&state, &sim.facts(), plan, options);
        match &action {
            Action::Done => {
                prop_assert!(state.cordoned.is_empty());
                return Ok(Outcome::Finished(state));
            }
            Action::Stop { reason } => return Err(TestCaseError::fail(format!("{reason}"))),
            _ => {}
        }
        state.begin(&action);
        let saved = serde_json::to_string(&state).unwrap();
        if kill == Some(KillAt::BeforeRun(step)) {
            return Ok(Outcome::Interrupted(saved));
        }
        match &action {
            Action::StartBatch { stage, nodes } => {
                let size = match plan.stages[*stage].role {
                    Role::ControlPlane => 1,
                    Role::Worker => options.max_unavailable,
                };
                prop_assert!(nodes.len() <= size, "batch {nodes:?} over {size}");
            }
            Action::Snapshot { .. } => sim.snapshots += 1,
            Action::Cordon { nodes } => {
                for node in nodes {
                    prop_assert!(!sim.foreign.contains(node), "cordoned a foreign node");
                    sim.nodes.get_mut(node).unwrap().unschedulable = true;
                }
            }
            Action::Drain { nodes } => {
                let batch = state.batch.as_ref().unwrap();
                for node in nodes {
                    let key = JobKey {
                        stage: batch.stage,
                        node: node.clone(),
                    };
                    prop_assert!(
                        !state.done.contains(&key),
                        "{node} drained after it was done"
                    );
                    sim.drains.push((batch.stage, node.clone()));
                }
            }
            Action::RunCommands { job } => {
                if sim.fail_once.remove(&job.node) {
                    return Ok(Outcome::Interrupted(saved));
                }
                let node = sim.nodes.get_mut(&job.node).unwrap();
                prop_assert!(
                    node.unschedulable,
                    "{} upgraded while schedulable",
                    job.node
                );
                node.kubelet = job.version.clone();
                if job.role == Role::ControlPlane {
                    node.control_plane = Some(job.version.clone());
                }
            }
            Action::Wait { nodes, version, .. } => {
                for node in nodes {
                    prop_assert!(sim.nodes[node].kubelet >= *version);
                }
            }
            Action::Uncordon { nodes } => {
                for node in nodes {
                    prop_assert!(
                        !sim.foreign.contains(node),
                        "uncordoned {node}, cordoned by someone else"
                    );
                    prop_assert!(state.cordoned.contains(node), "uncordoned {node}: not ours");
                    sim.nodes.get_mut(node).unwrap().unschedulable = false;
                }
            }
            Action::Skip { .. } | Action::HealthGate { .. } => {}
            Action::Done | Action::Stop { .. } => unreachable!(),
        }
        // Never more than max-unavailable nodes out because of the run; control planes alone.
        let ours: Vec<&String> = sim
            .nodes
            .iter()
            .filter(|(n, s)| s.unschedulable && !sim.foreign.contains(*n))
            .map(|(n, _)| n)
            .collect();
        prop_assert!(ours.len() <= options.max_unavailable, "{ours:?} out");
        let cps = ours.iter().filter(|n| n.starts_with("cp-")).count();
        prop_assert!(cps <= 1, "{ours:?}: two control planes out");
        prop_assert!(
            cps == 0 || ours.len() == 1,
            "{ours:?}: control plane with others"
        );
        if kill == Some(KillAt::AfterRun(step)) {
            return Ok(Outcome::Interrupted(saved));
        }
        state.record(&action);
    }
    Err(TestCaseError::fail("no end after 10 000 actions"))
}

fn initial(cs: &ClusterState, foreign: &BTreeSet<String>, fail: &BTreeSet<String>) -> Sim {
    let cp_version = |node: &str| {
        cs.versions
            .apiservers
            .iter()
            .find(|i| i.node.as_deref() == Some(node))
            .map(|i| i.version.clone())
    };
    Sim {
        nodes: cs
            .versions
            .kubelets
            .iter()
            .map(|k| {
                let name = k.node.clone().unwrap();
                let node = SimNode {
                    unschedulable: foreign.contains(&name),
                    kubelet: k.version.clone(),
                    control_plane: cp_version(&name),
                };
                (name, node)
            })
            .collect(),
        foreign: foreign.clone(),
        drains: Vec::new(),
        fail_once: fail.clone(),
        snapshots: 0,
    }
}

fn check_end(sim: &Sim, target: &Version) -> Result<(), TestCaseError> {
    for (name, node) in &sim.nodes {
        prop_assert_eq!(&node.kubelet, target, "{}", name);
        if let Some(cp) = &node.control_plane {
            prop_assert_eq!(cp, target, "{}", name);
        }
        prop_assert_eq!(node.unschedulable, sim.foreign.contains(name), "{}", name);
    }
    Ok(())
}

/// Runs to the end, resuming from the persisted state after every interruption.
fn run_to_end(
    sim: &mut Sim,
    plan: &ApplyPlan,
    options: &Options,
    mut kill: Option<KillAt>,
) -> Result<RunState, TestCaseError> {
    let mut persisted = serde_json::to_string(&RunState::default()).unwrap();
    for _ in 0..100 {
        match drive(&persisted, sim, plan, options, kill.take())? {
            Outcome::Finished(state) => return Ok(state),
            Outcome::Interrupted(saved) => persisted = saved,
        }
    }
    Err(TestCaseError::fail("never finished"))
}

#[derive(Debug, Clone)]
struct Case {
    cluster: ClusterState,
    target: Version,
    foreign: BTreeSet<String>,
    fail: BTreeSet<String>,
    options: Options,
}

fn arb_case() -> impl Strategy<Value = Case> {
    (
        1usize..=3,
        0usize..=6,
        prop::collection::vec(any::<bool>(), 6),
        prop::collection::vec(any::<bool>(), 9),
        prop::collection::vec(any::<bool>(), 9),
        1usize..=4,
        any::<bool>(),
        0usize..=2,
    )
        .prop_map(
            |(cps, workers, old, foreign, fail, max_unavailable, snapshot, hops)| {
                let old: Vec<usize> = (1..=workers).filter(|i| old[i - 1]).collect();
                let cluster = cluster(cps, workers, "v1.19.16", &old, "v1.18.20");
                let names: Vec<String> = cluster
                    .versions
                    .kubelets
                    .iter()
                    .filter_map(|k| k.node.clone())
                    .collect();
                let pick = |flags: &[bool]| -> BTreeSet<String> {
                    names
                        .iter()
                        .zip(flags)
                        .filter(|(_, f)| **f)
                        .map(|(n, _)| n.clone())
                        .collect()
                };
                let target = ["v1.20.2", "v1.21.14", "v1.22.17"][hops];
                Case {
                    target: v(target),
                    foreign: pick(&foreign),
                    fail: pick(&fail),
                    options: Options {
                        max_unavailable,
                        snapshot,
                    },
                    cluster,
                }
            },
        )
}

fn plan_for(case: &Case) -> ApplyPlan {
    apply_plan(&case.cluster, &case.target.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any cluster, any max-unavailable, cordons by others, commands that fail once: the run
    /// keeps every invariant at every action and ends with every node at the target,
    /// uncordoned unless someone else cordoned it.
    #[test]
    fn runs_keep_the_invariants_and_reach_the_target(case in arb_case()) {
        let plan = plan_for(&case);
        let mut sim = initial(&case.cluster, &case.foreign, &case.fail);
        let state = run_to_end(&mut sim, &plan, &case.options, None)?;
        check_end(&sim, &case.target)?;
        prop_assert_eq!(state.done.len(), plan.job_count());
        let cp_stages = plan.stages.iter().filter(|s| s.kind == StageKind::ControlPlane).count();
        prop_assert_eq!(sim.snapshots, if case.options.snapshot { cp_stages } else { 0 });
        // Each job's node drained in exactly one batch.
        let unique: BTreeSet<_> = sim.drains.iter().collect();
        prop_assert_eq!(unique.len(), plan.job_count());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Kill the run at every action (before and after the action ran), resume from the
    /// serialized state: the same end as an uninterrupted run, no finished node redone.
    #[test]
    fn a_kill_at_any_action_resumes_to_the_same_end(case in arb_case()) {
        let plan = plan_for(&case);
        let no_fail = BTreeSet::new();
        let mut reference = initial(&case.cluster, &case.foreign, &no_fail);
        let end = run_to_end(&mut reference, &plan, &case.options, None)?;
        let actions = reference.drains.len() * 8 + 8;
        for step in 0..actions {
            for kill in [KillAt::BeforeRun(step), KillAt::AfterRun(step)] {
                let mut sim = initial(&case.cluster, &case.foreign, &no_fail);
                let resumed = run_to_end(&mut sim, &plan, &case.options, Some(kill))?;
                prop_assert_eq!(&resumed, &end, "{:?}", kill);
                prop_assert_eq!(&sim.nodes, &reference.nodes, "{:?}", kill);
                let unique: BTreeSet<_> = sim.drains.iter().collect();
                prop_assert_eq!(unique.len(), plan.job_count(), "{:?}", kill);
            }
        }
    }
}

#[test]
fn the_dry_run_simulation_ends_done_and_matches_a_real_run() {
    let cs = cluster(2, 3, "v1.19.16", &[], "");
    let plan = apply_plan(&cs, "v1.20.2");
    let foreign: BTreeSet<String> = ["w-2".to_string()].into();
    let sim = initial(&cs, &foreign, &BTreeSet::new());
    let actions = simulate::simulate(&RunState::default(), &sim.facts(), &plan, &OPTS, 1000);
    assert_eq!(actions.last(), Some(&Action::Done));
    assert_eq!(actions.first(), Some(&Action::Snapshot { stage: 0 }));
    let uncordoned: Vec<&String> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Uncordon { nodes } => Some(nodes),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(uncordoned, ["cp-1", "cp-2", "w-1", "w-3"]);
    let commands = actions
        .iter()
        .filter(|a| matches!(a, Action::RunCommands { .. }))
        .count();
    assert_eq!(commands, 5);
}
