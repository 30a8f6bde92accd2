//! `kubemaint upgrade plan`: every version the cluster runs, the skew policy, the path to the
//! target and the preflight, in one answer.
//!
//! Flow: raw clap args → [`PlanConfig`] (target, release index, what to check) → discovery
//! ([`kubemaint_cluster::upgrade::versions`]) → the core's pure planner and preflight verdicts
//! (facts from [`kubemaint_cluster::upgrade::checks`] and the local [`checks`]) → output
//! ([`render`]).

pub mod apply;
pub mod checks;
pub mod online;
pub mod render;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use kubemaint_cluster::upgrade::checks as api_checks;
use kubemaint_cluster::upgrade::versions as discover;
use kubemaint_core::upgrade::plan::{PlanError, plan};
use kubemaint_core::upgrade::preflight::{self, Check};
use kubemaint_core::upgrade::releases::{ReleaseFile, ReleaseIndex};
use kubemaint_core::upgrade::{Minor, Version};

use crate::commands::etcd::connection::ConnectionArgs;
use crate::exit::{CodedError, PARTIAL, SUCCESS};
use crate::global::GlobalArgs;
use crate::kube_client::{self, Retry};

/// The exit rule of `upgrade plan` (its `--help`; README says the same), a literal for `concat!`.
macro_rules! plan_exit_codes {
    () => {
        "Exit codes: 0 the plan was printed and no preflight check fails (warnings allowed); 3 the plan was printed and at least one check fails (a blocker: the `fail` lines say what to fix first) or a step could not be kept within the skew policy; 1 the cluster could not be read (API server unreachable) or --online could not read the release labels; 2 bad input (an unknown, malformed or downgrade target, a --releases file that does not parse, an unreadable --backup-dir or --pki-dir)."
    };
}

/// `kubemaint upgrade ...`
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    #[command(subcommand)]
    command: UpgradeCommand,
}

#[derive(Debug, Subcommand)]
enum UpgradeCommand {
    /// Show every component's version, the skew findings, the minor-by-minor path to the
    /// target with the order of moves, and the preflight. Touches nothing.
    #[command(
        after_help = concat!("Examples:\n  kubemaint upgrade plan                          # next minor's latest patch\n  kubemaint upgrade plan --target v1.21.14        # a chain: v1.20.15, then v1.21.14\n  kubemaint upgrade plan --to-minor 1.25 --pki-dir /etc/kubernetes/pki --backup-dir /var/backups/etcd\n  kubemaint upgrade plan -o markdown > runbook.md # per-node commands for Debian/Ubuntu kubeadm nodes\n\nOutput: -o table (default), json, yaml (the whole plan; see README), markdown (a runbook).\n\n", plan_exit_codes!())
    )]
    Plan(Box<PlanArgs>),
    /// Upgrade the cluster to a version, node by node, as `upgrade plan` shows: control-plane
    /// nodes one at a time, then workers in batches within every PodDisruptionBudget;
    /// resumable, locked by a Lease, an etcd snapshot first.
    #[command(after_help = apply::AFTER_HELP)]
    Apply(Box<apply::ApplyArgs>),
}

/// Raw flags of `upgrade plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The version to reach, e.g. v1.21.14 (default: the latest patch of the next minor).
    #[arg(long, value_name = "VERSION", conflicts_with = "to_minor")]
    target: Option<String>,
    /// Reach the latest patch of this minor, e.g. 1.25.
    #[arg(long, value_name = "MINOR")]
    to_minor: Option<String>,
    /// Release index (YAML or JSON: `releases: [{version, etcd, coredns}]`) replacing the
    /// built-in one (1.19–1.34).
    #[arg(long, value_name = "FILE")]
    releases: Option<PathBuf>,
    /// Also read the official latest patch of each minor from
    /// https://dl.k8s.io/release/stable-1.N.txt (needs network; the etcd and CoreDNS pins stay
    /// the index's).
    #[arg(long)]
    online: bool,
    /// Directory of `kubemaint etcd snapshot save` output: the newest `.manifest.json` is
    /// checked for age.
    #[arg(long, value_name = "DIR")]
    backup_dir: Option<PathBuf>,
    /// A backup older than this is a warning (Go syntax: 24h, 90m).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = kubemaint_core::duration::parse)]
    backup_max_age: Duration,
    /// etcd connection (as `etcd snapshot save`); etcd is asked only when one of these is given.
    #[command(flatten)]
    etcd: ConnectionArgs,
}

