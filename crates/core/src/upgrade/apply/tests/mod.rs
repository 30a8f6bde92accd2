use std::collections::BTreeMap;

use super::*;
use crate::upgrade::plan::{ClusterState, EtcdMember, plan};
use crate::upgrade::releases::ReleaseIndex;
use crate::upgrade::skew::{ClusterVersions, Instance};

mod sim;

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
    // The catch-up moves only the kubelet (`{role}` kubelet-only, the built-in commands'
    // kubelet-config phase); every other job is a whole node's upgrade.
    for stage in &plan.stages {
        for job in &stage.jobs {
            let catch_up = stage.kind == StageKind::CatchUp;
            assert_eq!(job.kubelet_only, catch_up, "{job:?}");
            assert_eq!(
                job.role_word(),
                if catch_up {
                    "kubelet-only"
                } else {
                    job.role.as_str()
                }
            );
            assert_eq!(job.node_role() == NodeRole::KubeletOnly, catch_up);
        }
    }
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
        Action::RunCommands { jobs } => {
            assert_eq!(jobs.len(), 1);
            assert!(jobs[0].first);
            assert_eq!(jobs[0].role, Role::ControlPlane);
            state.record(&Action::RunCommands { jobs });
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
    let batch = state.batch.as_mut().unwrap();
    batch.phase = BatchPhase::Uncordon;
    batch.upgraded = ["w-1".to_string(), "w-3".to_string()].into();
    batch.waited = batch.upgraded.clone();
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

#[test]
fn a_batch_runs_its_commands_at_once_and_a_partial_failure_brings_back_the_others_then_stops() {
    let plan = apply_plan(&cluster(1, 3, "v1.19.16", &[], ""), "v1.20.2");
    let facts = facts_all(1, 3, "v1.19.16");
    let s = |state: &RunState| next(state, &facts, &plan, &OPTS);
    let names = |nodes: &[&str]| nodes.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let mut state = RunState {
        done: [JobKey {
            stage: 0,
            node: "cp-1".into(),
        }]
        .into(),
        ..Default::default()
    };
    for action in [
        Action::StartBatch {
            stage: 1,
            nodes: names(&["w-1", "w-2"]),
        },
        Action::Cordon {
            nodes: names(&["w-1", "w-2"]),
        },
        Action::Drain {
            nodes: names(&["w-1", "w-2"]),
        },
    ] {
        assert_eq!(s(&state), action);
        state.begin(&action);
        state.record(&action);
    }
    // Both nodes' commands in one action.
    let Action::RunCommands { jobs } = s(&state) else {
        panic!("{:?}", s(&state))
    };
    let nodes: Vec<&str> = jobs.iter().map(|j| j.node.as_str()).collect();
    assert_eq!(nodes, ["w-1", "w-2"]);
    // w-2 ends first and fails; w-1 succeeds.
    state.node_failed("w-2");
    assert!(
        matches!(s(&state), Action::RunCommands { jobs } if jobs.len() == 1 && jobs[0].node == "w-1"),
        "w-1 still in flight"
    );
    state.node_upgraded("w-1");
    // The succeeded node comes back: wait, uncordon; then the stop names the failed one.
    let table = [
        (
            Action::Wait {
                nodes: names(&["w-1"]),
                version: v("v1.20.2"),
                control_plane: false,
            },
            true,
        ),
        (
            Action::Uncordon {
                nodes: names(&["w-1"]),
            },
            true,
        ),
        (
            Action::Stop {
                reason: StopReason::CommandsFailed {
                    nodes: names(&["w-2"]),
                },
            },
            false,
        ),
    ];
    for (want, record) in table {
        assert_eq!(s(&state), want);
        if record {
            state.record(&want);
        }
    }
    assert_eq!(state.cordoned, ["w-2".to_string()].into(), "w-2 stays out");
    // The record survives a round trip; a resume retries only w-2.
    let mut resumed: RunState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    assert_eq!(resumed, state);
    resumed.retry_failed();
    let Action::RunCommands { jobs } = next(&resumed, &facts, &plan, &OPTS) else {
        panic!()
    };
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].node, "w-2");
    resumed.record(&Action::RunCommands { jobs });
    for want in [
        Action::Wait {
            nodes: names(&["w-2"]),
            version: v("v1.20.2"),
            control_plane: false,
        },
        Action::Uncordon {
            nodes: names(&["w-2"]),
        },
        Action::HealthGate { stage: 1 },
    ] {
        assert_eq!(next(&resumed, &facts, &plan, &OPTS), want);
        resumed.record(&want);
    }
    assert!(resumed.batch.is_none());
    assert_eq!(resumed.done.len(), 3);
}

#[test]
fn a_record_written_before_per_node_progress_still_resumes() {
    // The format of the previous release: phase + upgraded, no failed/waited sets.
    let plan = apply_plan(&cluster(1, 2, "v1.19.16", &[], ""), "v1.20.2");
    let facts = facts_all(1, 2, "v1.19.16");
    let old = r#"{"done":[{"stage":0,"node":"cp-1"}],"batch":{"stage":1,"nodes":["w-1","w-2"],"phase":"uncordon","upgraded":["w-1","w-2"]},"cordoned":["w-1","w-2"],"snapshots":[]}"#;
    let mut state: RunState = serde_json::from_str(old).unwrap();
    let mut seen = Vec::new();
    loop {
        let action = next(&state, &facts, &plan, &OPTS);
        if matches!(action, Action::Done | Action::StartBatch { .. }) {
            break;
        }
        state.begin(&action);
        state.record(&action);
        seen.push(action);
    }
    // The wait is repeated (harmless: the nodes are Ready), then the uncordon and the gate.
    assert!(matches!(&seen[0], Action::Wait { nodes, .. } if nodes.len() == 2));
    assert_eq!(
        seen[1],
        Action::Uncordon {
            nodes: vec!["w-1".into(), "w-2".into()]
        }
    );
    assert_eq!(seen[2], Action::HealthGate { stage: 1 });
    assert_eq!(seen.len(), 3);
}
