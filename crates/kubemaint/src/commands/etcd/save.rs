//! `kubemaint etcd snapshot save`.

use clap::Args;

use crate::global::GlobalArgs;

/// Arguments of `etcd snapshot save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// The snapshot file.
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
}

/// Runs `etcd snapshot save`.
pub async fn run(_args: SaveArgs, _global: &GlobalArgs) -> anyhow::Result<i32> {
    anyhow::bail!("etcd snapshot save is being implemented")
}
