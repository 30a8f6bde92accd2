use proptest::prelude::*;

use super::*;
use crate::upgrade::skew::{Instance, Rule};
use crate::upgrade::version::Minor;

fn v(text: &str) -> Version {
    Version::parse(text).unwrap()
}

/// The lab of the issue: a v1.19.16 control plane, workers at v1.19.16 and v1.18.20.
fn lab_1_19() -> ClusterState {
    ClusterState {
        versions: ClusterVersions {
            apiservers: vec![Instance::on("cp1", v("v1.19.16"))],
            controller_managers: vec![Instance::on("cp1", v("v1.19.16"))],
            schedulers: vec![Instance::on("cp1", v("v1.19.16"))],
            kube_proxy: Some(v("v1.19.16")),
            kubelets: vec![
                Instance::on("cp1", v("v1.19.16")),
                Instance::on("w1", v("v1.19.16")),
                Instance::on("w2", v("v1.18.20")),
            ],
            ..Default::default()
        },
        etcd: vec![EtcdMember {
            node: Some("cp1".into()),
            version: "3.4.9-1".into(),
        }],
        coredns: Some("1.7.0".into()),
        kubeadm: true,
    }
}

fn summary(step: &Step) -> Vec<String> {
    step.actions
        .iter()
        .map(|a| {
            format!(
                "{:?} {} {} {}->{}",
                a.phase,
                a.component,
                a.node.as_deref().unwrap_or("-"),
                a.from.as_deref().unwrap_or("?"),
                a.to
            )
        })
        .collect()
}

