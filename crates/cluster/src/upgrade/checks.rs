//! Preflight facts read from the API server, handed to the core's verdicts
//! ([`kubemaint_core::upgrade::preflight`], [`kubemaint_core::upgrade::drain_checks`]):
//! readiness and cordons, PodDisruptionBudgets that would block draining a node, room on the
//! other nodes for a drained node's pods, objects stored in API versions the target removes. Every list
//! is paged ([`CHUNK`] objects a request), so the number of requests grows with pages only.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kubemaint_core::upgrade::drain_checks;
use kubemaint_core::upgrade::preflight::{self, Check, NodeFacts, RemovedApiUse};
use kubemaint_core::upgrade::removed::RemovedApi;

use crate::ClusterError;
use crate::read::{discover, list_pdbs, list_pods, volume_affinity};

/// Page size of the lists the preflight makes (kubectl's default chunk size).
pub const CHUNK: u32 = 500;

/// Readiness and cordon state of each node.
pub fn node_facts(nodes: &[Node]) -> Vec<NodeFacts> {
    nodes
        .iter()
        .map(|n| NodeFacts {
            name: n.metadata.name.clone().unwrap_or_default(),
            ready: n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .map(|c| c.status == "True"),
            cordoned: n
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false),
        })
        .collect()
}

/// An error and its sources, `: `-joined (the check's line is the only place it is shown).
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// Lists all pods (paged), PDBs, and claims and volumes (for their node affinity), and runs the
/// core's drain preflight for every node: [`drain_checks::drain_blockers`] (budgets that would
/// block a drain) and [`drain_checks::drain_capacity`] (room on the other nodes for a drained
/// node's pods). Returns the `drain-pdb` and `drain-capacity` lines.
pub async fn drain_checks(client: &kube::Client, nodes: &[Node]) -> Vec<Check> {
    let gathered = async {
        let support = discover(client).await?;
        let (pdbs, sem) = list_pdbs(client, support.pdb_version).await?;
        let pods = list_pods(&Api::all(client.clone()), ListParams::default(), CHUNK)
            .await
            .map_err(ClusterError::request("list pods"))?;
        Ok::<_, ClusterError>((pdbs, sem, pods))
    };
    let (pdbs, sem, pods) = match gathered.await {
        Ok(found) => found,
        Err(e) => {
            let message = format!("not checked: {}", chain(&e));
            return ["drain-pdb", "drain-capacity"]
                .into_iter()
                .map(|name| Check {
                    name: name.into(),
                    status: preflight::Status::Warn,
                    message: message.clone(),
                    action: Some(
                        "run with an account that may list pods and PodDisruptionBudgets".into(),
                    ),
                })
                .collect();
        }
    };
    let mut out = vec![drain_checks::check_drain(
        nodes.len(),
        &drain_checks::drain_blockers(nodes, &pods, &pdbs, sem),
    )];
    let (volumes, volume_error) = volume_affinity(client).await;
    let mut capacity = drain_checks::check_capacity_for_drain(&drain_checks::drain_capacity(
        nodes, &pods, &volumes,
    ));
    if let Some(e) = volume_error {
        capacity.message.push_str(&format!(
            " (volume node affinity not checked: cannot list claims or volumes: {e})"
        ));
        if capacity.status == preflight::Status::Pass {
            capacity.status = preflight::Status::Warn;
        }
    }
    out.push(capacity);
    out
}

/// Field managers of the control plane itself: objects only they write (EndpointSlices,
/// Leases, Events of controllers) move to the new API version with the upgrade.
const SYSTEM_MANAGERS: &[&str] = &[
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "cloud-controller-manager",
];

/// How an object of a removed API version is known to be in use, if it is. `only_served`:
/// the server serves no replacement, so every object someone other than the control plane
/// wrote was written in the removed version.
pub fn removed_api_use(
    obj: &DynamicObject,
    removal: &RemovedApi,
    only_served: bool,
) -> Option<String> {
    let api_version = removal.api_version();
    let managers: Vec<&str> = obj
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| m.manager.as_deref().unwrap_or("?"))
        .collect();
    let system_only = !managers.is_empty() && managers.iter().all(|m| SYSTEM_MANAGERS.contains(m));
    if only_served {
        if system_only {
            return None;
        }
        return Some(if managers.is_empty() {
            format!("only {api_version} is served")
        } else {
            format!(
                "only {api_version} is served; written by {}",
                managers.join(", ")
            )
        });
    }
    if let Some(managers) = obj.metadata.managed_fields.as_ref() {
        let writers: Vec<&str> = managers
            .iter()
            .filter(|m| m.api_version.as_deref() == Some(api_version.as_str()))
            .map(|m| m.manager.as_deref().unwrap_or("?"))
            .filter(|m| !SYSTEM_MANAGERS.contains(m))
            .collect();
        if !writers.is_empty() {
            return Some(format!(
                "managedFields: {} wrote {api_version}",
                writers.join(", ")
            ));
        }
    }
    let last_applied = obj
        .metadata
        .annotations
        .as_ref()?
        .get("kubectl.kubernetes.io/last-applied-configuration")?;
    let applied: serde_json::Value = serde_json::from_str(last_applied).ok()?;
    (applied.get("apiVersion")?.as_str()? == api_version)
        .then(|| "kubectl last-applied-configuration".to_string())
}

