//! The objects a kubeadm v1.20 cluster has, so that planning code sees what it would see on one:
//! the `kubeadm-config` and `kubelet-config-1.20` ConfigMaps, the `kube-proxy` DaemonSet, the
//! `coredns` Deployment, and (created by the simulated kubelets) mirror pods for the static
//! control-plane pods. Static pod manifests are also written to `DIR/manifests/` with the lab's
//! real endpoints and certificate paths, like `/etc/kubernetes/manifests` on a control-plane node.
//!
//! # The real kubeadm as an oracle
//! The lab directory is laid out as the first control-plane node's `/etc/kubernetes`:
//! `admin.conf`, `kubelet.conf` (its certificate says `system:node:cp-1`, which is where kubeadm
//! takes the node's name from), `manifests/`, `pki/`. kubeadm v1.20.2 (`Binaries::kubeadm()`)
//! runs against it in a private mount namespace where the lab directory stands at
//! `/etc/kubernetes`, e.g. `unshare --mount sh -c 'mount -t tmpfs none /etc && mkdir
//! /etc/kubernetes && mount --bind DIR /etc/kubernetes && kubeadm upgrade plan v1.20.2
//! --kubeconfig /etc/kubernetes/admin.conf --config FILE'` with FILE = [`oracle_config`]. Without
//! `--config`, kubeadm 1.20 stops at "unable to select an IP from lo network interface": it takes
//! the node's advertise address from the kube-apiserver mirror pod's annotation, which is
//! `127.0.0.1:PORT` (the lab listens on loopback only and kubemaint dials that address), and
//! refuses a loopback address unless `lo` holds a global unicast one. The `--config` file gives it
//! a documentation address instead and the cluster's own `ClusterConfiguration`.

use std::collections::HashMap;
use std::path::PathBuf;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use serde_json::{Value, json};

use std::path::Path;

use crate::api::create;
use crate::controlplane::flag;
use crate::error::LabError;
use crate::state::{LabState, NodeSpec};

/// The images kubeadm deploys for a Kubernetes version, as the lab shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// `k8s.gcr.io/kube-apiserver:VERSION`.
    pub kube_apiserver: String,
    /// `k8s.gcr.io/kube-controller-manager:VERSION`.
    pub kube_controller_manager: String,
    /// `k8s.gcr.io/kube-scheduler:VERSION`.
    pub kube_scheduler: String,
    /// `k8s.gcr.io/kube-proxy:VERSION`.
    pub kube_proxy: String,
    /// etcd at the tag kubeadm of that minor pins (`k8s.gcr.io/etcd:3.4.13-0`).
    pub etcd: String,
    /// CoreDNS at the tag kubeadm of that minor pins (`k8s.gcr.io/coredns:1.7.0`; from 1.21 the
    /// image is `coredns/coredns:vX.Y.Z`).
    pub coredns: String,
}

impl Images {
    /// The images for `version`, with etcd and CoreDNS from kubemaint's release index (the
    /// versions kubeadm pins per minor: `kubemaint_core::upgrade::releases`). A minor the index
    /// does not know gets v1.20's add-ons (the lab refuses such control-plane versions earlier).
    pub fn for_version(version: &str) -> Images {
        let (etcd, coredns) = match crate::binaries::check_kube_version(version) {
            Ok(release) => (release.etcd, release.coredns),
            Err(_) => ("3.4.13-0".to_string(), "1.7.0".to_string()),
        };
        // kubeadm's default registry moved to registry.k8s.io in 1.25.
        let minor = kubemaint_core::upgrade::Version::parse(version)
            .map(|v| v.minor)
            .unwrap_or(20);
        let registry = if minor >= 25 {
            "registry.k8s.io"
        } else {
            "k8s.gcr.io"
        };
        let coredns = if coredns.starts_with('v') {
            format!("{registry}/coredns/coredns:{coredns}")
        } else {
            format!("{registry}/coredns:{coredns}")
        };
        Images {
            kube_apiserver: format!("{registry}/kube-apiserver:{version}"),
            kube_controller_manager: format!("{registry}/kube-controller-manager:{version}"),
            kube_scheduler: format!("{registry}/kube-scheduler:{version}"),
            kube_proxy: format!("{registry}/kube-proxy:{version}"),
            etcd: format!("{registry}/etcd:{etcd}"),
            coredns,
        }
    }

