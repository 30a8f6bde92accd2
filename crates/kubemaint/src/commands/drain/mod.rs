//! `kubemaint drain`: kubectl's drain (same flags, filters, messages and per-node flow), with a
//! preflight plan before anything changes, named PDB blockers, watch-based waiting, bounded
//! concurrency, UID preconditions, cordon bookkeeping and a JSON report.

pub(crate) mod cluster;
mod evict;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kubemaint_core::drain::config::{self, DrainConfig};
use kubemaint_core::drain::cordon::{AutoUncordon, DryRun, auto_uncordon};
use kubemaint_core::drain::eviction::{RemovalMethod, removal_method};
use kubemaint_core::drain::filters::{FilterOptions, aggregate};
use kubemaint_core::drain::plan::{
    ClusterSnapshot, DrainOptions, DrainPlan, NodeTarget, NodeVerdict, PodAction,
    closing_error_lines, drained_line, node_failed_line, plan_drain,
};
use kubemaint_core::drain::stuck::StuckPolicy;
use kubemaint_core::duration;
use serde::Serialize;
use tokio::time::Instant;

use self::evict::{PodOutcome, PodResult, Remover, Tracker};
use super::cordon::{self as cordon_cmd, CordonResult, DryRunArg, FIELD_MANAGER};
use crate::exit::{self, CodedError};
use crate::global::GlobalArgs;
use crate::kube_client::{self, Retry};
use crate::output;

/// Arguments of `drain` (kubectl's flags and defaults, plus kubemaint's own).
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// Node names.
    #[arg(value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Select nodes by label instead of by name.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Continue even if there are pods that do not declare a controller (and orphaned DaemonSet pods).
    #[arg(long)]
    pub force: bool,
    /// Ignore DaemonSet-managed pods.
    #[arg(long = "ignore-daemonsets")]
    pub ignore_daemonsets: bool,
    /// Continue even if there are pods using emptyDir (local data that will be deleted).
    #[arg(long = "delete-emptydir-data")]
    pub delete_emptydir_data: bool,
    /// Delete pods instead of evicting them: bypasses PodDisruptionBudgets.
    #[arg(long = "disable-eviction")]
    pub disable_eviction: bool,
    /// Seconds given to each pod to terminate; negative uses the pod's own value.
    #[arg(long = "grace-period", default_value_t = -1, allow_hyphen_values = true)]
    pub grace_period: i64,
    /// How long to wait per node before giving up (e.g. 90s, 5m); 0 waits forever.
    #[arg(long, default_value = "0s", value_parser = duration::parse)]
    pub timeout: Duration,
    /// Only consider pods matching this label selector.
    #[arg(long = "pod-selector")]
    pub pod_selector: Option<String>,
    /// Skip (and stop waiting for) pods whose DeletionTimestamp is older than N seconds.
    #[arg(long = "skip-wait-for-delete-timeout", default_value_t = 0)]
    pub skip_wait_for_delete_timeout: i64,
    /// List page size; 0 disables paging.
    #[arg(long = "chunk-size", default_value_t = 500)]
    pub chunk_size: u32,
    /// `none`, `client` (plan only, no request that changes anything) or `server` (server dry-run).
    #[arg(long = "dry-run", value_enum, default_value_t = DryRunArg::None)]
    pub dry_run: DryRunArg,
    /// At most this many evictions in flight per node (kubectl: unbounded).
    #[arg(long = "max-concurrent-evictions", default_value_t = 32)]
    pub max_concurrent_evictions: usize,
    /// Longest wait between retries of a PDB-blocked eviction when no PDB change arrives first.
    #[arg(long = "eviction-retry-delay", default_value = "5s", value_parser = duration::parse)]
    pub eviction_retry_delay: Duration,
    /// Force-delete (grace 0, UID precondition) pods stuck Terminating this long past their grace
    /// period on a NotReady node (e.g. 2m). Without it such pods are reported and the node fails
    /// at --timeout. Only for nodes that are really down: a partitioned node may still run them.
    #[arg(long = "force-delete-after", value_parser = duration::parse)]
    pub force_delete_after: Option<Duration>,
    /// Uncordon a node whose drain failed, if kubemaint cordoned it.
    #[arg(long = "uncordon-on-failure")]
    pub uncordon_on_failure: bool,
}

