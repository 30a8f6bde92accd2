//! The drain engine: reads what the planner needs, plans with `kubemaint-core`, cordons every
//! selected node first (as kubectl does), then removes pods node by node, up to
//! `max_parallel_nodes` nodes at once, through one shared PodDisruptionBudget gate.
//!
//! Output is the caller's: kubectl's lines go through a [`Reporter`], progress through its
//! node hooks, and the outcome comes back as a [`DrainReport`].

pub mod evict;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kubemaint_core::drain::PodRef;
use kubemaint_core::drain::config::DrainConfig;
use kubemaint_core::drain::cordon::DryRun;
use kubemaint_core::drain::eviction::{RemovalMethod, removal_method};
use kubemaint_core::drain::filters::aggregate;
use kubemaint_core::drain::plan::{
    ClusterSnapshot, DrainOptions, DrainPlan, NodePlan, NodeTarget, PodAction, drained_line,
    node_failed_line, plan_drain,
};
use kubemaint_core::drain::stuck::StuckTerminating;
use serde::Serialize;
use tokio::time::Instant;

use self::evict::{Blocked, PdbGate, PodOutcome, PodResult, Remover, Tracker};
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
    /// When it ended.
    pub finished: jiff::Timestamp,
    /// Seconds spent on this node.
    pub seconds: f64,
}

/// The drain's report (`-o json`).
#[derive(Debug, Serialize)]
pub struct DrainReport {
    /// The preflight plan.
    pub plan: DrainPlan,
    /// Nodes drained at once, at most.
    pub max_parallel_nodes: usize,
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
}

