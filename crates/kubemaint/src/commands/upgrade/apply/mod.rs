//! `kubemaint upgrade apply`: the plan of `upgrade plan`, executed node by node.
//!
//! Flow: raw clap args → [`ApplyConfig`] (every flag checked before any request) → discovery
//! and the plan (or the recorded run with `--resume`) → the core's next-step function driven
//! by [`run`] against the cluster: the run record in a ConfigMap, the Lease, cordons, the drain
//! engine for batches, the executor for each node's commands, waits and the health gate.

mod drive;
mod dry_run;
mod run;
mod view;
mod wait;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use kubemaint_cluster::exec::Executor;
use kubemaint_cluster::exec::command::{CommandExecutor, CommandTemplate};
use kubemaint_cluster::exec::ssh::{NodeScript, SshExecutor, SshOptions, parse_address_map};
use kubemaint_core::upgrade::Version;
use kubemaint_core::upgrade::releases::ReleaseIndex;

use super::load_releases;
use crate::commands::etcd::connection::ConnectionArgs;
use crate::exit::CodedError;
use crate::global::GlobalArgs;

pub(super) const AFTER_HELP: &str = "\
What it does, per hop of the plan (one minor at a time; kubelets the hop would push out of the
skew window move first, as `upgrade plan` shows):
  1. an etcd snapshot, saved and verified, before the first control-plane node (--backup-dir;
     --no-snapshot skips it with a warning);
  2. control-plane nodes one at a time: the first runs `kubeadm upgrade apply`, the others
     `kubeadm upgrade node` ({first} is true on the first);
  3. workers in batches of --max-unavailable, drained together within every PodDisruptionBudget.
  Per node or batch: cordon (a node already cordoned stays cordoned: kubemaint only undoes its
  own cordons) -> drain -> the nodes' commands through the executor, all nodes of the batch at
  once (each output line in the run log prefixed with its node) -> wait until the node is
  Ready at the target kubelet version (control plane: mirror pods at the target images and
  its own API server answering /version with it) -> uncordon -> health gate (nodes Ready,
  control-plane pods Ready, etcd healthy, PDB-covered workloads back at their healthy counts).

Executors:
  --executor command --command TEMPLATE   runs TEMPLATE locally with sh -c for each node;
      placeholders {node} {address} {version} {minor} {role} {first}, also in the environment
      as KUBEMAINT_NODE, KUBEMAINT_ADDRESS, ... ({address}: the node's InternalIP).
  --executor ssh [--ssh-user U] [--ssh-identity KEY] [--address-map FILE] [--node-script FILE]
      runs the built-in Debian/Ubuntu kubeadm commands on each node over the system's ssh
      (your ~/.ssh/config, agent, ProxyJump and known_hosts apply; unknown host keys are
      refused): pkgs.k8s.io repository switch to the minor, apt-mark unhold / apt-get update /
      apt-get install -y kubeadm=VERSION / apt-mark hold, kubeadm upgrade plan + apply VERSION
      --yes on the first control-plane node (kubeadm upgrade node elsewhere), then kubelet and
      kubectl the same way, systemctl daemon-reload, systemctl restart kubelet (--dry-run lists
      them). With sudo -n unless the login is root. The node is reached at its InternalIP, or
      at the host an --address-map file gives (node=host lines). --node-script FILE runs your
      script instead (its #! interpreter, else sh; KUBEMAINT_NODE/VERSION/MINOR/ROLE/FIRST in
      its environment and as $1..$5).

The run's state lives in the cluster (ConfigMap kube-system/kubemaint-upgrade-apply) and a
Lease (same name) is held while it runs: a second apply is refused while the Lease is held and
says who holds it; a Lease not renewed within its duration is taken over. After a kill, a
failed node command or Ctrl-C (which stops after the command in flight), run again with
--resume: finished nodes are not redone, no node is drained twice.
When a node's commands fail, the nodes of its batch whose commands succeeded still get their
wait and uncordon (they are upgraded: keeping them out only costs capacity); then the run stops
before the health gate and the next batch (exit 1), naming every failed node with its command's
exit status and last output, each left cordoned and drained. Fix the cause and run again with
--resume: only the failed nodes' commands run again.

Examples:
  kubemaint upgrade apply --target v1.20.2 --dry-run --executor command --command 'upgrade-node {node} {version}'
  kubemaint upgrade apply --target v1.20.2 --executor command \\
      --command 'ssh {address} sudo /usr/local/sbin/upgrade-node {version} {role} {first}' \\
      --max-unavailable 2 --backup-dir /var/backups/etcd --kubeadm --yes
  kubemaint upgrade apply --target v1.20.2 --resume --executor command --command '...'
  kubemaint-lab: --command 'kubemaint-lab node upgrade {node} --kubernetes-version {version} --dir DIR'

Output: progress lines on stderr, every command's output in --log-file, the final report on
stdout (-o json: one document).
Exit codes: 0 done; 1 failed or stopped (the report names the node; --resume continues);
2 bad input (nothing changed).";

/// Which executor runs the nodes' commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorKind {
    /// A command template run locally (`--command`).
    Command,
    /// The built-in node commands (or `--node-script`) over the system's ssh.
    Ssh,
}

