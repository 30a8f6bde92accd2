use super::*;

fn v(text: &str) -> Version {
    Version::parse(text).unwrap()
}

fn cluster(apiservers: &[&str]) -> ClusterVersions {
    ClusterVersions {
        apiservers: apiservers
            .iter()
            .enumerate()
            .map(|(i, ver)| Instance::on(format!("cp{i}"), v(ver)))
            .collect(),
        ..Default::default()
    }
}

fn rules(findings: &[SkewFinding]) -> Vec<Rule> {
    findings.iter().map(|f| f.rule).collect()
}

#[test]
fn apiserver_ha_boundaries() {
    let table: &[(&[&str], bool)] = &[
        (&["v1.20.2"], false),
        (&["v1.20.2", "v1.20.15"], false),
        (&["v1.19.16", "v1.20.2"], false),
        (&["v1.19.16", "v1.20.2", "v1.21.0"], true),
        (&["v1.18.20", "v1.20.2"], true),
    ];
    for (servers, broken) in table {
        let findings = check(&cluster(servers));
        assert_eq!(
            rules(&findings).contains(&Rule::ApiserverHaSkew),
            *broken,
            "{servers:?}: {findings:?}"
        );
    }
    let findings = check(&cluster(&["v1.18.20", "v1.20.2"]));
    assert_eq!(findings[0].subject.version, v("v1.18.20"));
    assert_eq!(findings[0].subject.node.as_deref(), Some("cp0"));
    assert_eq!(findings[0].reference.version, v("v1.20.2"));
    assert_eq!(findings[0].reference.node.as_deref(), Some("cp1"));
}

#[test]
fn kubelet_window_every_boundary() {
    // (API servers, kubelet, expected rules)
    let table: &[(&[&str], &str, &[Rule])] = &[
        (&["v1.20.2"], "v1.20.2", &[]),
        (&["v1.20.2"], "v1.20.9", &[]), // newer patch of the same minor is fine
        (&["v1.20.2"], "v1.21.0", &[Rule::KubeletNewerThanApiserver]),
        (&["v1.20.2"], "v1.18.20", &[]), // two older, below 1.25: allowed
        (&["v1.20.2"], "v1.17.17", &[Rule::KubeletTooOld]),
        (&["v1.26.0"], "v1.24.17", &[]), // kubelet < 1.25: two allowed
        (&["v1.27.0"], "v1.24.17", &[Rule::KubeletTooOld]), // three but kubelet < 1.25
        (&["v1.28.0"], "v1.25.16", &[]), // three, kubelet ≥ 1.25
        (&["v1.29.0"], "v1.25.16", &[Rule::KubeletTooOld]),
        // HA narrowing: newer-than against the oldest, too-old against the newest.
        (
            &["v1.34.0", "v1.35.0"],
            "v1.35.0",
            &[Rule::KubeletNewerThanApiserver],
        ),
        (&["v1.34.0", "v1.35.0"], "v1.32.0", &[]),
        (&["v1.34.0", "v1.35.0"], "v1.31.0", &[Rule::KubeletTooOld]),
    ];
    for (servers, kubelet, want) in table {
        let mut c = cluster(servers);
        c.kubelets.push(Instance::on("w1", v(kubelet)));
        let got = rules(&check(&c));
        assert_eq!(got, *want, "servers {servers:?} kubelet {kubelet}");
        let only = rules(&check_kubelet(&c, &c.kubelets[0]));
        assert_eq!(only, *want, "check_kubelet agrees");
    }
}

#[test]
fn kube_proxy_window_every_boundary() {
    let table: &[(&[&str], &str, &[Rule])] = &[
        (&["v1.20.2"], "v1.20.2", &[]),
        (
            &["v1.20.2"],
            "v1.21.0",
            &[Rule::KubeProxyNewerThanApiserver],
        ),
        (&["v1.20.2"], "v1.18.0", &[]),
        (&["v1.20.2"], "v1.17.0", &[Rule::KubeProxyTooOld]),
        (&["v1.28.0"], "v1.25.0", &[]),
        (&["v1.27.0"], "v1.24.0", &[Rule::KubeProxyTooOld]),
        (
            &["v1.19.0", "v1.20.0"],
            "v1.20.0",
            &[Rule::KubeProxyNewerThanApiserver],
        ),
    ];
    for (servers, proxy, want) in table {
        let mut c = cluster(servers);
        c.kube_proxy = Some(v(proxy));
        assert_eq!(
            rules(&check(&c)),
            *want,
            "servers {servers:?} proxy {proxy}"
        );
    }
}