/// What the user asked for, resolved.
#[derive(Debug)]
pub enum TargetChoice {
    /// An exact version.
    Exact(Version),
    /// The latest patch of a minor.
    Minor(Minor),
    /// Next minor's latest patch (or the current minor's, at the newest minor).
    Next,
}

/// Resolved configuration of `upgrade plan`.
#[derive(Debug)]
pub struct PlanConfig {
    /// The target as asked.
    pub target: TargetChoice,
    /// The release index in use.
    pub index: ReleaseIndex,
    /// Where the index came from (`built-in` or the file).
    pub index_source: String,
    /// Refresh the index's patches from the official labels.
    pub online: bool,
    /// Backup directory.
    pub backup_dir: Option<PathBuf>,
    /// Age above which a backup warns.
    pub backup_max_age: Duration,
    /// PKI dir for certificate expiry.
    pub pki_dir: Option<PathBuf>,
    /// etcd connection, when asked for.
    pub etcd: Option<Result<kubemaint_etcd::client::ConnectionConfig, String>>,
}

impl PlanArgs {
    /// Resolves the flags; bad input exits with 2.
    pub fn resolve(self) -> anyhow::Result<PlanConfig> {
        let target = match (&self.target, &self.to_minor) {
            (Some(t), _) => TargetChoice::Exact(
                Version::parse(t).map_err(|e| CodedError::usage(format!("--target: {e}")))?,
            ),
            (None, Some(m)) => TargetChoice::Minor(
                Minor::parse(m).map_err(|e| CodedError::usage(format!("--to-minor: {e}")))?,
            ),
            (None, None) => TargetChoice::Next,
        };
        let (index, index_source) = load_releases(self.releases.as_deref())?;
        let pki_dir = self.etcd.pki_dir.clone();
        let asked = self.etcd.pki_dir.is_some()
            || self.etcd.kubeadm.is_some()
            || !self.etcd.endpoints.is_empty()
            || std::env::var_os("ETCDCTL_ENDPOINTS").is_some();
        let etcd = asked.then(|| self.etcd.resolve().map_err(|e| format!("{e:#}")));
        Ok(PlanConfig {
            target,
            index,
            index_source,
            online: self.online,
            backup_dir: self.backup_dir,
            backup_max_age: self.backup_max_age,
            pki_dir,
            etcd,
        })
    }
}

/// The release index: the built-in one, or `--releases FILE` (YAML or JSON); with where it came
/// from. A bad file is a usage error.
pub fn load_releases(path: Option<&std::path::Path>) -> anyhow::Result<(ReleaseIndex, String)> {
    Ok(match path {
        None => (ReleaseIndex::builtin(), "built-in".to_string()),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CodedError::usage(format!(
                    "--releases {}: cannot read it ({e}); give a readable YAML or JSON file",
                    path.display()
                ))
            })?;
            let file: ReleaseFile = serde_saphyr::from_str(&text).map_err(|e| {
                CodedError::usage(format!(
                    "--releases {}: not a release index ({e}); expected `releases:` with entries `{{version: v1.N.P, etcd: TAG, coredns: TAG}}`",
                    path.display()
                ))
            })?;
            let index = ReleaseIndex::from_file(file)
                .map_err(|e| CodedError::usage(format!("--releases {}: {e}", path.display())))?;
            (index, path.display().to_string())
        }
    })
}

/// Runs `kubemaint upgrade ...`.
pub async fn run(args: UpgradeArgs, global: &GlobalArgs) -> anyhow::Result<i32> {
    match args.command {
        UpgradeCommand::Plan(args) => run_plan(args.resolve()?, global).await,
        UpgradeCommand::Apply(args) => apply::run(*args, global).await,
    }
}

fn resolve_target(
    choice: &TargetChoice,
    index: &ReleaseIndex,
    current: &Version,
) -> anyhow::Result<Version> {
    let of_minor = |minor: Minor| {
        index.get(minor).map(|r| r.version.clone()).ok_or_else(|| {
            CodedError::usage(format!(
                "minor {minor} is not in the release index; pass --releases FILE to add it"
            ))
        })
    };
    match choice {
        TargetChoice::Exact(v) => {
            index
                .check_target(v)
                .map_err(|e| CodedError::usage(format!("--target: {e}")))?;
            Ok(v.clone())
        }
        TargetChoice::Minor(m) => of_minor(*m),
        TargetChoice::Next => of_minor(current.minor_of().next())
            .or_else(|_| of_minor(current.minor_of()))
            .map_err(|_| {
                CodedError::usage(format!(
                    "neither {} nor {} is in the release index; pass --target or --releases FILE",
                    current.minor_of().next(),
                    current.minor_of()
                ))
            }),
    }
}

