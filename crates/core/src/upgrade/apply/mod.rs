//! `kubemaint upgrade apply` as a pure state machine: the run's recorded state, the facts the
//! edge observes, and [`next`], which says what to do next.
//!
//! The edge drives a loop: observe [`Facts`], ask [`next`] for an [`Action`], write
//! [`RunState::begin`] to the cluster (write-ahead: a cordon is recorded as ours *before* the
//! request, so a kill in between never leaves a cordon nobody owns), execute the action, then
//! write [`RunState::record`]. Because the state is recorded after every action and every action
//! can be repeated (cordon, drain, a node's commands, waits), a run killed at any point resumes
//! from the recorded state to the same end; finished nodes are never redone.
//!
//! Order (kubeadm's upgrade runbook, one minor at a time as the plan says): per hop, kubelets
//! the hop would push out of the skew window first (control-plane nodes one at a time, then
//! workers in batches), then the control-plane nodes strictly one at a time (`kubeadm upgrade
//! apply` on the first, `kubeadm upgrade node` on the others), then the workers in batches of
//! `max_unavailable`. Per batch: cordon (a node already cordoned is not ours and stays
//! cordoned) → drain → the nodes' commands, all at once → wait until Ready at the version →
//! uncordon (only the cordons kubemaint made) → health gate.
//!
//! Several nodes are in progress at once inside a batch, so the record keeps each node's
//! progress ([`Batch::upgraded`], [`Batch::failed`], [`Batch::waited`]) and the edge records each
//! node's commands as they end ([`RunState::node_upgraded`], [`RunState::node_failed`]). When
//! some of a batch's nodes fail, the ones that succeeded still go through their wait and
//! uncordon (they are upgraded: keeping them out only costs capacity), the failed ones stay
//! cordoned and the run stops before the health gate ([`StopReason::CommandsFailed`]); a resume
//! ([`RunState::retry_failed`]) runs only the failed nodes' commands again.

pub mod etcd_members;
pub mod health;
pub mod lock;
mod next;
pub mod simulate;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::node_commands::NodeRole;
use super::plan::{Phase as PlanPhase, UpgradePlan};
use super::skew::Component;
use super::version::{Minor, Version};

pub use next::next;

/// A node's role in the run: it decides the commands (`kubeadm upgrade apply|node`) and the
/// batch size (control-plane nodes one at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the control plane's static pods.
    ControlPlane,
    /// Runs only a kubelet.
    Worker,
}

impl Role {
    /// `control-plane` or `worker`, as the `{role}` placeholder gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ControlPlane => "control-plane",
            Self::Worker => "worker",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One node's upgrade to one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeJob {
    /// The node.
    pub node: String,
    /// Its role.
    pub role: Role,
    /// The version its kubelet (and, on a control-plane node, its static pods) reach.
    pub version: Version,
    /// The first control-plane node of a hop: it runs `kubeadm upgrade apply` (which also
    /// upgrades the cluster-wide add-ons); every other node runs `kubeadm upgrade node`.
    pub first: bool,
    /// Only the kubelet moves (a catch-up: a kubelet the hop would push out of the skew window,
    /// moved to the control plane's current version before any API server moves). The node's
    /// control plane, if any, is already at `version` and is not touched.
    #[serde(default)]
    pub kubelet_only: bool,
}

impl NodeJob {
    /// The job's minor (`1.20`), the `{minor}` placeholder.
    pub fn minor(&self) -> Minor {
        self.version.minor_of()
    }

    /// What the node's built-in commands do: `kubeadm upgrade apply` on the first
    /// control-plane node, `kubeadm upgrade node` on the others and on workers, and for a
    /// catch-up only the kubelet (its configuration and package).
    pub fn node_role(&self) -> NodeRole {
        match (self.kubelet_only, self.role, self.first) {
            (true, _, _) => NodeRole::KubeletOnly,
            (false, Role::ControlPlane, true) => NodeRole::FirstControlPlane,
            (false, Role::ControlPlane, false) => NodeRole::ControlPlane,
            (false, Role::Worker, _) => NodeRole::Worker,
        }
    }