    /// The image of a control-plane component (`etcd`, `kube-apiserver`, ...).
    pub fn control_plane(&self, component: &str) -> Option<&str> {
        match component {
            "etcd" => Some(&self.etcd),
            "kube-apiserver" => Some(&self.kube_apiserver),
            "kube-controller-manager" => Some(&self.kube_controller_manager),
            "kube-scheduler" => Some(&self.kube_scheduler),
            _ => None,
        }
    }
}

/// The `kubelet-config-1.N` ConfigMap name kubeadm uses for a version.
pub fn kubelet_config_name(version: &str) -> String {
    let minor = kubemaint_core::upgrade::Version::parse(version)
        .map(|v| v.minor)
        .unwrap_or(20);
    format!("kubelet-config-1.{minor}")
}

/// Creates the cluster-level kubeadm objects (idempotent).
pub async fn create_objects(client: &kube::Client, state: &LabState) -> Result<(), LabError> {
    let images = Images::for_version(&state.kube_version);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    create(&cms, json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "kubeadm-config", "namespace": "kube-system" },
        "data": { "ClusterConfiguration": cluster_configuration(state), "ClusterStatus": cluster_status(state) }
    }))
    .await?;
    create(&cms, kubelet_config(&state.kube_version)).await?;
    create(&cms, json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "kube-proxy", "namespace": "kube-system", "labels": { "app": "kube-proxy" } },
        "data": { "config.conf": "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclusterCIDR: 10.244.0.0/16\nmode: \"\"\n" }
    }))
    .await?;
    create(&cms, json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "coredns", "namespace": "kube-system" },
        "data": { "Corefile": ".:53 {\n    errors\n    health\n    kubernetes cluster.local in-addr.arpa ip6.arpa\n    forward . /etc/resolv.conf\n    cache 30\n}\n" }
    }))
    .await?;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "kube-system");
    for name in ["kube-proxy", "coredns"] {
        create(&sas, json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": name, "namespace": "kube-system" } })).await?;
    }
    let ds: Api<DaemonSet> = Api::namespaced(client.clone(), "kube-system");
    create(&ds, json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": { "name": "kube-proxy", "namespace": "kube-system", "labels": { "k8s-app": "kube-proxy" } },
        "spec": {
            "selector": { "matchLabels": { "k8s-app": "kube-proxy" } },
            "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1 } },
            "template": {
                "metadata": { "labels": { "k8s-app": "kube-proxy" } },
                "spec": {
                    "priorityClassName": "system-node-critical", "hostNetwork": true, "serviceAccountName": "kube-proxy",
                    "nodeSelector": { "kubernetes.io/os": "linux" },
                    "tolerations": [{ "key": "CriticalAddonsOnly", "operator": "Exists" }, { "operator": "Exists" }],
                    "containers": [{
                        "name": "kube-proxy", "image": images.kube_proxy,
                        "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=$(NODE_NAME)"],
                        "env": [{ "name": "NODE_NAME", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } }],
                        "securityContext": { "privileged": true },
                        "volumeMounts": [{ "name": "kube-proxy", "mountPath": "/var/lib/kube-proxy" }]
                    }],
                    "volumes": [{ "name": "kube-proxy", "configMap": { "name": "kube-proxy" } }]
                }
            }
        }
    }))
    .await?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "kube-system");
    create(&deploys, json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "coredns", "namespace": "kube-system", "labels": { "k8s-app": "kube-dns" } },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "k8s-app": "kube-dns" } },
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1 } },
            "template": {
                "metadata": { "labels": { "k8s-app": "kube-dns" } },
                "spec": {
                    "priorityClassName": "system-cluster-critical", "serviceAccountName": "coredns",
                    "nodeSelector": { "kubernetes.io/os": "linux" },
                    "tolerations": [{ "key": "CriticalAddonsOnly", "operator": "Exists" }, { "key": "node-role.kubernetes.io/master", "effect": "NoSchedule" }],
                    "containers": [{
                        "name": "coredns", "image": images.coredns, "args": ["-conf", "/etc/coredns/Corefile"],
                        "resources": { "limits": { "memory": "170Mi" }, "requests": { "cpu": "100m", "memory": "70Mi" } },
                        "ports": [{ "containerPort": 53, "name": "dns", "protocol": "UDP" }, { "containerPort": 53, "name": "dns-tcp", "protocol": "TCP" }],
                        "volumeMounts": [{ "name": "config-volume", "mountPath": "/etc/coredns", "readOnly": true }]
                    }],
                    "volumes": [{ "name": "config-volume", "configMap": { "name": "coredns" } }]
                }
            }
        }
    }))
    .await?;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    create(&svcs, json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "kube-dns", "namespace": "kube-system", "labels": { "k8s-app": "kube-dns" } },
        "spec": { "clusterIP": "10.96.0.10", "selector": { "k8s-app": "kube-dns" },
            "ports": [{ "name": "dns", "port": 53, "protocol": "UDP" }, { "name": "dns-tcp", "port": 53, "protocol": "TCP" }] }
    }))
    .await?;
    write_manifests(state).map_err(|source| LabError::Io {
        path: state.dir.join("manifests"),
        source,
    })
}

