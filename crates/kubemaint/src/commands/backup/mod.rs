//! `kubemaint backup run|schedule|manifests|list|fetch|prune`: regular etcd backups, compressed, optionally
//! encrypted, to a local directory or an S3-compatible bucket, with retention.

pub mod fetch;
pub mod list;
pub mod manifests;
pub mod prune;
pub mod retention;
pub mod run;
pub mod schedule;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use kubemaint_backup::crypto::Decrypt;

use crate::exit::CodedError;
use crate::global::GlobalArgs;

/// Arguments of `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// Take a backup now: snapshot (SHA-256 checked), zstd, age, upload, manifest, retention.
    Run(Box<run::RunArgs>),
    /// Run backups on a cron schedule in the foreground (systemd, a Deployment), with metrics.
    Schedule(Box<schedule::ScheduleArgs>),
    /// Print a CronJob (or Deployment) + ServiceAccount + Secret template running backups
    /// inside a kubeadm cluster against its local etcd.
    Manifests(Box<manifests::ManifestsArgs>),
    /// List the backups in a destination.
    List(list::ListArgs),
    /// Download, decrypt, decompress and verify a backup into a snapshot file.
    Fetch(fetch::FetchArgs),
    /// Apply a retention policy to a destination (--dry-run shows what would go and why).
    Prune(prune::PruneArgs),
}

/// Runs a `backup` subcommand.
pub async fn run(args: BackupArgs, global: &GlobalArgs) -> anyhow::Result<i32> {
    match args.command {
        BackupCommand::Run(a) => run::run(*a, global).await,
        BackupCommand::Schedule(a) => schedule::run(*a, global).await,
        BackupCommand::Manifests(a) => manifests::run(*a, global).await,
        BackupCommand::List(a) => list::run(a, global).await,
        BackupCommand::Fetch(a) => fetch::run(a, global).await,
        BackupCommand::Prune(a) => prune::run(a, global).await,
    }
}

/// Keys that open encrypted backups.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Decryption")]
pub struct KeyArgs {
    /// age identity file (age-keygen output, AGE-SECRET-KEY-1...); repeatable.
    #[arg(long = "identity", short = 'i', value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// File whose first line is the passphrase the backup was encrypted with.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

impl KeyArgs {
    /// The keys, read from their files.
    pub fn load(&self) -> anyhow::Result<Decrypt> {
        Decrypt::from_args(&self.identities, self.passphrase_file.as_deref())
            .map_err(|e| CodedError::usage(e.to_string()))
    }
}

/// Opens a destination, turning a malformed one into a usage error.
pub fn open_store(dest: &str) -> anyhow::Result<Box<dyn kubemaint_backup::Store>> {
    open_store_with(dest, &kubemaint_backup::store::StoreOptions::default())
}

/// Opens a destination with these settings, turning a malformed one into a usage error.
pub fn open_store_with(
    dest: &str,
    options: &kubemaint_backup::store::StoreOptions,
) -> anyhow::Result<Box<dyn kubemaint_backup::Store>> {
    kubemaint_backup::store::open_with(dest, options).map_err(|e| match e {
        kubemaint_backup::StoreError::BadLocation { .. } => CodedError::usage(e.to_string()),
        other => anyhow::Error::new(other),
    })
}

/// Checks a backup ID given on the command line.
pub fn check_id(id: &str) -> anyhow::Result<()> {
    if kubemaint_backup::manifest::valid_id(id) {
        Ok(())
    } else {
        Err(CodedError::usage(format!(
            "{id:?} is not a backup ID (they look like etcd-20261204T164700Z; see `kubemaint backup list --from DEST`)"
        )))
    }
}

/// Human-readable bytes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
