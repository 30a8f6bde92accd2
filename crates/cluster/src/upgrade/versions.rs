//! Reading the versions a cluster runs: the I/O behind [`ClusterReader`], and the pure
//! reduction of what was read into the planner's [`ClusterState`].
//!
//! What kubeadm reads (`cmd/kubeadm/app/phases/upgrade/versiongetter.go`): `/version`, every
//! node's `status.nodeInfo.kubeletVersion`, and per control-plane node the image tag of the
//! `kube-system` pods labelled `component=<name>,tier=control-plane` (mirror pods of the static
//! pods). We also read the kube-proxy DaemonSet and CoreDNS Deployment images and the
//! `kubeadm-config` ConfigMap. Anything missing (a managed control plane has no mirror pods,
//! a non-kubeadm cluster no `kubeadm-config`) is recorded as unknown, never fatal.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, ListParams};
use kubemaint_core::upgrade::plan::{ClusterState, EtcdMember};
use kubemaint_core::upgrade::skew::{ClusterVersions, Instance};
use kubemaint_core::upgrade::version::{Version, image_tag, version_from_image};
use serde::Serialize;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The server answered with an error status.
    #[error("{what}: the server answered {code}: {message}")]
    Status {
        /// What was read.
        what: String,
        /// HTTP code.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// The server could not be reached or the answer not read.
    #[error("{what} failed")]
    Transport {
        /// What was read.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

impl ReadError {
    fn from_kube(what: &str, err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) => Self::Status {
                what: what.to_string(),
                code: status.code,
                message: status.message,
            },
            source => Self::Transport {
                what: what.to_string(),
                source,
            },
        }
    }

    /// True when the server was not reached (connection, TLS, timeout).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Transport { .. })
    }
}

/// The reads discovery makes. One method per question, so a test can answer them from memory.
#[allow(async_fn_in_trait)]
pub trait ClusterReader {
    /// `/version`'s `gitVersion`.
    async fn server_version(&self) -> Result<String, ReadError>;
    /// Every node.
    async fn nodes(&self) -> Result<Vec<Node>, ReadError>;
    /// `kube-system` pods labelled `tier=control-plane` (kubeadm's static pods' mirror pods).
    async fn control_plane_pods(&self) -> Result<Vec<Pod>, ReadError>;
    /// `kube-system/kube-proxy` DaemonSet, `None` when absent.
    async fn kube_proxy(&self) -> Result<Option<DaemonSet>, ReadError>;
    /// `kube-system/coredns` Deployment, `None` when absent.
    async fn coredns(&self) -> Result<Option<Deployment>, ReadError>;
    /// `kube-system/kubeadm-config` ConfigMap, `None` when absent.
    async fn kubeadm_config(&self) -> Result<Option<ConfigMap>, ReadError>;
}

/// [`ClusterReader`] over a kube client.
pub struct KubeReader {
    /// The client.
    pub client: kube::Client,
}

async fn get_opt<K>(api: Api<K>, name: &str, what: &str) -> Result<Option<K>, ReadError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name)
        .await
        .map_err(|e| ReadError::from_kube(what, e))
}

impl ClusterReader for KubeReader {
    async fn server_version(&self) -> Result<String, ReadError> {
        self.client
            .apiserver_version()
            .await
            .map(|info| info.git_version)
            .map_err(|e| ReadError::from_kube("GET /version", e))
    }

    async fn nodes(&self) -> Result<Vec<Node>, ReadError> {
        let api: Api<Node> = Api::all(self.client.clone());
        api.list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(|e| ReadError::from_kube("list nodes", e))
    }

