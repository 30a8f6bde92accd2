//! Interpreting snapshots: kubeadm clusters, managed control planes, unknowns.

use kubemaint_core::upgrade::skew::Instance;
use kubemaint_core::upgrade::version::Version;
use serde_json::json;

use super::*;

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
