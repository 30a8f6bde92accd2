//! `kubemaint etcd snapshot restore`.

use clap::Args;

use crate::global::GlobalArgs;

/// Arguments of `etcd snapshot restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot file.
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
}

/// Runs `etcd snapshot restore`.
pub fn run(_args: RestoreArgs, _global: &GlobalArgs) -> anyhow::Result<i32> {
    anyhow::bail!("etcd snapshot restore is being implemented")
}