    async fn control_plane_pods(&self) -> Result<Vec<Pod>, ReadError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), "kube-system");
        api.list(&ListParams::default().labels("tier=control-plane"))
            .await
            .map(|l| l.items)
            .map_err(|e| ReadError::from_kube("list kube-system pods tier=control-plane", e))
    }

    async fn kube_proxy(&self) -> Result<Option<DaemonSet>, ReadError> {
        get_opt(
            Api::namespaced(self.client.clone(), "kube-system"),
            "kube-proxy",
            "get daemonset kube-system/kube-proxy",
        )
        .await
    }

    async fn coredns(&self) -> Result<Option<Deployment>, ReadError> {
        get_opt(
            Api::namespaced(self.client.clone(), "kube-system"),
            "coredns",
            "get deployment kube-system/coredns",
        )
        .await
    }

    async fn kubeadm_config(&self) -> Result<Option<ConfigMap>, ReadError> {
        get_opt(
            Api::namespaced(self.client.clone(), "kube-system"),
            "kubeadm-config",
            "get configmap kube-system/kubeadm-config",
        )
        .await
    }
}

/// Everything read, before interpretation.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// `/version`.
    pub server_version: Option<String>,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Control-plane mirror pods.
    pub control_plane_pods: Vec<Pod>,
    /// kube-proxy DaemonSet.
    pub kube_proxy: Option<DaemonSet>,
    /// CoreDNS Deployment.
    pub coredns: Option<Deployment>,
    /// kubeadm-config ConfigMap.
    pub kubeadm_config: Option<ConfigMap>,
    /// What could not be read, and why.
    pub unknown: Vec<String>,
}

