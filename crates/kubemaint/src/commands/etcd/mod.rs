//! `kubemaint etcd snapshot save|status|verify|restore`.

pub mod connection;
pub mod restore;
pub mod save;
pub mod status;
pub mod verify;

use std::path::Path;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::exit::{CodedError, USAGE};
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

/// The first half of the snapshot commands' exit rule ([`crate::exit::SNAPSHOT_EXIT_CODES`]):
/// a FILE that cannot be opened as a file is bad usage (2); faults found once it is read are
/// the file's damage (1).
pub fn open_snapshot_path(path: &Path) -> anyhow::Result<()> {
    let opened = std::fs::File::open(path)
        .and_then(|f| f.metadata())
        .with_context(|| {
            format!(
                "cannot open snapshot {}: give the path of a snapshot file",
                path.display()
            )
        })
        .map_err(|e| CodedError::wrap(USAGE, e))?;
    if !opened.is_file() {
        return Err(CodedError::usage(format!(
            "{} is not a file: give the path of a snapshot file",
            path.display()
        )));
    }
    Ok(())
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