impl DrainArgs {
    /// Checks every flag and resolves them into the drain's configuration; runs before any
    /// request, so a bad flag is a usage error with nothing sent.
    pub fn resolve(self) -> anyhow::Result<DrainConfig> {
        let usage = |e: config::ConfigError| CodedError::usage(e.to_string());
        Ok(DrainConfig {
            nodes: cordon_cmd::node_choice(self.nodes, self.selector)?,
            filters: FilterOptions {
                force: self.force,
                ignore_daemonsets: self.ignore_daemonsets,
                delete_emptydir_data: self.delete_emptydir_data,
                skip_wait_for_delete_timeout_seconds: self.skip_wait_for_delete_timeout,
            },
            disable_eviction: self.disable_eviction,
            grace_period_seconds: self.grace_period,
            timeout: config::timeout(self.timeout),
            pod_selector: self.pod_selector.filter(|s| !s.is_empty()),
            chunk_size: self.chunk_size,
            dry_run: self.dry_run.strategy(),
            max_concurrent_evictions: config::concurrency(self.max_concurrent_evictions)
                .map_err(usage)?,
            eviction_retry_delay: config::retry_delay(self.eviction_retry_delay).map_err(usage)?,
            stuck: match self.force_delete_after {
                Some(d) => StuckPolicy::ForceDeleteAfter(d),
                None => StuckPolicy::Fail,
            },
            uncordon_on_failure: self.uncordon_on_failure,
        })
    }
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
#[derive(Debug, Serialize)]
pub struct NodeOutcome {
    /// Node name.
    pub node: String,
    /// How it ended.
    pub status: NodeStatus,
    /// kubectl's error text, if failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Cordon step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cordon: Option<CordonResult>,
    /// Whether the node is left cordoned.
    pub left_cordoned: bool,
    /// Per-pod outcomes.
    pub pods: Vec<PodOutcome>,
    /// Seconds spent on this node.
    pub seconds: f64,
}

/// The `-o json` report.
#[derive(Debug, Serialize)]
pub struct DrainReport {
    /// The preflight plan.
    pub plan: DrainPlan,
    /// What happened.
    pub nodes: Vec<NodeOutcome>,
    /// Nodes left pending.
    pub pending: Vec<String>,
}

fn print_preflight(plan: &DrainPlan) {
    for n in &plan.nodes {
        if n.verdict == NodeVerdict::Ready {
            continue;
        }
        let verdict = match n.verdict {
            NodeVerdict::FilterErrors => {
                "kubectl's pod filters refuse this node (see the errors below)"
            }
            NodeVerdict::PdbDeadlock => {
                "the drain cannot finish: a PodDisruptionBudget will never allow the remaining evictions (use --timeout, or fix the budget/capacity first)"
            }
            NodeVerdict::WaitsOnPdb => "evictions will wait for PodDisruptionBudgets",
            NodeVerdict::InsufficientCapacity => {
                "some evicted pods fit on no remaining node and will stay Pending"
            }
            NodeVerdict::Ready => "",
        };
        eprintln!("preflight: node/{}: {verdict}", n.node);
        if n.verdict == NodeVerdict::FilterErrors {
            continue;
        }
        for b in &n.pdb_blockers {
            // Paced budgets are normal operation, not a problem worth a line.
            if b.kind == kubemaint_core::drain::pdb::BlockerKind::Paced {
                tracing::info!("node/{}: {}", n.node, b.explanation);
                continue;
            }
            let pods: Vec<String> = b.pods.iter().map(ToString::to_string).collect();
            eprintln!(
                "preflight: node/{}: {:?} [{}]: {}",
                n.node,
                b.kind,
                pods.join(", "),
                b.explanation
            );
        }
        for p in &n.pods {
            if let Some(kubemaint_core::drain::capacity::Placement::NoFit { reason }) = &p.placement
            {
                eprintln!(
                    "preflight: node/{}: {} will not be rescheduled: {reason}",
                    n.node, p.pod
                );
            }
        }
    }
}

/// Drains the selected nodes.
pub async fn run(args: DrainArgs, global: &GlobalArgs) -> anyhow::Result<i32> {
    let args = args.resolve()?;
    let dry_run = args.dry_run;
    let machine = global.output.is_machine();
    let client = kube_client::client(global, Retry::Default).await?;
    let evict_client = kube_client::client(global, Retry::Off).await?;
    let nodes_api: Api<Node> = Api::all(client.clone());
    let nodes = cordon_cmd::resolve_nodes(&nodes_api, &args.nodes, args.chunk_size).await?;
    if nodes.is_empty() {
        eprintln!("No resources found");
        return Ok(exit::SUCCESS);
    }

    // Preflight: everything the planner needs, read before anything changes.
    let policy = cluster::discover(&client).await?;
    let method = removal_method(args.disable_eviction, policy.eviction);
    let filters = args.filters.clone();
    let options = DrainOptions {
        filters: filters.clone(),
        method,
        dry_run,
    };
    let (all_nodes, all_pods) = cluster::nodes_and_pods(&client, args.chunk_size).await?;
    let (pdbs, pdb_semantics) = cluster::list_pdbs(&client, policy.pdb_version).await?;
    let mut snapshot = ClusterSnapshot {
        nodes: all_nodes,
        pods: all_pods,
        pdbs,
        pdb_semantics,
        daemonsets: BTreeMap::new(),
        volumes: cluster::volume_affinity(&client).await,
    };
    let mut targets = Vec::new();
    for n in &nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        let pods = cluster::node_pods(
            &client,
            &name,
            args.pod_selector.as_deref(),
            args.chunk_size,
        )
        .await?;
        cluster::daemonset_lookups(&client, &pods, &filters, &mut snapshot.daemonsets).await;
        targets.push(NodeTarget { name, pods });
    }
    let plan = plan_drain(&snapshot, &targets, &options, jiff::Timestamp::now());
    if !machine {
        print_preflight(&plan);
    }

