//! `kubemaint`: one binary for the maintenance life of a Kubernetes cluster.
//!
//! `main` only parses arguments, installs the TLS crypto provider, runs one command and turns its
//! outcome into one report and a documented exit code (see [`exit`]).

mod commands;
mod exit;
mod global;
mod kube_client;
mod output;

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::commands::Command;
use crate::global::GlobalArgs;

/// Maintain a Kubernetes cluster: take nodes out and back, back up and restore etcd.
#[derive(Debug, Parser)]
#[command(
    name = "kubemaint",
    version,
    about = "Maintain a Kubernetes cluster: cordon, drain and uncordon nodes; save, inspect, verify and restore etcd snapshots.",
    long_about = None,
    after_help = "Examples:\n  kubemaint drain node-1 --ignore-daemonsets --dry-run=client   # show the plan, touch nothing\n  kubemaint drain node-1 --ignore-daemonsets                     # drain, naming any PDB that blocks\n  kubemaint uncordon node-1\n  kubemaint etcd snapshot save /var/backups/etcd.db --pki-dir /etc/kubernetes/pki\n  kubemaint etcd snapshot status /var/backups/etcd.db -o json\n\nExit codes: 0 success, 1 the operation failed (see the report), 2 bad usage or input, 3 partial (some nodes or pods left pending)."
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// kubectl runs the executable `kubectl-maint` on `PATH` for `kubectl maint ...`.
const PLUGIN_EXECUTABLE: &str = "kubectl-maint";

/// The command line; called as `kubectl-maint` (kubectl's plugin, or a link of that name) it
/// calls itself `kubectl maint` in help, usage and errors.
pub(crate) fn cli_command() -> clap::Command {
    let command = Cli::command();
    let as_plugin = std::env::args_os()
        .next()
        .and_then(|arg0| {
            std::path::Path::new(&arg0)
                .file_name()
                .map(|n| n == PLUGIN_EXECUTABLE)
        })
        .unwrap_or(false);
    if !as_plugin {
        return command;
    }
    let examples = command
        .get_after_help()
        .map(|h| h.to_string().replace("kubemaint ", "kubectl maint "));
    let command = command
        .bin_name("kubectl maint")
        .display_name("kubectl maint");
    match examples {
        Some(text) => command.after_help(text),
        None => command,
    }
}

/// Restores the default SIGPIPE action, so `kubemaint ... -o json | head` ends quietly like other
/// Unix tools instead of panicking on a write to a closed pipe (Rust ignores SIGPIPE by default).
#[allow(unsafe_code)]
fn restore_sigpipe() {
    // SAFETY: called first thing in `main`, before any thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() {
    restore_sigpipe();
    // kube brings rustls with `ring`; installing it explicitly keeps a second provider pulled in
    // by any dependency from making rustls panic at the first TLS handshake.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::from_arg_matches(&cli_command().get_matches()).unwrap_or_else(|e| e.exit());
    global::init_logging(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            std::process::exit(exit::FAILURE);
        }
    };
    let code = match runtime.block_on(commands::run(cli.command, &cli.global)) {
        Ok(code) => code,
        Err(err) => {
            exit::report(&err);
            exit::code_for(&err)
        }
    };
    std::process::exit(code);
}