    /// The `{role}` placeholder: `control-plane` or `worker` for a node's upgrade to the hop's
    /// version, `kubelet-only` for a catch-up (whatever the node runs besides its kubelet).
    pub fn role_word(&self) -> &'static str {
        if self.kubelet_only {
            NodeRole::KubeletOnly.as_str()
        } else {
            self.role.as_str()
        }
    }
}

/// What a stage does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageKind {
    /// Kubelets the hop would push out of the window, moved to the control plane's current
    /// version first.
    CatchUp,
    /// Control-plane nodes of the hop.
    ControlPlane,
    /// Worker kubelets of the hop.
    Workers,
}

/// A group of node jobs of one role and one version, done in batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// What the stage does.
    pub kind: StageKind,
    /// The version its nodes reach.
    pub version: Version,
    /// The role of every node in it: control-plane stages go one node at a time.
    pub role: Role,
    /// The jobs, in the plan's order.
    pub jobs: Vec<NodeJob>,
}

impl Stage {
    /// Human title: `control plane to v1.20.2`.
    pub fn title(&self) -> String {
        match (self.kind, self.role) {
            (StageKind::CatchUp, Role::ControlPlane) => {
                format!("catch-up of control-plane kubelets to {}", self.version)
            }
            (StageKind::CatchUp, Role::Worker) => {
                format!("catch-up of worker kubelets to {}", self.version)
            }
            (StageKind::ControlPlane, _) => format!("control plane to {}", self.version),
            (StageKind::Workers, _) => format!("workers to {}", self.version),
        }
    }
}

/// The node-level work of an [`UpgradePlan`], as stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyPlan {
    /// The final version.
    pub target: Version,
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

impl ApplyPlan {
    /// Turns the component moves of `plan` into node jobs. `control_planes` names the nodes
    /// that run the control plane (the API servers' nodes); every other node with a kubelet
    /// move is a worker. Per hop: catch-up stages (control-plane kubelets, then workers), the
    /// control-plane stage (every node with an etcd, API server, controller or kubelet move,
    /// in the plan's order; the first one is `first`), then the workers' stage.
    pub fn from_upgrade(plan: &UpgradePlan, control_planes: &[String]) -> Self {
        let is_cp = |node: &str| control_planes.iter().any(|c| c == node);
        let mut stages = Vec::new();
        for step in &plan.steps {
            let mut catch_up: BTreeMap<(Role, Version), Vec<String>> = BTreeMap::new();
            let mut cp_nodes: Vec<String> = Vec::new();
            let mut workers: Vec<String> = Vec::new();
            for action in &step.actions {
                let Some(node) = action.node.as_deref() else {
                    continue;
                };
                match (action.phase, action.component) {
                    (PlanPhase::CatchUp, Component::Kubelet) => {
                        let Ok(version) = Version::parse(&action.to) else {
                            continue;
                        };
                        let role = if is_cp(node) {
                            Role::ControlPlane
                        } else {
                            Role::Worker
                        };
                        push_unique(catch_up.entry((role, version)).or_default(), node);
                    }
                    (PlanPhase::CatchUp, _) => {}
                    (_, Component::Kubelet) if !is_cp(node) => push_unique(&mut workers, node),
                    _ if is_cp(node) => push_unique(&mut cp_nodes, node),
                    _ => {}
                }
            }
            for ((role, version), nodes) in catch_up {
                stages.push(Stage {
                    kind: StageKind::CatchUp,
                    role,
                    jobs: nodes
                        .into_iter()
                        .map(|node| NodeJob {
                            node,
                            role,
                            version: version.clone(),
                            first: false,
                            kubelet_only: true,
                        })
                        .collect(),
                    version,
                });
            }
            if !cp_nodes.is_empty() {
                stages.push(Stage {
                    kind: StageKind::ControlPlane,
                    version: step.version.clone(),
                    role: Role::ControlPlane,
                    jobs: cp_nodes
                        .into_iter()
                        .enumerate()
                        .map(|(i, node)| NodeJob {
                            node,
                            role: Role::ControlPlane,
                            version: step.version.clone(),
                            first: i == 0,
                            kubelet_only: false,
                        })
                        .collect(),
                });
            }
            if !workers.is_empty() {
                stages.push(Stage {
                    kind: StageKind::Workers,
                    version: step.version.clone(),
                    role: Role::Worker,
                    jobs: workers
                        .into_iter()
                        .map(|node| NodeJob {
                            node,
                            role: Role::Worker,
                            version: step.version.clone(),
                            first: false,
                            kubelet_only: false,
                        })
                        .collect(),
                });
            }
        }
        Self {
            target: plan.target.clone(),
            stages,
        }
    }

