//! `kubemaint etcd snapshot save|status|verify|restore`.

pub mod connection;
pub mod restore;
pub mod save;
pub mod status;
pub mod verify;

use clap::{Args, Subcommand};

use crate::global::GlobalArgs;

/// Arguments of `etcd`.
#[derive(Debug, Args)]
pub struct EtcdArgs {
    #[command(subcommand)]
    command: EtcdCommand,
}

#[derive(Debug, Subcommand)]
enum EtcdCommand {
    /// Work with snapshot files.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Stream a snapshot from a live member to FILE, checking its SHA-256 (as `etcdctl snapshot save`).
    Save(save::SaveArgs),
    /// Show a snapshot's hash, revision, keys, size and version (as `etcdutl snapshot status`), and more.
    Status(status::StatusArgs),
    /// Check a snapshot's SHA-256 trailer and bbolt structure; exit 0 if valid, 1 if not.
    Verify(verify::VerifyArgs),
    /// Turn a snapshot into a data dir real etcd boots from (as `etcdutl snapshot restore`).
    Restore(restore::RestoreArgs),
}

/// Runs an `etcd` subcommand.
pub async fn run(args: EtcdArgs, global: &GlobalArgs) -> anyhow::Result<i32> {
    match args.command {
        EtcdCommand::Snapshot(SnapshotCommand::Save(a)) => save::run(a, global).await,
        EtcdCommand::Snapshot(SnapshotCommand::Status(a)) => status::run(a, global),
        EtcdCommand::Snapshot(SnapshotCommand::Verify(a)) => verify::run(a, global),
        EtcdCommand::Snapshot(SnapshotCommand::Restore(a)) => restore::run_any(a, global).await,
    }
}
