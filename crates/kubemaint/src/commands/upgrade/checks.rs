//! The preflight facts read off the machine (the local kubectl, etcd members, backup
//! manifests, PKI certificates); the Kubernetes reads are in
//! [`kubemaint_cluster::upgrade::checks`].

use std::path::Path;
use std::time::Duration;

use kubemaint_core::upgrade::Version;

use kubemaint_core::upgrade::apply::health::{EtcdMembers, MemberAnswer, MemberProbe};
use kubemaint_core::upgrade::preflight::{CertFacts, EtcdMemberFacts};
use kubemaint_etcd::client::{
    self as etcd_client_edge, ConnectionConfig, MemberClient, TlsMaterial,
};
use kubemaint_etcd::save::manifest::Manifest;

/// The kubectl a shell here would run: `kubectl version --client -o json` from `PATH` (it
/// does not contact a server), its `clientVersion.gitVersion`. The error says why it is
/// unknown (not on PATH, no answer within 10 s, not JSON, not a version).
pub async fn local_kubectl() -> Result<Version, String> {
    let mut command = tokio::process::Command::new("kubectl");
    command
        .args(["version", "--client", "-o", "json"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(Duration::from_secs(10), command.output()).await {
        Err(_) => return Err("`kubectl version --client` gave no answer within 10 s".into()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("kubectl is not on PATH".into());
        }
        Ok(Err(e)) => return Err(format!("cannot run kubectl: {e}")),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        return Err(format!(
            "`kubectl version --client -o json` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    kubectl_client_version(&output.stdout)
}

/// `clientVersion.gitVersion` of `kubectl version --client -o json` output.
pub fn kubectl_client_version(json: &[u8]) -> Result<Version, String> {
    let doc: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| format!("`kubectl version --client -o json` is not JSON ({e})"))?;
    let text = doc["clientVersion"]["gitVersion"]
        .as_str()
        .ok_or("`kubectl version --client -o json` has no clientVersion.gitVersion")?;
    Version::parse(text).map_err(|e| format!("kubectl reports {text:?}: {e}"))
}

/// Asks every etcd member (found through the configured endpoint's member list) for its
/// status; the error says why no member could be reached.
pub async fn etcd_member_probes(config: &ConnectionConfig) -> Result<Vec<MemberProbe>, String> {
    let selected = etcd_client_edge::connect_and_choose(config)
        .await
        .map_err(|e| e.to_string())?;
    let tls = if config.endpoints.iter().any(|e| e.tls) {
        Some(TlsMaterial::load(&config.tls).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let probes = selected.members.iter().map(|member| {
        let tls = tls.as_ref();
        async move {
            let Some(url) = member.client_urls.first() else {
                return MemberProbe {
                    name: member.name.clone(),
                    endpoint: "(none)".into(),
                    answer: Err("member has no client URL (not started?)".into()),
                };
            };
            let answer = async {
                let endpoint = etcd_client_edge::config::parse_endpoint(url, tls.is_some())
                    .map_err(|e| e.to_string())?;
                let mut client = MemberClient::connect(config, tls, &endpoint)
                    .await
                    .map_err(|e| e.to_string())?;
                let status = etcd_client_edge::member_status(&mut client)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(MemberAnswer {
                    member_id: status.member_id,
                    leader: status.leader,
                    raft_index: status.raft_index,
                    is_learner: status.is_learner,
                    errors: status.errors,
                    version: status.version,
                })
            };
            MemberProbe {
                name: member.name.clone(),
                endpoint: url.clone(),
                answer: answer.await,
            }
        }
    });
    // All at once: a member that does not answer costs one dial timeout, not one each.
    Ok(futures::future::join_all(probes).await)
}

/// The health gate's view of the members: unknown (not a failure) when none can be reached.
pub async fn etcd_members_health(config: Option<&ConnectionConfig>) -> EtcdMembers {
    match config {
        None => EtcdMembers::NotAsked,
        Some(config) => match etcd_member_probes(config).await {
            Ok(members) => EtcdMembers::Asked { members },
            Err(reason) => EtcdMembers::Unreachable { reason },
        },
    }
}

/// Asks every etcd member for its version (the preflight's view: alarms count as an error).
pub async fn etcd_members(config: &ConnectionConfig) -> Result<Vec<EtcdMemberFacts>, String> {
    Ok(etcd_member_probes(config)
        .await?
        .into_iter()
        .map(|probe| {
            let (version, error) = match probe.answer {
                Ok(a) if !a.errors.is_empty() => {
                    (None, Some(format!("alarms: {}", a.errors.join(", "))))
                }
                Ok(a) => (Some(a.version), None),
                Err(e) => (None, Some(e)),
            };
            EtcdMemberFacts {
                name: probe.name,
                endpoint: probe.endpoint,
                version,
                error,
            }
        })
        .collect())
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

    #[test]
    fn kubectl_versions() {
        let v = kubectl_client_version(
            br#"{"clientVersion":{"major":"1","minor":"27","gitVersion":"v1.27.16"},"kustomizeVersion":"v5.0.1"}"#,
        )
        .unwrap();
        assert_eq!(v, Version::new(1, 27, 16));
        // Vendor builds carry a suffix; the minor is what the skew rule needs.
        let v = kubectl_client_version(br#"{"clientVersion":{"gitVersion":"v1.32.4-dispatcher"}}"#)
            .unwrap();
        assert_eq!(v.minor_of(), kubemaint_core::upgrade::Minor::new(1, 32));
        assert!(kubectl_client_version(b"Client Version: v1.27.16").is_err());
        assert!(
            kubectl_client_version(br#"{"serverVersion":{}}"#)
                .unwrap_err()
                .contains("clientVersion.gitVersion")
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
