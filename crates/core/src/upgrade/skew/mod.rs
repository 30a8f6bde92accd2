//! The version skew policy as a pure function over the versions a cluster runs.
//!
//! Rules from the Kubernetes version skew policy
//! (`kubernetes/website:content/en/releases/version-skew-policy.md`,
//! <https://kubernetes.io/releases/version-skew-policy/>):
//! * the newest and oldest kube-apiserver instances are within one minor;
//! * kubelet and kube-proxy are never newer than kube-apiserver and at most three minors older
//!   (two while the kubelet / kube-proxy itself is older than 1.25);
//! * kube-proxy is within three minors (two below 1.25) of the kubelet on its node;
//! * kube-controller-manager, kube-scheduler and cloud-controller-manager are not newer than the
//!   kube-apiserver instances they talk to, and at most one minor older;
//! * kubectl is within one minor (older or newer) of kube-apiserver.
//!
//! With mixed API servers (HA, mid-upgrade) every client's range is computed against the
//! server it could reach that is least favourable: "not newer" against the **oldest** API
//! server, "not too old" against the **newest** one (the policy's example: API servers at 1.35
//! and 1.34 allow kubelets 1.34, 1.33 and 1.32).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::version::Version;

mod finding;
#[cfg(test)]
mod tests;

pub use finding::{Party, Rule, SkewFinding};

/// A cluster component whose version the policy constrains or the plan moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// kube-apiserver.
    KubeApiserver,
    /// kube-controller-manager.
    KubeControllerManager,
    /// kube-scheduler.
    KubeScheduler,
    /// cloud-controller-manager (not managed by kubeadm).
    CloudControllerManager,
    /// etcd (stacked members are upgraded by kubeadm with the control plane).
    Etcd,
    /// kube-proxy (a DaemonSet with one image for every node).
    KubeProxy,
    /// CoreDNS (a Deployment).
    CoreDns,
    /// The kubelet of a node.
    Kubelet,
    /// The kubectl client.
    Kubectl,
    /// The kubeadm binary.
    Kubeadm,
}

impl Component {
    /// The name operators know (`kube-apiserver`, `CoreDNS`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::KubeApiserver => "kube-apiserver",
            Self::KubeControllerManager => "kube-controller-manager",
            Self::KubeScheduler => "kube-scheduler",
            Self::CloudControllerManager => "cloud-controller-manager",
            Self::Etcd => "etcd",
            Self::KubeProxy => "kube-proxy",
            Self::CoreDns => "CoreDNS",
            Self::Kubelet => "kubelet",
            Self::Kubectl => "kubectl",
            Self::Kubeadm => "kubeadm",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One running instance of a component: where it runs (if per node) and its version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Instance {
    /// The node it runs on; `None` when not tied to a node (a server seen only via `/version`).
    pub node: Option<String>,
    /// Its version.
    pub version: Version,
}

impl Instance {
    /// An instance on `node`.
    pub fn on(node: impl Into<String>, version: Version) -> Self {
        Self {
            node: Some(node.into()),
            version,
        }
    }
}

/// The versions of the skew-constrained components of a cluster. An empty list or `None` means
/// unknown (not discovered), which the policy skips rather than guesses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterVersions {
    /// Every kube-apiserver instance.
    pub apiservers: Vec<Instance>,
    /// Every kube-controller-manager instance.
    pub controller_managers: Vec<Instance>,
    /// Every kube-scheduler instance.
    pub schedulers: Vec<Instance>,
    /// Every cloud-controller-manager instance.
    pub cloud_controller_managers: Vec<Instance>,
    /// kube-proxy's version (the DaemonSet image; it runs alongside every kubelet).
    pub kube_proxy: Option<Version>,
    /// Every node's kubelet (`status.nodeInfo.kubeletVersion`).
    pub kubelets: Vec<Instance>,
    /// The kubectl client in use, when known.
    pub kubectl: Option<Version>,
}

impl ClusterVersions {
    /// The oldest and newest API server, if any is known.
    pub fn apiserver_range(&self) -> Option<(&Instance, &Instance)> {
        let oldest = self
            .apiservers
            .iter()
            .min_by(|a, b| a.version.cmp(&b.version))?;
        let newest = self
            .apiservers
            .iter()
            .max_by(|a, b| a.version.cmp(&b.version))?;
        Some((oldest, newest))
    }
}

/// How many minors a kubelet or kube-proxy of this version may trail kube-apiserver: three, or
/// two while it is older than 1.25 (KEP-3935 widened the window from 1.25 on).
pub fn node_component_max_lag(version: &Version) -> i64 {
    if version.major == 1 && version.minor < 25 {
        2
    } else {
        3
    }
}

/// How many minors kubeadm `upgrade apply` to `target` lets a kubelet trail the target.
pub fn kubeadm_kubelet_max_lag(target: &Version) -> i64 {
    if target.major == 1 && target.minor < 29 {
        1
    } else {
        3
    }
}

fn party(component: Component, instance: &Instance) -> Party {
    Party {
        component,
        node: instance.node.clone(),
        version: instance.version.clone(),
    }
}

