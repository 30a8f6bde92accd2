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
    /// Process name (`etcd`, `kube-apiserver`, ...).
    pub name: String,
    /// Program path.
    pub program: PathBuf,
    /// Its flags.
    pub args: Vec<String>,
}

/// The whole state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    /// The lab directory.
    pub dir: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub apiserver_url: String,
    /// etcd's client URL.
    pub etcd_url: String,
    /// etcd's version.
    pub etcd_version: String,
    /// The control-plane version.
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

    /// The node called `name`.
    pub fn node_mut(&mut self, name: &str) -> Result<&mut NodeSpec, StateError> {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .ok_or_else(|| StateError::NoSuchNode(name.to_string()))
    }

    /// `DIR/admin.conf`.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.conf")
    }
}
