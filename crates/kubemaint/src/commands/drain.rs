//! `kubemaint drain`.

use clap::Args;

use crate::global::GlobalArgs;

/// Arguments of `drain`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// Node names.
    #[arg(value_name = "NODE")]
    pub nodes: Vec<String>,
}

/// Drains the selected nodes.
pub async fn run(_args: DrainArgs, _global: &GlobalArgs) -> anyhow::Result<i32> {
    anyhow::bail!("drain is being implemented (issue 3)")
}
