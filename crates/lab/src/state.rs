//! The lab's state file, `DIR/lab.json`: what runs where, and the simulated nodes.
//!
//! The simulated kubelets re-read it every second, so `kubemaint-lab node stop|start|upgrade`
//! only has to rewrite it (atomically: temp file + rename).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors reading or writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file is missing or unreadable.
    #[error(
        "no lab state at {path}: is there a lab in this directory? Start one with `kubemaint-lab up --dir DIR`"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("lab state {path} is corrupt; run `kubemaint-lab down` and `up` again")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Writing failed.
    #[error("cannot write lab state {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No such node.
    #[error("the lab has no node {0:?}; `kubemaint-lab status` lists them")]
    NoSuchNode(String),
}

/// One simulated node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeSpec {
    /// The node name (`cp-1`, `worker-1`, ...).
    pub name: String,
    /// Control-plane node (role labels, NoSchedule taint, mirror pods).
    pub control_plane: bool,
    /// The kubelet (and kube-proxy) version it reports.
    pub kubelet_version: String,
    /// On a control-plane node, the version of its control-plane components (the binaries its
    /// kube-apiserver, controller-manager and scheduler run, and its static pods' image tags);
    /// `None` on a worker. Control-plane nodes may differ (one node upgraded before the others).
    /// A version other than [`crate::binaries::KUBE_VERSION`] is a stand-in
    /// ([`crate::binaries::describe_version`]).
    #[serde(default)]
    pub control_plane_version: Option<String>,
    /// False after `node stop`: no more lease renewals or status updates.
    pub running: bool,
    /// A counter bumped by `node upgrade` (and restarts) so the simulator notices a kubelet restart.
    #[serde(default)]
    pub restarts: u32,
    /// Position in the lab (used for pod IP ranges).
    pub index: u32,
}

/// How simulated pods behave (defaults; pods may override with annotations).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimSettings {
    /// Time from a pod's binding to Running, and from Running to Ready, in milliseconds.
    pub ready_delay_ms: u64,
    /// Time a pod takes to shut down after graceful deletion, bounded by its grace period (ms).
    pub shutdown_delay_ms: u64,
}

impl Default for SimSettings {
    fn default() -> Self {
        Self {
            ready_delay_ms: 500,
            shutdown_delay_ms: 500,
        }
    }
}

/// A control-plane component process and how to (re)start it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Component {
    /// Process name, unique in the lab (its pid and log file names): `etcd`, `kube-apiserver`,
    /// ... or, with several control-plane nodes, `kube-apiserver-cp-2` (kind, `-`, node).
    pub name: String,
    /// Program path.
    pub program: PathBuf,
    /// Its flags.
    pub args: Vec<String>,
    /// The control-plane node it belongs to (`cp-1`); `None` for a process of the whole lab.
    #[serde(default)]
    pub node: Option<String>,
    /// The Kubernetes version its program is (kube-apiserver, controller-manager, scheduler),
    /// when it differs from its node's [`NodeSpec::control_plane_version`] — during a node's
    /// upgrade, one component after the other. `None`: the node's version (and always for etcd).
    #[serde(default)]
    pub version: Option<String>,
}

impl Component {
    /// What it is, as its static pod's `component` label says (`etcd`, `kube-apiserver`,
    /// `kube-controller-manager`, `kube-scheduler`): the name without a `-NODE` suffix.
    pub fn kind(&self) -> &str {
        self.node
            .as_deref()
            .and_then(|node| self.name.strip_suffix(node)?.strip_suffix('-'))
            .unwrap_or(&self.name)
    }
}

/// The whole state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    /// The lab directory.
    pub dir: PathBuf,
    /// `https://127.0.0.1:PORT`: the API server, or with several control-plane nodes the load
    /// balancer in front of them (the control-plane endpoint `admin.conf` points at).
    pub apiserver_url: String,
    /// etcd's client URL; with several members all of them, comma-separated, local member first.
    pub etcd_url: String,
    /// etcd's version.
    pub etcd_version: String,
    /// The cluster's Kubernetes version as kubeadm records it: `kubeadm-config`'s
    /// `kubernetesVersion`, the kube-proxy image (what `kubeadm upgrade apply` set last). Each
    /// control-plane node's own components are at [`NodeSpec::control_plane_version`].
    pub kube_version: String,
    /// Components in start order.
    pub components: Vec<Component>,
    /// The simulated nodes.
    pub nodes: Vec<NodeSpec>,
    /// Pod behaviour.
    pub sim: SimSettings,
}

