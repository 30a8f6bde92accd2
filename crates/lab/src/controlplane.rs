//! The control-plane components of each control-plane node, laid out as kubeadm lays them out:
//! per node a stacked etcd member, a kube-apiserver talking to its local member, and a
//! kube-controller-manager and kube-scheduler talking to their local kube-apiserver (kubeadm ≥ 1.19.1
//! points `controller-manager.conf` and `scheduler.conf` at the node's own API server, not at the
//! control-plane endpoint: kubernetes/kubernetes#94398), with leader election between the nodes.
//!
//! Every process listens on 127.0.0.1 with ports of its own; a node is a set of ports, not an
//! address. A single-node lab keeps its historical process names (`etcd`, `kube-apiserver`, ...);
//! with several control-plane nodes every process carries its node: `kube-apiserver-cp-2`, the
//! same name as its mirror pod.

use std::path::{Path, PathBuf};

use crate::binaries::{Binaries, EtcdVersion};
use crate::pki::{ClientCredentials, Pki};
use crate::process;
use crate::state::Component;

/// Audit only the requests of people and tools (kubectl, kubemaint): one `Metadata` event per
/// request in `DIR/logs/audit.log`, with the user agent, so benchmarks can count API requests.
/// Control-plane components and the simulated kubelets are left out.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: None
  users: [lab-kubelet, system:kube-controller-manager, system:kube-scheduler, system:apiserver, system:kube-proxy]
- level: None
  userGroups: [system:serviceaccounts, system:nodes]
- level: Metadata
";

/// The component kinds of a control-plane node, in start order.
pub const KINDS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// One control-plane node's ports, all on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePorts {
    /// etcd's client port.
    pub etcd_client: u16,
    /// etcd's peer port.
    pub etcd_peer: u16,
    /// kube-apiserver's secure port.
    pub apiserver: u16,
    /// kube-controller-manager's secure (health) port.
    pub controller_manager: u16,
    /// kube-scheduler's secure (health) port.
    pub scheduler: u16,
}

impl NodePorts {
    /// Five distinct free ports.
    pub fn free() -> std::io::Result<Self> {
        let p = process::free_ports(5)?;
        Ok(Self {
            etcd_client: p[0],
            etcd_peer: p[1],
            apiserver: p[2],
            controller_manager: p[3],
            scheduler: p[4],
        })
    }
}

/// One control-plane node of the lab being laid out.
#[derive(Debug, Clone)]
pub struct CpNode {
    /// Its name (`cp-1`, ...).
    pub name: String,
    /// Its position among the control-plane nodes (0 for the first).
    pub ordinal: u32,
    /// Its ports.
    pub ports: NodePorts,
    /// The version of its control-plane binaries (a stand-in's relinked ones, or the real
    /// v1.20.2): one node may run another version than the others.
    pub version: String,
}

/// The whole control plane: every node and whether processes carry node suffixes.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The lab directory.
    pub dir: PathBuf,
    /// The control-plane nodes.
    pub nodes: Vec<CpNode>,
}