#[test]
fn lab_plan_moves_the_old_kubelet_first_then_goes_minor_by_minor() {
    let index = ReleaseIndex::builtin();
    let plan = plan(&lab_1_19(), &v("v1.21.14"), &index).unwrap();
    assert_eq!(plan.current, v("v1.19.16"));
    assert!(plan.current_findings.is_empty());
    let versions: Vec<_> = plan.steps.iter().map(|s| s.version.to_string()).collect();
    assert_eq!(versions, ["v1.20.15", "v1.21.14"]);
    assert!(plan.keeps_policy());
    assert_eq!(
        summary(&plan.steps[0]),
        [
            "CatchUp kubelet w2 v1.18.20->v1.19.16",
            "ControlPlane etcd cp1 3.4.9-1->3.4.13-0",
            "ControlPlane kube-apiserver cp1 v1.19.16->v1.20.15",
            "Controllers kube-controller-manager cp1 v1.19.16->v1.20.15",
            "Controllers kube-scheduler cp1 v1.19.16->v1.20.15",
            "AddOns kube-proxy - v1.19.16->v1.20.15",
            "Kubelets kubelet cp1 v1.19.16->v1.20.15",
            "Kubelets kubelet w1 v1.19.16->v1.20.15",
            "Kubelets kubelet w2 v1.19.16->v1.20.15",
        ]
    );
    assert!(
        plan.steps[0].actions[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("kubeadm v1.20.15")
    );
    // Step 2 moves CoreDNS (1.7.0 → v1.8.0), no catch-up needed.
    let second = summary(&plan.steps[1]);
    assert!(
        second.iter().all(|a| !a.starts_with("CatchUp")),
        "{second:?}"
    );
    assert!(second.contains(&"AddOns CoreDNS - 1.7.0->v1.8.0".to_string()));
}

#[test]
fn explicit_patch_target_and_already_there() {
    let index = ReleaseIndex::builtin();
    let plan = plan(&lab_1_19(), &v("v1.20.2"), &index).unwrap();
    assert_eq!(plan.steps.len(), 1);
    assert_eq!(plan.steps[0].version, v("v1.20.2"));
    let mut done = lab_1_19();
    for step in &plan.steps {
        for action in &step.actions {
            apply(&mut done, action);
        }
    }
    let again = super::plan(&done, &v("v1.20.2"), &index).unwrap();
    assert!(again.steps.is_empty(), "{:?}", again.steps);
}

#[test]
fn without_kubeadm_the_two_minor_window_applies() {
    let index = ReleaseIndex::builtin();
    let mut state = lab_1_19();
    state.kubeadm = false;
    let plan = plan(&state, &v("v1.20.15"), &index).unwrap();
    // 1.18 vs 1.20 is within the kubelet's two-minor window: no catch-up.
    assert!(
        plan.steps[0]
            .actions
            .iter()
            .all(|a| a.phase != Phase::CatchUp)
    );
    // Going to 1.21 it is not: w2 must catch up in the second step at the latest; here it
    // was already moved to 1.20 by the first step's kubelet phase.
    let plan = super::plan(&state, &v("v1.21.14"), &index).unwrap();
    assert!(plan.keeps_policy());
}

#[test]
fn ha_with_one_apiserver_already_new() {
    let index = ReleaseIndex::builtin();
    let mut state = lab_1_19();
    state.versions.apiservers = vec![
        Instance::on("cp1", v("v1.20.2")),
        Instance::on("cp2", v("v1.19.16")),
        Instance::on("cp3", v("v1.19.16")),
    ];
    state.versions.controller_managers = ["cp1", "cp2", "cp3"]
        .iter()
        .map(|n| Instance::on(*n, v("v1.19.16")))
        .collect();
    state.versions.schedulers = state.versions.controller_managers.clone();
    let plan = plan(&state, &v("v1.20.2"), &index).unwrap();
    assert_eq!(plan.current, v("v1.19.16"));
    assert!(plan.keeps_policy(), "{:?}", plan.steps[0].violations);
    let s = summary(&plan.steps[0]);
    let apiservers: Vec<_> = s.iter().filter(|a| a.contains("kube-apiserver")).collect();
    assert_eq!(apiservers.len(), 2, "cp1 is already at v1.20.2: {s:?}");
    // No controller moves before the last API server.
    let last_apiserver = s
        .iter()
        .rposition(|a| a.contains("kube-apiserver"))
        .unwrap();
    let first_controller = s.iter().position(|a| a.starts_with("Controllers")).unwrap();
    let first_addon = s.iter().position(|a| a.starts_with("AddOns")).unwrap();
    assert!(last_apiserver < first_controller && first_controller < first_addon);
}

#[test]
fn lagging_controller_catches_up_before_the_apiservers_move() {
    let index = ReleaseIndex::builtin();
    let mut state = lab_1_19();
    state.versions.apiservers = vec![Instance::on("cp1", v("v1.20.2"))];
    state.versions.controller_managers = vec![Instance::on("cp1", v("v1.19.16"))];
    state.versions.kubelets = vec![Instance::on("cp1", v("v1.20.2"))];
    let plan = plan(&state, &v("v1.21.14"), &index).unwrap();
    let s = summary(&plan.steps[0]);
    assert_eq!(
        s[0],
        "CatchUp kube-controller-manager cp1 v1.19.16->v1.20.2"
    );
    assert!(plan.keeps_policy());
}

#[test]
fn refusals() {
    let index = ReleaseIndex::builtin();
    let state = lab_1_19();
    assert!(matches!(
        plan(&state, &v("v1.18.20"), &index),
        Err(PlanError::UnknownTarget(_))
    ));
    let mut newer = lab_1_19();
    newer.versions.apiservers[0].version = v("v1.21.3");
    match plan(&newer, &v("v1.20.15"), &index) {
        Err(PlanError::Downgrade { node, current, .. }) => {
            assert_eq!(node, "cp1");
            assert_eq!(current, v("v1.21.3"));
        }
        other => panic!("{other:?}"),
    }
    // Same minor, lower patch: also a downgrade.
    newer.versions.apiservers[0].version = v("v1.20.15");
    assert!(matches!(
        plan(&newer, &v("v1.20.2"), &index),
        Err(PlanError::Downgrade { .. })
    ));
    assert!(matches!(
        plan(&state, &v("v1.20.99"), &index),
        Err(PlanError::UnknownTarget(_))
    ));
    assert!(matches!(
        plan(&ClusterState::default(), &v("v1.20.2"), &index),
        Err(PlanError::UnknownCurrent)
    ));
    // A hole in the index is refused rather than skipped.
    let mut file = index.to_file();
    file.releases.retain(|r| r.version.minor != 21);
    let holey = ReleaseIndex::from_file(file).unwrap();
    assert!(matches!(
        plan(&state, &v("v1.22.17"), &holey),
        Err(PlanError::MissingMinor { .. })
    ));
}

#[test]
fn addon_versions_parse() {
    assert_eq!(addon_version("3.4.13-0"), Some(v("3.4.13")));
    assert_eq!(addon_version("v1.8.0"), Some(v("1.8.0")));
    assert_eq!(addon_version("1.7.0"), Some(v("1.7.0")));
    assert!(addon_version("3.4.9-1") < addon_version("3.4.13-0"));
    assert_eq!(addon_version("latest"), None);
}

// ---- property: every emitted plan keeps policy at every point, never skips a minor ----

fn arb_state() -> impl Strategy<Value = (ClusterState, Version)> {
    // Control plane minor m in 19..=33; API servers at m or m+1 (HA mid-upgrade).
    (19u32..=33, 1usize..=3, any::<bool>()).prop_flat_map(|(m, cps, mixed)| {
        let index = ReleaseIndex::builtin();
        let apiserver_minors = proptest::collection::vec(
            if mixed {
                (m..=m + 1).boxed()
            } else {
                Just(m).boxed()
            },
            cps,
        );
        let kubelets = proptest::collection::vec(m.saturating_sub(3)..=m, 0..6);
        let ctrl = proptest::collection::vec(m.saturating_sub(1)..=m, cps);
        let proxy = proptest::option::of(m.saturating_sub(3)..=m);
        let target_minor = m + 1..=34u32;
        let patch = 0u32..20;
        let etcd = proptest::sample::select(vec!["3.4.9-1", "3.4.13-0", "3.5.6-0", "3.5.24-0"]);
        (
            apiserver_minors,
            kubelets,
            ctrl,
            proxy,
            target_minor,
            patch,
            etcd,
            any::<bool>(),
        )
            .prop_map(
                move |(api, kubelets, ctrl, proxy, tm, patch, etcd, kubeadm)| {
                    let ver = |minor: u32| Version::new(1, minor, patch % 3);
                    let state = ClusterState {
                        versions: ClusterVersions {
                            apiservers: api
                                .iter()
                                .enumerate()
                                .map(|(i, mi)| Instance::on(format!("cp{i}"), ver(*mi)))
                                .collect(),
                            controller_managers: ctrl
                                .iter()
                                .enumerate()
                                .map(|(i, mi)| Instance::on(format!("cp{i}"), ver(*mi)))
                                .collect(),
                            schedulers: ctrl
                                .iter()
                                .enumerate()
                                .map(|(i, mi)| Instance::on(format!("cp{i}"), ver(*mi)))
                                .collect(),
                            cloud_controller_managers: Vec::new(),
                            kube_proxy: proxy.map(ver),
                            kubelets: kubelets
                                .iter()
                                .enumerate()
                                .map(|(i, mi)| Instance::on(format!("w{i}"), ver(*mi)))
                                .collect(),
                            kubectl: None,
                        },
                        etcd: (0..api.len())
                            .map(|i| EtcdMember {
                                node: Some(format!("cp{i}")),
                                version: etcd.to_string(),
                            })
                            .collect(),
                        coredns: Some("1.7.0".into()),
                        kubeadm,
                    };
                    let latest = index.get(Minor::new(1, tm)).unwrap().version.patch;
                    (state, Version::new(1, tm, patch.min(latest)))
                },
            )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn plans_keep_policy_and_never_skip((state, target) in arb_state()) {
        prop_assume!(skew::check(&state.versions).is_empty());
        let index = ReleaseIndex::builtin();
        let plan = plan(&state, &target, &index).unwrap();
        prop_assert!(plan.keeps_policy());
        // Replay every action with the full checker, independent of the planner's own checks.
        let mut sim = state.clone();
        let mut previous_minor = plan.current.minor_of();
        for step in &plan.steps {
            prop_assert!(step.version.minor_of().minus(previous_minor) <= 1,
                "step {} after {}", step.version, previous_minor);
            previous_minor = step.version.minor_of();
            for action in &step.actions {
                if action.component == Component::KubeApiserver {
                    // No API server jumps a minor, and with kubeadm no kubelet is too old for
                    // kubeadm's own check at the moment the first API server moves.
                    let from = Version::parse(action.from.as_deref().unwrap()).unwrap();
                    let to = Version::parse(&action.to).unwrap();
                    prop_assert!(to.minors_above(&from) <= 1, "{from} -> {to}");
                    if sim.kubeadm {
                        let too_old = skew::check_kubeadm_kubelets(&sim.versions, &step.version);
                        prop_assert!(too_old.is_empty(), "{too_old:?}");
                    }
                }
                apply(&mut sim, action);
                let findings = skew::check(&sim.versions);
                prop_assert!(findings.is_empty(), "after {action:?}: {findings:?}");
            }
        }
        for apiserver in &sim.versions.apiservers {
            prop_assert_eq!(&apiserver.version, &target);
        }
        for kubelet in &sim.versions.kubelets {
            prop_assert_eq!(kubelet.version.minor_of(), target.minor_of());
        }
        prop_assert!(!plan.current_findings.iter().any(|f| f.rule == Rule::ApiserverHaSkew));
    }
}