    let say = |line: &str| {
        if machine {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };

    // kubectl cordons every node first; a failed cordon is reported but does not stop it.
    let mut cordons = BTreeMap::new();
    for n in &nodes {
        let r = cordon_cmd::apply(&nodes_api, n, true, "kubemaint/drain", dry_run, machine).await;
        cordons.insert(r.node.clone(), r);
    }

    let pdb_watch = (dry_run.is_none() && matches!(method, RemovalMethod::Evict(_)))
        .then(|| evict::PdbGate::start(&client, policy.pdb_version));
    let mut outcomes = Vec::new();
    let mut pending = Vec::new();
    let mut failed_errors = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let started = Instant::now();
        let node = &target.name;
        // kubectl lists the node's pods when it gets to it; so do we (the preflight list may be
        // stale for later nodes).
        let node_plan = if i == 0 {
            plan.nodes[0].clone()
        } else {
            let pods =
                cluster::node_pods(&client, node, args.pod_selector.as_deref(), args.chunk_size)
                    .await?;
            cluster::daemonset_lookups(&client, &pods, &filters, &mut snapshot.daemonsets).await;
            let t = NodeTarget {
                name: node.clone(),
                pods,
            };
            plan_drain(
                &snapshot,
                std::slice::from_ref(&t),
                &options,
                jiff::Timestamp::now(),
            )
            .nodes
            .remove(0)
        };
        let mut outcome = NodeOutcome {
            node: node.clone(),
            status: NodeStatus::Drained,
            error: None,
            cordon: cordons.get(node).cloned(),
            left_cordoned: dry_run.is_none(),
            pods: Vec::new(),
            seconds: 0.0,
        };
        let result: Result<(), Vec<String>> = if !node_plan.errors.is_empty() {
            Err(node_plan.errors.clone())
        } else {
            if !node_plan.warnings.is_empty() {
                eprintln!("Warning: {}", node_plan.warnings);
            }
            let pods: Vec<_> = node_plan
                .pods
                .iter()
                .filter(|p| matches!(p.action, PodAction::Evict | PodAction::Delete))
                .filter_map(|p| {
                    target
                        .pods
                        .iter()
                        .find(|tp| kubemaint_core::drain::PodRef::of(tp) == p.pod)
                        .cloned()
                        .or_else(|| {
                            snapshot
                                .pods
                                .iter()
                                .find(|tp| kubemaint_core::drain::PodRef::of(tp) == p.pod)
                                .cloned()
                        })
                })
                .collect();
            if dry_run == Some(DryRun::Client) {
                for p in &node_plan.pods {
                    if matches!(p.action, PodAction::Evict | PodAction::Delete) {
                        say(&format!("evicting pod {} (dry run)", p.pod));
                    }
                }
                outcome.status = NodeStatus::Planned;
                Ok(())
            } else {
                // Pods whose budget allowed a disruption at planning time take their first
                // attempt through the budget watch, like a retry: with a budget of 1, the pods
                // behind the first do not each draw a refused request first.
                let first_gate: BTreeMap<_, _> = node_plan
                    .pods
                    .iter()
                    .filter_map(|p| match &p.pdb {
                        Some(kubemaint_core::drain::pdb::PodPdbVerdict::Allowed {
                            pdb, ..
                        }) => Some((p.pod.clone(), pdb.clone())),
                        _ => None,
                    })
                    .collect();
                drain_pods(
                    &evict_client,
                    &client,
                    node,
                    (pods, first_gate),
                    &args,
                    method,
                    dry_run,
                    pdb_watch.as_ref().map(|(gate, _)| gate.clone()),
                    machine,
                    &mut outcome,
                )
                .await
            }
        };
        match result {
            Ok(()) => say(&drained_line(node, dry_run)),
            Err(errs) => {
                eprintln!("{}", node_failed_line(node, &errs));
                outcome.status = NodeStatus::Failed;
                outcome.error = aggregate(&errs);
                failed_errors.push(errs);
                pending.push(node.clone());
                if dry_run.is_none() {
                    outcome.left_cordoned =
                        leave_or_undo_cordon(&nodes_api, node, args.uncordon_on_failure).await;
                }
            }
        }
        outcome.seconds = started.elapsed().as_secs_f64();
        outcomes.push(outcome);
    }
    if let Some((_, h)) = pdb_watch {
        h.abort();
    }
    if !pending.is_empty() {
        eprintln!("There are pending nodes to be drained:");
        for n in &pending {
            eprintln!(" {n}");
        }
    }
    // kubectl ends by printing the failed nodes' errors once more.
    for line in closing_error_lines(&failed_errors) {
        eprintln!("{line}");
    }
    let report = DrainReport {
        plan,
        nodes: outcomes,
        pending: pending.clone(),
    };
    output::print_machine(global.output, &report)?;
    Ok(if pending.is_empty() {
        exit::SUCCESS
    } else if pending.len() == nodes.len() {
        exit::FAILURE
    } else {
        exit::PARTIAL
    })
}