/// Raw flags of `upgrade apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The version to reach, e.g. v1.20.2 (a chain of minors when further away).
    #[arg(long, value_name = "VERSION")]
    target: String,
    /// How the nodes' commands run.
    #[arg(long, value_enum, default_value_t = ExecutorKind::Command)]
    executor: ExecutorKind,
    /// The command template of `--executor command` (see below).
    #[arg(long, value_name = "TEMPLATE")]
    command: Option<String>,
    /// `--executor ssh`: the login user (default: ~/.ssh/config's, else yours).
    #[arg(long, value_name = "USER")]
    ssh_user: Option<String>,
    /// `--executor ssh`: the private key to use (only it is offered).
    #[arg(long, value_name = "FILE")]
    ssh_identity: Option<PathBuf>,
    /// `--executor ssh`: node=host lines; listed nodes are reached at that host instead of
    /// their InternalIP.
    #[arg(long, value_name = "FILE")]
    address_map: Option<PathBuf>,
    /// `--executor ssh`: your script run on each node instead of the built-in commands.
    #[arg(long, value_name = "FILE")]
    node_script: Option<PathBuf>,
    /// Most worker nodes out at once (a batch, drained together). Control-plane nodes always
    /// go one at a time.
    #[arg(long, value_name = "N", default_value_t = 1)]
    max_unavailable: usize,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Print every action and command the run would do; touch nothing.
    #[arg(long)]
    dry_run: bool,
    /// Continue the run recorded in the cluster (after a kill, a failure or Ctrl-C).
    #[arg(long)]
    resume: bool,
    /// Skip the etcd snapshot before the control plane (warned about).
    #[arg(long)]
    no_snapshot: bool,
    /// Directory for the etcd snapshot taken before the control plane.
    #[arg(long, value_name = "DIR")]
    backup_dir: Option<PathBuf>,
    /// The run log: every action and every line of every command's output (default:
    /// ./kubemaint-upgrade-apply-<UTC time>.log).
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Release index replacing the built-in one (as `upgrade plan --releases`).
    #[arg(long, value_name = "FILE")]
    releases: Option<PathBuf>,
    /// Drain timeout per batch (Go syntax: 10m, 90s; 0: no limit).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = kubemaint_core::duration::parse)]
    drain_timeout: Duration,
    /// How long to wait for a node to be Ready at the version after its commands.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = kubemaint_core::duration::parse)]
    node_timeout: Duration,
    /// How long the health gate waits before naming what is missing.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = kubemaint_core::duration::parse)]
    health_timeout: Duration,
    /// The Lease's duration: a run not renewing it for this long is taken over.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = kubemaint_core::duration::parse)]
    lease_duration: Duration,
    /// etcd connection for the snapshot (as `etcd snapshot save`).
    #[command(flatten)]
    etcd: ConnectionArgs,
}

/// Resolved configuration of `upgrade apply`.
pub struct ApplyConfig {
    /// The target.
    pub target: Version,
    /// The release index.
    pub index: ReleaseIndex,
    /// The executor.
    pub executor: Box<dyn Executor>,
    /// Batch size for workers.
    pub max_unavailable: usize,
    /// Skip the prompt.
    pub yes: bool,
    /// Print only.
    pub dry_run: bool,
    /// Continue the recorded run.
    pub resume: bool,
    /// Snapshot: the directory and etcd connection, or `None` with --no-snapshot.
    pub snapshot: Option<(PathBuf, ConnectionArgs)>,
    /// The run log.
    pub log_file: PathBuf,
    /// Drain timeout per batch.
    pub drain_timeout: Option<Duration>,
    /// Node wait timeout.
    pub node_timeout: Duration,
    /// Health gate timeout.
    pub health_timeout: Duration,
    /// Lease duration.
    pub lease_duration: Duration,
}

