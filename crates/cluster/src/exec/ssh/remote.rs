//! Running a node's commands over an open session: privilege once, then each command with its
//! lines streamed to the run log, stopping at the first failure.

use std::collections::VecDeque;

use kubemaint_core::upgrade::apply::NodeJob;
use openssh::{Session, Stdio};

use super::{Privilege, SshExecutor, connect_error, remote_words};
use crate::exec::{ExecContext, ExecError, ExecOutcome, OutputSink, Stream, TAIL_LINES, pump};

impl SshExecutor {
    pub(super) async fn run_all(
        &self,
        session: &Session,
        job: &NodeJob,
        address: &str,
        argvs: &[Vec<String>],
        cx: ExecContext<'_>,
    ) -> Result<ExecOutcome, ExecError> {
        let privilege = Self::privilege(session, address)
            .await
            .map_err(|e| connect_error(job, address, e))?;
        for (i, argv) in argvs.iter().enumerate() {
            let shown = self.display(argv, privilege);
            if cx.stopping() {
                return Ok(ExecOutcome::Stopped {
                    remaining: argvs[i..]
                        .iter()
                        .map(|a| self.display(a, privilege))
                        .collect(),
                });
            }
            run_remote(session, &job.node, argv, privilege, &shown, cx.log).await?;
        }
        Ok(ExecOutcome::Completed)
    }
}

/// Runs one command on the node, streaming its lines to `log`.
async fn run_remote(
    session: &Session,
    node: &str,
    argv: &[String],
    privilege: Privilege,
    shown: &str,
    log: &dyn OutputSink,
) -> Result<(), ExecError> {
    let io = |source: std::io::Error| ExecError::Io {
        node: node.to_string(),
        command: shown.to_string(),
        source,
    };
    let ssh = |e: openssh::Error| io(std::io::Error::other(e));
    log.command(node, shown);
    let words = remote_words(argv, privilege);
    let mut command = session.command(&words[0]);
    command
        .args(&words[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().await.map_err(ssh)?;
    let (Some(stdout), Some(stderr)) = (child.stdout().take(), child.stderr().take()) else {
        return Err(io(std::io::Error::other("no output pipes")));
    };
    let tail = std::sync::Mutex::new(VecDeque::with_capacity(TAIL_LINES));
    let (out, err) = tokio::join!(
        pump(stdout, node, Stream::Stdout, log, &tail),
        pump(stderr, node, Stream::Stderr, log, &tail)
    );
    out.map_err(io)?;
    err.map_err(io)?;
    let status = match child.wait().await {
        Ok(status) => status,
        // The process mux reports a remote exit 255 like a dropped connection.
        Err(openssh::Error::Disconnected) => {
            return Err(failed(
                node,
                shown,
                "exit status 255 or connection lost".into(),
                tail,
            ));
        }
        Err(e) => return Err(ssh(e)),
    };
    if status.success() {
        return Ok(());
    }
    let status = match status.code() {
        Some(code) => format!("exit status {code}"),
        None => status.to_string(),
    };
    Err(failed(node, shown, status, tail))
}

fn failed(
    node: &str,
    shown: &str,
    status: String,
    tail: std::sync::Mutex<VecDeque<String>>,
) -> ExecError {
    ExecError::Failed {
        node: node.to_string(),
        command: shown.to_string(),
        status,
        tail: tail.into_inner().unwrap_or_default().into_iter().collect(),
    }
}
