//! What the run looks at: nodes, control-plane mirror pods, a control-plane node's own API
//! server, etcd and PodDisruptionBudgets — read-only, turned into the core's fact types.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kubemaint_core::upgrade::apply::health::{
    ApiserverAnswer, BudgetHealth, EtcdHealth, EtcdMembers, HealthFacts, MirrorPod, STATIC_PODS,
};
use kubemaint_core::upgrade::apply::{Facts, NodeFacts};
use kubemaint_core::upgrade::version::{Version, version_from_image};

use super::{ApplyError, NAMESPACE};
use crate::read;

/// The annotation kubeadm puts on a kube-apiserver mirror pod: `host:port` it advertises.
pub const ADVERTISE_ANNOTATION: &str =
    "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint";

fn condition_true(conditions: Option<&Vec<impl HasCondition>>, kind: &str) -> bool {
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.kind() == kind && c.status() == "True")
}

trait HasCondition {
    fn kind(&self) -> &str;
    fn status(&self) -> &str;
}

impl HasCondition for k8s_openapi::api::core::v1::NodeCondition {
    fn kind(&self) -> &str {
        &self.type_
    }
    fn status(&self) -> &str {
        &self.status
    }
}

impl HasCondition for k8s_openapi::api::core::v1::PodCondition {
    fn kind(&self) -> &str {
        &self.type_
    }
    fn status(&self) -> &str {
        &self.status
    }
}

/// The facts of one node object (its control-plane version comes from the mirror pods).
pub fn node_facts(node: &Node, mirror: &[MirrorPod]) -> NodeFacts {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let status = node.status.as_ref();
    let control_plane = STATIC_PODS[1..]
        .iter()
        .map(|c| {
            mirror
                .iter()
                .find(|p| p.node == name && p.component == *c)
                .and_then(|p| p.version.clone())
        })
        .collect::<Option<Vec<Version>>>()
        .and_then(|v| v.into_iter().min());
    NodeFacts {
        ready: condition_true(status.and_then(|s| s.conditions.as_ref()), "Ready"),
        unschedulable: node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
        kubelet: status
            .and_then(|s| s.node_info.as_ref())
            .and_then(|i| Version::parse(&i.kubelet_version).ok()),
        control_plane,
    }
}

/// A control-plane mirror pod.
fn mirror_pod(pod: &Pod) -> Option<(MirrorPod, Option<String>)> {
    let component = pod.metadata.labels.as_ref()?.get("component")?.clone();
    let node = pod.spec.as_ref()?.node_name.clone()?;
    let image = pod.spec.as_ref()?.containers.first()?.image.clone()?;
    let ready = condition_true(
        pod.status.as_ref().and_then(|s| s.conditions.as_ref()),
        "Ready",
    );
    let endpoint = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ADVERTISE_ANNOTATION))
        .cloned();
    Some((
        MirrorPod {
            component,
            node,
            version: version_from_image(&image),
            ready,
        },
        endpoint,
    ))
}

/// What the run observed in one go.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Facts for the next-step function.
    pub facts: Facts,
    /// Every control-plane mirror pod.
    pub mirror_pods: Vec<MirrorPod>,
    /// The API server endpoint (`host:port`) each control-plane node advertises.
    pub endpoints: BTreeMap<String, String>,
    /// Each node's InternalIP.
    pub addresses: BTreeMap<String, String>,
}