async fn run_plan(mut config: PlanConfig, global: &GlobalArgs) -> anyhow::Result<i32> {
    let client = kube_client::client(global, Retry::Default).await?;
    let reader = discover::KubeReader {
        client: client.clone(),
    };
    let snapshot = discover::read(&reader).await.map_err(|e| {
        anyhow::Error::new(e).context(
            "cannot reach the cluster's API server; check --kubeconfig/--context and that the server is up",
        )
    })?;
    let mut found = discover::interpret(&snapshot);
    let current = found
        .state
        .versions
        .apiserver_range()
        .map(|(oldest, _)| oldest.version.clone())
        .ok_or_else(|| anyhow::Error::new(PlanError::UnknownCurrent))?;
    if config.online {
        let (index, update) = online::refresh(&config.index, current.minor_of())
            .await
            .context("--online")?;
        config.index = index;
        config.index_source = online::describe(&config.index_source, &update);
    }
    let target = resolve_target(&config.target, &config.index, &current)?;
    let upgrade = plan(&found.state, &target, &config.index).map_err(|e| match e {
        PlanError::UnknownCurrent => anyhow::Error::new(e),
        other => CodedError::usage(other.to_string()),
    })?;

    let mut checks: Vec<Check> = Vec::new();
    checks.extend(preflight::check_nodes(&api_checks::node_facts(
        &snapshot.nodes,
    )));
    checks.push(preflight::check_current_skew(&upgrade.current_findings));
    let kubelets: Vec<(String, Version)> = found
        .state
        .versions
        .kubelets
        .iter()
        .map(|k| (k.node.clone().unwrap_or_default(), k.version.clone()))
        .collect();
    checks.push(preflight::check_kubelets_behind(&current, &kubelets));
    checks.extend(api_checks::drain_checks(&client, &snapshot.nodes).await);
    let kubectl = checks::local_kubectl().await;
    if let Ok(version) = &kubectl {
        found.components.push(discover::Discovered {
            name: "kubectl".into(),
            node_name: None,
            current_version: Some(version.to_string()),
            source: "local `kubectl version --client -o json` (PATH)".into(),
        });
    }
    checks.push(preflight::check_kubectl(
        kubectl.as_ref().map_err(String::as_str),
        &found.state.versions.apiservers,
        &target,
    ));
    checks.extend(
        api_checks::removed_api_check(&client, current.minor_of(), target.minor_of()).await,
    );
    let target_etcd = config
        .index
        .get(target.minor_of())
        .map(|r| r.etcd.clone())
        .unwrap_or_default();
    let etcd_facts = match &config.etcd {
        None => (None, None),
        Some(Err(e)) => (None, Some(e.clone())),
        Some(Ok(conn)) => match checks::etcd_members(conn).await {
            Ok(members) => (Some(members), None),
            Err(e) => (None, Some(format!("cannot reach etcd: {e}"))),
        },
    };
    checks.extend(preflight::check_etcd(
        etcd_facts.0.as_deref(),
        etcd_facts.1.as_deref(),
        &target_etcd,
    ));
    let now = jiff::Timestamp::now();
    let newest = match &config.backup_dir {
        Some(dir) => checks::newest_backup(dir)
            .with_context(|| format!("--backup-dir {}: cannot list it", dir.display()))
            .map_err(|e| CodedError::usage(format!("{e:#}")))?,
        None => None,
    };
    let max_age =
        jiff::SignedDuration::try_from(config.backup_max_age).unwrap_or(jiff::SignedDuration::MAX);
    checks.push(preflight::check_backup(
        config
            .backup_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .as_deref(),
        newest,
        now,
        max_age,
    ));
    let certs = match &config.pki_dir {
        Some(dir) => checks::certificates(dir)
            .map_err(|e| CodedError::usage(format!("--pki-dir {}: {e}", dir.display())))?,
        None => Vec::new(),
    };
    checks.push(preflight::check_certificates(
        config
            .pki_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .as_deref(),
        &certs,
        now,
    ));

    let report = render::Report {
        found: &found,
        server_version: snapshot.server_version.as_deref(),
        plan: &upgrade,
        checks: &checks,
        index_source: &config.index_source,
    };
    render::print(&report, global.output)?;
    if preflight::worst(&checks) == preflight::Status::Fail || !upgrade.keeps_policy() {
        Ok(PARTIAL)
    } else {
        Ok(SUCCESS)
    }
}