/// The `kubelet-config-1.N` ConfigMap kubeadm writes for a version.
pub fn kubelet_config(version: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": kubelet_config_name(version), "namespace": "kube-system" },
        "data": { "kubelet": "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\nclusterDNS:\n- 10.96.0.10\nclusterDomain: cluster.local\nrotateCertificates: true\nstaticPodPath: /etc/kubernetes/manifests\n" }
    })
}

/// A `kubeadm upgrade plan|apply --config` file for the lab's first control-plane node: an
/// `InitConfiguration` (node `cp-1`, advertise address `192.0.2.10`, the API server's
/// `--advertise-address`, never dialled) and the `ClusterConfiguration` `kubeadm-config` holds.
/// See the module docs for why kubeadm needs it against the lab.
pub fn oracle_config(state: &LabState) -> String {
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta2\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 192.0.2.10\n  bindPort: 6443\nnodeRegistration:\n  name: {}\n  criSocket: /var/run/dockershim.sock\n---\n{}",
        crate::pki::FIRST_NODE,
        cluster_configuration(state)
    )
}

/// `kubeadm-config`'s `ClusterConfiguration` for the lab at `state.kube_version`.
pub fn cluster_configuration(state: &LabState) -> String {
    format!(
        "apiServer:\n  extraArgs:\n    authorization-mode: Node,RBAC\n  timeoutForControlPlane: 4m0s\napiVersion: kubeadm.k8s.io/v1beta2\ncertificatesDir: {pki}\nclusterName: kubernetes\ncontrolPlaneEndpoint: \"{endpoint}\"\ncontrollerManager: {{}}\ndns:\n  type: CoreDNS\netcd:\n  local:\n    dataDir: {data}\nimageRepository: k8s.gcr.io\nkind: ClusterConfiguration\nkubernetesVersion: {ver}\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\nscheduler: {{}}\n",
        pki = state.dir.join("pki").display(),
        data = etcd_flag(state, "data-dir").unwrap_or_else(|| "/var/lib/etcd".into()),
        ver = state.kube_version,
        // With several control-plane nodes: the load balancer, as `kubeadm init
        // --control-plane-endpoint` records it; empty for one node, as kubeadm leaves it.
        endpoint = if state.is_ha() {
            state.apiserver_url.trim_start_matches("https://")
        } else {
            ""
        },
    )
}

fn cluster_status(state: &LabState) -> String {
    let mut s = String::from("apiEndpoints:\n");
    for n in state.nodes.iter().filter(|n| n.control_plane) {
        // The node's own API server port (each node of the lab has its own).
        let port = apiserver_port(state, &n.name).unwrap_or(6443);
        s.push_str(&format!(
            "  {}:\n    advertiseAddress: 10.0.0.{}\n    bindPort: {port}\n",
            n.name,
            10 + n.index
        ));
    }
    s.push_str("apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterStatus\n");
    s
}

