//! `kubemaint etcd snapshot verify`.

use clap::Args;

use crate::global::GlobalArgs;

/// Arguments of `etcd snapshot verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The snapshot file.
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
}

/// Runs `etcd snapshot verify`.
pub fn run(_args: VerifyArgs, _global: &GlobalArgs) -> anyhow::Result<i32> {
    anyhow::bail!("etcd snapshot verify is being implemented")
}
