//! The drain engine: reads what the planner needs, plans with `kubemaint-core`, decides the
//! batch (how many nodes at once, checked against the capacity that stays), cordons every
//! selected node first (as kubectl does), then removes pods node by node, up to
//! `max_parallel_nodes` nodes at once, through one shared PodDisruptionBudget gate.
//!
//! The entry point is [`drain`]: a resolved [`DrainConfig`] in, a [`DrainReport`] with every
//! node and pod out (when each node started, when it ended, what held it up). `kubemaint
//! drain` and `upgrade apply`'s worker batches both call it. [`prepare`] and
//! [`Prepared::run`] are its two halves, for a caller that looks at the plan in between.
//!
//! Output is the caller's: kubectl's lines go through a [`Reporter`], progress through its
//! node hooks, and the outcome comes back as a [`DrainReport`].
//!
//! ```no_run
//! # async fn f(clients: kubemaint_cluster::drain::Clients,
//! #            config: kubemaint_core::drain::config::DrainConfig,
//! #            reporter: std::sync::Arc<dyn kubemaint_cluster::drain::Reporter>) {
//! use kubemaint_cluster::drain::{self, DrainError, NodeStatus};
//! match drain::drain(clients, config, reporter).await {
//!     Ok(None) => println!("no node matched"),
//!     Ok(Some(report)) => {
//!         for n in &report.nodes {
//!             let ok = n.status == NodeStatus::Drained;
//!             println!("{}: {ok} after {:.1}s, held up by {:?}", n.node, n.seconds, n.held_up);
//!         }
//!     }
//!     // Nothing was changed: the nodes' pods do not fit on the nodes that stay.
//!     Err(DrainError::Refused { pods, .. }) => println!("{} pods fit nowhere", pods.len()),
//!     Err(e) => println!("{e}"),
//! }
//! # }
//! ```

pub mod evict;
mod node;
mod watches;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kubemaint_core::drain::PodRef;
use kubemaint_core::drain::config::DrainConfig;
use kubemaint_core::drain::eviction::{RemovalMethod, removal_method};
use kubemaint_core::drain::plan::{
    ClusterSnapshot, DrainOptions, DrainPlan, NodePlan, NodeTarget, Parallelism, node_order,
    parallelism, plan_drain,
};
use kubemaint_core::drain::report::HoldUp;
use kubemaint_core::drain::stuck::StuckTerminating;
use serde::Serialize;
use tokio::time::Instant;

use self::evict::{Blocked, PdbGate, PodOutcome};
use self::node::drain_node;
use crate::ClusterError;
use crate::nodes::{self, CordonResult};
use crate::read::{self, PolicySupport};

/// Where the engine's output goes: kubectl's lines and progress. Implementations decide on
/// streams and terminals; the engine only says what happened.
pub trait Reporter: Send + Sync {
    /// One of kubectl's stdout lines (`node/x cordoned`, `evicting pod ns/p`, `pod/p evicted`).
    fn out(&self, line: &str);
    /// One of kubectl's stderr lines (errors, retries, warnings), or a kubemaint note.
    fn err(&self, line: &str);
    /// The preflight plan and warnings met while reading, before any change ([`drain`] only).
    fn preflight(&self, _plan: &DrainPlan, _warnings: &[String]) {}
    /// A node's pod removal starts: `pods` to remove; `live` is what holds it up right now.
    fn node_started(&self, _node: &str, _pods: usize, _live: Arc<NodeLive>) {}
    /// One pod of `node` is done (gone, failed or skipped).
    fn pod_finished(&self, _node: &str) {}
    /// The node's pod removal ended.
    fn node_finished(&self, _node: &str) {}
}

/// What holds a node's drain up right now (for progress views).
#[derive(Debug, Default)]
pub struct NodeLive {
    /// Pods refused by a PodDisruptionBudget, and since when.
    pub blocked: Mutex<BTreeMap<PodRef, Blocked>>,
    /// Pods stuck Terminating on a NotReady node.
    pub stuck: Mutex<BTreeMap<PodRef, StuckTerminating>>,
}

/// The clients the engine uses.
#[derive(Clone)]
pub struct Clients {
    /// For reads, watches and patches (kube's default retries).
    pub client: kube::Client,
    /// For evictions and deletes: `default_retry` off, so a PDB's 429 is seen at once.
    pub evict: kube::Client,
}

/// How a node's drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeStatus {
    /// Every pod is gone (or server dry-run accepted every eviction).
    Drained,
    /// Something failed; `error` says what.
    Failed,
    /// Client dry-run: nothing was sent.
    Planned,
}

