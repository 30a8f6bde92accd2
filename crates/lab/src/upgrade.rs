//! A node's Kubernetes upgrade in the lab (`kubemaint-lab node upgrade NODE --kubernetes-version
//! vX.Y.Z`), doing to the lab what `kubeadm upgrade apply|node` and the package manager do to a
//! kubeadm node — the mechanism behind `kubemaint upgrade apply --executor command`.
//!
//! On a control-plane node, component by component in kubeadm's order (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler): the node's static pod manifest is rewritten with the
//! new image tag, the process is stopped and started again from that version's binary (a stand-in
//! unless v1.20.2, built on demand), and the upgrade waits until it is healthy (the API server's
//! `/readyz` and `/version` answering the new version on its own port; the controller-manager's
//! and scheduler's `/healthz`; etcd's `endpoint health`) before the next one; the node's mirror
//! pods are replaced as its kubelet would. etcd is restarted only when the target minor pins
//! another etcd image than the current one (the binary stays: the lab has no other etcd build
//! for it). With `first` (the node `kubeadm upgrade apply` runs on) the cluster-level objects
//! follow: `kubeadm-config`'s `kubernetesVersion`, `kubelet-config-1.N`, and the kube-proxy and
//! CoreDNS images. Then, on every node, the kubelet: it restarts at the new version and the
//! upgrade waits until the node is Ready at it.
//!
//! With [`UpgradeRole::KubeletOnly`] (`--role kubelet-only`, what `kubemaint upgrade apply`'s
//! `{role}` says for a catch-up kubelet) only the kubelet moves, as `kubeadm upgrade node phase
//! kubelet-config` and the kubelet package do: a control-plane node's static pods stay as they
//! are. `--role control-plane|worker` is checked against the node.
//!
//! Tests make a node's upgrade fail on purpose with `KUBEMAINT_LAB_FAIL_UPGRADE=NODE[,NODE...]`:
//! the command then fails before changing anything on that node.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::binaries::{Binaries, check_kube_version, describe_version};
use crate::cluster::Lab;
use crate::error::LabError;
use crate::kubeadm::{CONFIG_HASH, CONTROL_PLANE_KINDS, Images};
use crate::pki::Pki;
use crate::process;
use crate::state::{Component, LabState, StateError};

/// The environment variable naming nodes whose upgrade fails on purpose (comma-separated).
pub const FAIL_ENV: &str = "KUBEMAINT_LAB_FAIL_UPGRADE";

/// Errors of a node's upgrade.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The node is named in [`FAIL_ENV`].
    #[error(
        "upgrade of {node} failed on purpose: {FAIL_ENV} names it (a test's deliberate failure); nothing was changed on {node}"
    )]
    Deliberate {
        /// The node.
        node: String,
    },
    /// `--role` does not fit the node.
    #[error(
        "{node} is a {actual} node, not a {role} one: check the `{{role}}` of the command template"
    )]
    RoleMismatch {
        /// The node.
        node: String,
        /// The role given.
        role: &'static str,
        /// What the node is.
        actual: &'static str,
    },
    /// `first` with a kubelet-only upgrade.
    #[error(
        "--first upgrades the cluster-level objects with a control plane; a kubelet-only upgrade of {0} has none"
    )]
    FirstKubeletOnly(String),
    /// `first` on a worker.
    #[error(
        "{0} is a worker: --first is for the first control-plane node (where `kubeadm upgrade apply` runs)"
    )]
    FirstOnWorker(String),
    /// The target skips a minor, which kubeadm refuses.
    #[error(
        "{node}'s control plane is at {from}; {to} skips a minor, which kubeadm refuses: upgrade to the next minor first"
    )]
    SkipsMinor {
        /// The node.
        node: String,
        /// Its control plane's version.
        from: String,
        /// The target.
        to: String,
    },
    /// A component did not come back healthy.
    #[error(
        "{node}: {component} did not become healthy at {version} within {secs} s of its restart ({what}); the node is left half upgraded. Its log: {log}"
    )]
    Unhealthy {
        /// The node.
        node: String,
        /// The component.
        component: String,
        /// The version it was started at.
        version: String,
        /// The time waited.
        secs: u64,
        /// What was still missing.
        what: String,
        /// The component's log.
        log: String,
    },
    /// The lab failed (state, binaries, processes, API).
    #[error(transparent)]
    Lab(#[from] LabError),
}