    /// Every node the plan touches, once each, in order.
    pub fn nodes(&self) -> Vec<&str> {
        let mut seen = Vec::new();
        for job in self.stages.iter().flat_map(|s| &s.jobs) {
            if !seen.contains(&job.node.as_str()) {
                seen.push(job.node.as_str());
            }
        }
        seen
    }

    /// The number of node jobs.
    pub fn job_count(&self) -> usize {
        self.stages.iter().map(|s| s.jobs.len()).sum()
    }
}

fn push_unique(list: &mut Vec<String>, node: &str) {
    if !list.iter().any(|n| n == node) {
        list.push(node.to_string());
    }
}

/// How the run may proceed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// Most worker nodes taken out at once (at least 1). Control-plane nodes always go one
    /// at a time.
    pub max_unavailable: usize,
    /// Take an etcd snapshot before each hop's control-plane stage.
    pub snapshot: bool,
}

/// What the edge observed about one node just before asking [`next`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFacts {
    /// The node's Ready condition is True.
    pub ready: bool,
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// `status.nodeInfo.kubeletVersion`, when it parses.
    pub kubelet: Option<Version>,
    /// On a control-plane node: the oldest version among its kube-apiserver,
    /// kube-controller-manager and kube-scheduler mirror pods' images (`None`: unknown or not
    /// a control-plane node).
    pub control_plane: Option<Version>,
}

impl NodeFacts {
    /// Whether the node already runs `job`'s version (so the job has nothing to do): the
    /// kubelet, and on a control-plane node its static pods too.
    pub fn at(&self, job: &NodeJob) -> bool {
        let kubelet = self.kubelet.as_ref().is_some_and(|k| *k >= job.version);
        let cp = match job.role {
            Role::Worker => true,
            Role::ControlPlane => self
                .control_plane
                .as_ref()
                .is_some_and(|v| *v >= job.version),
        };
        kubelet && cp
    }
}

/// What the edge observed about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// Every node by name.
    pub nodes: BTreeMap<String, NodeFacts>,
}

/// A finished job: stage index and node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct JobKey {
    /// Index into [`ApplyPlan::stages`].
    pub stage: usize,
    /// The node.
    pub node: String,
}

/// Where a batch is. After the drain, the per-node sets of [`Batch`] decide; the phase then
/// only tells a reader of the record how far the whole batch got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchPhase {
    /// Cordoning the batch's schedulable nodes.
    Cordon,
    /// Draining the batch.
    Drain,
    /// Running the nodes' commands (all at once).
    Upgrade,
    /// Waiting for the nodes to be Ready at the version.
    Wait,
    /// Uncordoning the cordons kubemaint made.
    Uncordon,
    /// The health gate before the next batch.
    Health,
}

impl BatchPhase {
    /// Lower-case name for progress lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cordon => "cordon",
            Self::Drain => "drain",
            Self::Upgrade => "upgrade",
            Self::Wait => "wait",
            Self::Uncordon => "uncordon",
            Self::Health => "health gate",
        }
    }
}

