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

use serde::{Deserialize, Serialize};

use super::releases::{ReleaseError, ReleaseIndex};
use super::skew::{self, ClusterVersions, Component, Instance, SkewFinding};
use super::version::{Version, version_from_image};

mod step;
#[cfg(test)]
mod tests;

use step::plan_step;

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