/// Checks every rule over `cluster`; findings come in a stable order (rule checks in the
/// order of the policy page, instances in input order).
pub fn check(cluster: &ClusterVersions) -> Vec<SkewFinding> {
    let mut out = Vec::new();
    let Some((oldest, newest)) = cluster.apiserver_range() else {
        return out;
    };
    if newest.version.minors_above(&oldest.version) > 1 {
        out.push(SkewFinding {
            rule: Rule::ApiserverHaSkew,
            subject: party(Component::KubeApiserver, oldest),
            reference: party(Component::KubeApiserver, newest),
        });
    }
    for (component, list) in [
        (
            Component::KubeControllerManager,
            &cluster.controller_managers,
        ),
        (Component::KubeScheduler, &cluster.schedulers),
        (
            Component::CloudControllerManager,
            &cluster.cloud_controller_managers,
        ),
    ] {
        for instance in list {
            check_control_plane(component, instance, oldest, newest, &mut out);
        }
    }
    if let Some(proxy) = &cluster.kube_proxy {
        let proxy_instance = Instance {
            node: None,
            version: proxy.clone(),
        };
        check_node_component(
            Component::KubeProxy,
            &proxy_instance,
            oldest,
            newest,
            &mut out,
        );
    }
    for kubelet in &cluster.kubelets {
        check_kubelet_with(
            cluster.kube_proxy.as_ref(),
            kubelet,
            oldest,
            newest,
            &mut out,
        );
    }
    if let Some(kubectl) = &cluster.kubectl {
        for apiserver in [oldest, newest] {
            if kubectl.minors_above(&apiserver.version).abs() > 1 {
                out.push(SkewFinding {
                    rule: Rule::KubectlSkew,
                    subject: Party {
                        component: Component::Kubectl,
                        node: None,
                        version: kubectl.clone(),
                    },
                    reference: party(Component::KubeApiserver, apiserver),
                });
                break;
            }
        }
    }
    out
}

/// Checks the rules that involve one kubelet (against the API servers and kube-proxy): what
/// changes when only that kubelet moves.
pub fn check_kubelet(cluster: &ClusterVersions, kubelet: &Instance) -> Vec<SkewFinding> {
    let mut out = Vec::new();
    if let Some((oldest, newest)) = cluster.apiserver_range() {
        check_kubelet_with(
            cluster.kube_proxy.as_ref(),
            kubelet,
            oldest,
            newest,
            &mut out,
        );
    }
    out
}

fn check_kubelet_with(
    kube_proxy: Option<&Version>,
    kubelet: &Instance,
    oldest: &Instance,
    newest: &Instance,
    out: &mut Vec<SkewFinding>,
) {
    check_node_component(Component::Kubelet, kubelet, oldest, newest, out);
    if let Some(proxy) = kube_proxy {
        let lower = if kubelet.version < *proxy {
            &kubelet.version
        } else {
            proxy
        };
        if proxy.minors_above(&kubelet.version).abs() > node_component_max_lag(lower) {
            out.push(SkewFinding {
                rule: Rule::KubeProxyKubeletSkew,
                subject: Party {
                    component: Component::KubeProxy,
                    node: kubelet.node.clone(),
                    version: proxy.clone(),
                },
                reference: party(Component::Kubelet, kubelet),
            });
        }
    }
}

/// kubelet / kube-proxy against the API servers.
fn check_node_component(
    component: Component,
    instance: &Instance,
    oldest: &Instance,
    newest: &Instance,
    out: &mut Vec<SkewFinding>,
) {
    let (newer_rule, old_rule) = match component {
        Component::KubeProxy => (Rule::KubeProxyNewerThanApiserver, Rule::KubeProxyTooOld),
        _ => (Rule::KubeletNewerThanApiserver, Rule::KubeletTooOld),
    };
    // Minor granularity: a kubelet v1.20.5 with an API server v1.20.2 is within policy.
    if instance.version.minors_above(&oldest.version) > 0 {
        out.push(SkewFinding {
            rule: newer_rule,
            subject: party(component, instance),
            reference: party(Component::KubeApiserver, oldest),
        });
    }
    if newest.version.minors_above(&instance.version) > node_component_max_lag(&instance.version) {
        out.push(SkewFinding {
            rule: old_rule,
            subject: party(component, instance),
            reference: party(Component::KubeApiserver, newest),
        });
    }
}

fn check_control_plane(
    component: Component,
    instance: &Instance,
    oldest: &Instance,
    newest: &Instance,
    out: &mut Vec<SkewFinding>,
) {
    if instance.version.minors_above(&oldest.version) > 0 {
        out.push(SkewFinding {
            rule: Rule::ControlPlaneNewerThanApiserver,
            subject: party(component, instance),
            reference: party(Component::KubeApiserver, oldest),
        });
    }
    if newest.version.minors_above(&instance.version) > 1 {
        out.push(SkewFinding {
            rule: Rule::ControlPlaneTooOld,
            subject: party(component, instance),
            reference: party(Component::KubeApiserver, newest),
        });
    }
}

/// kubeadm's own kubelet check for `kubeadm upgrade apply <target>`: every kubelet whose minor
/// trails the target by more than kubeadm allows.
pub fn check_kubeadm_kubelets(cluster: &ClusterVersions, target: &Version) -> Vec<SkewFinding> {
    let lag = kubeadm_kubelet_max_lag(target);
    cluster
        .kubelets
        .iter()
        .filter(|k| target.minors_above(&k.version) > lag)
        .map(|k| SkewFinding {
            rule: Rule::KubeadmKubeletSkew,
            subject: party(Component::Kubelet, k),
            reference: Party {
                component: Component::Kubeadm,
                node: None,
                version: target.clone(),
            },
        })
        .collect()
}