impl From<StateError> for UpgradeError {
    fn from(e: StateError) -> Self {
        UpgradeError::Lab(e.into())
    }
}

/// What a node's upgrade covers, as the `{role}` placeholder of `kubemaint upgrade apply` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeRole {
    /// The whole control-plane node (checked: the node must be one).
    ControlPlane,
    /// A worker (checked: the node must be one).
    Worker,
    /// Only the kubelet, on any node (a catch-up: the control plane already runs the version).
    KubeletOnly,
}

impl UpgradeRole {
    /// `control-plane`, `worker` or `kubelet-only`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "control-plane" => Some(Self::ControlPlane),
            "worker" => Some(Self::Worker),
            "kubelet-only" => Some(Self::KubeletOnly),
            _ => None,
        }
    }

    /// The word `parse` reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ControlPlane => "control-plane",
            Self::Worker => "worker",
            Self::KubeletOnly => "kubelet-only",
        }
    }
}

/// What to upgrade.
#[derive(Debug, Clone)]
pub struct NodeUpgrade {
    /// The node.
    pub node: String,
    /// The target version (`v1.20.2`: the real one; another: a stand-in).
    pub version: String,
    /// The first control-plane node: also the cluster-level objects (`kubeadm upgrade apply`).
    pub first: bool,
    /// How long each component, and then the node, may take to become healthy.
    pub timeout: Duration,
    /// What the upgrade covers (`None`: the whole node, whatever it is).
    pub role: Option<UpgradeRole>,
}

impl NodeUpgrade {
    /// An upgrade of `node` to `version` (not first; 120 s per wait).
    pub fn new(node: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            version: version.into(),
            first: false,
            timeout: Duration::from_secs(120),
            role: None,
        }
    }
}

/// Upgrades one node of the lab in `dir`; returns one line per action taken, for the operator.
pub async fn upgrade_node(dir: &Path, req: &NodeUpgrade) -> Result<Vec<String>, UpgradeError> {
    if std::env::var(FAIL_ENV)
        .unwrap_or_default()
        .split(',')
        .any(|n| n.trim() == req.node)
    {
        return Err(UpgradeError::Deliberate {
            node: req.node.clone(),
        });
    }
    check_kube_version(&req.version).map_err(LabError::from)?;
    let state = LabState::load(dir)?;
    let spec = state.node(&req.node)?.clone();
    if req.first && !spec.control_plane {
        return Err(UpgradeError::FirstOnWorker(req.node.clone()));
    }
    let actual = if spec.control_plane {
        UpgradeRole::ControlPlane
    } else {
        UpgradeRole::Worker
    };
    let kubelet_only = match req.role {
        Some(UpgradeRole::KubeletOnly) if req.first => {
            return Err(UpgradeError::FirstKubeletOnly(req.node.clone()));
        }
        Some(UpgradeRole::KubeletOnly) => true,
        Some(role) if role != actual => {
            return Err(UpgradeError::RoleMismatch {
                node: req.node.clone(),
                role: role.as_str(),
                actual: actual.as_str(),
            });
        }
        _ => false,
    };
    let mut report = Vec::new();
    let lab = Lab::open(dir)?;
    let client = lab.client().await?;
    if spec.control_plane && kubelet_only {
        report.push(format!(
            "control plane: not touched (kubelet only; it runs {})",
            state.control_plane_version(&spec)
        ));
    } else if spec.control_plane {
        let from = state.control_plane_version(&spec).to_string();
        let (Ok(f), Ok(t)) = (
            kubemaint_core::upgrade::Version::parse(&from),
            kubemaint_core::upgrade::Version::parse(&req.version),
        ) else {
            unreachable!("both versions were checked");
        };
        if t.minors_above(&f) > 1 {
            return Err(UpgradeError::SkipsMinor {
                node: req.node.clone(),
                from,
                to: req.version.clone(),
            });
        }
        let binaries = Binaries::locate().map_err(LabError::from)?;
        binaries.ensure_kube(&req.version).map_err(LabError::from)?;
        upgrade_control_plane(dir, &client, &binaries, req, &from, &mut report).await?;
        if req.first {
            upgrade_cluster_objects(dir, &client, &req.version, &mut report).await?;
        }
    }
    let old = LabState::update(dir, |s| -> Result<String, StateError> {
        let node = s.node_mut(&req.node)?;
        node.restarts += 1;
        node.running = true;
        Ok(std::mem::replace(
            &mut node.kubelet_version,
            req.version.clone(),
        ))
    })?;
    wait_node(&client, req).await?;
    report.push(format!(
        "kubelet: {old} -> {}, restarted; {} Ready",
        req.version, req.node
    ));
    Ok(report)
}

