//! One step of the path: the ordered moves that take the simulated cluster to one version,
//! each re-checked against the skew policy.

use std::collections::HashSet;

use super::{Action, ClusterState, Phase, Step, addon_version, apply};
use crate::upgrade::skew::{self, Component, Instance, SkewFinding};
use crate::upgrade::version::Version;

/// Records findings, once each.
struct Violations {
    seen: HashSet<SkewFinding>,
    list: Vec<SkewFinding>,
}

impl Violations {
    fn add(&mut self, findings: Vec<SkewFinding>) {
        for finding in findings {
            if self.seen.insert(finding.clone()) {
                self.list.push(finding);
            }
        }
    }
}

fn node_key(node: &Option<String>) -> (bool, &str) {
    (node.is_none(), node.as_deref().unwrap_or(""))
}

pub(super) fn plan_step(sim: &mut ClusterState, hop: &Version, etcd: &str, coredns: &str) -> Step {
    let mut actions = Vec::new();
    let mut violations = Violations {
        seen: HashSet::new(),
        list: Vec::new(),
    };
    let floor = sim
        .versions
        .apiserver_range()
        .map(|(oldest, _)| oldest.version.clone())
        .unwrap_or_else(|| hop.clone());

    let mut run = |sim: &mut ClusterState, action: Action, violations: &mut Violations| {
        apply(sim, &action);
        let found = if action.component == Component::Kubelet {
            let node = action.node.as_deref();
            match sim
                .versions
                .kubelets
                .iter()
                .find(|k| k.node.as_deref() == node)
            {
                Some(kubelet) => skew::check_kubelet(&sim.versions, kubelet),
                None => Vec::new(),
            }
        } else {
            skew::check(&sim.versions)
        };
        violations.add(found);
        actions.push(action);
    };

    // 1. Catch up whatever the new API servers would leave behind.
    let behind = |version: &Version, lag: i64| hop.minors_above(version) > lag;
    for (component, list) in [
        (
            Component::KubeControllerManager,
            sim.versions.controller_managers.clone(),
        ),
        (Component::KubeScheduler, sim.versions.schedulers.clone()),
        (
            Component::CloudControllerManager,
            sim.versions.cloud_controller_managers.clone(),
        ),
    ] {
        for instance in list.iter().filter(|i| behind(&i.version, 1)) {
            run(
                sim,
                Action {
                    phase: Phase::CatchUp,
                    component,
                    node: instance.node.clone(),
                    from: Some(instance.version.to_string()),
                    to: floor.to_string(),
                    reason: Some(format!(
                        "{} would be more than one minor older than kube-apiserver {hop}",
                        component
                    )),
                },
                &mut violations,
            );
        }
    }
    if let Some(proxy) = sim.versions.kube_proxy.clone()
        && behind(&proxy, skew::node_component_max_lag(&proxy))
    {
        run(
            sim,
            Action {
                phase: Phase::CatchUp,
                component: Component::KubeProxy,
                node: None,
                from: Some(proxy.to_string()),
                to: floor.to_string(),
                reason: Some(format!(
                    "kube-proxy {proxy} would be out of the window of kube-apiserver {hop}"
                )),
            },
            &mut violations,
        );
    }
    let kubeadm_lag = skew::kubeadm_kubelet_max_lag(hop);
    let mut lagging: Vec<Instance> = sim
        .versions
        .kubelets
        .iter()
        .filter(|k| {
            behind(&k.version, skew::node_component_max_lag(&k.version))
                || (sim.kubeadm && behind(&k.version, kubeadm_lag))
        })
        .cloned()
        .collect();
    lagging.sort_by(|a, b| node_key(&a.node).cmp(&node_key(&b.node)));
    for kubelet in lagging {
        let reason = if behind(
            &kubelet.version,
            skew::node_component_max_lag(&kubelet.version),
        ) {
            format!(
                "kubelet {} would be more than {} minors older than kube-apiserver {hop}",
                kubelet.version,
                skew::node_component_max_lag(&kubelet.version)
            )
        } else {
            format!(
                "kubeadm {} refuses to upgrade with kubelets more than {kubeadm_lag} minor{} older",
                hop,
                if kubeadm_lag == 1 { "" } else { "s" }
            )
        };
        run(
            sim,
            Action {
                phase: Phase::CatchUp,
                component: Component::Kubelet,
                node: kubelet.node.clone(),
                from: Some(kubelet.version.to_string()),
                to: floor.to_string(),
                reason: Some(reason),
            },
            &mut violations,
        );
    }

    // 2. etcd then kube-apiserver, node by node.
    let mut cp_nodes: Vec<Option<String>> = sim
        .versions
        .apiservers
        .iter()
        .map(|i| i.node.clone())
        .chain(sim.etcd.iter().map(|m| m.node.clone()))
        .collect();
    cp_nodes.sort_by(|a, b| node_key(a).cmp(&node_key(b)));
    cp_nodes.dedup();
    let wanted_etcd = addon_version(etcd);
    for node in &cp_nodes {
        let member = sim.etcd.iter().find(|m| &m.node == node).cloned();
        if let Some(member) = member
            && let (Some(have), Some(want)) = (addon_version(&member.version), &wanted_etcd)
            && have < *want
        {
            run(
                sim,
                Action {
                    phase: Phase::ControlPlane,
                    component: Component::Etcd,
                    node: node.clone(),
                    from: Some(member.version.clone()),
                    to: etcd.to_string(),
                    reason: None,
                },
                &mut violations,
            );
        }
        let apiserver = sim
            .versions
            .apiservers
            .iter()
            .find(|i| &i.node == node)
            .cloned();
        if let Some(apiserver) = apiserver
            && apiserver.version < *hop
        {
            run(
                sim,
                Action {
                    phase: Phase::ControlPlane,
                    component: Component::KubeApiserver,
                    node: node.clone(),
                    from: Some(apiserver.version.to_string()),
                    to: hop.to_string(),
                    reason: None,
                },
                &mut violations,
            );
        }
    }

    // 3. Controllers once every API server is at the hop.
    let mut controllers: Vec<(Component, Instance)> = Vec::new();
    for (component, list) in [
        (
            Component::KubeControllerManager,
            &sim.versions.controller_managers,
        ),
        (Component::KubeScheduler, &sim.versions.schedulers),
        (
            Component::CloudControllerManager,
            &sim.versions.cloud_controller_managers,
        ),
    ] {
        controllers.extend(
            list.iter()
                .filter(|i| i.version < *hop)
                .map(|i| (component, i.clone())),
        );
    }
    controllers.sort_by(|(ca, a), (cb, b)| (node_key(&a.node), ca).cmp(&(node_key(&b.node), cb)));
    for (component, instance) in controllers {
        run(
            sim,
            Action {
                phase: Phase::Controllers,
                component,
                node: instance.node.clone(),
                from: Some(instance.version.to_string()),
                to: hop.to_string(),
                reason: None,
            },
            &mut violations,
        );
    }

    // 4. Add-ons, now that no API server is old.
    if let Some(proxy) = sim.versions.kube_proxy.clone()
        && proxy < *hop
    {
        run(
            sim,
            Action {
                phase: Phase::AddOns,
                component: Component::KubeProxy,
                node: None,
                from: Some(proxy.to_string()),
                to: hop.to_string(),
                reason: None,
            },
            &mut violations,
        );
    }
    if let Some(current) = sim.coredns.clone()
        && let (Some(have), Some(want)) = (addon_version(&current), addon_version(coredns))
        && have < want
    {
        run(
            sim,
            Action {
                phase: Phase::AddOns,
                component: Component::CoreDns,
                node: None,
                from: Some(current),
                to: coredns.to_string(),
                reason: None,
            },
            &mut violations,
        );
    }

    // 5. Kubelets: control-plane nodes first, then the others, by name.
    let mut kubelets: Vec<Instance> = sim
        .versions
        .kubelets
        .iter()
        .filter(|k| k.version < *hop)
        .cloned()
        .collect();
    kubelets.sort_by(|a, b| {
        let cp = |i: &Instance| !cp_nodes.contains(&i.node);
        (cp(a), node_key(&a.node)).cmp(&(cp(b), node_key(&b.node)))
    });
    for kubelet in kubelets {
        run(
            sim,
            Action {
                phase: Phase::Kubelets,
                component: Component::Kubelet,
                node: kubelet.node.clone(),
                from: Some(kubelet.version.to_string()),
                to: hop.to_string(),
                reason: None,
            },
            &mut violations,
        );
    }

    Step {
        version: hop.clone(),
        etcd: etcd.to_string(),
        coredns: coredns.to_string(),
        actions,
        violations: violations.list,
    }
}
