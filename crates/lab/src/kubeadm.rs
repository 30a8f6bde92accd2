//! The objects a kubeadm v1.20 cluster has, so that planning code sees what it would see on one:
//! the `kubeadm-config` and `kubelet-config-1.20` ConfigMaps, the `kube-proxy` DaemonSet, the
//! `coredns` Deployment, and (created by the simulated kubelets) mirror pods for the static
//! control-plane pods. Static pod manifests are also written to `DIR/manifests/` with the lab's
//! real endpoints and certificate paths, like `/etc/kubernetes/manifests` on a control-plane node.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use kube::Api;
use serde_json::{Value, json};

use crate::api::create;
use crate::error::LabError;
use crate::state::{LabState, NodeSpec};

/// etcd image tag kubeadm v1.20 deploys.
pub const ETCD_IMAGE: &str = "k8s.gcr.io/etcd:3.4.13-0";
/// CoreDNS image kubeadm v1.20 deploys.
pub const COREDNS_IMAGE: &str = "k8s.gcr.io/coredns:1.7.0";

/// Creates the cluster-level kubeadm objects (idempotent).
pub async fn create_objects(client: &kube::Client, state: &LabState) -> Result<(), LabError> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    create(&cms, json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "kubeadm-config", "namespace": "kube-system" },
        "data": { "ClusterConfiguration": cluster_configuration(state), "ClusterStatus": cluster_status(state) }
    }))
    .await?;
    create(&cms, json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "kubelet-config-1.20", "namespace": "kube-system" },
        "data": { "kubelet": "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\nclusterDNS:\n- 10.96.0.10\nclusterDomain: cluster.local\nrotateCertificates: true\nstaticPodPath: /etc/kubernetes/manifests\n" }
    }))
    .await?;
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
                        "name": "kube-proxy", "image": format!("k8s.gcr.io/kube-proxy:{}", state.kube_version),
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
                        "name": "coredns", "image": COREDNS_IMAGE, "args": ["-conf", "/etc/coredns/Corefile"],
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

fn cluster_configuration(state: &LabState) -> String {
    format!(
        "apiServer:\n  extraArgs:\n    authorization-mode: Node,RBAC\n  timeoutForControlPlane: 4m0s\napiVersion: kubeadm.k8s.io/v1beta2\ncertificatesDir: {pki}\nclusterName: kubernetes\ncontrolPlaneEndpoint: \"\"\ncontrollerManager: {{}}\ndns:\n  type: CoreDNS\netcd:\n  local:\n    dataDir: {data}\nimageRepository: k8s.gcr.io\nkind: ClusterConfiguration\nkubernetesVersion: {ver}\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\nscheduler: {{}}\n",
        pki = state.dir.join("pki").display(),
        data = etcd_flag(state, "data-dir").unwrap_or_else(|| "/var/lib/etcd".into()),
        ver = state.kube_version,
    )
}

fn cluster_status(state: &LabState) -> String {
    let port = state.apiserver_url.rsplit(':').next().unwrap_or("6443");
    let mut s = String::from("apiEndpoints:\n");
    for n in state.nodes.iter().filter(|n| n.control_plane) {
        s.push_str(&format!(
            "  {}:\n    advertiseAddress: 10.0.0.{}\n    bindPort: {port}\n",
            n.name,
            10 + n.index
        ));
    }
    s.push_str("apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterStatus\n");
    s
}

fn etcd_flag(state: &LabState, key: &str) -> Option<String> {
    let prefix = format!("--{key}=");
    state
        .components
        .iter()
        .find(|c| c.name == "etcd")?
        .args
        .iter()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
}

fn component_args(state: &LabState, name: &str) -> Vec<String> {
    state
        .components
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.args.clone())
        .unwrap_or_default()
}

/// The static control-plane pods of a control-plane node, as the mirror pods its kubelet posts.
pub fn static_pods(node: &NodeSpec, state: &LabState, node_uid: &str) -> Vec<Value> {
    let ver = &state.kube_version;
    let mut pods = Vec::new();
    for (component, image, program) in [
        ("etcd", ETCD_IMAGE.to_string(), "etcd"),
        (
            "kube-apiserver",
            format!("k8s.gcr.io/kube-apiserver:{ver}"),
            "kube-apiserver",
        ),
        (
            "kube-controller-manager",
            format!("k8s.gcr.io/kube-controller-manager:{ver}"),
            "kube-controller-manager",
        ),
        (
            "kube-scheduler",
            format!("k8s.gcr.io/kube-scheduler:{ver}"),
            "kube-scheduler",
        ),
    ] {
        let mut command = vec![program.to_string()];
        command.extend(component_args(state, component));
        let hash = format!(
            "{:032x}",
            simple_hash(&format!("{}/{component}/{}", node.name, command.join(" ")))
        );
        let mut annotations = json!({
            "kubernetes.io/config.hash": hash, "kubernetes.io/config.mirror": hash,
            "kubernetes.io/config.seen": "2021-01-13T13:20:00.000000000Z", "kubernetes.io/config.source": "file",
        });
        if component == "etcd" {
            annotations["kubeadm.kubernetes.io/etcd.advertise-client-urls"] = json!(state.etcd_url);
        }
        if component == "kube-apiserver" {
            annotations["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"] =
                json!(state.apiserver_url.trim_start_matches("https://"));
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

/// Writes `DIR/manifests/{etcd,kube-apiserver,...}.yaml` as kubeadm writes them on a node.
fn write_manifests(state: &LabState) -> std::io::Result<()> {
    let dir = state.dir.join("manifests");
    std::fs::create_dir_all(&dir)?;
    let Some(node) = state.nodes.iter().find(|n| n.control_plane) else {
        return Ok(());
    };
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
        std::fs::write(dir.join(format!("{component}.yaml")), yaml)?;
    }
    Ok(())
}

fn simple_hash(s: &str) -> u128 {
    s.bytes()
        .fold(0x6c62272e07bb014262b821756295c58du128, |h, b| {
            (h ^ u128::from(b)).wrapping_mul(0x0000000001000000000000000000013B)
        })
}
