//! The `command` executor: a command template run locally through `sh -c` for each node.
//!
//! Placeholders: `{node}`, `{address}`, `{version}` (`v1.20.2`), `{minor}` (`1.20`), `{role}`
//! (`control-plane` or `worker`; `kubelet-only` for a catch-up, a kubelet moved to the control
//! plane's current version before any API server moves: only the kubelet's configuration and
//! package change, whatever else the node runs) and `{first}` (`true` on the first
//! control-plane node of a hop, which runs `kubeadm upgrade apply`). Values are shell-quoted when they need it. The same
//! values are in the environment as `KUBEMAINT_NODE`, `KUBEMAINT_ADDRESS`, `KUBEMAINT_VERSION`,
//! `KUBEMAINT_MINOR`, `KUBEMAINT_ROLE` and `KUBEMAINT_FIRST` for scripts.
//!
//! The command runs in its own process group, so the Ctrl-C that stops the run reaches
//! kubemaint only and the command in flight finishes.

use std::collections::VecDeque;
use std::process::Stdio;

use futures::future::BoxFuture;

use super::{
    ExecContext, ExecError, ExecOutcome, Executor, NodeTarget, OutputSink, Stream, TAIL_LINES, pump,
};

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 6] = ["node", "address", "version", "minor", "role", "first"];

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template is empty.
    #[error(
        "the command template is empty; give one such as --command 'ssh {{address}} sudo /usr/local/bin/upgrade-node {{version}}'"
    )]
    Empty,
    /// An unknown placeholder (a typo such as `{nodes}`).
    #[error(
        "unknown placeholder {{{name}}} in the command template; the placeholders are {{node}} {{address}} {{version}} {{minor}} {{role}} {{first}}"
    )]
    Unknown {
        /// The name inside the braces.
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Placeholder(&'static str),
}

/// A parsed command template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTemplate {
    text: String,
    pieces: Vec<Piece>,
}

impl CommandTemplate {
    /// Parses `text`: `{name}` with a lower-case name is a placeholder and must be one of
    /// [`PLACEHOLDERS`]; every other character is kept as written (so `${HOME}` and
    /// `{ a; b; }` reach the shell unchanged).
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if text.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let name_len = after
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
                .count();
            if name_len > 0 && after[name_len..].starts_with('}') {
                let name = &after[..name_len];
                let known = PLACEHOLDERS.iter().find(|p| **p == name).ok_or_else(|| {
                    TemplateError::Unknown {
                        name: name.to_string(),
                    }
                })?;
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Placeholder(known));
                rest = &after[name_len + 1..];
            } else {
                literal.push('{');
                rest = after;
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Self {
            text: text.to_string(),
            pieces,
        })
    }

    /// The template as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the template uses `{name}`.
    pub fn uses(&self, name: &str) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Placeholder(n) if *n == name))
    }

    /// The shell command for `target`.
    pub fn render(&self, target: &NodeTarget) -> Result<String, ExecError> {
        let values = values(target);
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Placeholder(name) => {
                    let value = match (*name, &target.address) {
                        ("address", None) => {
                            return Err(ExecError::NoAddress {
                                node: target.job.node.clone(),
                            });
                        }
                        _ => values
                            .iter()
                            .find(|(n, _)| n == name)
                            .map(|(_, v)| v.as_str())
                            .unwrap_or_default(),
                    };
                    out.push_str(&shell_quote(value));
                }
            }
        }
        Ok(out)
    }
}

/// The placeholder values for a target.
fn values(target: &NodeTarget) -> [(&'static str, String); 6] {
    let job = &target.job;
    [
        ("node", job.node.clone()),
        ("address", target.address.clone().unwrap_or_default()),
        ("version", job.version.to_string()),
        ("minor", job.minor().to_string()),
        ("role", job.role_word().to_string()),
        ("first", job.first.to_string()),
    ]
}

/// `value` as one shell word: unchanged when it has only safe characters, else single-quoted.
pub fn shell_quote(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.,:/=+@%".contains(&b));
    if safe {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

/// Runs a [`CommandTemplate`] locally for each node.
#[derive(Debug, Clone)]
pub struct CommandExecutor {
    template: CommandTemplate,
}

impl CommandExecutor {
    /// An executor for `template`.
    pub fn new(template: CommandTemplate) -> Self {
        Self { template }
    }
}

impl Executor for CommandExecutor {
    fn name(&self) -> &'static str {
        "command"
    }

    fn commands(&self, target: &NodeTarget) -> Result<Vec<String>, ExecError> {
        Ok(vec![self.template.render(target)?])
    }

    fn run<'a>(
        &'a self,
        target: &'a NodeTarget,
        cx: ExecContext<'a>,
    ) -> BoxFuture<'a, Result<ExecOutcome, ExecError>> {
        Box::pin(async move {
            let command = self.template.render(target)?;
            if cx.stopping() {
                return Ok(ExecOutcome::Stopped {
                    remaining: vec![command],
                });
            }
            let mut envs: Vec<(String, String)> = values(target)
                .into_iter()
                .map(|(name, value)| (format!("KUBEMAINT_{}", name.to_uppercase()), value))
                .collect();
            envs.retain(|(name, _)| name != "KUBEMAINT_ADDRESS" || target.address.is_some());
            run_local(&target.job.node, &command, &envs, cx.log).await?;
            Ok(ExecOutcome::Completed)
        })
    }
}

