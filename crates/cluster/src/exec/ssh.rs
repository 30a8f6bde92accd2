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
//! Note for the orchestration: a [`NodeJob`](kubemaint_core::upgrade::apply::NodeJob) says
//! control plane or worker and `first`; a catch-up kubelet (the plan's first phase) therefore
//! also runs `kubeadm upgrade node` at the control plane's current version, which leaves the
//! node's configuration as it is. A job that knew it only moves the kubelet could use
//! [`NodeRole::KubeletOnly`] and skip kubeadm.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;
use kubemaint_core::upgrade::apply::{NodeJob, Role};
use kubemaint_core::upgrade::node_commands::{
    NodeCommandOptions, NodeCommandsError, NodeRole, node_commands, shell_join,
};
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};

use super::{
    ExecContext, ExecError, ExecOutcome, Executor, NodeTarget, OutputSink, Stream, TAIL_LINES, pump,
};

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

/// `node=host` lines: where to reach nodes whose InternalIP is not the ssh address.
///
/// Blank lines and lines starting with `#` are skipped; spaces around `=` are allowed; the host
/// may be anything `ssh` accepts as a destination host (a name from `~/.ssh/config`, an IP).
pub fn parse_address_map(text: &str) -> Result<BTreeMap<String, String>, SshError> {
    let mut map = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || SshError::AddressMapLine {
            line: i + 1,
            text: raw.to_string(),
        };
        let (node, host) = line.split_once('=').ok_or_else(bad)?;
        let (node, host) = (node.trim(), host.trim());
        if node.is_empty() || host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad());
        }
        if map.insert(node.to_string(), host.to_string()).is_some() {
            return Err(SshError::AddressMapDuplicate {
                line: i + 1,
                node: node.to_string(),
            });
        }
    }
    Ok(map)
}

/// The user's own script, run on each node instead of the built-in commands.
///
/// It runs as one command: with the interpreter of its `#!` line (else `sh`) as
/// `INTERPRETER -c SCRIPT kubemaint-node-script NODE VERSION MINOR ROLE FIRST`, under
/// `env KUBEMAINT_NODE=… KUBEMAINT_VERSION=… KUBEMAINT_MINOR=… KUBEMAINT_ROLE=…
/// KUBEMAINT_FIRST=…` (the `command` executor's names), with `sudo -n` when the login is not
/// root. Its exit status is the node's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeScript {
    /// Where it was read from (for reports).
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

impl NodeScript {
    /// Reads a script file.
    pub fn read(path: &Path) -> Result<Self, SshError> {
        let text = std::fs::read_to_string(path).map_err(|source| SshError::Script {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            text,
        })
    }

    /// The interpreter words from the `#!` line (`#!/usr/bin/env bash` → `/usr/bin/env bash`).
    fn interpreter(&self) -> Vec<String> {
        self.text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("#!"))
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| vec!["sh".to_string()])
    }
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
    match (job.role, job.first) {
        (Role::ControlPlane, true) => NodeRole::FirstControlPlane,
        (Role::ControlPlane, false) => NodeRole::ControlPlane,
        (Role::Worker, _) => NodeRole::Worker,
    }
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
                ("ROLE", job.role.as_str().to_string()),
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
                job.role.as_str().to_string(),
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

