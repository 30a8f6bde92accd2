//! `kubemaint upgrade apply`: the plan of `upgrade plan`, executed node by node.
//!
//! Flow: raw clap args → [`ApplyConfig`] (every flag checked before any request) → discovery
//! and the plan (or the recorded run with `--resume`) → the core's next-step function driven
//! by [`run`] against the cluster: the run record in a ConfigMap, the Lease, cordons, the drain
//! engine for batches, the executor for each node's commands, waits and the health gate.

mod changes;
mod ctx;
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
use crate::commands::drain::args::{PodArgs, PodHandling, UPGRADE_DEFAULTS};
use crate::commands::etcd::connection::ConnectionArgs;
use crate::exit::CodedError;
use crate::global::GlobalArgs;
use kubemaint_etcd::client::ConnectionConfig;

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
      as KUBEMAINT_NODE, KUBEMAINT_ADDRESS, ... ({address}: the node's InternalIP; {role}:
      control-plane, worker, or kubelet-only for a catch-up kubelet, where only the kubelet moves).
  --executor ssh [--ssh-user U] [--ssh-identity KEY] [--ssh-port N] [--ssh-config FILE]
               [--address-map FILE] [--node-script FILE]
      runs the built-in Debian/Ubuntu kubeadm commands on each node over the system's ssh
      (your ~/.ssh/config, or --ssh-config FILE as `ssh -F FILE`, which then replaces both
      ~/.ssh/config and /etc/ssh/ssh_config; agent, ProxyJump and known_hosts apply; unknown
      host keys are refused): pkgs.k8s.io repository switch to the minor, apt-mark unhold /
      apt-get update / apt-get install -y kubeadm=VERSION / apt-mark hold, kubeadm upgrade
      plan + apply VERSION --yes on the first control-plane node (kubeadm upgrade node
      elsewhere; for a catch-up kubelet only kubeadm upgrade node phase kubelet-config), then
      kubelet and kubectl the same way, systemctl daemon-reload, systemctl
      restart kubelet. Each command runs as `sudo -n COMMAND` unless the login is root (asked
      with `id -u` on the node); --dry-run shows them as they would run for --ssh-user (with
      sudo -n unless it is root). The node is reached at its InternalIP, or at the host an
      --address-map file gives (node=host lines; the host may be a Host alias of the ssh
      config). --node-script FILE runs your script instead (its #! interpreter, else sh;
      KUBEMAINT_NODE/VERSION/MINOR/ROLE/FIRST in its environment and as $1..$5).

Drains (kubectl drain's flags, same names and meanings as `kubemaint drain`): defaults safe for
an upgrade: DaemonSet pods ignored (--ignore-daemonsets=false to refuse nodes running them);
--delete-emptydir-data, --force and --disable-eviction off, so a pod with emptyDir data, a pod
no controller recreates, or a PodDisruptionBudget is never lost or bypassed without asking: the
drain stops at that node naming the pod and the flag (rerun with --resume and the flag).
--grace-period (default: each pod's own), --pod-selector, --skip-wait-for-delete-timeout.

etcd in the health gate: with --pki-dir, --kubeadm, --endpoints (or ETCDCTL_ENDPOINTS) every
member is asked for its status (member list, leader, raft index, alarms): each must answer,
without errors, as a voter agreeing on one leader. Without them, or when etcd cannot be
reached from here, the members are reported unknown (not a failure) and the gate relies on
the API server's /readyz/etcd.

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
    /// `--executor ssh`: the port (`ssh -p`; default: the ssh config's, else 22).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    ssh_port: Option<u16>,
    /// `--executor ssh`: an ssh config file read instead of ~/.ssh/config (`ssh -F`): Host
    /// blocks with HostName, Port, User, ProxyJump, IdentityFile apply per node address.
    #[arg(long, value_name = "FILE")]
    ssh_config: Option<PathBuf>,
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
    /// How the drains treat pods: kubectl drain's flags. Defaults for an upgrade: DaemonSet
    /// pods ignored; --force, --delete-emptydir-data and --disable-eviction off (a pod they
    /// would lose stops the drain, naming the pod and the flag).
    #[command(flatten)]
    pods: PodArgs,
    /// etcd connection for the snapshot (as `etcd snapshot save`) and for the health gate,
    /// which asks every member for its status when one of these (or ETCDCTL_ENDPOINTS) is given.
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
    /// How the drains treat pods.
    pub pods: PodHandling,
    /// The etcd connection the health gate asks every member through; `None` when no etcd
    /// flag (nor `ETCDCTL_ENDPOINTS`) was given: the gate then has only `/readyz/etcd`.
    pub etcd_members: Option<ConnectionConfig>,
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
                ("--ssh-port", self.ssh_port.is_some()),
                ("--ssh-config", self.ssh_config.is_some()),
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
            ExecutorKind::Ssh => Box::new(ssh_executor(SshFlags {
                user: self.ssh_user,
                identity: self.ssh_identity,
                port: self.ssh_port,
                config: self.ssh_config,
                address_map: self.address_map,
                node_script: self.node_script,
            })?),
        };
        if self.max_unavailable == 0 {
            return Err(CodedError::usage(
                "--max-unavailable must be at least 1 (1: one worker at a time)",
            ));
        }
        let asked = self.etcd.pki_dir.is_some()
            || self.etcd.kubeadm.is_some()
            || !self.etcd.endpoints.is_empty()
            || std::env::var_os("ETCDCTL_ENDPOINTS").is_some();
        let etcd_members = if asked {
            Some(self.etcd.clone().resolve()?)
        } else {
            None
        };
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
            pods: self.pods.resolve(UPGRADE_DEFAULTS),
            etcd_members,
        })
    }
}

/// The ssh executor's flags.
struct SshFlags {
    user: Option<String>,
    identity: Option<PathBuf>,
    port: Option<u16>,
    config: Option<PathBuf>,
    address_map: Option<PathBuf>,
    node_script: Option<PathBuf>,
}

/// The ssh executor from its flags (files read and checked here: bad input exits 2).
fn ssh_executor(flags: SshFlags) -> anyhow::Result<SshExecutor> {
    let addresses = match &flags.address_map {
        None => Default::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CodedError::usage(format!("--address-map {}: {e}", path.display())))?;
            parse_address_map(&text)
                .map_err(|e| CodedError::usage(format!("--address-map {}: {e}", path.display())))?
        }
    };
    let script = match &flags.node_script {
        None => None,
        Some(path) => Some(NodeScript {
            path: path.clone(),
            text: std::fs::read_to_string(path)
                .map_err(|e| CodedError::usage(format!("--node-script {}: {e}", path.display())))?,
        }),
    };
    for (flag, file) in [
        ("--ssh-identity", &flags.identity),
        ("--ssh-config", &flags.config),
    ] {
        if let Some(file) = file {
            // Read now: ssh would only say so at the first node, after the run has begun.
            std::fs::File::open(file)
                .and_then(|f| {
                    if f.metadata()?.is_file() {
                        Ok(())
                    } else {
                        Err(std::io::Error::other("not a file"))
                    }
                })
                .map_err(|e| CodedError::usage(format!("{flag} {}: {e}", file.display())))?;
        }
    }
    Ok(SshExecutor::new(SshOptions {
        user: flags.user,
        identity: flags.identity,
        port: flags.port,
        config_file: flags.config,
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