/// Runs `sh -c command` in its own process group, streaming each output line to `log`; a
/// non-zero exit is [`ExecError::Failed`] with the last lines.
pub async fn run_local(
    node: &str,
    command: &str,
    envs: &[(String, String)],
    log: &dyn OutputSink,
) -> Result<(), ExecError> {
    let io = |source| ExecError::Io {
        node: node.to_string(),
        command: command.to_string(),
        source,
    };
    log.command(node, command);
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(io)?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(io(std::io::Error::other("no output pipes")));
    };
    let tail = std::sync::Mutex::new(VecDeque::with_capacity(TAIL_LINES));
    let (out, err) = tokio::join!(
        pump(stdout, node, Stream::Stdout, log, &tail),
        pump(stderr, node, Stream::Stderr, log, &tail)
    );
    out.map_err(io)?;
    err.map_err(io)?;
    let status = child.wait().await.map_err(io)?;
    if status.success() {
        return Ok(());
    }
    let status = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    };
    let tail = tail.into_inner().unwrap_or_default().into_iter().collect();
    Err(ExecError::Failed {
        node: node.to_string(),
        command: command.to_string(),
        status,
        tail,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    use kubemaint_core::upgrade::Version;
    use kubemaint_core::upgrade::apply::{NodeJob, Role};

    use super::*;

    fn target(address: Option<&str>) -> NodeTarget {
        NodeTarget {
            job: NodeJob {
                node: "cp-1".into(),
                role: Role::ControlPlane,
                version: Version::parse("v1.20.2").unwrap(),
                first: true,
                kubelet_only: false,
            },
            address: address.map(str::to_string),
        }
    }

    #[test]
    fn templates_render_every_placeholder_and_keep_other_braces() {
        let t = CommandTemplate::parse(
            "up {node} {address} {version} {minor} {role} {first} ${HOME} { x; } {",
        )
        .unwrap();
        assert_eq!(
            t.render(&target(Some("10.0.0.1"))).unwrap(),
            "up cp-1 10.0.0.1 v1.20.2 1.20 control-plane true ${HOME} { x; } {"
        );
        assert!(t.uses("address"));
        assert!(matches!(
            t.render(&target(None)),
            Err(ExecError::NoAddress { .. })
        ));
        assert_eq!(
            CommandTemplate::parse("x {nodes}"),
            Err(TemplateError::Unknown {
                name: "nodes".into()
            })
        );
        assert_eq!(CommandTemplate::parse("  "), Err(TemplateError::Empty));
        // A catch-up moves only the kubelet: {role} says so, whatever the node runs.
        let mut catch_up = target(None);
        catch_up.job.kubelet_only = true;
        catch_up.job.first = false;
        assert_eq!(
            CommandTemplate::parse("{role} {first}")
                .unwrap()
                .render(&catch_up)
                .unwrap(),
            "kubelet-only false"
        );
        assert_eq!(shell_quote("a b'c"), "'a b'\\''c'");
        assert_eq!(shell_quote(""), "''");
    }

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);
    impl OutputSink for Log {
        fn command(&self, node: &str, command: &str) {
            self.0.lock().unwrap().push(format!("{node}$ {command}"));
        }
        fn line(&self, node: &str, stream: Stream, line: &str) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{node} {stream:?}: {line}"));
        }
    }

    #[tokio::test]
    async fn a_command_streams_its_output_and_a_failure_names_node_status_and_tail() {
        let log = Log::default();
        let stop = AtomicBool::new(false);
        let cx = ExecContext {
            log: &log,
            stop: &stop,
        };
        let ok = CommandExecutor::new(
            CommandTemplate::parse("echo {node} $KUBEMAINT_VERSION; echo oops >&2").unwrap(),
        );
        assert_eq!(
            ok.run(&target(None), cx).await.unwrap(),
            ExecOutcome::Completed
        );
        let lines = log.0.lock().unwrap().clone();
        assert!(
            lines.contains(&"cp-1 Stdout: cp-1 v1.20.2".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"cp-1 Stderr: oops".to_string()),
            "{lines:?}"
        );

        let failing = CommandExecutor::new(CommandTemplate::parse("echo before; exit 7").unwrap());
        match failing.run(&target(None), cx).await {
            Err(ExecError::Failed {
                node, status, tail, ..
            }) => {
                assert_eq!(node, "cp-1");
                assert_eq!(status, "exit status 7");
                assert_eq!(tail, ["before"]);
            }
            other => panic!("{other:?}"),
        }

        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(matches!(
            ok.run(&target(None), cx).await.unwrap(),
            ExecOutcome::Stopped { .. }
        ));
    }
}