/// Reads everything; only an unreachable server is an error (the first read tells).
pub async fn read<R: ClusterReader>(reader: &R) -> Result<Snapshot, ReadError> {
    let mut snapshot = Snapshot::default();
    match reader.server_version().await {
        Ok(v) => snapshot.server_version = Some(v),
        Err(e) if e.is_unreachable() => return Err(e),
        Err(e) => snapshot.unknown.push(e.to_string()),
    }
    fn keep<T: Default>(result: Result<T, ReadError>, unknown: &mut Vec<String>) -> T {
        result.unwrap_or_else(|e| {
            unknown.push(e.to_string());
            T::default()
        })
    }
    snapshot.nodes = keep(reader.nodes().await, &mut snapshot.unknown);
    snapshot.control_plane_pods = keep(reader.control_plane_pods().await, &mut snapshot.unknown);
    snapshot.kube_proxy = keep(reader.kube_proxy().await, &mut snapshot.unknown);
    snapshot.coredns = keep(reader.coredns().await, &mut snapshot.unknown);
    snapshot.kubeadm_config = keep(reader.kubeadm_config().await, &mut snapshot.unknown);
    Ok(snapshot)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, version: &str, control_plane: bool) -> Node {
        let labels = if control_plane {
            json!({ "node-role.kubernetes.io/master": "" })
        } else {
            json!({})
        };
        serde_json::from_value(json!({
            "metadata": { "name": name, "labels": labels },
            "status": { "nodeInfo": {
                "kubeletVersion": version, "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "",
                "kernelVersion": "", "kubeProxyVersion": "", "machineID": "", "operatingSystem": "linux",
                "osImage": "", "systemUUID": "" } }
        }))
        .unwrap()
    }

    fn mirror(component: &str, node: &str, image: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": format!("{component}-{node}"), "namespace": "kube-system",
                          "labels": { "component": component, "tier": "control-plane" } },
            "spec": { "nodeName": node, "containers": [{ "name": component, "image": image }] }
        }))
        .unwrap()
    }

    struct Memory {
        snapshot_nodes: Vec<Node>,
        pods: Vec<Pod>,
        unreachable: bool,
        kubeadm: bool,
    }

    impl ClusterReader for Memory {
        async fn server_version(&self) -> Result<String, ReadError> {
            if self.unreachable {
                return Err(ReadError::Transport {
                    what: "GET /version".into(),
                    source: kube::Error::LinesCodecMaxLineLengthExceeded,
                });
            }
            Ok("v1.19.16".into())
        }
        async fn nodes(&self) -> Result<Vec<Node>, ReadError> {
            Ok(self.snapshot_nodes.clone())
        }
        async fn control_plane_pods(&self) -> Result<Vec<Pod>, ReadError> {
            Ok(self.pods.clone())
        }
        async fn kube_proxy(&self) -> Result<Option<DaemonSet>, ReadError> {
            Err(ReadError::Status {
                what: "get daemonset kube-system/kube-proxy".into(),
                code: 403,
                message: "forbidden".into(),
            })
        }
        async fn coredns(&self) -> Result<Option<Deployment>, ReadError> {
            Ok(None)
        }
        async fn kubeadm_config(&self) -> Result<Option<ConfigMap>, ReadError> {
            Ok(self.kubeadm.then(|| {
                serde_json::from_value(json!({
                    "metadata": { "name": "kubeadm-config" },
                    "data": { "ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta2\nkubernetesVersion: v1.19.16\n" }
                }))
                .unwrap()
            }))
        }
    }

    #[tokio::test]
    async fn kubeadm_cluster_per_node() {
        let reader = Memory {
            snapshot_nodes: vec![
                node("cp1", "v1.19.16", true),
                node("w1", "v1.19.16", false),
                node("w2", "v1.18.20", false),
            ],
            pods: vec![
                mirror(
                    "kube-apiserver",
                    "cp1",
                    "k8s.gcr.io/kube-apiserver:v1.19.16",
                ),
                mirror(
                    "kube-controller-manager",
                    "cp1",
                    "k8s.gcr.io/kube-controller-manager:v1.19.16",
                ),
                mirror(
                    "kube-scheduler",
                    "cp1",
                    "k8s.gcr.io/kube-scheduler:v1.19.16",
                ),
                mirror("etcd", "cp1", "k8s.gcr.io/etcd:3.4.13-0"),
            ],
            unreachable: false,
            kubeadm: true,
        };
        let got = interpret(&read(&reader).await.unwrap());
        let s = &got.state;
        assert_eq!(
            s.versions.apiservers,
            vec![Instance::on("cp1", Version::new(1, 19, 16))]
        );
        assert_eq!(s.versions.kubelets.len(), 3);
        assert_eq!(s.etcd[0].version, "3.4.13-0");
        assert!(s.kubeadm);
        assert_eq!(got.kubeadm_kubernetes_version.as_deref(), Some("v1.19.16"));
        assert_eq!(got.control_plane_nodes, vec!["cp1".to_string()]);
        // Missing pieces are unknown, not fatal.
        assert!(s.versions.kube_proxy.is_none());
        assert!(
            got.unknown
                .iter()
                .any(|u| u.contains("kube-proxy") && u.contains("403"))
        );
        assert!(got.unknown.iter().any(|u| u.contains("CoreDNS")));
    }

    #[tokio::test]
    async fn managed_control_plane_uses_version() {
        let reader = Memory {
            snapshot_nodes: vec![node("w1", "v1.19.16", false)],
            pods: vec![],
            unreachable: false,
            kubeadm: false,
        };
        let got = interpret(&read(&reader).await.unwrap());
        assert_eq!(got.state.versions.apiservers[0].node, None);
        assert_eq!(
            got.state.versions.apiservers[0].version,
            Version::new(1, 19, 16)
        );
        assert!(!got.state.kubeadm);
        assert!(got.unknown.iter().any(|u| u.contains("kubeadm-config")));
        assert!(got.unknown.iter().any(|u| u.contains("etcd")));
    }

    #[tokio::test]
    async fn unreachable_is_an_error() {
        let reader = Memory {
            snapshot_nodes: vec![],
            pods: vec![],
            unreachable: true,
            kubeadm: false,
        };
        assert!(read(&reader).await.unwrap_err().is_unreachable());
    }

    #[test]
    fn cluster_configuration_version() {
        assert_eq!(
            kubernetes_version_of("a: b\nkubernetesVersion: \"v1.20.2\"\n").as_deref(),
            Some("v1.20.2")
        );
        assert_eq!(kubernetes_version_of("a: b\n"), None);
    }
}