/// The nodes in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Index into [`ApplyPlan::stages`].
    pub stage: usize,
    /// The nodes, in the order their commands run.
    pub nodes: Vec<String>,
    /// Where the batch is.
    pub phase: BatchPhase,
    /// Nodes whose commands finished.
    #[serde(default)]
    pub upgraded: BTreeSet<String>,
    /// Nodes whose commands failed in this run: they stay cordoned and stop the run until a
    /// resume clears them ([`RunState::retry_failed`]).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub failed: BTreeSet<String>,
    /// Upgraded nodes seen Ready at the version.
    #[serde(default)]
    pub waited: BTreeSet<String>,
}

impl Batch {
    /// `nodes` filtered by `keep`, in the batch's order.
    fn nodes_where(&self, keep: impl Fn(&String) -> bool) -> Vec<String> {
        self.nodes.iter().filter(|n| keep(n)).cloned().collect()
    }
}

/// The run's recorded state: everything [`next`] needs besides the plan, the options and the
/// facts. Serialized into the cluster after every action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// Finished jobs.
    #[serde(default)]
    pub done: BTreeSet<JobKey>,
    /// The batch in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Batch>,
    /// Nodes kubemaint cordoned and has not uncordoned yet (recorded before the request).
    /// Only these are ever uncordoned.
    #[serde(default)]
    pub cordoned: BTreeSet<String>,
    /// Stages before which the etcd snapshot was taken.
    #[serde(default)]
    pub snapshots: BTreeSet<usize>,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Take and verify an etcd snapshot before the control-plane stage `stage`.
    Snapshot {
        /// The stage about to start.
        stage: usize,
    },
    /// Jobs whose nodes already run the stage's version: recorded as done, nothing touched.
    Skip {
        /// The stage.
        stage: usize,
        /// The nodes.
        nodes: Vec<String>,
    },
    /// Start a batch.
    StartBatch {
        /// The stage.
        stage: usize,
        /// The batch's nodes.
        nodes: Vec<String>,
    },
    /// Cordon these nodes (schedulable ones of the batch).
    Cordon {
        /// The nodes.
        nodes: Vec<String>,
    },
    /// Drain these nodes together.
    Drain {
        /// The nodes.
        nodes: Vec<String>,
    },
    /// Run these nodes' commands through the executor, every node at once; each node's end
    /// is recorded as it comes ([`RunState::node_upgraded`], [`RunState::node_failed`]).
    RunCommands {
        /// The nodes' jobs, in the batch's order.
        jobs: Vec<NodeJob>,
    },
    /// Wait until every node is Ready and at `version` (control plane: its mirror pods at the
    /// target images and its API server answering `/version` with it).
    Wait {
        /// The nodes.
        nodes: Vec<String>,
        /// The version to reach.
        version: Version,
        /// Whether the nodes are control-plane nodes.
        control_plane: bool,
    },
    /// Uncordon these nodes (only cordons kubemaint made).
    Uncordon {
        /// The nodes.
        nodes: Vec<String>,
    },
    /// Wait until the cluster is healthy before the next batch.
    HealthGate {
        /// The stage of the batch just finished.
        stage: usize,
    },
    /// Every job is done.
    Done,
    /// The run cannot go on; the reason says what to do.
    Stop {
        /// Why.
        reason: StopReason,
    },
}

/// Why [`next`] stops the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StopReason {
    /// A node of the plan is no longer in the cluster.
    #[error(
        "node {node} of the run's plan is no longer in the cluster; bring it back or start a new run (delete the run's ConfigMap)"
    )]
    NodeGone {
        /// The node.
        node: String,
    },
    /// Some nodes' commands failed; the batch's other nodes were brought back (waited for and
    /// uncordoned), these stay cordoned.
    #[error(
        "the upgrade commands failed on {}: left cordoned and drained; the run log has their output. Fix the cause (or upgrade the node by hand), then run again with --resume: only the failed nodes' commands run again",
        .nodes.join(", ")
    )]
    CommandsFailed {
        /// The failed nodes, in the batch's order.
        nodes: Vec<String>,
    },
    /// The recorded state does not fit the plan (a state from another plan).
    #[error(
        "the recorded run state does not fit its plan ({what}); start a new run (delete the run's ConfigMap)"
    )]
    Inconsistent {
        /// What does not fit.
        what: String,
    },
}