/// Reads nodes and control-plane mirror pods.
pub async fn observe(client: &kube::Client) -> Result<Observed, ApplyError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let nodes = nodes
        .list(&ListParams::default())
        .await
        .map_err(ApplyError::request("list nodes"))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let pods = pods
        .list(&ListParams::default().labels("tier=control-plane"))
        .await
        .map_err(ApplyError::request(format!(
            "list the control-plane mirror pods in {NAMESPACE}"
        )))?;
    let mut mirror_pods = Vec::new();
    let mut endpoints = BTreeMap::new();
    for pod in &pods.items {
        if let Some((mirror, endpoint)) = mirror_pod(pod) {
            if let Some(endpoint) = endpoint.filter(|_| mirror.component == "kube-apiserver") {
                endpoints.insert(mirror.node.clone(), endpoint);
            }
            mirror_pods.push(mirror);
        }
    }
    let mut facts = Facts::default();
    let mut addresses = BTreeMap::new();
    for node in &nodes.items {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(ip) = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
        {
            addresses.insert(name.clone(), ip.address.clone());
        }
        facts.nodes.insert(name, node_facts(node, &mirror_pods));
    }
    Ok(Observed {
        facts,
        mirror_pods,
        endpoints,
        addresses,
    })
}

/// Asks the API server at `endpoint` (`host:port`) for `/version` with the credentials of
/// `config` (kubeadm's serving certificate covers every control-plane node's address).
pub async fn apiserver_version(config: &kube::Config, endpoint: &str) -> ApiserverAnswer {
    let mut config = config.clone();
    let url = format!("https://{endpoint}");
    match url.parse() {
        Ok(uri) => config.cluster_url = uri,
        Err(e) => return ApiserverAnswer::Error(format!("bad endpoint {endpoint}: {e}")),
    }
    config.read_timeout = Some(std::time::Duration::from_secs(5));
    config.connect_timeout = Some(std::time::Duration::from_secs(3));
    let client = match kube::Client::try_from(config) {
        Ok(c) => c,
        Err(e) => return ApiserverAnswer::Error(e.to_string()),
    };
    match client.apiserver_version().await {
        Ok(info) => ApiserverAnswer::Version(info.git_version),
        Err(e) => ApiserverAnswer::Error(e.to_string()),
    }
}

/// etcd as the API server sees it (`/readyz/etcd`: the API server reads through etcd, which
/// needs a quorum with a leader).
pub async fn etcd_health(client: &kube::Client) -> EtcdHealth {
    let request = match http::Request::get("/readyz/etcd").body(Vec::new()) {
        Ok(r) => r,
        Err(e) => return EtcdHealth::Unhealthy(e.to_string()),
    };
    match client.request_text(request).await {
        Ok(text) if text.trim() == "ok" => EtcdHealth::Healthy,
        Ok(text) => EtcdHealth::Unhealthy(format!("/readyz/etcd answered {}", text.trim())),
        Err(e) => EtcdHealth::Unhealthy(format!("/readyz/etcd failed: {e}")),
    }
}

/// Every PodDisruptionBudget's healthy counts (read through `pdb_version`).
pub async fn budgets(
    client: &kube::Client,
    pdb_version: &str,
) -> Result<Vec<BudgetHealth>, ApplyError> {
    let (pdbs, _) =
        read::list_pdbs(client, pdb_version)
            .await
            .map_err(|e| ApplyError::Budgets {
                source: Box::new(e),
            })?;
    Ok(pdbs
        .iter()
        .map(|p| {
            let status = p.status.clone().unwrap_or_default();
            BudgetHealth {
                name: format!(
                    "{}/{}",
                    p.metadata.namespace.as_deref().unwrap_or_default(),
                    p.metadata.name.as_deref().unwrap_or_default()
                ),
                current_healthy: status.current_healthy.unwrap_or(0),
                desired_healthy: status.desired_healthy.unwrap_or(0),
                expected_pods: status.expected_pods.unwrap_or(0),
            }
        })
        .collect())
}

/// Everything the health gate looks at; `etcd_members` is what the members said when asked
/// directly (by the caller, which holds the etcd connection).
pub async fn health(
    client: &kube::Client,
    pdb_version: &str,
    etcd_members: EtcdMembers,
) -> Result<HealthFacts, ApplyError> {
    let observed = observe(client).await?;
    Ok(HealthFacts {
        nodes: observed.facts.nodes,
        mirror_pods: observed.mirror_pods,
        etcd: etcd_health(client).await,
        etcd_members,
        budgets: budgets(client, pdb_version).await?,
    })
}