impl Prepared {
    /// Cordons every selected node, then drains them, up to `max_parallel_nodes` at once, in
    /// `order` (indices into the plan's nodes).
    pub async fn run(
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
        let shared = Arc::new(Shared {
            clients,
            config,
            options,
            snapshot: tokio::sync::Mutex::new(snapshot),
            gate: gate.as_ref().map(|(g, _)| g.clone()),
            reporter: reporter.clone(),
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
                // The first node's pods were listed just now; kubectl lists a node's pods
                // when it gets to it, so later nodes are listed again.
                let fresh = (rank == 0).then(|| preflight[&target.name].clone());
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
            max_parallel_nodes: parallel,
            nodes: outcomes,
            pending,
        }
    }
}

/// Plans (unless the preflight plan is fresh) and drains one node.
async fn drain_node(
    shared: &Shared,
    target: NodeTarget,
    fresh: Option<NodePlan>,
    cordon: Option<CordonResult>,
) -> NodeOutcome {
    let started = Instant::now();
    let started_at = jiff::Timestamp::now();
    let config = &shared.config;
    let dry_run = config.dry_run;
    let node = target.name.clone();
    let mut outcome = NodeOutcome {
        node: node.clone(),
        status: NodeStatus::Drained,
        error: None,
        errors: Vec::new(),
        cordon,
        left_cordoned: dry_run.is_none(),
        pods: Vec::new(),
        started: started_at,
        finished: started_at,
        seconds: 0.0,
    };
    let result = match fresh {
        Some(p) => Ok((p, target)),
        None => replan(shared, &node).await,
    };
    let result = match result {
        Err(e) => Err(vec![e]),
        Ok((node_plan, target)) => run_plan(shared, &node_plan, &target, &mut outcome).await,
    };
    let reporter = &shared.reporter;
    match result {
        Ok(()) => reporter.out(&drained_line(&node, dry_run)),
        Err(errs) => {
            reporter.err(&node_failed_line(&node, &errs));
            outcome.status = NodeStatus::Failed;
            outcome.error = aggregate(&errs);
            outcome.errors = errs;
            if dry_run.is_none() {
                let nodes_api: Api<Node> = Api::all(shared.clients.client.clone());
                let after =
                    nodes::after_failure(&nodes_api, &node, config.uncordon_on_failure).await;
                if let Some(line) = after.line {
                    reporter.err(&line);
                }
                outcome.left_cordoned = after.left_cordoned;
            }
        }
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome.finished = jiff::Timestamp::now();
    outcome
}

/// Lists the node's pods again and plans it against the shared snapshot.
async fn replan(shared: &Shared, node: &str) -> Result<(NodePlan, NodeTarget), String> {
    let config = &shared.config;
    let client = &shared.clients.client;
    let pods = read::node_pods(
        client,
        node,
        config.pod_selector.as_deref(),
        config.chunk_size,
    )
    .await
    .map_err(|e| format!("{e}: {}", error_sources(&e)))?;
    let mut lookups = shared.snapshot.lock().await.daemonsets.clone();
    read::daemonset_lookups(client, &pods, &config.filters, &mut lookups).await;
    let target = NodeTarget {
        name: node.to_owned(),
        pods,
    };
    let mut snapshot = shared.snapshot.lock().await;
    snapshot.daemonsets.extend(lookups);
    let plan = plan_drain(
        &snapshot,
        std::slice::from_ref(&target),
        &shared.options,
        jiff::Timestamp::now(),
    )
    .nodes
    .remove(0);
    Ok((plan, target))
}

fn error_sources(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}

/// Executes one node's plan: kubectl's filter errors fail it before any eviction; otherwise
/// its pods are removed (or listed, under client dry-run).
async fn run_plan(
    shared: &Shared,
    node_plan: &NodePlan,
    target: &NodeTarget,
    outcome: &mut NodeOutcome,
) -> Result<(), Vec<String>> {
    if !node_plan.errors.is_empty() {
        return Err(node_plan.errors.clone());
    }
    let reporter = &shared.reporter;
    if !node_plan.warnings.is_empty() {
        reporter.err(&format!("Warning: {}", node_plan.warnings));
    }
    let to_remove = |p: &&kubemaint_core::drain::plan::PodPlan| {
        matches!(p.action, PodAction::Evict | PodAction::Delete)
    };
    if shared.config.dry_run == Some(DryRun::Client) {
        for p in node_plan.pods.iter().filter(to_remove) {
            reporter.out(&format!("evicting pod {} (dry run)", p.pod));
        }
        outcome.status = NodeStatus::Planned;
        return Ok(());
    }
    let pods: Vec<Pod> = {
        let snapshot = shared.snapshot.lock().await;
        node_plan
            .pods
            .iter()
            .filter(to_remove)
            .filter_map(|p| {
                target
                    .pods
                    .iter()
                    .chain(snapshot.pods.iter())
                    .find(|tp| PodRef::of(tp) == p.pod)
                    .cloned()
            })
            .collect()
    };
    // Pods whose budget allowed a disruption at planning time take their first attempt
    // through the budget gate, like a retry: with a budget of 1, the pods behind the first do
    // not each draw a refused request first.
    let first_gate: BTreeMap<_, _> = node_plan
        .pods
        .iter()
        .filter_map(|p| match &p.pdb {
            Some(kubemaint_core::drain::pdb::PodPdbVerdict::Allowed { pdb, .. }) => {
                Some((p.pod.clone(), pdb.clone()))
            }
            _ => None,
        })
        .collect();
    drain_pods(shared, &target.name, pods, first_gate, outcome).await
}

async fn drain_pods(
    shared: &Shared,
    node: &str,
    pods: Vec<Pod>,
    first_gate: BTreeMap<PodRef, String>,
    outcome: &mut NodeOutcome,
) -> Result<(), Vec<String>> {
    if pods.is_empty() {
        return Ok(());
    }
    let config = &shared.config;
    let (tracker, watch_handle) = Tracker::start(&shared.clients.client, node)
        .await
        .map_err(|e| vec![format!("{e}: {}", error_sources(&e))])?;
    let live = Arc::new(NodeLive::default());
    let remover = Remover {
        client: shared.clients.evict.clone(),
        method: shared.options.method,
        grace_period: config.grace_period_seconds,
        dry_run: config.dry_run,
        retry_delay: config.eviction_retry_delay,
        deadline: config.timeout.map(|t| Instant::now() + t),
        timeout_text: kubemaint_core::duration::format(config.timeout.unwrap_or_default()),
        skip_wait_seconds: config.filters.skip_wait_for_delete_timeout_seconds,
        pdb_gate: shared.gate.clone().unwrap_or_else(PdbGate::inert),
        tracker,
        live: live.clone(),
        reporter: shared.reporter.clone(),
        stuck_policy: config.stuck,
        first_gate: Arc::new(first_gate),
    };
    shared.reporter.node_started(node, pods.len(), live);
    let results: Vec<PodOutcome> = futures::stream::iter(pods)
        .map(|p| {
            let r = remover.clone();
            async move {
                let o = r.remove(p).await;
                r.reporter.pod_finished(node);
                o
            }
        })
        .buffer_unordered(config.max_concurrent_evictions.get())
        .collect()
        .await;
    shared.reporter.node_finished(node);
    watch_handle.abort();
    let failed = |r: &&PodOutcome| r.result == PodResult::Failed;
    let mut errors: Vec<String> = results
        .iter()
        .filter(failed)
        .filter_map(|r| r.error.clone())
        .collect();
    let blocked_dry: Vec<String> = results
        .iter()
        .filter(|r| r.result == PodResult::DryRunBlocked)
        .map(|r| format!("{} ({})", r.pod, r.blocked_by.clone().unwrap_or_default()))
        .collect();
    let pending: Vec<String> = results
        .iter()
        .filter(failed)
        .map(|r| format!("pod/{}", r.pod.name))
        .collect();
    let stuck_failed: Vec<String> = results
        .iter()
        .filter(failed)
        .filter_map(|r| {
            r.stuck
                .as_ref()
                .map(|s| format!("{} ({}s past its grace period)", r.pod, s.stuck_seconds))
        })
        .collect();
    let stuck_node = results
        .iter()
        .find_map(|r| r.stuck.as_ref().map(|s| s.node.describe()));
    outcome.pods = results;
    if let (false, Some(why)) = (stuck_failed.is_empty(), stuck_node) {
        errors.push(format!(
            "{} pods stuck Terminating because {why}: {}; bring the kubelet back, or rerun with --force-delete-after DURATION to force-delete them",
            stuck_failed.len(),
            stuck_failed.join(", ")
        ));
    }
    if !blocked_dry.is_empty() {
        // kubectl retries these forever under server dry-run (the budget never moves); we stop
        // and report the node as not drainable right now.
        errors.push(format!(
            "server dry-run: evictions refused by a PodDisruptionBudget: {}",
            blocked_dry.join(", ")
        ));
    }
    match aggregate(&errors) {
        None => Ok(()),
        Some(err) => {
            shared.reporter.err(&format!(
                "There are pending pods in node \"{node}\" when an error occurred: {err}"
            ));
            for p in pending {
                shared.reporter.err(&p);
            }
            Err(errors)
        }
    }
}

#[cfg(test)]
mod lab_tests;
