//! The upgrade path: from the versions a cluster runs to a target, one minor at a time, each
//! step an ordered list of component moves whose every intermediate state keeps the skew
//! policy.
//!
//! Order inside a step (version skew policy, "Supported component upgrade order", and kubeadm
//! ≥ 1.28's add-on rule, `kubernetes/kubernetes#116570`):
//! 1. kubelets (and lagging controllers / kube-proxy) that the step would push out of the
//!    window move first, to the control plane's current version;
//! 2. per control-plane node: its stacked etcd member (kubeadm upgrades etcd before the API
//!    server, never downgrading it), then its kube-apiserver;
//! 3. kube-controller-manager, kube-scheduler and cloud-controller-manager, once every API
//!    server is at the step's version;
//! 4. kube-proxy and CoreDNS, once every API server is new;
//! 5. kubelets, control-plane nodes first (each drained first: in-place minor kubelet upgrades
//!    are not supported).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::releases::{ReleaseError, ReleaseIndex};
use super::skew::{self, ClusterVersions, Component, Instance, SkewFinding};
use super::version::{Version, version_from_image};

/// A stacked etcd member as seen in its static pod (image tag such as `3.4.13-0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdMember {
    /// Node the member runs on.
    pub node: Option<String>,
    /// Image tag or version reported by the member (`3.4.13-0`, `3.5.1`).
    pub version: String,
}

/// Everything the planner needs to know about a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Versions of the skew-constrained components.
    pub versions: ClusterVersions,
    /// Stacked etcd members (empty: unknown or external etcd).
    pub etcd: Vec<EtcdMember>,
    /// CoreDNS image tag, when deployed.
    pub coredns: Option<String>,
    /// Whether kubeadm manages the cluster (the `kubeadm-config` ConfigMap exists); kubeadm's
    /// own kubelet check then applies to each step.
    pub kubeadm: bool,
}

/// The stage of a step an action belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Components that would fall out of the window, moved before any API server.
    CatchUp,
    /// etcd and kube-apiserver, node by node.
    ControlPlane,
    /// controller-manager, scheduler, cloud-controller-manager.
    Controllers,
    /// kube-proxy and CoreDNS.
    AddOns,
    /// kubelets, node by node (drain first).
    Kubelets,
}

impl Phase {
    /// Short human name.
    pub fn title(self) -> &'static str {
        match self {
            Self::CatchUp => "catch up first",
            Self::ControlPlane => "control plane",
            Self::Controllers => "controllers",
            Self::AddOns => "add-ons",
            Self::Kubelets => "kubelets",
        }
    }
}

/// One component on one node moving to one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Stage of the step.
    pub phase: Phase,
    /// The component.
    pub component: Component,
    /// Its node (`None` for cluster-wide add-ons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Current version (image tag for etcd/CoreDNS), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Version after the action.
    pub to: String,
    /// Why it moves at this point, when it is not the plain order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One minor (or patch) hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The Kubernetes version every component reaches in this step.
    pub version: Version,
    /// etcd kubeadm deploys for this version.
    pub etcd: String,
    /// CoreDNS kubeadm deploys for this version.
    pub coredns: String,
    /// The moves, in order.
    pub actions: Vec<Action>,
    /// Skew findings predicted at any point of this step (empty when the step keeps the
    /// policy throughout).
    pub violations: Vec<SkewFinding>,
}

/// A whole plan: the steps from the current version to the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradePlan {
    /// The control plane's version: the oldest API server.
    pub current: Version,
    /// The target.
    pub target: Version,
    /// Skew findings of the cluster as it is now.
    pub current_findings: Vec<SkewFinding>,
    /// The hops, oldest first; empty when the cluster is already at the target.
    pub steps: Vec<Step>,
}

impl UpgradePlan {
    /// Whether every step keeps the skew policy at every point.
    pub fn keeps_policy(&self) -> bool {
        self.steps.iter().all(|s| s.violations.is_empty())
    }
}

/// Why no plan can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No kube-apiserver version was discovered.
    #[error(
        "the API server's version is unknown; nothing can be planned without it (check that the cluster answers /version)"
    )]
    UnknownCurrent,
    /// The target is older than a running component.
    #[error(
        "{target} would be a downgrade: {component} on {node} runs {current}; kubeadm and the skew policy do not support downgrades (pick a target ≥ {current})"
    )]
    Downgrade {
        /// The component found newer.
        component: Component,
        /// Its node.
        node: String,
        /// Its version.
        current: Version,
        /// The target asked for.
        target: Version,
    },
    /// The target is not in the release index.
    #[error(transparent)]
    UnknownTarget(#[from] ReleaseError),
    /// An intermediate minor is missing from the release index.
    #[error(
        "the release index has no entry for {minor}, a minor the path must pass through (no minor may be skipped); add it with --releases FILE"
    )]
    MissingMinor {
        /// The missing minor, `1.N`.
        minor: String,
    },
}

