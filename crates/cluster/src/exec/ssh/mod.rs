//! The `ssh` executor: a node's upgrade commands over the system's OpenSSH client.
//!
//! It drives `ssh` through the `openssh` crate (one ControlMaster connection per node, every
//! command multiplexed over it), so whatever the operator's `ssh` does applies: `~/.ssh/config`
//! (`User`, `Port`, `ProxyJump`, `IdentityFile`, …), the ssh-agent and `known_hosts`.
//! Host keys are checked strictly (`StrictHostKeyChecking=yes`): an unknown or changed key is
//! refused, with the way to add it; kubemaint never writes `known_hosts`.
//!
//! The commands are the built-in Debian/Ubuntu kubeadm ones
//! ([`kubemaint_core::upgrade::node_commands`]) or the user's own script ([`NodeScript`]).
//! Privilege: the executor asks the node `id -u` once; when the login is not root, every
//! command runs as `sudo -n …` (non-interactive: a sudo that wants a password fails at once
//! with sudo's own message instead of hanging). Each command's output lines go to the run log
//! as they arrive; a non-zero exit stops the node's commands with [`ExecError::Failed`] naming
//! node, command, exit status and the last lines.
//!
//! Which built-in commands run is [`NodeJob::node_role`]: `kubeadm upgrade apply` on the first
//! control-plane node of a hop, `kubeadm upgrade node` on the others and on workers, and for a
//! catch-up kubelet (the plan's moves before any API server, `kubelet_only`) only
//! `kubeadm upgrade node phase kubelet-config` and the kubelet package ([`NodeRole::KubeletOnly`]).
//!
//! The executor is here; `inputs.rs` reads the address map and the node script, `remote.rs` runs
//! the commands over a session.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use kubemaint_core::upgrade::apply::NodeJob;
use kubemaint_core::upgrade::node_commands::{
    NodeCommandOptions, NodeCommandsError, NodeRole, node_commands, shell_join,
};
use openssh::{KnownHosts, Session, SessionBuilder};

use super::{ExecContext, ExecError, ExecOutcome, Executor, NodeTarget};

mod inputs;
mod remote;

pub use inputs::{NodeScript, parse_address_map};

/// Why the ssh executor could not be set up or could not reach a node (the source of
/// [`ExecError::Connect`]).
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The node's host key is not in `known_hosts` (or differs from it).
    #[error(
        "the host key of {address} is not known (StrictHostKeyChecking): compare its fingerprint with \
         `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the node, then add it with \
         `ssh-keyscan {address} >> ~/.ssh/known_hosts` or connect once with `ssh {address}`; ssh said: {detail}"
    )]
    UnknownHostKey {
        /// The address.
        address: String,
        /// ssh's message.
        detail: String,
    },
    /// The server refused every key offered.
    #[error(
        "ssh authentication to {address} failed: load the key into ssh-agent (ssh-add), set IdentityFile \
         in ~/.ssh/config, or check --ssh-user; ssh said: {detail}"
    )]
    Authentication {
        /// The address.
        address: String,
        /// ssh's message.
        detail: String,
    },
    /// Anything else the connection attempt reported.
    #[error("ssh to {address} failed")]
    Connect {
        /// The address.
        address: String,
        /// The openssh crate's error (ssh's own message inside).
        #[source]
        source: openssh::Error,
    },
    /// `id -u` on the node did not answer a number.
    #[error("`id -u` on {address} answered `{answer}`, not a user id")]
    WhoAmI {
        /// The address.
        address: String,
        /// What came back.
        answer: String,
    },
    /// The built-in commands cannot be built for this job.
    #[error(transparent)]
    Commands(#[from] NodeCommandsError),
    /// An address map line is not `node=host`.
    #[error("address map line {line}: `{text}` is not `node=host` (one node per line, # comments)")]
    AddressMapLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A node appears twice in the address map.
    #[error("address map line {line}: node {node} is already mapped on an earlier line")]
    AddressMapDuplicate {
        /// 1-based line number.
        line: usize,
        /// The node.
        node: String,
    },
    /// A node script file cannot be read.
    #[error("cannot read the node script {path}")]
    Script {
        /// The file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
}
/// How the executor connects.
#[derive(Debug, Clone, Default)]
pub struct SshOptions {
    /// Login user (`--ssh-user`); `None`: what `~/.ssh/config` says, else the local user.
    pub user: Option<String>,
    /// Port; `None`: ssh's (config or 22).
    pub port: Option<u16>,
    /// An ssh config file instead of `~/.ssh/config` (`ssh -F`).
    pub config_file: Option<PathBuf>,
    /// A key file (`ssh -i`, then only that key is offered).
    pub identity: Option<PathBuf>,
    /// A known_hosts file instead of ssh's default ones.
    pub known_hosts: Option<PathBuf>,
    /// Where the ControlMaster sockets go (`None`: the openssh crate's default,
    /// `$XDG_STATE_HOME` or `~/.local/state`).
    pub control_dir: Option<PathBuf>,
    /// `ConnectTimeout` (whole seconds).
    pub connect_timeout: Option<Duration>,
    /// Where the built-in commands find the pkgs.k8s.io apt source.
    pub commands: NodeCommandOptions,
    /// The user's script instead of the built-in commands.
    pub script: Option<NodeScript>,
    /// Node name → ssh host (`--address-map`, [`parse_address_map`]); a node listed here is
    /// reached at that host instead of its InternalIP.
    pub addresses: BTreeMap<String, String>,
}

/// Runs a node's commands over ssh.
#[derive(Debug, Clone)]
pub struct SshExecutor {
    options: SshOptions,
}

/// Whether commands need `sudo -n` in front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// The login is root.
    Root,
    /// Prefix `sudo -n`.
    Sudo,
}

