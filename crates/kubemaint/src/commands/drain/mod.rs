//! `kubemaint drain`: kubectl's drain (same flags, filters, messages and per-node flow), with a
//! preflight plan before anything changes, named PDB blockers, watch-based waiting, bounded
//! concurrency, UID preconditions, cordon bookkeeping and a JSON report.

pub mod args;
mod progress;

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use kubemaint_cluster::drain::{self as engine, Clients, DrainError, NodeStatus};
use kubemaint_core::drain::config::{self, DrainConfig, NodeOrder};
use kubemaint_core::drain::plan::closing_error_lines;
use kubemaint_core::drain::stuck::StuckPolicy;
use kubemaint_core::duration;

use self::args::PodArgs;
use self::progress::CliReporter;
use super::cordon::{self as cordon_cmd, DryRunArg};
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
    /// How long to wait per node before giving up (e.g. 90s, 5m); 0 waits forever.
    #[arg(long, default_value = "0s", value_parser = duration::parse)]
    pub timeout: Duration,
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
    /// Drain up to N nodes at once (1: one after another, as kubectl). All selected nodes are
    /// cordoned first; one PodDisruptionBudget gate serves them all, so two nodes never spend
    /// the same allowed disruption.
    #[arg(long = "max-parallel-nodes", default_value_t = 1)]
    pub max_parallel_nodes: usize,
    /// Order of the nodes: `given` (as named or listed, kubectl's), `name`, or `least-blocked`
    /// (fewest blocking budgets, then least work first). Default: `given` for one node at a
    /// time, `least-blocked` with --max-parallel-nodes above 1.
    #[arg(long, value_enum)]
    pub order: Option<OrderArg>,
    /// How each pod is treated (kubectl's flags, shared with `upgrade apply`; last, under
    /// its own help heading).
    #[command(flatten)]
    pub pods: PodArgs,
}

/// `--order` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OrderArg {
    /// As named on the command line, or as the API lists them for a selector.
    Given,
    /// By node name.
    Name,
    /// Fewest blocking budgets, then fewest pods to remove, first.
    LeastBlocked,
}

impl DrainArgs {
    /// Checks every flag and resolves them into the drain's configuration; runs before any
    /// request, so a bad flag is a usage error with nothing sent.
    pub fn resolve(self) -> anyhow::Result<DrainConfig> {
        let usage = |e: config::ConfigError| CodedError::usage(e.to_string());
        let pods = self.pods.resolve(args::DRAIN_DEFAULTS);
        Ok(DrainConfig {
            nodes: cordon_cmd::node_choice(self.nodes, self.selector)?,
            filters: pods.filters,
            disable_eviction: pods.disable_eviction,
            grace_period_seconds: pods.grace_period_seconds,
            timeout: config::timeout(self.timeout),
            pod_selector: pods.pod_selector,
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
            max_parallel_nodes: config::parallel_nodes(self.max_parallel_nodes).map_err(usage)?,
            order: match self.order {
                Some(OrderArg::Given) => NodeOrder::Given,
                Some(OrderArg::Name) => NodeOrder::Name,
                Some(OrderArg::LeastBlocked) => NodeOrder::LeastBlocked,
                None if self.max_parallel_nodes > 1 => NodeOrder::LeastBlocked,
                None => NodeOrder::Given,
            },
        })
    }
}

/// Drains the selected nodes.
pub async fn run(args: DrainArgs, global: &GlobalArgs) -> anyhow::Result<i32> {
    let config = args.resolve()?;
    let machine = global.output.is_machine();
    let clients = Clients {
        client: kube_client::client(global, Retry::Default).await?,
        evict: kube_client::client(global, Retry::Off).await?,
    };
    let reporter = Arc::new(CliReporter::new(machine));
    let report = match engine::drain(clients, config, reporter.clone()).await {
        Ok(Some(report)) => report,
        Ok(None) => {
            eprintln!("No resources found");
            return Ok(exit::SUCCESS);
        }
        Err(DrainError::Refused { requested, pods }) => {
            eprintln!(
                "error: refusing to drain {requested} nodes at once: {} pod(s) fit on no node that stays, and would stay Pending together:",
                pods.len()
            );
            for (pod, why) in &pods {
                eprintln!("  {pod}: {why}");
            }
            eprintln!(
                "add capacity, or rerun with --max-parallel-nodes 1 to drain one node at a time as kubectl does; nothing was changed"
            );
            return Ok(exit::FAILURE);
        }
        Err(DrainError::Cluster(e)) => return Err(e.into()),
    };
    reporter.finish();
    let selected = report.nodes.len();
    if !report.pending.is_empty() {
        eprintln!("There are pending nodes to be drained:");
        for n in &report.pending {
            eprintln!(" {n}");
        }
    }
    // kubectl ends by printing the failed nodes' errors once more.
    let failed: Vec<Vec<String>> = report
        .nodes
        .iter()
        .filter(|o| o.status == NodeStatus::Failed)
        .map(|o| o.errors.clone())
        .collect();
    for line in closing_error_lines(&failed) {
        eprintln!("{line}");
    }
    if !machine {
        progress::print_summary(&report);
    }
    output::print_machine(global.output, &report)?;
    Ok(if report.pending.is_empty() {
        exit::SUCCESS
    } else if report.pending.len() == selected {
        exit::FAILURE
    } else {
        exit::PARTIAL
    })
}