/// After a failed drain: say plainly that the node stays cordoned and how to undo it, or undo
/// it with `--uncordon-on-failure` when kubemaint made the cordon. Returns whether it is left
/// cordoned.
async fn leave_or_undo_cordon(nodes_api: &Api<Node>, node: &str, undo: bool) -> bool {
    let current = match nodes_api.get(node).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("warning: cannot re-read node {node} to report its cordon: {e}");
            return true;
        }
    };
    match auto_uncordon(&current, FIELD_MANAGER) {
        AutoUncordon::NotCordoned => false,
        AutoUncordon::LeaveCordoned { reason } => {
            eprintln!("{reason}");
            true
        }
        AutoUncordon::Uncordon { patch } if undo => {
            let pp = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..Default::default()
            };
            match nodes_api.patch(node, &pp, &Patch::Strategic(&patch)).await {
                Ok(_) => {
                    eprintln!("node/{node} uncordoned (--uncordon-on-failure)");
                    false
                }
                Err(e) => {
                    eprintln!(
                        "error: unable to uncordon node \"{node}\": {e}; run `kubemaint uncordon {node}`"
                    );
                    true
                }
            }
        }
        AutoUncordon::Uncordon { .. } => {
            eprintln!(
                "node/{node} is left cordoned by kubemaint; run `kubemaint uncordon {node}` when done, or pass --uncordon-on-failure"
            );
            true
        }
    }
}