/// The built-in role of a job.
pub fn node_role(job: &NodeJob) -> NodeRole {
    job.node_role()
}

impl SshExecutor {
    /// An executor with these options.
    pub fn new(options: SshOptions) -> Self {
        Self { options }
    }

    /// Where a target is reached: the address map's host, else its InternalIP.
    pub fn address<'t>(&'t self, target: &'t NodeTarget) -> Option<&'t str> {
        self.options
            .addresses
            .get(&target.job.node)
            .map(String::as_str)
            .or(target.address.as_deref())
    }

    /// The argument vectors for a job, without privilege.
    pub fn argvs(&self, job: &NodeJob) -> Result<Vec<Vec<String>>, SshError> {
        if let Some(script) = &self.options.script {
            let mut argv = vec!["env".to_string()];
            for (name, value) in [
                ("NODE", job.node.clone()),
                ("VERSION", job.version.to_string()),
                ("MINOR", job.minor().to_string()),
                ("ROLE", job.role_word().to_string()),
                ("FIRST", job.first.to_string()),
            ] {
                argv.push(format!("KUBEMAINT_{name}={value}"));
            }
            argv.extend(script.interpreter());
            argv.push("-c".into());
            argv.push(script.text.clone());
            argv.push("kubemaint-node-script".into());
            argv.extend([
                job.node.clone(),
                job.version.to_string(),
                job.minor().to_string(),
                job.role_word().to_string(),
                job.first.to_string(),
            ]);
            return Ok(vec![argv]);
        }
        Ok(
            node_commands(node_role(job), &job.version, &self.options.commands)?
                .into_iter()
                .map(|c| c.argv)
                .collect(),
        )
    }

    /// How a command is shown: exactly the words [`remote_words`] runs on the node (shell
    /// quoted), except a script's text, shown as `"$(cat FILE)"`.
    fn display(&self, argv: &[String], privilege: Privilege) -> String {
        let words = remote_words(argv, privilege);
        match &self.options.script {
            Some(script) => {
                // The script text is long: name the file where its text goes.
                let shown: Vec<String> = words
                    .iter()
                    .map(|a| {
                        if *a == script.text {
                            format!(
                                "\"$(cat {})\"",
                                shell_join(&[script.path.display().to_string()])
                            )
                        } else {
                            shell_join(std::slice::from_ref(a))
                        }
                    })
                    .collect();
                shown.join(" ")
            }
            None => shell_join(&words),
        }
    }

    /// The privilege `--dry-run` shows: only a login named root by `--ssh-user` is known to be
    /// root before connecting (the run asks the node `id -u`).
    pub fn dry_run_privilege(&self) -> Privilege {
        if self.options.user.as_deref() == Some("root") {
            Privilege::Root
        } else {
            Privilege::Sudo
        }
    }

    async fn connect(&self, address: &str) -> Result<Session, SshError> {
        let mut builder = SessionBuilder::default();
        builder.known_hosts_check(KnownHosts::Strict);
        if let Some(user) = &self.options.user {
            builder.user(user.clone());
        }
        if let Some(port) = self.options.port {
            builder.port(port);
        }
        if let Some(file) = &self.options.config_file {
            builder.config_file(file);
        }
        if let Some(key) = &self.options.identity {
            builder.keyfile(key);
        }
        if let Some(file) = &self.options.known_hosts {
            builder.user_known_hosts_file(file);
        }
        if let Some(dir) = &self.options.control_dir {
            builder.control_directory(dir);
        }
        if let Some(timeout) = self.options.connect_timeout {
            builder.connect_timeout(timeout);
        }
        builder
            .connect(address)
            .await
            .map_err(|e| classify(address, e))
    }

