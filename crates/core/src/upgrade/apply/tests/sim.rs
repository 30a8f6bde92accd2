//! The simulator: a fake cluster, a driver with kills and failing commands, and the
//! invariants checked at every action.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::{OPTS, apply_plan, cluster, v};
use crate::upgrade::apply::*;
use crate::upgrade::plan::ClusterState;
use crate::upgrade::version::Version;

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
    /// Killed, or stopped by failing commands: the last persisted state.
    Interrupted(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillAt {
    /// After `begin` was persisted, before the action ran.
    BeforeRun(usize),
    /// After the action ran, before `record` was persisted.
    AfterRun(usize),
    /// Inside a batch's commands: after the first node's end was persisted, before the others
    /// ran.
    Midway(usize),
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
    // Every drive after the first is a `--resume`.
    state.retry_failed();
    for step in 0..10_000 {
        let action = next(&state, &sim.facts(), plan, options);
        match &action {
            Action::Done => {
                prop_assert!(state.cordoned.is_empty());
                return Ok(Outcome::Finished(state));
            }
            Action::Stop {
                reason: StopReason::CommandsFailed { nodes },
            } => {
                check_failed_stop(&state, sim, nodes)?;
                return Ok(Outcome::Interrupted(serde_json::to_string(&state).unwrap()));
            }
            Action::Stop { reason } => return Err(TestCaseError::fail(format!("{reason}"))),
            _ => {}
        }
        state.begin(&action);
        let mut saved = serde_json::to_string(&state).unwrap();
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
            Action::RunCommands { jobs } => {
                // The edge runs them at once and records each node's end as it comes.
                for (i, job) in jobs.iter().enumerate() {
                    let batch = state.batch.as_ref().unwrap();
                    prop_assert!(
                        !batch.upgraded.contains(&job.node),
                        "{} run again after its commands completed",
                        job.node
                    );
                    if sim.fail_once.remove(&job.node) {
                        state.node_failed(&job.node);
                    } else {
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
                        state.node_upgraded(&job.node);
                    }
                    saved = serde_json::to_string(&state).unwrap();
                    if i == 0 && kill == Some(KillAt::Midway(step)) {
                        return Ok(Outcome::Interrupted(saved));
                    }
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
        if !matches!(action, Action::RunCommands { .. }) {
            // RunCommands was recorded node by node above (some may have failed).
            state.record(&action);
        }
    }
    Err(TestCaseError::fail("no end after 10 000 actions"))
}

/// A stop for failed commands: the failed nodes are still out (cordoned, not upgraded), the
/// batch's other nodes are upgraded and back in service (unless cordoned by someone else).
fn check_failed_stop(state: &RunState, sim: &Sim, failed: &[String]) -> Result<(), TestCaseError> {
    let batch = state.batch.as_ref().unwrap();
    prop_assert!(!failed.is_empty());
    for node in &batch.nodes {
        let sim_node = &sim.nodes[node];
        if failed.contains(node) {
            prop_assert!(sim_node.unschedulable, "failed {node} not left cordoned");
            prop_assert!(!batch.upgraded.contains(node));
        } else {
            prop_assert!(
                batch.upgraded.contains(node),
                "{node} neither failed nor upgraded"
            );
            prop_assert!(batch.waited.contains(node), "{node} not waited for");
            prop_assert_eq!(
                sim_node.unschedulable,
                sim.foreign.contains(node),
                "{}",
                node
            );
        }
    }
    Ok(())
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
            for kill in [KillAt::BeforeRun(step), KillAt::Midway(step), KillAt::AfterRun(step)] {
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
    // One RunCommands per batch, every node of the batch at once.
    let commands: Vec<Vec<&str>> = actions
        .iter()
        .filter_map(|a| match a {
            Action::RunCommands { jobs } => Some(jobs.iter().map(|j| j.node.as_str()).collect()),
            _ => None,
        })
        .collect();
    assert_eq!(
        commands,
        [vec!["cp-1"], vec!["cp-2"], vec!["w-2", "w-1"], vec!["w-3"]]
    );
}