/// The live view's message: what holds the drain up right now.
fn live_blocker(
    blocked: &Mutex<BTreeMap<kubemaint_core::drain::PodRef, evict::Blocked>>,
    stuck: &Mutex<
        BTreeMap<kubemaint_core::drain::PodRef, kubemaint_core::drain::stuck::StuckTerminating>,
    >,
) -> String {
    let s = stuck.lock().expect("stuck map");
    if let Some((pod, st)) = s.iter().next() {
        return format!(
            "{} stuck Terminating ({pod} {}s): {}",
            s.len(),
            st.stuck_seconds,
            st.node.describe()
        );
    }
    let b = blocked.lock().expect("progress map");
    match b.iter().next() {
        Some((pod, bl)) => {
            // Short enough for one terminal line: the budget's name and its numbers.
            let (who, msg) = bl.what.split_once(": ").unwrap_or(("", bl.what.as_str()));
            let numbers = msg.find("needs ").map_or(msg, |i| &msg[i..]);
            format!(
                "{} waiting on {who}: {numbers} (longest: {pod}, {}s)",
                b.len(),
                bl.since.elapsed().as_secs()
            )
        }
        None => String::new(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn drain_pods(
    evict_client: &kube::Client,
    client: &kube::Client,
    node: &str,
    (pods, first_gate): (
        Vec<k8s_openapi::api::core::v1::Pod>,
        BTreeMap<kubemaint_core::drain::PodRef, String>,
    ),
    args: &DrainConfig,
    method: RemovalMethod,
    dry_run: Option<DryRun>,
    pdb_gate: Option<evict::PdbGate>,
    machine: bool,
    outcome: &mut NodeOutcome,
) -> Result<(), Vec<String>> {
    if pods.is_empty() {
        return Ok(());
    }
    let (tracker, watch_handle) = Tracker::start(client, node)
        .await
        .map_err(|e| vec![e.to_string()])?;
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let blocked = Arc::new(Mutex::new(BTreeMap::new()));
    let stuck = Arc::new(Mutex::new(BTreeMap::new()));
    let remover = Remover {
        client: evict_client.clone(),
        method,
        grace_period: args.grace_period_seconds,
        dry_run,
        retry_delay: args.eviction_retry_delay,
        deadline,
        timeout_text: duration::format(args.timeout.unwrap_or_default()),
        skip_wait_seconds: args.filters.skip_wait_for_delete_timeout_seconds,
        pdb_gate: pdb_gate.unwrap_or_else(evict::PdbGate::inert),
        tracker,
        blocked: blocked.clone(),
        lines_to_stderr: machine,
        stuck_policy: args.stuck,
        stuck: stuck.clone(),
        bar: None,
        first_gate: Arc::new(first_gate),
    };
    let total = pods.len();
    // On a terminal: a live view (pods left, the current blocker, elapsed). Otherwise plain
    // progress lines every 10 s (scripts and tests read those).
    let bar = (!machine && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} node/{prefix} {pos}/{len} removed [{bar:20}] {elapsed} {wide_msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(node.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let remover = Remover {
        bar: bar.clone(),
        ..remover
    };
    let progress = {
        let blocked = blocked.clone();
        let stuck = stuck.clone();
        let node = node.to_owned();
        let bar = bar.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            if let Some(bar) = bar {
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                loop {
                    tick.tick().await;
                    bar.set_message(live_blocker(&blocked, &stuck));
                }
            }
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            tick.tick().await;
            loop {
                tick.tick().await;
                let b = blocked.lock().expect("progress map").clone();
                if let Some((pod, bl)) = b.iter().next() {
                    eprintln!(
                        "progress: node/{node}: {} of {total} pods blocked after {}s; {pod} waiting {}s on {}",
                        b.len(),
                        start.elapsed().as_secs(),
                        bl.since.elapsed().as_secs(),
                        bl.what
                    );
                }
                let s = stuck.lock().expect("stuck map").clone();
                if !s.is_empty() {
                    let names: Vec<String> = s.keys().map(ToString::to_string).collect();
                    let (_, first) = s.iter().next().expect("non-empty");
                    eprintln!(
                        "progress: node/{node}: {} of {total} pods stuck Terminating after {}s ({}): {}",
                        s.len(),
                        start.elapsed().as_secs(),
                        names.join(", "),
                        first.node.describe()
                    );
                }
            }
        })
    };
    let results: Vec<PodOutcome> = futures::stream::iter(pods)
        .map(|p| {
            let r = remover.clone();
            async move {
                let o = r.remove(p).await;
                if let Some(bar) = &r.bar {
                    bar.inc(1);
                }
                o
            }
        })
        .buffer_unordered(args.max_concurrent_evictions.get())
        .collect()
        .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    progress.abort();
    watch_handle.abort();
    let errors: Vec<String> = results
        .iter()
        .filter(|r| r.result == PodResult::Failed)
        .filter_map(|r| r.error.clone())
        .collect();
    let blocked_dry: Vec<String> = results
        .iter()
        .filter(|r| r.result == PodResult::DryRunBlocked)
        .map(|r| format!("{} ({})", r.pod, r.blocked_by.clone().unwrap_or_default()))
        .collect();
    let pending: Vec<String> = results
        .iter()
        .filter(|r| r.result == PodResult::Failed)
        .map(|r| format!("pod/{}", r.pod.name))
        .collect();
    let stuck_failed: Vec<String> = results
        .iter()
        .filter(|r| r.result == PodResult::Failed)
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
    let mut errors = errors;
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
            eprintln!("There are pending pods in node \"{node}\" when an error occurred: {err}");
            for p in pending {
                eprintln!("{p}");
            }
            Err(errors)
        }
    }
}