/// Outcome of one node (for the report).
#[derive(Debug, Clone, Serialize)]
pub struct NodeOutcome {
    /// Node name.
    pub node: String,
    /// How it ended.
    pub status: NodeStatus,
    /// kubectl's aggregated error text, if failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The errors one by one (kubectl prints them so at the end).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Cordon step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cordon: Option<CordonResult>,
    /// Whether the node is left cordoned.
    pub left_cordoned: bool,
    /// Per-pod outcomes.
    pub pods: Vec<PodOutcome>,
    /// When its pod removal started.
    pub started: jiff::Timestamp,
    /// When it ended (drained, or failed).
    pub finished: jiff::Timestamp,
    /// `started`, in seconds after the run's cordons were done.
    pub started_after_seconds: f64,
    /// `finished`, in seconds after the run's cordons were done.
    pub finished_after_seconds: f64,
    /// Seconds spent on this node.
    pub seconds: f64,
    /// What held it up, longest first: budgets that did not allow a disruption yet, retries,
    /// pods still terminating (per cause: how many pods waited and the longest wait).
    pub held_up: Vec<HoldUp>,
}

/// The drain's report (`-o json`).
#[derive(Debug, Serialize)]
pub struct DrainReport {
    /// The preflight plan.
    pub plan: DrainPlan,
    /// When the pod removals could start (every selected node cordoned).
    pub started: jiff::Timestamp,
    /// Nodes drained at once, at most.
    pub max_parallel_nodes: usize,
    /// `--max-parallel-nodes` as asked.
    pub requested_parallel_nodes: usize,
    /// Why fewer nodes were drained at once than asked, if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lowered: Option<String>,
    /// What happened, per node, in the order the nodes were started.
    pub nodes: Vec<NodeOutcome>,
    /// Nodes left pending, in that order.
    pub pending: Vec<String>,
}

/// Everything read and planned before any change.
pub struct Prepared {
    clients: Clients,
    config: DrainConfig,
    nodes: Vec<Node>,
    policy: PolicySupport,
    options: DrainOptions,
    snapshot: ClusterSnapshot,
    targets: Vec<NodeTarget>,
    /// The preflight plan of every selected node.
    pub plan: DrainPlan,
    /// Warnings met while reading (e.g. volumes that could not be listed).
    pub warnings: Vec<String>,
}

/// Why a drain did not run.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// Reading the cluster failed (nothing was changed).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Several nodes at once were asked, and pods of the selected nodes fit on no node that
    /// stays: they would stay Pending together. Nothing was changed.
    #[error(
        "refusing to drain {requested} nodes at once: {} pod(s) fit on no node that stays and would stay Pending together ({}); add capacity, or rerun with --max-parallel-nodes 1 to drain one node at a time as kubectl does; nothing was changed",
        .pods.len(),
        .pods.iter().map(|(p, why)| format!("{p}: {why}")).collect::<Vec<_>>().join("; ")
    )]
    Refused {
        /// `--max-parallel-nodes` as asked.
        requested: usize,
        /// The pods, and why each fits nowhere (the scheduler's words).
        pods: Vec<(PodRef, String)>,
    },
}

/// Drains the nodes `config` selects: reads and plans ([`prepare`]), hands the plan to
/// [`Reporter::preflight`], then [`Prepared::run`]. `Ok(None)` when no node matches.
pub async fn drain(
    clients: Clients,
    config: DrainConfig,
    reporter: Arc<dyn Reporter>,
) -> Result<Option<DrainReport>, DrainError> {
    let Some(prepared) = prepare(clients, config).await? else {
        return Ok(None);
    };
    reporter.preflight(&prepared.plan, &prepared.warnings);
    prepared.run(reporter).await.map(Some)
}

/// Reads the selected nodes, discovery, nodes, pods and budgets, and plans the drain. `None`
/// when no node matches.
pub async fn prepare(
    clients: Clients,
    config: DrainConfig,
) -> Result<Option<Prepared>, ClusterError> {
    let client = &clients.client;
    let nodes_api: Api<Node> = Api::all(client.clone());
    let nodes = nodes::resolve(&nodes_api, &config.nodes, config.chunk_size).await?;
    if nodes.is_empty() {
        return Ok(None);
    }
    let policy = read::discover(client).await?;
    let method = removal_method(config.disable_eviction, policy.eviction);
    let options = DrainOptions {
        filters: config.filters.clone(),
        method,
        dry_run: config.dry_run,
    };
    let (all_nodes, all_pods) = read::nodes_and_pods(client, config.chunk_size).await?;
    let (pdbs, pdb_semantics) = read::list_pdbs(client, policy.pdb_version).await?;
    let (volumes, volume_error) = read::volume_affinity(client).await;
    let mut warnings = Vec::new();
    if let Some(e) = volume_error {
        warnings.push(format!(
            "warning: cannot list persistent volumes and claims ({e}); the preflight does not check volume node affinity"
        ));
    }
    let mut snapshot = ClusterSnapshot {
        nodes: all_nodes,
        pods: all_pods,
        pdbs,
        pdb_semantics,
        daemonsets: BTreeMap::new(),
        volumes,
    };
    let mut targets = Vec::new();
    for n in &nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        let pods = read::node_pods(
            client,
            &name,
            config.pod_selector.as_deref(),
            config.chunk_size,
        )
        .await?;
        read::daemonset_lookups(client, &pods, &config.filters, &mut snapshot.daemonsets).await;
        targets.push(NodeTarget { name, pods });
    }
    let plan = plan_drain(&snapshot, &targets, &options, jiff::Timestamp::now());
    Ok(Some(Prepared {
        clients,
        config,
        nodes,
        policy,
        options,
        snapshot,
        targets,
        plan,
        warnings,
    }))
}

