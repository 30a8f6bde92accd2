//! `upgrade apply` from start to report: the recorded run or a new plan, the Lease, the loop
//! ([`super::drive`]), and the final report and exit code.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use kubemaint_cluster::apply::lease::{self, Acquired};
use kubemaint_cluster::apply::observe;
use kubemaint_cluster::apply::store::{RunRecord, RunStatus, RunStore};
use kubemaint_cluster::upgrade::versions as discover;
use kubemaint_core::upgrade::apply::{ApplyPlan, Options, RunState};
use kubemaint_core::upgrade::plan::{PlanError, plan};

use super::ApplyConfig;
use super::changes::Changes;
use super::ctx::{Ctx, now_text, save};
use super::drive::drive;
use super::dry_run::dry_run;
use super::view::{Report, RunLog};
use crate::exit::{CodedError, FAILURE, SUCCESS};
use crate::global::GlobalArgs;
use crate::kube_client::{self, Retry};
use crate::output::print_machine;

/// `user@host/pid`: who holds the Lease and started the run.
fn identity() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid{}", unsafe_free_uid()));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}/{}", std::process::id())
}

fn unsafe_free_uid() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}

/// Runs `upgrade apply`.
pub(super) async fn run(config: ApplyConfig, global: &GlobalArgs) -> anyhow::Result<i32> {
    let kube_config = kube_client::config(global, Retry::Default).await?;
    let client = kube::Client::try_from(kube_config.clone())
        .context("cannot build a Kubernetes client from the kubeconfig")?;
    let evict = kube_client::client(global, Retry::Off).await?;
    let identity = identity();
    let mut store = RunStore::new(client.clone());
    let existing = store.load().await.map_err(|e| {
        anyhow::Error::new(e).context(
            "cannot reach the cluster's API server; check --kubeconfig/--context and that the server is up",
        )
    })?;

    let options = Options {
        max_unavailable: config.max_unavailable,
        snapshot: config.snapshot.is_some(),
    };
    let mut record = match (config.resume, existing) {
        (true, None) => {
            return Err(CodedError::usage(
                "--resume: no run is recorded in the cluster (ConfigMap kube-system/kubemaint-upgrade-apply); start one without --resume",
            ));
        }
        (true, Some(record)) => {
            if record.plan.target != config.target {
                return Err(CodedError::usage(format!(
                    "--resume: the recorded run goes to {}, not {}; resume it with --target {}",
                    record.plan.target, config.target, record.plan.target
                )));
            }
            if record.status == RunStatus::Done {
                println!(
                    "The recorded run to {} is finished; nothing to resume.",
                    record.plan.target
                );
                return Ok(SUCCESS);
            }
            record
        }
        (false, Some(record)) if record.status != RunStatus::Done && !config.dry_run => {
            return Err(CodedError::usage(format!(
                "a run to {} started by {} at {} is recorded ({}); continue it with --resume, or delete the ConfigMap kube-system/kubemaint-upgrade-apply to start over",
                record.plan.target,
                record.started_by,
                record.started_at,
                status_text(&record.status)
            )));
        }
        (false, _) => {
            let plan = new_plan(&client, &config).await?;
            RunRecord {
                plan,
                options: options.clone(),
                state: RunState::default(),
                started_by: identity.clone(),
                started_at: now_text(),
                updated_by: identity.clone(),
                updated_at: now_text(),
                status: RunStatus::Running,
                last_action: None,
                budgets_before: Default::default(),
            }
        }
    };
    // A resume may change how many workers go at once; the snapshot choice stays as asked now.
    record.options = options;

    if config.dry_run {
        return dry_run(&client, &config, &record).await;
    }
    if record.plan.stages.is_empty() {
        println!(
            "Every node already runs {}: nothing to do.",
            record.plan.target
        );
        return Ok(SUCCESS);
    }
    if !config.yes {
        confirm(&record)?;
    }
    if config.snapshot.is_none() && !config.resume {
        eprintln!(
            "warning: --no-snapshot: no etcd snapshot is taken before the control plane is upgraded; without a backup a failed upgrade cannot be rolled back"
        );
    }

    let log = RunLog::open(&config.log_file, true)?;
    let (held, acquired) = lease::acquire(client.clone(), &identity, config.lease_duration)
        .await
        .map_err(|e| CodedError::wrap(FAILURE, e))?;
    if let Acquired::TookOver {
        holder,
        renewed_ago,
    } = &acquired
    {
        log.say(&format!(
            "warning: took over the stale Lease kube-system/kubemaint-upgrade-apply from {holder} (not renewed for {renewed_ago}s: that run is gone)"
        ));
    }
    let renewal = held.keep_alive();
    log.say(&format!(
        "upgrade apply to {} as {identity}{}; run log {}",
        record.plan.target,
        if config.resume {
            format!(
                " (resuming the run started by {} at {})",
                record.started_by, record.started_at
            )
        } else {
            String::new()
        },
        log.path().display()
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let signals = spawn_signal_watch(stop.clone(), log.clone());
    let pdb_version = kubemaint_cluster::read::discover(&client)
        .await
        .map(|p| p.pdb_version)
        .unwrap_or("v1");
    if !config.resume
        && record.budgets_before.is_empty()
        && let Ok(budgets) = observe::budgets(&client, pdb_version).await
    {
        record.budgets_before = budgets
            .into_iter()
            .map(|b| (b.name, b.current_healthy))
            .collect();
    }
    record.status = RunStatus::Running;
    record.updated_by = identity.clone();
    if config.resume {
        // The operator fixed what failed: the failed nodes' commands run again.
        record.state.retry_failed();
    }
    let client_for_changes = client.clone();
    let mut ctx = Ctx {
        config: &config,
        global,
        client,
        evict,
        kube_config,
        log: log.clone(),
        stop: stop.clone(),
        pdb_version,
        snapshots: Vec::new(),
        etcd_members: None,
        changes: Changes::start(&client_for_changes, pdb_version),
    };
    let started = Instant::now();
    let mut steps = Vec::new();
    let outcome = drive(&mut ctx, &mut store, &mut record, &held, &mut steps).await;
    renewal.abort();
    signals.abort();

    let (status, failed_nodes, error) = match &outcome {
        Ok(()) if record.status == RunStatus::Done => ("done", Vec::new(), None),
        Ok(()) => ("stopped", Vec::new(), None),
        Err(e) => ("failed", e.nodes.clone(), Some(format!("{:#}", e.error))),
    };
    let failed_node = failed_nodes.first().cloned();
    if let Some(error) = &error {
        record.status = RunStatus::Failed {
            node: (!failed_nodes.is_empty()).then(|| failed_nodes.join(", ")),
            error: error.clone(),
        };
        let _ = save(&ctx, &mut store, &mut record).await;
    }
    if !held.lost()
        && let Err(e) = held.release().await
    {
        log.say(&format!("warning: {e}"));
    }
    let left_cordoned: Vec<String> = record.state.cordoned.iter().cloned().collect();
    let report = Report {
        kind: "UpgradeApplyReport",
        target: record.plan.target.to_string(),
        status: status.into(),
        failed_node: failed_node.clone(),
        failed_nodes: failed_nodes.clone(),
        error: error.clone(),
        started_by: record.started_by.clone(),
        started_at: record.started_at.clone(),
        seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        jobs_done: record.state.done.len(),
        jobs_total: record.plan.job_count(),
        left_cordoned: left_cordoned.clone(),
        snapshots: ctx.snapshots.clone(),
        etcd_members: ctx.etcd_members.clone(),
        log_file: log.path().display().to_string(),
        plan: record.plan.clone(),
        steps,
    };
    if !print_machine(global.output, &report)? {
        print_summary(&report);
    }
    match status {
        "done" => Ok(SUCCESS),
        "stopped" => {
            let cordoned = if left_cordoned.is_empty() {
                String::new()
            } else {
                format!("; left cordoned by kubemaint: {}", left_cordoned.join(", "))
            };
            log.say(&format!(
                "stopped on request after the step in flight{cordoned}; run again with --resume to continue"
            ));
            Ok(FAILURE)
        }
        _ => {
            let mut message = String::from("upgrade apply stopped");
            match failed_nodes.as_slice() {
                [] => {}
                [node] => message.push_str(&format!(" at node {node}")),
                nodes => message.push_str(&format!(" at nodes {}", nodes.join(", "))),
            }
            if !left_cordoned.is_empty() {
                message.push_str(&format!(
                    "; left cordoned by kubemaint: {} (fix the cause, then run again with --resume; or `kubemaint uncordon NODE`)",
                    left_cordoned.join(", ")
                ));
            } else {
                message.push_str("; fix the cause, then run again with --resume");
            }
            log.log(&message);
            Err(CodedError::wrap(
                FAILURE,
                anyhow::anyhow!("{message}: {}", error.unwrap_or_default()),
            ))
        }
    }
}

fn status_text(status: &RunStatus) -> String {
    match status {
        RunStatus::Running => "running, or killed while running".into(),
        RunStatus::Stopped => "stopped on request".into(),
        RunStatus::Failed { node, error } => match node {
            Some(node) => format!("failed at node {node}: {error}"),
            None => format!("failed: {error}"),
        },
        RunStatus::Done => "done".into(),
    }
}

async fn new_plan(client: &kube::Client, config: &ApplyConfig) -> anyhow::Result<ApplyPlan> {
    let reader = discover::KubeReader {
        client: client.clone(),
    };
    let snapshot = discover::read(&reader).await.map_err(|e| {
        anyhow::Error::new(e).context(
            "cannot reach the cluster's API server; check --kubeconfig/--context and that the server is up",
        )
    })?;
    let found = discover::interpret(&snapshot);
    let upgrade = plan(&found.state, &config.target, &config.index).map_err(|e| match e {
        PlanError::UnknownCurrent => anyhow::Error::new(e),
        other => CodedError::usage(format!("--target {}: {other}", config.target)),
    })?;
    if !upgrade.keeps_policy() {
        return Err(CodedError::usage(format!(
            "the plan to {} breaks the skew policy at some point (see `kubemaint upgrade plan --target {}`); refusing to apply it",
            config.target, config.target
        )));
    }
    Ok(ApplyPlan::from_upgrade(
        &upgrade,
        &found.control_plane_nodes,
    ))
}

fn confirm(record: &RunRecord) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(CodedError::usage(
            "not a terminal: pass --yes to run without confirmation (see --dry-run for what it does)",
        ));
    }
    eprintln!("Upgrade to {}:", record.plan.target);
    for stage in &record.plan.stages {
        let nodes: Vec<&str> = stage.jobs.iter().map(|j| j.node.as_str()).collect();
        eprintln!("  {}: {}", stage.title(), nodes.join(", "));
    }
    eprint!("Proceed? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(CodedError::usage("not confirmed; nothing was changed"))
    }
}

fn spawn_signal_watch(stop: Arc<AtomicBool>, log: Arc<RunLog>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        stop.store(true, Ordering::SeqCst);
        log.say(
            "stop requested: finishing the step in flight, then stopping (resumable with --resume)",
        );
    })
}

fn print_summary(report: &Report) {
    println!(
        "upgrade apply to {}: {} ({} of {} node jobs done, {:.1}s)",
        report.target, report.status, report.jobs_done, report.jobs_total, report.seconds
    );
    for snapshot in &report.snapshots {
        println!("  etcd snapshot: {snapshot}");
    }
    if let Some(members) = &report.etcd_members {
        println!(
            "  last health gate: {}",
            kubemaint_core::upgrade::apply::health::etcd_members_summary(members)
        );
    }
    match report.failed_nodes.as_slice() {
        [] => {}
        [node] => println!("  stopped at node {node}"),
        nodes => println!("  stopped at nodes {}", nodes.join(", ")),
    }
    if !report.left_cordoned.is_empty() {
        println!(
            "  left cordoned by kubemaint: {} (`kubemaint uncordon NODE` or --resume)",
            report.left_cordoned.join(", ")
        );
    }
    println!("  run log: {}", report.log_file);
}
