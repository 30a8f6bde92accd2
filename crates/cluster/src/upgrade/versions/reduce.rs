//! The pure reduction of a [`Snapshot`] into the planner's [`ClusterState`] and the rows the
//! report prints.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kubemaint_core::upgrade::plan::{ClusterState, EtcdMember};
use kubemaint_core::upgrade::skew::{ClusterVersions, Instance};
use kubemaint_core::upgrade::version::{Version, image_tag, version_from_image};
use serde::Serialize;

use super::Snapshot;

/// One discovered component row (what the table prints), before planning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Discovered {
    /// Component name.
    pub name: String,
    /// Node, if per node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Version or image tag read; `None` when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// Where it was read from.
    pub source: String,
}

/// The result of interpreting a snapshot.
#[derive(Debug, Clone, Default)]
pub struct Interpreted {
    /// The planner's input.
    pub state: ClusterState,
    /// Every row found, for the report.
    pub components: Vec<Discovered>,
    /// `kubernetesVersion` of kubeadm's ClusterConfiguration.
    pub kubeadm_kubernetes_version: Option<String>,
    /// Control-plane node names (label `node-role.kubernetes.io/control-plane` or `master`, or
    /// hosting a control-plane mirror pod).
    pub control_plane_nodes: Vec<String>,
    /// What is unknown, and why.
    pub unknown: Vec<String>,
}

fn first_image(spec: Option<&k8s_openapi::api::core::v1::PodSpec>) -> Option<String> {
    spec?.containers.first()?.image.clone()
}