impl Layout {
    /// `count` control-plane nodes `cp-1..cp-N` at `version`, with free ports.
    pub fn new(dir: &Path, count: u32, version: &str) -> std::io::Result<Self> {
        let nodes = (0..count)
            .map(|i| {
                Ok(CpNode {
                    name: format!("cp-{}", i + 1),
                    ordinal: i,
                    ports: NodePorts::free()?,
                    version: version.to_string(),
                })
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Self {
            dir: dir.to_path_buf(),
            nodes,
        })
    }

    /// More than one control-plane node.
    pub fn is_ha(&self) -> bool {
        self.nodes.len() > 1
    }

    /// The process name of `kind` on `node`: the bare kind in a single-node lab, `kind-node`
    /// (the mirror pod's name) with several control-plane nodes.
    pub fn process_name(&self, kind: &str, node: &CpNode) -> String {
        if self.is_ha() {
            format!("{kind}-{}", node.name)
        } else {
            kind.to_string()
        }
    }

    /// `--initial-cluster` for the stacked etcd members: `cp-1=https://127.0.0.1:P1,...`.
    pub fn etcd_initial_cluster(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}=https://127.0.0.1:{}", n.name, n.ports.etcd_peer))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every member's client URL, comma-separated (etcdctl's `--endpoints` form).
    pub fn etcd_endpoints(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("https://127.0.0.1:{}", n.ports.etcd_client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The data dir of `node`'s member: `DIR/etcd-data`, or `DIR/etcd-data/cp-N` with several.
    pub fn etcd_data_dir(&self, node: &CpNode) -> PathBuf {
        if self.is_ha() {
            self.dir.join("etcd-data").join(&node.name)
        } else {
            self.dir.join("etcd-data")
        }
    }

    /// Where `node`'s own kubeconfigs and manifests go (its `/etc/kubernetes`): the lab
    /// directory itself in a single-node lab, `DIR/nodes/cp-N` with several.
    pub fn node_dir(&self, node: &CpNode) -> PathBuf {
        node_dir(&self.dir, &node.name, self.is_ha())
    }

    /// Writes the audit policy and `node`'s `controller-manager.conf` and `scheduler.conf`
    /// (pointing at the node's own API server, as kubeadm does).
    pub fn write_node_files(
        &self,
        node: &CpNode,
        creds: &ClientCredentials,
    ) -> std::io::Result<()> {
        std::fs::write(self.dir.join("audit-policy.yaml"), AUDIT_POLICY)?;
        let server = format!("https://127.0.0.1:{}", node.ports.apiserver);
        let node_dir = self.node_dir(node);
        std::fs::create_dir_all(&node_dir)?;
        for (file, user, (cert, key)) in [
            (
                "controller-manager.conf",
                "system:kube-controller-manager",
                &creds.controller_manager,
            ),
            ("scheduler.conf", "system:kube-scheduler", &creds.scheduler),
        ] {
            crate::kubeconfig::write(
                &node_dir.join(file),
                &crate::kubeconfig::render(&server, &creds.ca_pem, user, cert, key),
            )?;
        }
        Ok(())
    }

    /// kube-apiserver of `node`, talking to the node's local etcd member (kubeadm's stacked
    /// etcd: `--etcd-servers=https://127.0.0.1:2379`).
    pub fn apiserver(&self, binaries: &Binaries, node: &CpNode) -> Component {
        let pki = Pki::at(self.dir.join("pki"));
        let p = |rel: &str| pki.path(rel).display().to_string();
        // The first node's audit log keeps its historical name; the others' sit beside it.
        let audit_log = if node.ordinal == 0 {
            "audit.log".to_string()
        } else {
            format!("audit-{}.log", node.name)
        };
        Component {
            name: self.process_name("kube-apiserver", node),
            program: binaries.kube_at(&node.version, "kube-apiserver"),
            node: Some(node.name.clone()),
            version: None,
            args: vec![
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", node.ports.apiserver),
                "--insecure-port=0".into(),
                // Endpoints may not hold a loopback address; these documentation addresses
                // (one per node: the `kubernetes` Service lists every API server) are never dialled.
                format!("--advertise-address=192.0.2.{}", 10 + node.ordinal),
                "--allow-privileged=true".into(),
                "--authorization-mode=Node,RBAC".into(),
                format!("--client-ca-file={}", p("ca.crt")),
                "--enable-admission-plugins=NodeRestriction".into(),
                "--enable-bootstrap-token-auth=true".into(),
                format!("--etcd-cafile={}", p("etcd/ca.crt")),
                format!("--etcd-certfile={}", p("apiserver-etcd-client.crt")),
                format!("--etcd-keyfile={}", p("apiserver-etcd-client.key")),
                format!(
                    "--etcd-servers=https://127.0.0.1:{}",
                    node.ports.etcd_client
                ),
                format!(
                    "--kubelet-client-certificate={}",
                    p("apiserver-kubelet-client.crt")
                ),
                format!("--kubelet-client-key={}", p("apiserver-kubelet-client.key")),
                format!("--proxy-client-cert-file={}", p("front-proxy-client.crt")),
                format!("--proxy-client-key-file={}", p("front-proxy-client.key")),
                "--requestheader-allowed-names=front-proxy-client".into(),
                format!("--requestheader-client-ca-file={}", p("front-proxy-ca.crt")),
                "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
                "--requestheader-group-headers=X-Remote-Group".into(),
                "--requestheader-username-headers=X-Remote-User".into(),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!("--service-account-key-file={}", p("sa.pub")),
                format!("--service-account-signing-key-file={}", p("sa.key")),
                "--service-cluster-ip-range=10.96.0.0/12".into(),
                format!("--tls-cert-file={}", p("apiserver.crt")),
                format!("--tls-private-key-file={}", p("apiserver.key")),
                format!(
                    "--audit-policy-file={}",
                    self.dir.join("audit-policy.yaml").display()
                ),
                format!(
                    "--audit-log-path={}",
                    process::log_dir(&self.dir).join(audit_log).display()
                ),
                "--audit-log-maxsize=200".into(),
            ],
        }
    }

    /// kube-controller-manager of `node` (leader election between the nodes).
    pub fn controller_manager(&self, binaries: &Binaries, node: &CpNode) -> Component {
        let pki = Pki::at(self.dir.join("pki"));
        let p = |rel: &str| pki.path(rel).display().to_string();
        let conf = self
            .node_dir(node)
            .join("controller-manager.conf")
            .display()
            .to_string();
        Component {
            name: self.process_name("kube-controller-manager", node),
            program: binaries.kube_at(&node.version, "kube-controller-manager"),
            node: Some(node.name.clone()),
            version: None,
            args: vec![
                format!("--kubeconfig={conf}"),
                format!("--authentication-kubeconfig={conf}"),
                format!("--authorization-kubeconfig={conf}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", node.ports.controller_manager),
                "--port=0".into(),
                format!("--client-ca-file={}", p("ca.crt")),
                "--cluster-name=kubernetes".into(),
                format!("--cluster-signing-cert-file={}", p("ca.crt")),
                format!("--cluster-signing-key-file={}", p("ca.key")),
                "--controllers=*,bootstrapsigner,tokencleaner".into(),
                "--leader-elect=true".into(),
                format!("--requestheader-client-ca-file={}", p("front-proxy-ca.crt")),
                format!("--root-ca-file={}", p("ca.crt")),
                format!("--service-account-private-key-file={}", p("sa.key")),
                "--use-service-account-credentials=true".into(),
                // Faster than the defaults (5 s / 40 s) so a stopped kubelet shows NotReady quickly.
                "--node-monitor-period=2s".into(),
                "--node-monitor-grace-period=16s".into(),
                "--kube-api-qps=100".into(),
                "--kube-api-burst=200".into(),
            ],
        }
    }

    /// kube-scheduler of `node` (leader election between the nodes).
    pub fn scheduler(&self, binaries: &Binaries, node: &CpNode) -> Component {
        let conf = self
            .node_dir(node)
            .join("scheduler.conf")
            .display()
            .to_string();
        Component {
            name: self.process_name("kube-scheduler", node),
            program: binaries.kube_at(&node.version, "kube-scheduler"),
            node: Some(node.name.clone()),
            version: None,
            args: vec![
                format!("--kubeconfig={conf}"),
                format!("--authentication-kubeconfig={conf}"),
                format!("--authorization-kubeconfig={conf}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", node.ports.scheduler),
                "--port=0".into(),
                "--leader-elect=true".into(),
                "--kube-api-qps=100".into(),
                "--kube-api-burst=200".into(),
            ],
        }
    }

    /// The etcd options of `node`'s member (stacked: one member per control-plane node).
    pub fn etcd_options(&self, version: EtcdVersion, node: &CpNode) -> crate::etcd::EtcdOptions {
        let mut opts = crate::etcd::EtcdOptions::new(version, &self.dir);
        opts.name = node.name.clone();
        opts.process_name = self.process_name("etcd", node);
        opts.data_dir = Some(self.etcd_data_dir(node));
        opts.client_port = Some(node.ports.etcd_client);
        opts.peer_port = Some(node.ports.etcd_peer);
        opts.initial_cluster = Some(self.etcd_initial_cluster());
        opts
    }
}

/// Where control-plane node `node`'s own files go (its `/etc/kubernetes`): the lab directory in a
/// single-node lab, `DIR/nodes/NODE` with several control-plane nodes.
pub fn node_dir(dir: &Path, node: &str, ha: bool) -> PathBuf {
    if ha {
        dir.join("nodes").join(node)
    } else {
        dir.to_path_buf()
    }
}

/// The `--key=value` flag of a component's recorded arguments.
pub fn flag(component: &Component, key: &str) -> Option<String> {
    let prefix = format!("--{key}=");
    component
        .args
        .iter()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(n: u32) -> Layout {
        Layout::new(Path::new("/lab"), n, crate::binaries::KUBE_VERSION).unwrap()
    }

    #[test]
    fn single_node_keeps_bare_names_and_paths() {
        let l = layout(1);
        let n = &l.nodes[0];
        assert_eq!(l.process_name("kube-apiserver", n), "kube-apiserver");
        assert_eq!(l.etcd_data_dir(n), Path::new("/lab/etcd-data"));
        assert_eq!(l.node_dir(n), Path::new("/lab"));
        assert_eq!(
            l.etcd_initial_cluster(),
            format!("cp-1=https://127.0.0.1:{}", n.ports.etcd_peer)
        );
    }

    #[test]
    fn ha_names_carry_the_node_and_each_node_has_its_own_ports() {
        let l = layout(3);
        let names: Vec<String> = l.nodes.iter().map(|n| l.process_name("etcd", n)).collect();
        assert_eq!(names, ["etcd-cp-1", "etcd-cp-2", "etcd-cp-3"]);
        let mut ports: Vec<u16> = l
            .nodes
            .iter()
            .flat_map(|n| {
                let p = n.ports;
                [
                    p.etcd_client,
                    p.etcd_peer,
                    p.apiserver,
                    p.controller_manager,
                    p.scheduler,
                ]
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 15, "every port distinct");
        assert_eq!(l.etcd_initial_cluster().split(',').count(), 3);
        assert_eq!(
            l.etcd_data_dir(&l.nodes[1]),
            Path::new("/lab/etcd-data/cp-2")
        );
        let bins = Binaries {
            cache: "/cache".into(),
        };
        let api = l.apiserver(&bins, &l.nodes[1]);
        assert_eq!(api.name, "kube-apiserver-cp-2");
        assert_eq!(api.kind(), "kube-apiserver");
        assert_eq!(
            flag(&api, "etcd-servers"),
            Some(format!(
                "https://127.0.0.1:{}",
                l.nodes[1].ports.etcd_client
            )),
            "stacked etcd: the local member"
        );
        assert_eq!(
            flag(&api, "advertise-address").as_deref(),
            Some("192.0.2.11")
        );
        let kcm = l.controller_manager(&bins, &l.nodes[2]);
        assert_eq!(
            flag(&kcm, "kubeconfig").as_deref(),
            Some("/lab/nodes/cp-3/controller-manager.conf")
        );
    }
}
