//! The subcommands. Each module owns its raw clap arguments, resolves them into a configuration,
//! and runs it; [`run`] dispatches and returns the exit code.

pub mod backup;
pub mod completion;
pub mod cordon;
pub mod drain;
pub mod etcd;
pub mod upgrade;

use clap::Subcommand;

use crate::global::GlobalArgs;

/// What kubemaint can do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mark nodes unschedulable (as `kubectl cordon`), recording that kubemaint did it.
    Cordon(cordon::CordonArgs),
    /// Mark nodes schedulable again (as `kubectl uncordon`).
    Uncordon(cordon::CordonArgs),
    /// Cordon nodes and evict their pods (as `kubectl drain`), naming whatever blocks.
    Drain(drain::DrainArgs),
    /// etcd backups: snapshot save, status, verify and restore.
    Etcd(etcd::EtcdArgs),
    /// Print a shell completion script (bash, zsh, fish, ...), as `kubectl completion`.
    Completion(completion::CompletionArgs),
    /// Kubernetes version upgrades: `upgrade plan` shows versions, skew, path and preflight.
    Upgrade(upgrade::UpgradeArgs),
    /// Regular etcd backups: run (zstd, age, local dir or S3), list, fetch, prune.
    Backup(backup::BackupArgs),
}

/// Runs one command; `Ok` carries the exit code (success or partial), `Err` a failure to report.
pub async fn run(command: Command, global: &GlobalArgs) -> anyhow::Result<i32> {
    match command {
        Command::Cordon(args) => cordon::run(args, global, true).await,
        Command::Uncordon(args) => cordon::run(args, global, false).await,
        Command::Drain(args) => drain::run(args, global).await,
        Command::Etcd(args) => etcd::run(args, global).await,
        Command::Completion(args) => {
            completion::run(&args, crate::cli_command());
            Ok(crate::exit::SUCCESS)
        }
        Command::Upgrade(args) => upgrade::run(args, global).await,
        Command::Backup(args) => backup::run(args, global).await,
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
