//! `kubemaint cordon` / `uncordon`: kubectl's cordon semantics (strategic-merge patch of
//! `spec.unschedulable`, no request when already in the wanted state, kubectl's output lines),
//! plus kubemaint's cordon-ownership annotations (see `kubemaint_core::drain::cordon`).

use anyhow::Context;
use clap::Args;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kubemaint_core::drain::config::{self, NodeChoice};
use kubemaint_core::drain::cordon::{self, CordonDecision, DryRun};
use serde::Serialize;

use crate::exit::{self, CodedError};
use crate::global::GlobalArgs;
use crate::kube_client::{self, Retry};
use crate::output;

/// Field manager recorded on kubemaint's writes.
pub const FIELD_MANAGER: &str = "kubemaint";

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

/// Resolves node names or a label selector into Node objects, as kubectl's resource builder
/// does: a missing named node fails everything before any change.
pub async fn resolve_nodes(
    nodes_api: &Api<Node>,
    choice: &NodeChoice,
    chunk_size: u32,
) -> anyhow::Result<Vec<Node>> {
    let names = match choice {
        NodeChoice::Names(names) => names.as_slice(),
        NodeChoice::Selector(_) => &[],
    };
    if let NodeChoice::Selector(sel) = choice {
        let mut out = Vec::new();
        let mut lp = ListParams::default().labels(sel);
        if chunk_size > 0 {
            lp = lp.limit(chunk_size);
        }
        loop {
            let page = nodes_api
                .list(&lp)
                .await
                .with_context(|| format!("cannot list nodes with selector {sel:?}"))?;
            out.extend(page.items);
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => lp = lp.continue_token(&c),
                None => break,
            }
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        match nodes_api.get_opt(name).await {
            Ok(Some(n)) => out.push(n),
            Ok(None) => missing.push(format!("nodes \"{name}\" not found")),
            Err(e) => return Err(e).with_context(|| format!("cannot get node {name}")),
        }
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "{}: check the node names with `kubectl get nodes`",
            missing.join(", ")
        );
    }
    Ok(out)
}

/// kubectl's verb for a cordon or uncordon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CordonVerb {
    /// `cordoned`.
    #[serde(rename = "cordoned")]
    Cordoned,
    /// `already cordoned`.
    #[serde(rename = "already cordoned")]
    AlreadyCordoned,
    /// `uncordoned`.
    #[serde(rename = "uncordoned")]
    Uncordoned,
    /// `already uncordoned`.
    #[serde(rename = "already uncordoned")]
    AlreadyUncordoned,
}

impl CordonVerb {
    fn of(desired: bool, already: bool) -> Self {
        match (desired, already) {
            (true, false) => CordonVerb::Cordoned,
            (true, true) => CordonVerb::AlreadyCordoned,
            (false, false) => CordonVerb::Uncordoned,
            (false, true) => CordonVerb::AlreadyUncordoned,
        }
    }
}

/// Result of cordoning or uncordoning one node (for `-o json`).
#[derive(Debug, Clone, Serialize)]
pub struct CordonResult {
    /// Node name.
    pub node: String,
    /// kubectl's verb.
    pub result: CordonVerb,
    /// The dry-run strategy the line was printed under, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<DryRun>,
    /// Whether a request was sent (or would be, in client dry-run).
    pub changed: bool,
    /// The error, if the patch failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Applies the cordon (`desired = true`) or uncordon decision to one node and returns the
/// result; prints kubectl's line on stdout (on stderr when `lines_to_stderr`, i.e. when stdout
/// carries a JSON/YAML document) and errors on stderr.
pub async fn apply(
    nodes_api: &Api<Node>,
    node: &Node,
    desired: bool,
    by: &str,
    dry_run: Option<DryRun>,
    lines_to_stderr: bool,
) -> CordonResult {
    let name = node.metadata.name.clone().unwrap_or_default();
    let decision = if desired {
        cordon::cordon(node, by, jiff::Timestamp::now())
    } else {
        cordon::uncordon(node)
    };
    let (already, patch) = match decision {
        CordonDecision::Already => (true, None),
        CordonDecision::Patch { patch } => (false, Some(patch)),
        CordonDecision::CleanupAnnotations { patch } => (true, Some(patch)),
    };
    let mut error = None;
    if let Some(patch) = patch.as_ref()
        && dry_run != Some(DryRun::Client)
    {
        let mut pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        pp.dry_run = dry_run == Some(DryRun::Server);
        if let Err(e) = nodes_api.patch(&name, &pp, &Patch::Strategic(patch)).await {
            error = Some(e.to_string());
        }
    }
    let verb = cordon::output_line(&name, desired, already, dry_run);
    {
        match &error {
            None if lines_to_stderr => eprintln!("{verb}"),
            None => println!("{verb}"),
            Some(e) => eprintln!(
                "error: unable to {} node \"{name}\": {e}",
                if desired { "cordon" } else { "uncordon" }
            ),
        }
    }
    CordonResult {
        node: name,
        result: CordonVerb::of(desired, already),
        dry_run,
        changed: !already,
        error,
    }
}

/// Cordons (`cordon = true`) or uncordons the selected nodes.
pub async fn run(args: CordonArgs, global: &GlobalArgs, cordon: bool) -> anyhow::Result<i32> {
    let choice = node_choice(args.nodes, args.selector)?;
    let dry_run = args.dry_run.strategy();
    let client = kube_client::client(global, Retry::Default).await?;
    let nodes_api: Api<Node> = Api::all(client);
    let nodes = resolve_nodes(&nodes_api, &choice, 500).await?;
    if nodes.is_empty() {
        eprintln!("No resources found");
    }
    let machine = global.output.is_machine();
    let by = if cordon { "kubemaint/cordon" } else { "" };
    let mut results = Vec::new();
    for node in &nodes {
        results.push(apply(&nodes_api, node, cordon, by, dry_run, machine).await);
    }
    output::print_machine(global.output, &results)?;
    Ok(if results.iter().any(|r| r.error.is_some()) {
        exit::PARTIAL
    } else {
        exit::SUCCESS
    })
}
