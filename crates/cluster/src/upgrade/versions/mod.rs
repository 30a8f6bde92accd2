//! Reading the versions a cluster runs: the I/O behind [`ClusterReader`], and the pure
//! reduction of what was read into the planner's
//! [`ClusterState`](kubemaint_core::upgrade::plan::ClusterState).
//!
//! What kubeadm reads (`cmd/kubeadm/app/phases/upgrade/versiongetter.go`): `/version`, every
//! node's `status.nodeInfo.kubeletVersion`, and per control-plane node the image tag of the
//! `kube-system` pods labelled `component=<name>,tier=control-plane` (mirror pods of the static
//! pods). We also read the kube-proxy DaemonSet and CoreDNS Deployment images and the
//! `kubeadm-config` ConfigMap. Anything missing (a managed control plane has no mirror pods,
//! a non-kubeadm cluster no `kubeadm-config`) is recorded as unknown, never fatal.
//!
//! The reads are here; `reduce.rs` turns what was read into the planner's state.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, ListParams};

mod reduce;

pub use reduce::{Discovered, Interpreted, interpret, kubernetes_version_of};

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

#[cfg(test)]
mod tests;