impl SshExecutor {
    async fn run_all(
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

#[cfg(test)]
mod tests {
    use kubemaint_core::upgrade::Version;

    use super::*;

    fn job(role: Role, first: bool) -> NodeJob {
        NodeJob {
            node: "cp-1".into(),
            role,
            version: Version::parse("v1.29.3").unwrap(),
            first,
        }
    }

    #[test]
    fn address_maps() {
        let map = parse_address_map("# nodes\n\ncp-1 = 10.0.0.1\nworker-1=bastion-w1\n").unwrap();
        assert_eq!(map["cp-1"], "10.0.0.1");
        assert_eq!(map["worker-1"], "bastion-w1");
        assert!(matches!(
            parse_address_map("cp-1 10.0.0.1"),
            Err(SshError::AddressMapLine { line: 1, .. })
        ));
        assert!(matches!(
            parse_address_map("a=1\na=2"),
            Err(SshError::AddressMapDuplicate { line: 2, .. })
        ));
        assert!(matches!(
            parse_address_map("a=x y"),
            Err(SshError::AddressMapLine { .. })
        ));
    }

    #[test]
    fn roles_and_shown_commands() {
        assert_eq!(
            node_role(&job(Role::ControlPlane, true)),
            NodeRole::FirstControlPlane
        );
        assert_eq!(
            node_role(&job(Role::ControlPlane, false)),
            NodeRole::ControlPlane
        );
        assert_eq!(node_role(&job(Role::Worker, false)), NodeRole::Worker);
        let ex = SshExecutor::new(SshOptions::default());
        let target = NodeTarget {
            job: job(Role::ControlPlane, true),
            address: Some("10.0.0.1".into()),
        };
        assert_eq!(ex.via(&target).unwrap(), "ssh 10.0.0.1");
        let shown = ex.commands(&target).unwrap();
        assert!(shown[0].starts_with("sudo -n sh -c "), "{}", shown[0]);
        assert!(shown.contains(&"sudo -n kubeadm upgrade apply v1.29.3 --yes".to_string()));
        assert_eq!(shown.last().unwrap(), "sudo -n systemctl restart kubelet");
        let root = SshExecutor::new(SshOptions {
            user: Some("root".into()),
            ..SshOptions::default()
        });
        assert_eq!(
            root.commands(&target).unwrap().last().unwrap(),
            "systemctl restart kubelet"
        );
        // What --dry-run shows is what runs: the same words, sudo -n only for a non-root login.
        let argv: Vec<String> = ["kubeadm", "upgrade", "node"].map(String::from).to_vec();
        assert_eq!(
            remote_words(&argv, Privilege::Sudo),
            ["sudo", "-n", "kubeadm", "upgrade", "node"]
        );
        assert_eq!(remote_words(&argv, Privilege::Root), argv);
        let admin = SshExecutor::new(SshOptions {
            user: Some("admin".into()),
            port: Some(2222),
            config_file: Some("/etc/km/ssh config".into()),
            identity: Some("/root/.ssh/km".into()),
            addresses: [("cp-1".to_string(), "bastion-cp1".to_string())].into(),
            ..SshOptions::default()
        });
        assert_eq!(admin.dry_run_privilege(), Privilege::Sudo);
        assert_eq!(root.dry_run_privilege(), Privilege::Root);
        assert_eq!(
            admin.via(&target).unwrap(),
            "ssh -F '/etc/km/ssh config' -p 2222 -i /root/.ssh/km admin@bastion-cp1"
        );
        assert!(
            admin
                .commands(&target)
                .unwrap()
                .iter()
                .all(|c| c.starts_with("sudo -n ")),
        );
    }

    #[test]
    fn a_script_replaces_the_built_in_commands() {
        let ex = SshExecutor::new(SshOptions {
            script: Some(NodeScript {
                path: "/srv/up.sh".into(),
                text: "#!/usr/bin/env bash\necho $1\n".into(),
            }),
            ..SshOptions::default()
        });
        let argvs = ex.argvs(&job(Role::Worker, false)).unwrap();
        assert_eq!(argvs.len(), 1);
        let argv = &argvs[0];
        assert_eq!(
            argv[..6],
            [
                "env",
                "KUBEMAINT_NODE=cp-1",
                "KUBEMAINT_VERSION=v1.29.3",
                "KUBEMAINT_MINOR=1.29",
                "KUBEMAINT_ROLE=worker",
                "KUBEMAINT_FIRST=false"
            ]
        );
        assert_eq!(argv[6..9], ["/usr/bin/env", "bash", "-c"]);
        assert_eq!(
            argv[10..],
            [
                "kubemaint-node-script",
                "cp-1",
                "v1.29.3",
                "1.29",
                "worker",
                "false"
            ]
        );
        let shown = ex.display(argv, Privilege::Sudo);
        assert!(
            shown.contains("-c \"$(cat /srv/up.sh)\" kubemaint-node-script cp-1"),
            "{shown}"
        );
        let plain = NodeScript {
            path: "x".into(),
            text: "echo hi".into(),
        };
        assert_eq!(plain.interpreter(), ["sh"]);
    }
}