/// The `--secure-port` of `node`'s kube-apiserver.
fn apiserver_port(state: &LabState, node: &str) -> Option<u16> {
    flag(state.component_on("kube-apiserver", node)?, "secure-port")?
        .parse()
        .ok()
}

fn etcd_flag(state: &LabState, key: &str) -> Option<String> {
    let first = state.nodes.iter().find(|n| n.control_plane)?;
    flag(state.component_on("etcd", &first.name)?, key)
}

/// The static control-plane pods of a control-plane node, as the mirror pods its kubelet posts,
/// with the image tags of the node's control-plane version.
pub fn static_pods(node: &NodeSpec, state: &LabState, node_uid: &str) -> Vec<Value> {
    let node_version = state.control_plane_version(node);
    let mut pods = Vec::new();
    for kind in CONTROL_PLANE_KINDS {
        let found = state.component_on(kind, &node.name);
        let version = found
            .and_then(|c| c.version.as_deref())
            .unwrap_or(node_version);
        let image = Images::for_version(version)
            .control_plane(kind)
            .unwrap_or_default()
            .to_string();
        let component = kind;
        let mut command = vec![component.to_string()];
        command.extend(found.map(|c| c.args.clone()).unwrap_or_default());
        // The kubelet hashes the whole manifest: a new image or new flags make a new mirror pod.
        let hash = format!(
            "{:032x}",
            simple_hash(&format!(
                "{}/{component}/{image}/{}",
                node.name,
                command.join(" ")
            ))
        );
        let mut annotations = json!({
            "kubernetes.io/config.hash": hash, "kubernetes.io/config.mirror": hash,
            "kubernetes.io/config.seen": "2021-01-13T13:20:00.000000000Z", "kubernetes.io/config.source": "file",
        });
        // This node's own member and API server (dialable: the lab's processes listen on loopback).
        if component == "etcd"
            && let Some(url) = found.and_then(|c| flag(c, "advertise-client-urls"))
        {
            annotations["kubeadm.kubernetes.io/etcd.advertise-client-urls"] = json!(url);
        }
        if component == "kube-apiserver"
            && let Some(port) = apiserver_port(state, &node.name)
        {
            annotations["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"] =
                json!(format!("127.0.0.1:{port}"));
        }
        pods.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": format!("{component}-{}", node.name), "namespace": "kube-system",
                "labels": { "component": component, "tier": "control-plane" },
                "annotations": annotations,
                "ownerReferences": [{ "apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node_uid, "controller": true }]
            },
            "spec": {
                "nodeName": node.name, "hostNetwork": true, "priorityClassName": "system-node-critical",
                "tolerations": [{ "operator": "Exists", "effect": "NoExecute" }],
                "containers": [{ "name": component, "image": image, "command": command, "imagePullPolicy": "IfNotPresent",
                    "resources": { "requests": { "cpu": if component == "kube-apiserver" { "250m" } else { "100m" } } } }]
            }
        }));
    }
    pods
}

/// The static pod kinds of a control-plane node, in the order kubeadm upgrades them.
pub const CONTROL_PLANE_KINDS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// Where a control-plane node's static pod manifests are: `DIR/manifests` for the first
/// control-plane node (the lab directory is that node's `/etc/kubernetes`), else its node
/// directory's `manifests` (`DIR/nodes/NODE/manifests`).
pub fn manifests_dir(state: &LabState, node: &str) -> PathBuf {
    manifests_dirs(state, node)
        .into_iter()
        .next()
        .unwrap_or_else(|| state.dir.join("manifests"))
}

