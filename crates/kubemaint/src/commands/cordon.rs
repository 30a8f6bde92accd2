//! `kubemaint cordon` / `uncordon`: kubectl's cordon semantics (strategic-merge patch of
//! `spec.unschedulable`, no request when already in the wanted state, kubectl's output lines),
//! plus kubemaint's cordon-ownership annotations (see `kubemaint_core::drain::cordon`).

use clap::Args;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kubemaint_cluster::nodes::{self, CordonResult};
use kubemaint_core::drain::config::{self, NodeChoice};
use kubemaint_core::drain::cordon::DryRun;

use crate::exit::{self, CodedError};
use crate::global::GlobalArgs;
use crate::kube_client::{self, Retry};
use crate::output;

/// Arguments of `cordon` and `uncordon`.
#[derive(Debug, Args)]
pub struct CordonArgs {
    /// Node names.
    #[arg(value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Select nodes by label instead of by name (e.g. `-l node-role.kubernetes.io/worker`).
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// `none` (default) changes the node; `client` or `server` only shows what would change.
    #[arg(long = "dry-run", value_enum, default_value_t = DryRunArg::None)]
    pub dry_run: DryRunArg,
}

/// kubectl's `--dry-run` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DryRunArg {
    /// Change the cluster.
    None,
    /// Send no request that changes anything; print what would be done.
    Client,
    /// Send the requests with `dryRun=All`: the server checks them and persists nothing.
    Server,
}

impl DryRunArg {
    /// The strategy (`None` for a real run).
    pub fn strategy(self) -> Option<DryRun> {
        match self {
            DryRunArg::None => None,
            DryRunArg::Client => Some(DryRun::Client),
            DryRunArg::Server => Some(DryRun::Server),
        }
    }
}

/// Checks node names xor a selector (a usage error otherwise), before any request.
pub fn node_choice(names: Vec<String>, selector: Option<String>) -> anyhow::Result<NodeChoice> {
    config::node_choice(names, selector).map_err(|e| CodedError::usage(e.to_string()))
}

/// Prints kubectl's line for a cordon step: stdout (stderr when stdout carries a JSON/YAML
/// document), errors on stderr.
pub fn print_cordon(r: &CordonResult, lines_to_stderr: bool) {
    match r.line() {
        Ok(l) if lines_to_stderr => eprintln!("{l}"),
        Ok(l) => println!("{l}"),
        Err(e) => eprintln!("{e}"),
    }
}

/// Cordons (`cordon = true`) or uncordons the selected nodes.
pub async fn run(args: CordonArgs, global: &GlobalArgs, cordon: bool) -> anyhow::Result<i32> {
    let choice = node_choice(args.nodes, args.selector)?;
    let dry_run = args.dry_run.strategy();
    let client = kube_client::client(global, Retry::Default).await?;
    let nodes_api: Api<Node> = Api::all(client);
    let nodes = nodes::resolve(&nodes_api, &choice, 500).await?;
    if nodes.is_empty() {
        eprintln!("No resources found");
    }
    let machine = global.output.is_machine();
    let by = if cordon { "kubemaint/cordon" } else { "" };
    let mut results = Vec::new();
    for node in &nodes {
        let r = nodes::apply(&nodes_api, node, cordon, by, dry_run).await;
        print_cordon(&r, machine);
        results.push(r);
    }
    output::print_machine(global.output, &results)?;
    Ok(if results.iter().any(|r| r.error.is_some()) {
        exit::PARTIAL
    } else {
        exit::SUCCESS
    })
}