impl RunState {
    /// Write-ahead part of `action`, recorded *before* it is executed: a cordon is recorded as
    /// kubemaint's, so a kill between the request and the record cannot lose it.
    pub fn begin(&mut self, action: &Action) {
        if let Action::Cordon { nodes } = action {
            self.cordoned.extend(nodes.iter().cloned());
        }
    }

    /// Records that `action` completed.
    pub fn record(&mut self, action: &Action) {
        match action {
            Action::Snapshot { stage } => {
                self.snapshots.insert(*stage);
            }
            Action::Skip { stage, nodes } => {
                self.done.extend(nodes.iter().map(|node| JobKey {
                    stage: *stage,
                    node: node.clone(),
                }));
            }
            Action::StartBatch { stage, nodes } => {
                self.batch = Some(Batch {
                    stage: *stage,
                    nodes: nodes.clone(),
                    phase: BatchPhase::Cordon,
                    upgraded: BTreeSet::new(),
                    failed: BTreeSet::new(),
                    waited: BTreeSet::new(),
                });
            }
            Action::Cordon { .. } => self.set_phase(BatchPhase::Drain),
            Action::Drain { .. } => self.set_phase(BatchPhase::Upgrade),
            Action::RunCommands { jobs } => {
                for job in jobs {
                    self.node_upgraded(&job.node);
                }
            }
            Action::Wait { nodes, .. } => {
                if let Some(batch) = &mut self.batch {
                    batch.waited.extend(nodes.iter().cloned());
                    if batch.nodes.iter().all(|n| batch.waited.contains(n)) {
                        batch.phase = BatchPhase::Uncordon;
                    }
                }
            }
            Action::Uncordon { nodes } => {
                for node in nodes {
                    self.cordoned.remove(node);
                }
                if let Some(batch) = &mut self.batch
                    && batch.nodes.iter().all(|n| batch.waited.contains(n))
                {
                    batch.phase = BatchPhase::Health;
                }
            }
            Action::HealthGate { .. } => {
                if let Some(batch) = self.batch.take() {
                    self.done.extend(batch.nodes.into_iter().map(|node| JobKey {
                        stage: batch.stage,
                        node,
                    }));
                }
            }
            Action::Done | Action::Stop { .. } => {}
        }
    }

    /// Records that `node`'s commands completed (the edge calls it as each node of a
    /// [`Action::RunCommands`] ends, so a kill later does not run them again).
    pub fn node_upgraded(&mut self, node: &str) {
        if let Some(batch) = &mut self.batch
            && batch.nodes.iter().any(|n| n == node)
        {
            batch.failed.remove(node);
            batch.upgraded.insert(node.to_string());
            if batch.nodes.iter().all(|n| batch.upgraded.contains(n)) {
                batch.phase = BatchPhase::Wait;
            }
        }
    }

    /// Records that `node`'s commands failed: [`next`] brings the batch's other nodes back,
    /// then stops with [`StopReason::CommandsFailed`].
    pub fn node_failed(&mut self, node: &str) {
        if let Some(batch) = &mut self.batch
            && batch.nodes.iter().any(|n| n == node)
            && !batch.upgraded.contains(node)
        {
            batch.failed.insert(node.to_string());
        }
    }

    /// A resume after a failure: the failed nodes' commands may run again.
    pub fn retry_failed(&mut self) {
        if let Some(batch) = &mut self.batch {
            batch.failed.clear();
        }
    }

    fn set_phase(&mut self, phase: BatchPhase) {
        if let Some(batch) = &mut self.batch {
            batch.phase = phase;
        }
    }

    /// Jobs done out of `plan`'s total.
    pub fn progress(&self, plan: &ApplyPlan) -> (usize, usize) {
        (self.done.len(), plan.job_count())
    }
}

#[cfg(test)]
mod tests;