/// The `kubernetesVersion:` line of a ClusterConfiguration (YAML); a tiny read instead of a
/// full kubeadm API decoder, because it is the only field we use.
pub fn kubernetes_version_of(cluster_configuration: &str) -> Option<String> {
    cluster_configuration.lines().find_map(|line| {
        let value = line.strip_prefix("kubernetesVersion:")?;
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// Reduces a snapshot to the planner's state: per-node versions from mirror pods, the server
/// version as the API server when no mirror pod is found (managed control planes), kubelets
/// from the nodes, add-ons from their images.
pub fn interpret(snapshot: &Snapshot) -> Interpreted {
    let mut out = Interpreted {
        unknown: snapshot.unknown.clone(),
        ..Default::default()
    };
    let mut versions = ClusterVersions::default();
    let mut control_plane: BTreeMap<String, ()> = BTreeMap::new();

    for node in &snapshot.nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let labels = node.metadata.labels.as_ref();
        if labels.is_some_and(|l| {
            l.contains_key("node-role.kubernetes.io/control-plane")
                || l.contains_key("node-role.kubernetes.io/master")
        }) {
            control_plane.insert(name.clone(), ());
        }
        let kubelet = node
            .status
            .as_ref()
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.kubelet_version.clone());
        match kubelet.as_deref().map(Version::parse) {
            Some(Ok(version)) => {
                out.components.push(Discovered {
                    name: "kubelet".into(),
                    node_name: Some(name.clone()),
                    current_version: Some(version.to_string()),
                    source: "node status.nodeInfo.kubeletVersion".into(),
                });
                versions.kubelets.push(Instance::on(name, version));
            }
            other => {
                out.unknown.push(format!(
                    "kubelet on {name}: kubeletVersion {} is not a version",
                    match other {
                        Some(Err(e)) => e.to_string(),
                        _ => "missing".into(),
                    }
                ));
            }
        }
    }

    let mut pods: Vec<&Pod> = snapshot.control_plane_pods.iter().collect();
    pods.sort_by_key(|p| {
        (
            p.spec.as_ref().and_then(|s| s.node_name.clone()),
            p.metadata.name.clone(),
        )
    });
    for pod in pods {
        let component = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("component"))
            .cloned()
            .unwrap_or_default();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        if let Some(node) = &node {
            control_plane.insert(node.clone(), ());
        }
        let image = first_image(pod.spec.as_ref());
        let tag = image.as_deref().and_then(image_tag).map(str::to_string);
        let source = format!(
            "mirror pod kube-system/{} image {}",
            pod.metadata.name.as_deref().unwrap_or(""),
            image.as_deref().unwrap_or("(none)")
        );
        let list = match component.as_str() {
            "kube-apiserver" => Some(&mut versions.apiservers),
            "kube-controller-manager" => Some(&mut versions.controller_managers),
            "kube-scheduler" => Some(&mut versions.schedulers),
            "cloud-controller-manager" => Some(&mut versions.cloud_controller_managers),
            "etcd" => {
                if let Some(tag) = &tag {
                    out.state.etcd.push(EtcdMember {
                        node: node.clone(),
                        version: tag.clone(),
                    });
                }
                None
            }
            _ => continue,
        };
        out.components.push(Discovered {
            name: component.clone(),
            node_name: node.clone(),
            current_version: tag.clone(),
            source,
        });
        if let Some(list) = list {
            match image.as_deref().and_then(version_from_image) {
                Some(version) => list.push(Instance {
                    node: node.clone(),
                    version,
                }),
                None => out.unknown.push(format!(
                    "{component} on {}: image {} has no version tag",
                    node.as_deref().unwrap_or("?"),
                    image.as_deref().unwrap_or("(none)")
                )),
            }
        }
    }

    if versions.apiservers.is_empty() {
        // A managed or non-kubeadm control plane: the version the server reports is all we
        // know, for whichever instance answered.
        match snapshot.server_version.as_deref().map(Version::parse) {
            Some(Ok(version)) => {
                out.components.push(Discovered {
                    name: "kube-apiserver".into(),
                    node_name: None,
                    current_version: Some(version.to_string()),
                    source: "GET /version (no kube-apiserver mirror pod found)".into(),
                });
                out.unknown.push(
                    "kube-apiserver per node: no mirror pods (not a kubeadm control plane, or a managed one); using /version"
                        .into(),
                );
                versions.apiservers.push(Instance {
                    node: None,
                    version,
                });
            }
            Some(Err(e)) => out.unknown.push(format!("/version: {e}")),
            None => {}
        }
    } else if let Some(Ok(server)) = snapshot.server_version.as_deref().map(Version::parse)
        && !versions.apiservers.iter().any(|a| a.version == server)
    {
        out.unknown.push(format!(
            "/version says {server}, which no kube-apiserver mirror pod image shows: the mirror pods may be stale or the images retagged"
        ));
    }
    if versions.controller_managers.is_empty() {
        out.unknown
            .push("kube-controller-manager: no mirror pod".into());
    }
    if versions.schedulers.is_empty() {
        out.unknown.push("kube-scheduler: no mirror pod".into());
    }
    if out.state.etcd.is_empty() {
        out.unknown
            .push("etcd: no mirror pod (external etcd, or not a kubeadm cluster)".into());
    }

    match &snapshot.kube_proxy {
        Some(ds) => {
            let image = first_image(ds.spec.template.spec.as_ref());
            let version = image.as_deref().and_then(version_from_image);
            out.components.push(Discovered {
                name: "kube-proxy".into(),
                node_name: None,
                current_version: version.as_ref().map(ToString::to_string),
                source: format!(
                    "daemonset kube-system/kube-proxy image {}",
                    image.as_deref().unwrap_or("(none)")
                ),
            });
            versions.kube_proxy = version;
        }
        None => out
            .unknown
            .push("kube-proxy: no kube-system/kube-proxy DaemonSet".into()),
    }
    match &snapshot.coredns {
        Some(deploy) => {
            let image = first_image(deploy.spec.template.spec.as_ref());
            let tag = image.as_deref().and_then(image_tag).map(str::to_string);
            out.components.push(Discovered {
                name: "CoreDNS".into(),
                node_name: None,
                current_version: tag.clone(),
                source: format!(
                    "deployment kube-system/coredns image {}",
                    image.as_deref().unwrap_or("(none)")
                ),
            });
            out.state.coredns = tag;
        }
        None => out
            .unknown
            .push("CoreDNS: no kube-system/coredns Deployment".into()),
    }
    match &snapshot.kubeadm_config {
        Some(cm) => {
            out.state.kubeadm = true;
            let text = cm
                .data
                .as_ref()
                .and_then(|d| d.get("ClusterConfiguration"))
                .cloned()
                .unwrap_or_default();
            out.kubeadm_kubernetes_version = kubernetes_version_of(&text);
            out.components.push(Discovered {
                name: "kubeadm-config".into(),
                node_name: None,
                current_version: out.kubeadm_kubernetes_version.clone(),
                source: "configmap kube-system/kubeadm-config ClusterConfiguration.kubernetesVersion"
                    .into(),
            });
        }
        None => out.unknown.push(
            "kubeadm-config: no kube-system/kubeadm-config ConfigMap (not a kubeadm cluster); kubeadm's own checks are not applied"
                .into(),
        ),
    }
    out.state.versions = versions;
    out.control_plane_nodes = control_plane.into_keys().collect();
    out
}