impl LabState {
    /// `DIR/lab.json`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("lab.json")
    }

    /// Reads `DIR/lab.json`.
    pub fn load(dir: &Path) -> Result<Self, StateError> {
        let path = Self::path(dir);
        let text = std::fs::read_to_string(&path).map_err(|source| StateError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| StateError::Parse { path, source })
    }

    /// Writes `DIR/lab.json` atomically.
    pub fn save(&self) -> Result<(), StateError> {
        let path = Self::path(&self.dir);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("lab state serializes");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| StateError::Write { path, source })
    }

    /// Reads, changes and writes `DIR/lab.json` under an exclusive lock (`DIR/lab.json.lock`),
    /// so that concurrent `kubemaint-lab node ...` commands (an upgrade of several nodes at once)
    /// never lose each other's change. Returns what `change` returns; nothing is written when
    /// it fails.
    pub fn update<T, E: From<StateError>>(
        dir: &Path,
        change: impl FnOnce(&mut LabState) -> Result<T, E>,
    ) -> Result<T, E> {
        let lock_path = dir.join("lab.json.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StateError::Write {
                path: lock_path.clone(),
                source,
            })?;
        let locked = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(
            |(_, errno)| StateError::Write {
                path: lock_path.clone(),
                source: errno.into(),
            },
        )?;
        let mut state = LabState::load(dir)?;
        let out = change(&mut state)?;
        state.save()?;
        drop(locked);
        Ok(out)
    }

    /// The node called `name`.
    pub fn node_mut(&mut self, name: &str) -> Result<&mut NodeSpec, StateError> {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .ok_or_else(|| StateError::NoSuchNode(name.to_string()))
    }

    /// The node called `name` (read only).
    pub fn node(&self, name: &str) -> Result<&NodeSpec, StateError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| StateError::NoSuchNode(name.to_string()))
    }

    /// The version of a control-plane node's components (the cluster's version when unset).
    pub fn control_plane_version<'a>(&'a self, node: &'a NodeSpec) -> &'a str {
        node.control_plane_version
            .as_deref()
            .unwrap_or(&self.kube_version)
    }

    /// The components of control-plane node `node`, in start order.
    pub fn components_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Component> {
        self.components
            .iter()
            .filter(move |c| c.node.as_deref() == Some(node))
    }

    /// `DIR/admin.conf`.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.conf")
    }

    /// The component a caller names: its process name (`kube-apiserver-cp-2`, `etcd`,
    /// `haproxy`), or a bare kind (`kube-apiserver`), which means that kind on the first
    /// control-plane node — the only one in a single-node lab, `cp-1` in an HA lab.
    pub fn component(&self, name: &str) -> Option<&Component> {
        let index = self.component_index(name)?;
        self.components.get(index)
    }

    /// [`LabState::component`], for changing it.
    pub fn component_mut(&mut self, name: &str) -> Option<&mut Component> {
        let index = self.component_index(name)?;
        self.components.get_mut(index)
    }

    fn component_index(&self, name: &str) -> Option<usize> {
        if let Some(i) = self.components.iter().position(|c| c.name == name) {
            return Some(i);
        }
        let first = self.nodes.iter().find(|n| n.control_plane)?;
        self.components
            .iter()
            .position(|c| c.kind() == name && c.node.as_deref() == Some(first.name.as_str()))
    }

    /// The component of kind `kind` (`etcd`, `kube-apiserver`, ...) on control-plane node `node`.
    pub fn component_on(&self, kind: &str, node: &str) -> Option<&Component> {
        self.components
            .iter()
            .find(|c| c.kind() == kind && c.node.as_deref() == Some(node))
            // A state file written before components had nodes: one control-plane node.
            .or_else(|| {
                self.components
                    .iter()
                    .find(|c| c.node.is_none() && c.name == kind)
            })
    }

    /// Every etcd member's client URL (`etcd_url` lists them comma-separated, as
    /// `ETCDCTL_ENDPOINTS` does).
    pub fn etcd_endpoints(&self) -> Vec<String> {
        self.etcd_url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// True with more than one control-plane node: per-node components behind a load balancer.
    pub fn is_ha(&self) -> bool {
        self.nodes.iter().filter(|n| n.control_plane).count() > 1
    }
}
