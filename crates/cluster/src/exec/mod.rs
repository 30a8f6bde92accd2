//! Running a node's upgrade commands during `kubemaint upgrade apply`.
//!
//! The run decides *when* a node's commands run ([`kubemaint_core::upgrade::apply`]); an
//! [`Executor`] decides *how*: [`command::CommandExecutor`] runs a user's template locally
//! (`kubemaint-lab node upgrade {node} --kubernetes-version {version}` on the lab), an ssh
//! executor runs the built-in Debian/Ubuntu kubeadm commands on the node. Every executor
//! shows the exact commands it would run ([`Executor::commands`], printed by `--dry-run`),
//! sends every output line to the run log through an [`OutputSink`], stops at the first
//! failing command, and checks [`ExecContext::stop`] between commands so Ctrl-C / SIGTERM
//! ends the run after the command in flight.

pub mod command;
pub mod ssh;

use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use kubemaint_core::upgrade::apply::NodeJob;

/// One node's job with where to reach the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTarget {
    /// The job: node, role, version, first control-plane node or not.
    pub job: NodeJob,
    /// The node's address (its InternalIP, or from an address map), when known.
    pub address: Option<String>,
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Where an executor reports what it runs and every line the commands print (the run log).
pub trait OutputSink: Send + Sync {
    /// A command starts on `node`.
    fn command(&self, node: &str, command: &str);
    /// A line of output from the command in flight on `node`.
    fn line(&self, node: &str, stream: Stream, line: &str);
}

/// What an executor gets besides the target.
#[derive(Clone, Copy)]
pub struct ExecContext<'a> {
    /// The run log.
    pub log: &'a dyn OutputSink,
    /// Set when the run should stop: checked before each command, never interrupting one.
    pub stop: &'a AtomicBool,
}

impl ExecContext<'_> {
    /// Whether a stop was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// How a node's commands ended (a failure is an [`ExecError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutcome {
    /// Every command exited 0.
    Completed,
    /// A stop was asked for; the commands before it finished, these did not run.
    Stopped {
        /// The commands not run.
        remaining: Vec<String>,
    },
}

/// Runs a node's upgrade commands.
pub trait Executor: Send + Sync {
    /// `command`, `ssh`: for reports.
    fn name(&self) -> &'static str;
    /// The exact commands, in order, that [`Executor::run`] runs for `target` (shown by
    /// `--dry-run` and written to the run log).
    fn commands(&self, target: &NodeTarget) -> Result<Vec<String>, ExecError>;
    /// How the commands reach the node, when not run locally (`ssh -p 2222 root@10.0.0.5`),
    /// shown by `--dry-run` above them.
    fn via(&self, target: &NodeTarget) -> Option<String> {
        let _ = target;
        None
    }
    /// Runs them in order, stopping at the first failure or when a stop is asked for.
    fn run<'a>(
        &'a self,
        target: &'a NodeTarget,
        cx: ExecContext<'a>,
    ) -> BoxFuture<'a, Result<ExecOutcome, ExecError>>;
}

/// Why a node's commands did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A command exited non-zero.
    #[error(
        "`{command}` failed on {node} ({status}){}; the full output is in the run log",
        if .tail.is_empty() { String::new() } else { format!(", last output:\n{}", .tail.join("\n")) }
    )]
    Failed {
        /// The node.
        node: String,
        /// The command.
        command: String,
        /// `exit status 3`, `killed by signal 9`.
        status: String,
        /// Its last output lines.
        tail: Vec<String>,
    },
    /// A command could not be started or its output not read.
    #[error("cannot run `{command}` for {node}")]
    Io {
        /// The node.
        node: String,
        /// The command.
        command: String,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// The command needs the node's address and none is known.
    #[error(
        "no address for node {node}: it has no InternalIP; give one in an address map file or drop {{address}} from the command"
    )]
    NoAddress {
        /// The node.
        node: String,
    },
    /// The executor cannot reach the node (connection, authentication).
    #[error("cannot reach node {node} at {address}")]
    Connect {
        /// The node.
        node: String,
        /// The address tried.
        address: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ExecError {
    /// The node the error is about.
    pub fn node(&self) -> &str {
        match self {
            Self::Failed { node, .. }
            | Self::Io { node, .. }
            | Self::NoAddress { node }
            | Self::Connect { node, .. } => node,
        }
    }
}

/// How many of a command's last output lines a failure report carries.
pub(crate) const TAIL_LINES: usize = 20;

/// Copies a command's output to the run log line by line, keeping the last [`TAIL_LINES`] lines
/// (both streams interleaved) for the failure report. Shared by the `command` and `ssh` executors.
pub(crate) async fn pump(
    reader: impl tokio::io::AsyncRead + Unpin,
    node: &str,
    stream: Stream,
    log: &dyn OutputSink,
    tail: &std::sync::Mutex<std::collections::VecDeque<String>>,
) -> std::io::Result<()> {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(reader).lines();
    while let Some(line) = lines.next_line().await? {
        log.line(node, stream, &line);
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
    Ok(())
}