/// Lists the objects of each removal the server still serves and judges their use.
pub async fn removed_api_check(
    client: &kube::Client,
    from: kubemaint_core::upgrade::Minor,
    to: kubemaint_core::upgrade::Minor,
) -> Vec<Check> {
    let removals: Vec<&RemovedApi> =
        kubemaint_core::upgrade::removed::removed_between(from, to).collect();
    if removals.is_empty() {
        return preflight::check_removed_apis(from, to, &[], &[], &[]);
    }
    let groups = match client.list_api_groups().await {
        Ok(groups) => groups,
        Err(e) => {
            return vec![Check {
                name: "removed-api".into(),
                status: preflight::Status::Warn,
                message: format!("not checked: discovery of /apis failed: {e}"),
                action: None,
            }];
        }
    };
    let served = |group: &str, version: &str| {
        groups
            .groups
            .iter()
            .any(|g| g.name == group && g.versions.iter().any(|v| v.version == version))
    };
    let mut found = Vec::new();
    let mut not_checked = Vec::new();
    for removal in &removals {
        if !served(removal.group, removal.version) {
            continue;
        }
        let (rgroup, rversion) = removal
            .replacement
            .split_once('/')
            .unwrap_or(("", removal.replacement));
        let only_served = !served(rgroup, rversion);
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(removal.group, removal.version, removal.kind),
            removal.resource,
        );
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let mut lp = ListParams::default().limit(CHUNK);
        loop {
            match api.list(&lp).await {
                Ok(page) => {
                    for obj in &page.items {
                        if let Some(how) = removed_api_use(obj, removal, only_served) {
                            let name = obj.metadata.name.clone().unwrap_or_default();
                            found.push(RemovedApiUse {
                                api_version: removal.api_version(),
                                kind: removal.kind.to_string(),
                                object: match &obj.metadata.namespace {
                                    Some(ns) => format!("{ns}/{name}"),
                                    None => name,
                                },
                                detected_by: how,
                            });
                        }
                    }
                    match page.metadata.continue_.filter(|c| !c.is_empty()) {
                        Some(c) => lp = lp.continue_token(&c),
                        None => break,
                    }
                }
                Err(e) => {
                    not_checked.push(format!(
                        "{} {} ({e})",
                        removal.api_version(),
                        removal.resource
                    ));
                    break;
                }
            }
        }
    }
    preflight::check_removed_apis(from, to, &removals, &found, &not_checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(value: serde_json::Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn removed_api_detection() {
        let removal = kubemaint_core::upgrade::removed::REMOVED_APIS
            .iter()
            .find(|r| r.kind == "PodDisruptionBudget")
            .unwrap();
        let plain = obj(
            json!({ "apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
            "metadata": { "name": "a", "namespace": "d" } }),
        );
        assert_eq!(
            removed_api_use(&plain, removal, true).as_deref(),
            Some("only policy/v1beta1 is served")
        );
        assert_eq!(removed_api_use(&plain, removal, false), None);
        let controller_made = obj(
            json!({ "apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
            "metadata": { "name": "a", "namespace": "d", "managedFields": [
                { "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "policy/v1beta1" } ] } }),
        );
        assert_eq!(removed_api_use(&controller_made, removal, true), None);
        let user_made = obj(
            json!({ "apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
            "metadata": { "name": "a", "namespace": "d", "managedFields": [
                { "manager": "kubectl-create", "operation": "Update", "apiVersion": "policy/v1beta1" },
                { "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "policy/v1beta1" } ] } }),
        );
        assert_eq!(
            removed_api_use(&user_made, removal, true).as_deref(),
            Some(
                "only policy/v1beta1 is served; written by kubectl-create, kube-controller-manager"
            )
        );
        let managed = obj(
            json!({ "apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
            "metadata": { "name": "a", "namespace": "d", "managedFields": [
                { "manager": "helm", "operation": "Update", "apiVersion": "policy/v1beta1" },
                { "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "policy/v1" } ] } }),
        );
        assert_eq!(
            removed_api_use(&managed, removal, false).as_deref(),
            Some("managedFields: helm wrote policy/v1beta1")
        );
        let applied = obj(
            json!({ "apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
            "metadata": { "name": "a", "namespace": "d", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"policy/v1beta1\",\"kind\":\"PodDisruptionBudget\"}" } } }),
        );
        assert_eq!(
            removed_api_use(&applied, removal, false).as_deref(),
            Some("kubectl last-applied-configuration")
        );
    }
}