/// Every directory holding `node`'s manifests: the first control-plane node's are in
/// `DIR/manifests`, and with several control-plane nodes each node's also in
/// `DIR/nodes/NODE/manifests`.
fn manifests_dirs(state: &LabState, node: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if state
        .nodes
        .iter()
        .find(|n| n.control_plane)
        .is_none_or(|n| n.name == node)
    {
        dirs.push(state.dir.join("manifests"));
    }
    if state.is_ha() {
        dirs.push(crate::controlplane::node_dir(&state.dir, node, true).join("manifests"));
    }
    dirs
}

/// Writes every control-plane node's static pod manifests (see [`manifests_dir`]).
pub fn write_manifests(state: &LabState) -> std::io::Result<()> {
    for node in state.nodes.iter().filter(|n| n.control_plane) {
        write_node_manifests(state, node)?;
    }
    Ok(())
}

/// Writes `{etcd,kube-apiserver,...}.yaml` of one control-plane node as kubeadm writes them,
/// each through a temporary file and a rename, into each of its manifest directories.
pub fn write_node_manifests(state: &LabState, node: &NodeSpec) -> std::io::Result<()> {
    for dir in manifests_dirs(state, &node.name) {
        write_manifests_into(state, node, &dir)?;
    }
    Ok(())
}

fn write_manifests_into(state: &LabState, node: &NodeSpec, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for pod in static_pods(node, state, "") {
        let mut pod = pod;
        let component_name = pod["metadata"]["labels"]["component"].clone();
        if let Some(meta) = pod["metadata"].as_object_mut() {
            meta.remove("ownerReferences");
            meta.insert("name".into(), component_name);
            meta.insert("annotations".into(), json!({}));
        }
        if let Some(spec) = pod["spec"].as_object_mut() {
            spec.remove("nodeName");
        }
        let component = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let yaml = serde_saphyr::to_string(&pod).map_err(std::io::Error::other)?;
        let tmp = dir.join(format!(".{component}.yaml.tmp"));
        std::fs::write(&tmp, yaml)?;
        std::fs::rename(&tmp, dir.join(format!("{component}.yaml")))?;
    }
    Ok(())
}

/// The annotation holding a static pod's manifest hash on its mirror pod.
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";

/// Brings a control-plane node's mirror pods in line with its static pods, as its kubelet does:
/// a missing one is created, one whose `kubernetes.io/config.hash` differs from the manifest's is
/// deleted and created again. `existing` maps a kube-system pod name to its hash and UID (from a
/// list or a watch cache); `node_uid` is the Node's UID (the mirror pods' owner). Returns what it
/// did, one line per request that changed something or was refused (for the callers' logs).
pub async fn sync_mirror_pods(
    client: &kube::Client,
    node: &NodeSpec,
    state: &LabState,
    node_uid: &str,
    existing: &HashMap<String, (Option<String>, Option<String>)>,
) -> Result<Vec<String>, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let mut done = Vec::new();
    for pod in static_pods(node, state, node_uid) {
        let name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some((hash, uid)) = existing.get(&name) {
            if hash.as_deref() == pod["metadata"]["annotations"][CONFIG_HASH].as_str() {
                continue;
            }
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            let uid = uid.as_deref().unwrap_or("?");
            match api.delete(&name, &dp).await {
                Ok(_) => done.push(format!(
                    "deleted {name} ({uid}): its hash is not the manifest's"
                )),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => done.push(format!(
                    "delete {name} ({uid}): {} {} (gone or replaced already)",
                    s.code, s.reason
                )),
                Err(e) => return Err(e),
            }
        }
        let hash = pod["metadata"]["annotations"][CONFIG_HASH]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let pod: Pod = serde_json::from_value(pod).expect("a static pod is a valid Pod");
        match api.create(&PostParams::default(), &pod).await {
            Ok(made) => done.push(format!(
                "created {name} ({}) hash {hash}",
                made.metadata.uid.as_deref().unwrap_or("?")
            )),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                done.push(format!("create {name} hash {hash}: exists already"))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn simple_hash(s: &str) -> u128 {
    s.bytes()
        .fold(0x6c62272e07bb014262b821756295c58du128, |h, b| {
            (h ^ u128::from(b)).wrapping_mul(0x0000000001000000000000000000013B)
        })
}