impl ApplyArgs {
    /// Checks every flag; bad input exits with 2 before any request.
    pub fn resolve(self) -> anyhow::Result<ApplyConfig> {
        let target = Version::parse(&self.target)
            .map_err(|e| CodedError::usage(format!("--target: {e}")))?;
        let (index, _) = load_releases(self.releases.as_deref())?;
        index
            .check_target(&target)
            .map_err(|e| CodedError::usage(format!("--target: {e}")))?;
        if self.executor == ExecutorKind::Command {
            for (flag, given) in [
                ("--ssh-user", self.ssh_user.is_some()),
                ("--ssh-identity", self.ssh_identity.is_some()),
                ("--address-map", self.address_map.is_some()),
                ("--node-script", self.node_script.is_some()),
            ] {
                if given {
                    return Err(CodedError::usage(format!(
                        "{flag} applies to --executor ssh; with --executor command put it in --command"
                    )));
                }
            }
        }
        let executor: Box<dyn Executor> = match self.executor {
            ExecutorKind::Command => {
                let text = self.command.ok_or_else(|| {
                    CodedError::usage(
                        "--executor command needs --command TEMPLATE, e.g. --command 'ssh {address} sudo upgrade-node {version}'",
                    )
                })?;
                let template = CommandTemplate::parse(&text)
                    .map_err(|e| CodedError::usage(format!("--command: {e}")))?;
                Box::new(CommandExecutor::new(template))
            }
            ExecutorKind::Ssh => Box::new(ssh_executor(
                self.ssh_user,
                self.ssh_identity,
                self.address_map.as_deref(),
                self.node_script.as_deref(),
            )?),
        };
        if self.max_unavailable == 0 {
            return Err(CodedError::usage(
                "--max-unavailable must be at least 1 (1: one worker at a time)",
            ));
        }
        let snapshot = match (self.no_snapshot, self.backup_dir) {
            (true, _) => None,
            (false, Some(dir)) => {
                if dir.exists() && !dir.is_dir() {
                    return Err(CodedError::usage(format!(
                        "--backup-dir {}: not a directory",
                        dir.display()
                    )));
                }
                Some((dir, self.etcd))
            }
            (false, None) if self.dry_run => Some((PathBuf::from("<--backup-dir>"), self.etcd)),
            (false, None) => {
                return Err(CodedError::usage(
                    "give --backup-dir DIR for the etcd snapshot taken before the control plane is upgraded (with --pki-dir/--kubeadm/--endpoints as for `etcd snapshot save`), or --no-snapshot to skip it",
                ));
            }
        };
        let log_file = self.log_file.unwrap_or_else(|| {
            PathBuf::from(format!(
                "kubemaint-upgrade-apply-{}.log",
                jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ")
            ))
        });
        if self.lease_duration < Duration::from_secs(3) {
            return Err(CodedError::usage("--lease-duration must be at least 3s"));
        }
        Ok(ApplyConfig {
            target,
            index,
            executor,
            max_unavailable: self.max_unavailable,
            yes: self.yes,
            dry_run: self.dry_run,
            resume: self.resume,
            snapshot,
            log_file,
            drain_timeout: kubemaint_core::drain::config::timeout(self.drain_timeout),
            node_timeout: self.node_timeout,
            health_timeout: self.health_timeout,
            lease_duration: self.lease_duration,
        })
    }
}

/// The ssh executor from its flags (files read and checked here: bad input exits 2).
fn ssh_executor(
    user: Option<String>,
    identity: Option<PathBuf>,
    address_map: Option<&std::path::Path>,
    node_script: Option<&std::path::Path>,
) -> anyhow::Result<SshExecutor> {
    let addresses = match address_map {
        None => Default::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CodedError::usage(format!("--address-map {}: {e}", path.display())))?;
            parse_address_map(&text)
                .map_err(|e| CodedError::usage(format!("--address-map {}: {e}", path.display())))?
        }
    };
    let script = match node_script {
        None => None,
        Some(path) => Some(NodeScript {
            path: path.to_path_buf(),
            text: std::fs::read_to_string(path)
                .map_err(|e| CodedError::usage(format!("--node-script {}: {e}", path.display())))?,
        }),
    };
    if let Some(key) = &identity
        && !key.is_file()
    {
        return Err(CodedError::usage(format!(
            "--ssh-identity {}: no such file",
            key.display()
        )));
    }
    Ok(SshExecutor::new(SshOptions {
        user,
        identity,
        addresses,
        script,
        ..SshOptions::default()
    }))
}

/// Runs `kubemaint upgrade apply`.
pub async fn run(args: ApplyArgs, global: &GlobalArgs) -> anyhow::Result<i32> {
    let config = args.resolve()?;
    run::run(config, global).await
}
