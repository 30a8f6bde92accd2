//! `kubemaint cordon` / `uncordon`.

use clap::Args;

use crate::global::GlobalArgs;

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
    #[arg(long = "dry-run", default_value = "none", value_parser = ["none", "client", "server"])]
    pub dry_run: String,
}

/// Cordons (`cordon = true`) or uncordons the selected nodes.
pub async fn run(_args: CordonArgs, _global: &GlobalArgs, _cordon: bool) -> anyhow::Result<i32> {
    anyhow::bail!("cordon/uncordon is being implemented (issue 3)")
}