    async fn privilege(session: &Session, address: &str) -> Result<Privilege, SshError> {
        let out = session
            .command("id")
            .arg("-u")
            .output()
            .await
            .map_err(|source| SshError::Connect {
                address: address.to_string(),
                source,
            })?;
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        match answer.parse::<u32>() {
            Ok(0) => Ok(Privilege::Root),
            Ok(_) => Ok(Privilege::Sudo),
            Err(_) => Err(SshError::WhoAmI {
                address: address.to_string(),
                answer,
            }),
        }
    }
}

/// The words run on the node for `argv`: `sudo -n` in front unless the login is root (no
/// `--`: every built-in command and a script's `env` start with a word that is not an option).
pub fn remote_words(argv: &[String], privilege: Privilege) -> Vec<String> {
    let mut words = Vec::with_capacity(argv.len() + 2);
    if privilege == Privilege::Sudo {
        words.extend(["sudo".to_string(), "-n".to_string()]);
    }
    words.extend(argv.iter().cloned());
    words
}

/// Turns the openssh crate's connect error into one that says what to do.
fn classify(address: &str, error: openssh::Error) -> SshError {
    let text = match &error {
        openssh::Error::Connect(io) => io.to_string(),
        _ => String::new(),
    };
    let detail = text.trim().replace("\r\n", " ").replace('\n', " ");
    if text.contains("Host key verification failed")
        || text.contains("host key is known")
        || text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
    {
        SshError::UnknownHostKey {
            address: address.to_string(),
            detail,
        }
    } else if text.contains("Permission denied") {
        SshError::Authentication {
            address: address.to_string(),
            detail,
        }
    } else {
        SshError::Connect {
            address: address.to_string(),
            source: error,
        }
    }
}

fn connect_error(job: &NodeJob, address: &str, e: SshError) -> ExecError {
    ExecError::Connect {
        node: job.node.clone(),
        address: address.to_string(),
        source: Box::new(e),
    }
}

impl Executor for SshExecutor {
    fn name(&self) -> &'static str {
        "ssh"
    }

    fn via(&self, target: &NodeTarget) -> Option<String> {
        let mut words = vec!["ssh".to_string()];
        let options = &self.options;
        if let Some(file) = &options.config_file {
            words.extend(["-F".into(), file.display().to_string()]);
        }
        if let Some(port) = options.port {
            words.extend(["-p".into(), port.to_string()]);
        }
        if let Some(key) = &options.identity {
            words.extend(["-i".into(), key.display().to_string()]);
        }
        let host = self.address(target).unwrap_or("<no address>");
        words.push(match &options.user {
            Some(user) => format!("{user}@{host}"),
            None => host.to_string(),
        });
        Some(shell_join(&words))
    }

    fn commands(&self, target: &NodeTarget) -> Result<Vec<String>, ExecError> {
        let address = self.address(target).unwrap_or("<address>");
        let argvs = self
            .argvs(&target.job)
            .map_err(|e| connect_error(&target.job, address, e))?;
        let privilege = self.dry_run_privilege();
        Ok(argvs.iter().map(|a| self.display(a, privilege)).collect())
    }

    fn run<'a>(
        &'a self,
        target: &'a NodeTarget,
        cx: ExecContext<'a>,
    ) -> BoxFuture<'a, Result<ExecOutcome, ExecError>> {
        Box::pin(async move {
            let job = &target.job;
            let Some(address) = self.address(target) else {
                return Err(ExecError::NoAddress {
                    node: job.node.clone(),
                });
            };
            let argvs = self
                .argvs(job)
                .map_err(|e| connect_error(job, address, e))?;
            if cx.stopping() {
                return Ok(ExecOutcome::Stopped {
                    remaining: argvs
                        .iter()
                        .map(|a| self.display(a, Privilege::Sudo))
                        .collect(),
                });
            }
            let session = self
                .connect(address)
                .await
                .map_err(|e| connect_error(job, address, e))?;
            let result = self.run_all(&session, job, address, &argvs, cx).await;
            // A failed close only leaks a finished master; the commands' result stands.
            let _ = session.close().await;
            result
        })
    }
}
#[cfg(test)]
mod tests;