#[test]
fn kube_proxy_against_its_kubelet() {
    // (kube-proxy, kubelet, broken); API server high enough not to interfere with the
    // newer-than rules, low enough not to flag too-old.
    let table = [
        ("v1.30.0", "v1.27.0", false), // three, both ≥ 1.25
        ("v1.30.0", "v1.26.0", true),  // four
        ("v1.27.0", "v1.30.0", false), // kube-proxy older by three
        ("v1.26.0", "v1.24.0", false), // two, kubelet < 1.25
        ("v1.27.0", "v1.24.0", true),  // three with the older side < 1.25
    ];
    for (proxy, kubelet, broken) in table {
        let mut c = cluster(&["v1.30.0"]);
        c.kube_proxy = Some(v(proxy));
        c.kubelets.push(Instance::on("w1", v(kubelet)));
        let found = check(&c)
            .into_iter()
            .filter(|f| f.rule == Rule::KubeProxyKubeletSkew)
            .collect::<Vec<_>>();
        assert_eq!(!found.is_empty(), broken, "proxy {proxy} kubelet {kubelet}");
        if let Some(f) = found.first() {
            assert_eq!(f.subject.node.as_deref(), Some("w1"));
            assert_eq!(f.reference.version, v(kubelet));
        }
    }
}

#[test]
fn controller_manager_scheduler_ccm() {
    let table: &[(&[&str], &str, &[Rule])] = &[
        (&["v1.20.2"], "v1.20.2", &[]),
        (&["v1.20.2"], "v1.19.16", &[]),
        (&["v1.20.2"], "v1.18.20", &[Rule::ControlPlaneTooOld]),
        (
            &["v1.20.2"],
            "v1.21.0",
            &[Rule::ControlPlaneNewerThanApiserver],
        ),
        // Mid-upgrade: must stay at the older minor until every API server is new.
        (&["v1.19.16", "v1.20.2"], "v1.19.16", &[]),
        (
            &["v1.19.16", "v1.20.2"],
            "v1.20.2",
            &[Rule::ControlPlaneNewerThanApiserver],
        ),
    ];
    for component in [
        Component::KubeControllerManager,
        Component::KubeScheduler,
        Component::CloudControllerManager,
    ] {
        for (servers, version, want) in table {
            let mut c = cluster(servers);
            let instance = Instance::on("cp0", v(version));
            match component {
                Component::KubeControllerManager => c.controller_managers.push(instance),
                Component::KubeScheduler => c.schedulers.push(instance),
                _ => c.cloud_controller_managers.push(instance),
            }
            let findings = check(&c);
            assert_eq!(rules(&findings), *want, "{component} {servers:?} {version}");
            for f in findings {
                assert_eq!(f.subject.component, component);
            }
        }
    }
}

#[test]
fn kubectl_within_one_minor() {
    let table = [
        ("v1.20.2", false),
        ("v1.21.0", false),
        ("v1.19.0", false),
        ("v1.22.0", true),
        ("v1.18.0", true),
    ];
    for (kubectl, broken) in table {
        let mut c = cluster(&["v1.20.2"]);
        c.kubectl = Some(v(kubectl));
        assert_eq!(
            rules(&check(&c)) == [Rule::KubectlSkew],
            broken,
            "kubectl {kubectl}"
        );
    }
    // Mixed servers: must be at one of the two minors.
    let mut c = cluster(&["v1.34.0", "v1.35.0"]);
    c.kubectl = Some(v("v1.36.0"));
    assert_eq!(rules(&check(&c)), [Rule::KubectlSkew]);
    c.kubectl = Some(v("v1.33.0"));
    assert_eq!(rules(&check(&c)), [Rule::KubectlSkew]);
    c.kubectl = Some(v("v1.34.9"));
    assert!(check(&c).is_empty());
}

#[test]
fn unknown_apiserver_means_no_verdict() {
    let c = ClusterVersions {
        kubelets: vec![Instance::on("w1", v("v1.10.0"))],
        ..Default::default()
    };
    assert!(check(&c).is_empty());
}

#[test]
fn kubeadm_kubelet_rule() {
    let mut c = cluster(&["v1.19.16"]);
    c.kubelets = vec![
        Instance::on("w1", v("v1.19.16")),
        Instance::on("w2", v("v1.18.20")),
    ];
    let found = check_kubeadm_kubelets(&c, &v("v1.20.2"));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].subject.node.as_deref(), Some("w2"));
    assert_eq!(found[0].reference.component, Component::Kubeadm);
    // From 1.29 kubeadm allows three.
    c.kubelets = vec![Instance::on("w1", v("v1.26.0"))];
    assert!(check_kubeadm_kubelets(&c, &v("v1.29.0")).is_empty());
    assert_eq!(check_kubeadm_kubelets(&c, &v("v1.28.0")).len(), 1);
    c.kubelets = vec![Instance::on("w1", v("v1.25.0"))];
    assert_eq!(check_kubeadm_kubelets(&c, &v("v1.29.0")).len(), 1);
}

#[test]
fn finding_text_names_everything() {
    let mut c = cluster(&["v1.20.2"]);
    c.kubelets.push(Instance::on("worker-3", v("v1.17.17")));
    let text = check(&c)[0].to_string();
    for part in [
        "kubelet",
        "v1.17.17",
        "worker-3",
        "kube-apiserver",
        "v1.20.2",
        "cp0",
        "three",
    ] {
        assert!(text.contains(part), "{text} lacks {part}");
    }
}