/// A version from an etcd or CoreDNS image tag (`3.4.13-0` → 3.4.13, `v1.8.0` → 1.8.0); the
/// `-N` suffix of etcd tags is the image revision, not a pre-release.
pub fn addon_version(tag: &str) -> Option<Version> {
    let core = tag.split_once('-').map_or(tag, |(core, _)| core);
    let mut version = version_from_image(&format!("x:{core}"))?;
    version.pre.clear();
    Some(version)
}

/// Applies one action to a cluster state (what the cluster looks like after it).
pub fn apply(state: &mut ClusterState, action: &Action) {
    let node = action.node.as_deref();
    let set = |list: &mut Vec<Instance>, to: &str| {
        if let Ok(version) = Version::parse(to) {
            for instance in list.iter_mut().filter(|i| i.node.as_deref() == node) {
                instance.version = version.clone();
            }
        }
    };
    match action.component {
        Component::KubeApiserver => set(&mut state.versions.apiservers, &action.to),
        Component::KubeControllerManager => {
            set(&mut state.versions.controller_managers, &action.to)
        }
        Component::KubeScheduler => set(&mut state.versions.schedulers, &action.to),
        Component::CloudControllerManager => {
            set(&mut state.versions.cloud_controller_managers, &action.to)
        }
        Component::Kubelet => set(&mut state.versions.kubelets, &action.to),
        Component::KubeProxy => {
            if let Ok(version) = Version::parse(&action.to) {
                state.versions.kube_proxy = Some(version);
            }
        }
        Component::Etcd => {
            for member in state.etcd.iter_mut().filter(|m| m.node.as_deref() == node) {
                member.version = action.to.clone();
            }
        }
        Component::CoreDns => state.coredns = Some(action.to.clone()),
        Component::Kubectl | Component::Kubeadm => {}
    }
}

/// Plans the upgrade of `state` to `target` using `index` for intermediate minors.
pub fn plan(
    state: &ClusterState,
    target: &Version,
    index: &ReleaseIndex,
) -> Result<UpgradePlan, PlanError> {
    index.check_target(target)?;
    let (oldest, _) = state
        .versions
        .apiserver_range()
        .ok_or(PlanError::UnknownCurrent)?;
    let current = oldest.version.clone();
    refuse_downgrade(state, target)?;

    let mut hops = Vec::new();
    if current.minor_of() == target.minor_of() {
        hops.push(target.clone());
    } else {
        let mut minor = current.minor_of().next();
        while minor < target.minor_of() {
            let release = index.get(minor).ok_or_else(|| PlanError::MissingMinor {
                minor: minor.to_string(),
            })?;
            hops.push(release.version.clone());
            minor = minor.next();
        }
        hops.push(target.clone());
    }

    let current_findings = skew::check(&state.versions);
    let mut sim = state.clone();
    let mut steps = Vec::new();
    for hop in hops {
        // check_target / the loop above guarantee the entry exists.
        let Some(release) = index.get(hop.minor_of()) else {
            return Err(PlanError::MissingMinor {
                minor: hop.minor_of().to_string(),
            });
        };
        let step = plan_step(&mut sim, &hop, &release.etcd, &release.coredns);
        if !step.actions.is_empty() {
            steps.push(step);
        }
    }
    Ok(UpgradePlan {
        current,
        target: target.clone(),
        current_findings,
        steps,
    })
}

fn refuse_downgrade(state: &ClusterState, target: &Version) -> Result<(), PlanError> {
    let v = &state.versions;
    for (component, list) in [
        (Component::KubeApiserver, &v.apiservers),
        (Component::KubeControllerManager, &v.controller_managers),
        (Component::KubeScheduler, &v.schedulers),
        (Component::Kubelet, &v.kubelets),
    ] {
        // Minor granularity for nodes' patch levels would hide a real downgrade of the API
        // server; compare full versions for the control plane, minors for kubelets (a kubelet
        // at a newer patch of the target minor is fine and is left alone).
        for instance in list {
            let newer = match component {
                Component::Kubelet => instance.version.minors_above(target) > 0,
                _ => instance.version > *target,
            };
            if newer {
                return Err(PlanError::Downgrade {
                    component,
                    node: instance
                        .node
                        .clone()
                        .unwrap_or_else(|| "the cluster".into()),
                    current: instance.version.clone(),
                    target: target.clone(),
                });
            }
        }
    }
    Ok(())
}

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

fn plan_step(sim: &mut ClusterState, hop: &Version, etcd: &str, coredns: &str) -> Step {
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

#[cfg(test)]
mod tests;
