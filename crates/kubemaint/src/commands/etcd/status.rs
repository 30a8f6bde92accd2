//! `kubemaint etcd snapshot status`.

use clap::Args;

use crate::global::GlobalArgs;

/// Arguments of `etcd snapshot status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The snapshot file.
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
}

/// Runs `etcd snapshot status`.
pub fn run(_args: StatusArgs, _global: &GlobalArgs) -> anyhow::Result<i32> {
    anyhow::bail!("etcd snapshot status is being implemented")
}