/// What a node's drain shares with the others of the run.
struct Shared {
    clients: Clients,
    config: DrainConfig,
    options: DrainOptions,
    snapshot: tokio::sync::Mutex<ClusterSnapshot>,
    gate: Option<PdbGate>,
    reporter: Arc<dyn Reporter>,
    /// When the pod removals could start.
    run_started: Instant,
}

impl Prepared {
    /// Decides the batch before any change (the core's [`parallelism`] over the plan, which
    /// placed the pods of every selected node together on the nodes that stay): a lowered
    /// `--max-parallel-nodes` is said through the reporter, a refusal is
    /// [`DrainError::Refused`] with nothing changed. Then cordons every selected node and
    /// drains them, up to that many at once, in `config.order` (the core's [`node_order`]).
    pub async fn run(self, reporter: Arc<dyn Reporter>) -> Result<DrainReport, DrainError> {
        let requested = self.config.max_parallel_nodes.get();
        let (parallel, lowered) = match parallelism(&self.plan, requested) {
            Parallelism::Keep(n) => (n, None),
            Parallelism::Lower { to, why } => {
                reporter.err(&format!(
                    "--max-parallel-nodes lowered from {requested} to {to}: {why}"
                ));
                (to, Some(why))
            }
            Parallelism::Refuse { pods } => {
                return Err(DrainError::Refused { requested, pods });
            }
        };
        let order = node_order(&self.plan, self.config.order);
        let mut report = self.run_ordered(reporter, parallel, &order).await;
        report.requested_parallel_nodes = requested;
        report.lowered = lowered;
        Ok(report)
    }

    /// Cordons every selected node, then drains them, up to `max_parallel_nodes` at once, in
    /// `order` (indices into the plan's nodes).
    async fn run_ordered(
        self,
        reporter: Arc<dyn Reporter>,
        max_parallel_nodes: usize,
        order: &[usize],
    ) -> DrainReport {
        let Prepared {
            clients,
            config,
            nodes,
            policy,
            options,
            snapshot,
            targets,
            plan,
            ..
        } = self;
        let dry_run = config.dry_run;
        let nodes_api: Api<Node> = Api::all(clients.client.clone());
        // kubectl cordons every node first; a failed cordon is reported but does not stop it.
        let mut cordons = BTreeMap::new();
        for n in &nodes {
            let r = nodes::apply(&nodes_api, n, true, "kubemaint/drain", dry_run).await;
            match r.line() {
                Ok(l) => reporter.out(&l),
                Err(e) => reporter.err(&e),
            }
            cordons.insert(r.node.clone(), r);
        }
        let gate = (dry_run.is_none() && matches!(options.method, RemovalMethod::Evict(_)))
            .then(|| PdbGate::start(&clients.client, policy.pdb_version));
        let started = jiff::Timestamp::now();
        let shared = Arc::new(Shared {
            clients,
            config,
            options,
            snapshot: tokio::sync::Mutex::new(snapshot),
            gate: gate.as_ref().map(|(g, _)| g.clone()),
            reporter: reporter.clone(),
            run_started: Instant::now(),
        });
        let preflight: BTreeMap<String, NodePlan> = plan
            .nodes
            .iter()
            .map(|n| (n.node.clone(), n.clone()))
            .collect();
        let parallel = max_parallel_nodes.max(1);
        let mut outcomes: Vec<NodeOutcome> = futures::stream::iter(order.iter().enumerate())
            .map(|(rank, &i)| {
                let shared = shared.clone();
                let target = targets[i].clone();
                // The first batch's pods were listed just now; kubectl lists a node's pods
                // when it gets to it, so later nodes are listed again.
                let fresh = (rank < parallel).then(|| preflight[&target.name].clone());
                let cordon = cordons.get(&target.name).cloned();
                async move { drain_node(&shared, target, fresh, cordon).await }
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
        if let Some((_, h)) = gate {
            h.abort();
        }
        // Report in the order the nodes were started.
        let rank: BTreeMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(r, &i)| (targets[i].name.as_str(), r))
            .collect();
        outcomes.sort_by_key(|o| rank.get(o.node.as_str()).copied().unwrap_or(usize::MAX));
        let pending = outcomes
            .iter()
            .filter(|o| o.status == NodeStatus::Failed)
            .map(|o| o.node.clone())
            .collect();
        DrainReport {
            plan,
            started,
            max_parallel_nodes: parallel,
            requested_parallel_nodes: parallel,
            lowered: None,
            nodes: outcomes,
            pending,
        }
    }
}

#[cfg(test)]
mod lab_tests;
