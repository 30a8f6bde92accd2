//! Gathering the preflight's facts (the I/O) and handing them to the core's verdicts.

use std::path::Path;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kubemaint_core::upgrade::preflight::{
    self, CertFacts, Check, EtcdMemberFacts, NodeFacts, RemovedApiUse,
};
use kubemaint_core::upgrade::removed::RemovedApi;
use kubemaint_etcd::client::{
    self as etcd_client_edge, ConnectionConfig, MemberClient, TlsMaterial,
};
use kubemaint_etcd::save::manifest::Manifest;

use kubemaint_cluster::read::{discover, list_pdbs, list_pods};

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

/// Lists all pods (paged) and PDBs and runs the core's [`preflight::drain_blockers`].
pub async fn drain_check(client: &kube::Client, nodes: &[Node]) -> Check {
    let gathered = async {
        let support = discover(client).await?;
        let (pdbs, sem) = list_pdbs(client, support.pdb_version).await?;
        let pods = list_pods(&Api::all(client.clone()), ListParams::default(), CHUNK).await?;
        Ok::<_, anyhow::Error>((pdbs, sem, pods))
    };
    match gathered.await {
        Ok((pdbs, sem, pods)) => preflight::check_drain(
            nodes.len(),
            &preflight::drain_blockers(nodes, &pods, &pdbs, sem),
        ),
        Err(e) => Check {
            name: "drain-pdb".into(),
            status: preflight::Status::Warn,
            message: format!("not checked: {e:#}"),
            action: Some("run with an account that may list pods and PodDisruptionBudgets".into()),
        },
    }
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

/// Asks every etcd member (found through the configured endpoint's member list) for its
/// status.
pub async fn etcd_members(config: &ConnectionConfig) -> Result<Vec<EtcdMemberFacts>, String> {
    let selected = etcd_client_edge::connect_and_choose(config)
        .await
        .map_err(|e| e.to_string())?;
    let tls = if config.endpoints.iter().any(|e| e.tls) {
        Some(TlsMaterial::load(&config.tls).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let mut out = Vec::new();
    for member in &selected.members {
        let Some(url) = member.client_urls.first() else {
            out.push(EtcdMemberFacts {
                name: member.name.clone(),
                endpoint: "(none)".into(),
                version: None,
                error: Some("member has no client URL (not started?)".into()),
            });
            continue;
        };
        let answer = async {
            let endpoint = etcd_client_edge::config::parse_endpoint(url, tls.is_some())
                .map_err(|e| e.to_string())?;
            let mut client = MemberClient::connect(config, tls.as_ref(), &endpoint)
                .await
                .map_err(|e| e.to_string())?;
            let status = etcd_client_edge::member_status(&mut client)
                .await
                .map_err(|e| e.to_string())?;
            if !status.errors.is_empty() {
                return Err(format!("alarms: {}", status.errors.join(", ")));
            }
            Ok::<_, String>(status.version)
        };
        let (version, error) = match answer.await {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        };
        out.push(EtcdMemberFacts {
            name: member.name.clone(),
            endpoint: url.clone(),
            version,
            error,
        });
    }
    Ok(out)
}

/// The newest snapshot with a kubemaint manifest in `dir` (by the manifest's `created`).
pub fn newest_backup(dir: &Path) -> std::io::Result<Option<(String, jiff::Timestamp)>> {
    let mut newest: Option<(String, jiff::Timestamp)> = None;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".manifest.json") {
            continue;
        }
        let Ok(text) = std::fs::read(&path) else {
            continue;
        };
        let Ok(manifest) = serde_json::from_slice::<Manifest>(&text) else {
            continue;
        };
        let Ok(created) = manifest.created.parse::<jiff::Timestamp>() else {
            continue;
        };
        if newest.as_ref().is_none_or(|(_, t)| created > *t) {
            newest = Some((manifest.file.clone(), created));
        }
    }
    Ok(newest)
}

/// Every `*.crt` in the kubeadm PKI dir and its `etcd/` subdir, with its `notAfter`.
pub fn certificates(dir: &Path) -> Result<Vec<CertFacts>, String> {
    let mut out = Vec::new();
    for sub in ["", "etcd"] {
        let d = dir.join(sub);
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.extension().and_then(|e| e.to_str()) != Some("crt") {
                continue;
            }
            let name = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .display()
                .to_string();
            let pem = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let (_, pem) = x509_parser::pem::parse_x509_pem(&pem)
                .map_err(|e| format!("{name}: not a PEM certificate ({e})"))?;
            let cert = pem
                .parse_x509()
                .map_err(|e| format!("{name}: not an X.509 certificate ({e})"))?;
            let not_after = jiff::Timestamp::from_second(cert.validity().not_after.timestamp())
                .map_err(|e| format!("{name}: notAfter out of range ({e})"))?;
            out.push(CertFacts {
                name,
                not_after,
                is_ca: cert.is_ca(),
            });
        }
    }
    Ok(out)
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

    #[test]
    fn backups_pick_the_newest_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = |file: &str, created: &str| {
            json!({ "format": "kubemaint.etcd-snapshot-manifest/v1", "file": file, "created": created,
                "duration_seconds": 1.0, "written_by": "kubemaint", "revision": 1,
                "revision_source": "snapshot-file", "compact_revision": null, "db_size": 1,
                "file_size": 1, "sha256": "00", "cluster_id": "01", "etcd_version": "3.4.23",
                "source": { "endpoint": "e", "id": "01", "name": "n", "was_leader": true },
                "members": [] })
            .to_string()
        };
        std::fs::write(
            dir.path().join("a.db.manifest.json"),
            manifest("a.db", "2026-12-01T00:00:00Z"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.db.manifest.json"),
            manifest("b.db", "2026-12-03T00:00:00Z"),
        )
        .unwrap();
        std::fs::write(dir.path().join("junk.manifest.json"), "{").unwrap();
        let (file, at) = newest_backup(dir.path()).unwrap().unwrap();
        assert_eq!(file, "b.db");
        assert_eq!(at, "2026-12-03T00:00:00Z".parse().unwrap());
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(newest_backup(empty.path()).unwrap(), None);
    }
}