async fn upgrade_control_plane(
    dir: &Path,
    client: &kube::Client,
    binaries: &Binaries,
    req: &NodeUpgrade,
    from: &str,
    report: &mut Vec<String>,
) -> Result<(), UpgradeError> {
    let node = &req.node;
    for kind in CONTROL_PLANE_KINDS {
        let state = LabState::load(dir)?;
        let Some(component) = state
            .components_of(node)
            .find(|c| c.kind() == kind)
            .cloned()
        else {
            report.push(format!("{kind}: not run by the lab on {node}; skipped"));
            continue;
        };
        let spec = state.node(node)?;
        let current = component
            .version
            .clone()
            .unwrap_or_else(|| state.control_plane_version(spec).to_string());
        if kind == "etcd" {
            let (old, new) = (
                Images::for_version(from).etcd,
                Images::for_version(&req.version).etcd,
            );
            if old == new {
                report.push(format!(
                    "etcd: kept ({new} is what kubeadm pins for both versions)"
                ));
                continue;
            }
        } else if current == req.version {
            report.push(format!("{kind}: already at {}", req.version));
            continue;
        }
        let program = if kind == "etcd" {
            component.program.clone()
        } else {
            binaries.kube_at(&req.version, kind)
        };
        // kubeadm writes the new manifest; the kubelet stops the old container and starts the new.
        let state = LabState::update(dir, |s| -> Result<LabState, LabError> {
            let c = s
                .components
                .iter_mut()
                .find(|c| c.name == component.name)
                .expect("the component was just read");
            c.program = program.clone();
            c.version = Some(req.version.clone());
            let spec = s.node(node)?.clone();
            crate::kubeadm::write_node_manifests(s, &spec).map_err(|source| LabError::Io {
                path: crate::kubeadm::manifests_dir(s, node),
                source,
            })?;
            Ok(s.clone())
        })?;
        let old_pid = process::recorded(dir)
            .into_iter()
            .find(|p| p.name == component.name)
            .map(|p| p.pid);
        let started = Instant::now();
        let lab = Lab::open(dir)?;
        lab.stop_component(&component.name);
        let managed = lab.start_component(&component.name)?;
        let new = state
            .components
            .iter()
            .find(|c| c.name == component.name)
            .expect("the component was just written");
        wait_healthy(&state, new, &managed, req).await?;
        for action in sync_mirror_pods(client, dir, node).await? {
            report.push(format!("{kind}: mirror pods: {action}"));
        }
        report.push(format!(
            "{kind}: {} -> {}, restarted (pid {} -> {}), healthy in {:.1} s",
            if kind == "etcd" {
                Images::for_version(from).etcd
            } else {
                current
            },
            if kind == "etcd" {
                Images::for_version(&req.version).etcd
            } else {
                describe_version(&req.version)
            },
            old_pid.map_or_else(|| "none".into(), |p| p.to_string()),
            managed.pid,
            started.elapsed().as_secs_f64()
        ));
    }
    LabState::update(dir, |s| -> Result<(), StateError> {
        s.node_mut(node)?.control_plane_version = Some(req.version.clone());
        for c in s.components.iter_mut() {
            if c.node.as_deref() == Some(node.as_str()) {
                c.version = None;
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// Waits until a restarted component is healthy at the target version.
async fn wait_healthy(
    state: &LabState,
    component: &Component,
    managed: &process::Managed,
    req: &NodeUpgrade,
) -> Result<(), UpgradeError> {
    let flag = |key: &str| {
        let prefix = format!("--{key}=");
        component
            .args
            .iter()
            .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
            .unwrap_or_default()
    };
    let deadline = Instant::now() + req.timeout;
    let mut missing;
    loop {
        managed.ensure_alive().map_err(LabError::from)?;
        missing = match component.kind() {
            "etcd" => etcd_health(state, &flag("advertise-client-urls")),
            "kube-apiserver" => apiserver_health(state, &flag("secure-port"), &req.version).await,
            _ => healthz(&flag("secure-port")).await,
        };
        let Some(what) = &missing else {
            return Ok(());
        };
        if Instant::now() > deadline {
            return Err(UpgradeError::Unhealthy {
                node: req.node.clone(),
                component: component.kind().to_string(),
                version: req.version.clone(),
                secs: req.timeout.as_secs(),
                what: what.clone(),
                log: managed.log.display().to_string(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `None` when etcd at `url` answers `endpoint health`, else what failed.
fn etcd_health(state: &LabState, url: &str) -> Option<String> {
    let Ok(binaries) = Binaries::locate() else {
        return Some("the lab's binaries are missing".into());
    };
    let version = if state.etcd_version == crate::binaries::EtcdVersion::V3_5.as_str() {
        crate::binaries::EtcdVersion::V3_5
    } else {
        crate::binaries::EtcdVersion::V3_4
    };
    let pki = Pki::at(state.dir.join("pki"));
    let (cert, key) = pki.etcd_healthcheck_client();
    let out = std::process::Command::new(binaries.etcdctl(version))
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={url}"))
        .arg(format!("--cacert={}", pki.etcd_ca().display()))
        .arg(format!("--cert={}", cert.display()))
        .arg(format!("--key={}", key.display()))
        .args(["endpoint", "health", "--command-timeout=2s"])
        .output();
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "etcdctl endpoint health: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("etcdctl: {e}")),
    }
}

/// `None` when the API server on `port` is ready and says `version`, else what is missing.
async fn apiserver_health(state: &LabState, port: &str, version: &str) -> Option<String> {
    let url = format!("https://127.0.0.1:{port}");
    let client = match crate::api::client_at(&state.kubeconfig(), &url).await {
        Ok(c) => c,
        Err(e) => return Some(format!("client for {url}: {e}")),
    };
    let req = http::Request::get("/readyz")
        .body(Vec::new())
        .expect("static request");
    match client.request_text(req).await {
        Ok(body) if body.trim() == "ok" => {}
        Ok(body) => return Some(format!("{url}/readyz says {:?}", body.trim())),
        Err(e) => return Some(format!("{url}/readyz: {e}")),
    }
    match client.apiserver_version().await {
        Ok(info) if info.git_version == version => None,
        Ok(info) => Some(format!("{url}/version says {}", info.git_version)),
        Err(e) => Some(format!("{url}/version: {e}")),
    }
}

/// `None` when `https://127.0.0.1:PORT/healthz` answers `ok` (anonymously, as kubeadm's probes do).
async fn healthz(port: &str) -> Option<String> {
    let url = format!("https://127.0.0.1:{port}");
    let Ok(uri) = url.parse() else {
        return Some(format!("bad port {port:?}"));
    };
    let mut config = kube::Config::new(uri);
    config.accept_invalid_certs = true;
    let client = match kube::Client::try_from(config) {
        Ok(c) => c,
        Err(e) => return Some(format!("client for {url}: {e}")),
    };
    let req = http::Request::get("/healthz")
        .body(Vec::new())
        .expect("static request");
    match client.request_text(req).await {
        Ok(body) if body.trim() == "ok" => None,
        Ok(body) => Some(format!("{url}/healthz says {:?}", body.trim())),
        Err(e) => Some(format!("{url}/healthz: {e}")),
    }
}

/// Replaces the node's mirror pods whose manifest changed, then waits until the API shows them;
/// returns what it did.
async fn sync_mirror_pods(
    client: &kube::Client,
    dir: &Path,
    node: &str,
) -> Result<Vec<String>, UpgradeError> {
    let mut done = Vec::new();
    let kube_err = |context: &str| {
        let context = context.to_string();
        move |source| LabError::Kube { context, source }
    };
    let state = LabState::load(dir)?;
    let spec = state.node(node)?.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let nodes: Api<Node> = Api::all(client.clone());
    let uid = nodes
        .get(node)
        .await
        .map_err(kube_err("read the node"))?
        .uid()
        .unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = pods
            .list(&ListParams::default())
            .await
            .map_err(kube_err("list kube-system pods"))?;
        let existing: HashMap<String, (Option<String>, Option<String>)> = list
            .items
            .iter()
            .map(|p| {
                let hash = p.annotations().get(CONFIG_HASH).cloned();
                (p.name_any(), (hash, p.uid()))
            })
            .collect();
        let wanted = crate::kubeadm::static_pods(&spec, &state, &uid);
        let current = wanted.iter().all(|w| {
            existing
                .get(w["metadata"]["name"].as_str().unwrap_or_default())
                .is_some_and(|(hash, _)| {
                    hash.as_deref() == w["metadata"]["annotations"][CONFIG_HASH].as_str()
                })
        });
        if current {
            return Ok(done);
        }
        if Instant::now() > deadline {
            return Err(LabError::Timeout {
                what: format!("{node}'s mirror pods to show the new manifests"),
                secs: 30,
                logs: process::log_dir(dir),
            }
            .into());
        }
        done.extend(
            crate::kubeadm::sync_mirror_pods(client, &spec, &state, &uid, &existing)
                .await
                .map_err(kube_err("replace mirror pods"))?,
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `kubeadm upgrade apply`'s cluster-level part: kubeadm-config, kubelet-config-1.N, add-ons.
async fn upgrade_cluster_objects(
    dir: &Path,
    client: &kube::Client,
    version: &str,
    report: &mut Vec<String>,
) -> Result<(), UpgradeError> {
    let kube_err = |context: &str| {
        let context = context.to_string();
        move |source| LabError::Kube { context, source }
    };
    let (old, state) = LabState::update(dir, |s| -> Result<(String, LabState), StateError> {
        let old = std::mem::replace(&mut s.kube_version, version.to_string());
        Ok((old, s.clone()))
    })?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let pp = PatchParams::default();
    cms.patch(
        "kubeadm-config",
        &pp,
        &Patch::Merge(json!({ "data": {
            "ClusterConfiguration": crate::kubeadm::cluster_configuration(&state)
        }})),
    )
    .await
    .map_err(kube_err("update kubeadm-config"))?;
    crate::api::create(&cms, crate::kubeadm::kubelet_config(version)).await?;
    let images = Images::for_version(version);
    let ds: Api<DaemonSet> = Api::namespaced(client.clone(), "kube-system");
    ds.patch(
        "kube-proxy",
        &pp,
        &Patch::Strategic(json!({ "spec": { "template": { "spec": { "containers": [
            { "name": "kube-proxy", "image": images.kube_proxy }
        ]}}}})),
    )
    .await
    .map_err(kube_err("update the kube-proxy DaemonSet"))?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "kube-system");
    deploys
        .patch(
            "coredns",
            &pp,
            &Patch::Strategic(json!({ "spec": { "template": { "spec": { "containers": [
                { "name": "coredns", "image": images.coredns }
            ]}}}})),
        )
        .await
        .map_err(kube_err("update the coredns Deployment"))?;
    report.push(format!(
        "cluster: kubeadm-config kubernetesVersion {old} -> {version}, {}, kube-proxy {}, CoreDNS {}",
        crate::kubeadm::kubelet_config_name(version),
        images.kube_proxy,
        images.coredns
    ));
    Ok(())
}

/// Waits until the node is Ready and reports the target kubelet version.
async fn wait_node(client: &kube::Client, req: &NodeUpgrade) -> Result<(), UpgradeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + req.timeout;
    loop {
        if let Ok(Some(node)) = nodes.get_opt(&req.node).await {
            let version = node
                .status
                .as_ref()
                .and_then(|s| s.node_info.as_ref())
                .map(|i| i.kubelet_version.as_str());
            if crate::api::node_is_ready(&node) && version == Some(req.version.as_str()) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(UpgradeError::Unhealthy {
                node: req.node.clone(),
                component: "kubelet".into(),
                version: req.version.clone(),
                secs: req.timeout.as_secs(),
                what: "the node Ready at the new kubelet version".into(),
                log: "the simulated kubelets' log (DIR/logs/kubelet-sim.log)".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
