//! Reading what the drain planner needs from the cluster: discovery, nodes, pods, PDBs and the
//! DaemonSet lookups of kubectl's DaemonSet filter.

use crate::ClusterError;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kubemaint_core::drain::capacity::{VolumeAffinity, volume_node_affinity};
use kubemaint_core::drain::eviction::{EvictionVersion, eviction_version_from_discovery};
use kubemaint_core::drain::filters::{
    DaemonSetLookup, FilterOptions, daemonset_not_found_message, daemonsets_to_look_up,
};
use kubemaint_core::drain::pdb::SelectorSemantics;

/// What discovery told us about the policy group.
#[derive(Debug, Clone, Copy)]
pub struct PolicySupport {
    /// Eviction subresource version (kubectl's `CheckEvictionSupport`), `None` if absent.
    pub eviction: Option<EvictionVersion>,
    /// The PodDisruptionBudget version to read (`policy/v1` if served, else `v1beta1`).
    pub pdb_version: &'static str,
}

/// Runs discovery.
pub async fn discover(client: &kube::Client) -> Result<PolicySupport, ClusterError> {
    let core = client
        .list_core_api_resources("v1")
        .await
        .map_err(ClusterError::request("discover /api/v1"))?;
    let eviction = eviction_version_from_discovery(&core.resources);
    let groups = client
        .list_api_groups()
        .await
        .map_err(ClusterError::request("discover /apis"))?;
    let v1 = groups
        .groups
        .iter()
        .filter(|g| g.name == "policy")
        .flat_map(|g| g.versions.iter())
        .any(|v| v.version == "v1");
    Ok(PolicySupport {
        eviction,
        pdb_version: if v1 { "v1" } else { "v1beta1" },
    })
}

/// The dynamic API resource for PDBs of `version`.
pub fn pdb_resource(version: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "policy",
        version,
        "PodDisruptionBudget",
    ))
}

/// Lists every PDB through `version`, converted to the `policy/v1` struct (the v1beta1 shape is
/// the same for the fields we read).
pub async fn list_pdbs(
    client: &kube::Client,
    version: &str,
) -> Result<(Vec<PodDisruptionBudget>, SelectorSemantics), ClusterError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &pdb_resource(version));
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(ClusterError::request(format!(
            "list policy/{version} PodDisruptionBudgets"
        )))?;
    let mut out = Vec::new();
    for obj in list.items {
        let v = serde_json::to_value(&obj).map_err(ClusterError::PdbShape)?;
        out.push(serde_json::from_value(v).map_err(ClusterError::PdbShape)?);
    }
    let sem = if version == "v1" {
        SelectorSemantics::V1
    } else {
        SelectorSemantics::V1beta1
    };
    Ok((out, sem))
}

/// Lists pods with pagination (`chunk` 0 = one request), like kubectl's `FollowContinue`.
pub async fn list_pods(api: &Api<Pod>, mut lp: ListParams, chunk: u32) -> kube::Result<Vec<Pod>> {
    if chunk > 0 {
        lp = lp.limit(chunk);
    }
    let mut out = Vec::new();
    loop {
        let page = api.list(&lp).await?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => return Ok(out),
        }
    }
}

/// The pods kubectl lists for a node: all namespaces, `spec.nodeName=<node>`, `--pod-selector`.
pub async fn node_pods(
    client: &kube::Client,
    node: &str,
    pod_selector: Option<&str>,
    chunk: u32,
) -> Result<Vec<Pod>, ClusterError> {
    let api: Api<Pod> = Api::all(client.clone());
    let mut lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    if let Some(sel) = pod_selector.filter(|s| !s.is_empty()) {
        lp = lp.labels(sel);
    }
    list_pods(&api, lp, chunk)
        .await
        .map_err(ClusterError::request(format!(
            "list the pods of node {node}"
        )))
}

/// Does the DaemonSet `GET`s the filters need for these pods.
pub async fn daemonset_lookups(
    client: &kube::Client,
    pods: &[Pod],
    opts: &FilterOptions,
    into: &mut BTreeMap<(String, String), DaemonSetLookup>,
) {
    for (ns, name) in daemonsets_to_look_up(pods, opts, jiff::Timestamp::now()) {
        if into.contains_key(&(ns.clone(), name.clone())) {
            continue;
        }
        let api: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
        let r = match api.get_opt(&name).await {
            Ok(Some(_)) => DaemonSetLookup::Found,
            Ok(None) => DaemonSetLookup::NotFound,
            Err(kube::Error::Api(s)) if s.code == 404 => DaemonSetLookup::NotFound,
            Err(kube::Error::Api(s)) => DaemonSetLookup::Failed(s.message.clone()),
            Err(e) => DaemonSetLookup::Failed(e.to_string()),
        };
        // Keep the NotFound text identical to client-go's even if the server phrased it
        // differently.
        let r = match r {
            DaemonSetLookup::Failed(m) if m.is_empty() => {
                DaemonSetLookup::Failed(daemonset_not_found_message(&name))
            }
            r => r,
        };
        into.insert((ns, name), r);
    }
}

/// Node affinity of the volumes bound to claims, for the capacity preflight. A user who may not
/// list claims or volumes gets the preflight without that check: the error comes back beside
/// the (empty) map, for a warning.
pub async fn volume_affinity(client: &kube::Client) -> (VolumeAffinity, Option<kube::Error>) {
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let listed = async {
        let claims = claims.list(&ListParams::default()).await?.items;
        let volumes = volumes.list(&ListParams::default()).await?.items;
        Ok::<_, kube::Error>((claims, volumes))
    };
    match listed.await {
        Ok((claims, volumes)) => (volume_node_affinity(&claims, &volumes), None),
        Err(e) => (VolumeAffinity::new(), Some(e)),
    }
}

/// All nodes and all pods of the cluster (for capacity).
pub async fn nodes_and_pods(
    client: &kube::Client,
    chunk: u32,
) -> Result<(Vec<Node>, Vec<Pod>), ClusterError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let nodes = nodes
        .list(&ListParams::default())
        .await
        .map_err(ClusterError::request("list nodes"))?
        .items;
    let pods: Api<Pod> = Api::all(client.clone());
    let pods = list_pods(&pods, ListParams::default(), chunk)
        .await
        .map_err(ClusterError::request("list pods"))?;
    Ok((nodes, pods))
}
