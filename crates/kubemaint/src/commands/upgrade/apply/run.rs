//! The driver: observe → decide (the core's `next`) → record (write-ahead) → act → record,
//! until done, stopped or failed.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kubemaint_cluster::apply::lease::{self, Acquired};
use kubemaint_cluster::apply::observe::{self, Observed};
use kubemaint_cluster::apply::store::{RunRecord, RunStatus, RunStore};
use kubemaint_cluster::drain::{self, Clients};
use kubemaint_cluster::exec::{ExecContext, ExecOutcome, NodeTarget};
use kubemaint_cluster::nodes;
use kubemaint_cluster::upgrade::versions as discover;
use kubemaint_core::drain::config::{DrainConfig, NodeChoice, NodeOrder};
use kubemaint_core::drain::filters::FilterOptions;
use kubemaint_core::drain::stuck::StuckPolicy;
use kubemaint_core::upgrade::apply::health::{ApiserverAnswer, health_missing, wait_missing};
use kubemaint_core::upgrade::apply::simulate::simulate;
use kubemaint_core::upgrade::apply::{Action, ApplyPlan, Options, RunState, next};
use kubemaint_core::upgrade::plan::{PlanError, plan};

use super::ApplyConfig;
use super::view::{DrainLines, Report, RunLog, StepReport, describe};
use crate::exit::{CodedError, FAILURE, SUCCESS};
use crate::global::GlobalArgs;
use crate::kube_client::{self, Retry};
use crate::output::print_machine;

/// How often waits look again.
const POLL: Duration = Duration::from_secs(1);

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

fn now_text() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Retries `f` on errors until `deadline` (the API server restarts while its own node is
/// upgraded: a single control plane is briefly unreachable).
async fn retrying<T, E: std::fmt::Display, F, Fut>(
    what: &str,
    log: &RunLog,
    deadline: Duration,
    mut f: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    let mut warned = false;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() < deadline => {
                if !warned {
                    log.say(&format!("cannot {what} ({e}); retrying"));
                    warned = true;
                }
                tokio::time::sleep(POLL).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A failed step: the node it concerns, if any, and why.
struct StepError {
    node: Option<String>,
    error: anyhow::Error,
}

impl StepError {
    fn at(node: Option<&str>, error: anyhow::Error) -> Self {
        Self {
            node: node.map(str::to_string),
            error,
        }
    }
}

/// Everything the steps need.
struct Ctx<'a> {
    config: &'a ApplyConfig,
    global: &'a GlobalArgs,
    client: kube::Client,
    evict: kube::Client,
    kube_config: kube::Config,
    log: Arc<RunLog>,
    stop: Arc<AtomicBool>,
    pdb_version: &'static str,
    snapshots: Vec<String>,
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
    };
    let started = Instant::now();
    let mut steps = Vec::new();
    let outcome = drive(&mut ctx, &mut store, &mut record, &held, &mut steps).await;
    renewal.abort();
    signals.abort();

    let (status, failed_node, error) = match &outcome {
        Ok(()) if record.status == RunStatus::Done => ("done", None, None),
        Ok(()) => ("stopped", None, None),
        Err(e) => ("failed", e.node.clone(), Some(format!("{:#}", e.error))),
    };
    if let Some(error) = &error {
        record.status = RunStatus::Failed {
            node: failed_node.clone(),
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
        error: error.clone(),
        started_by: record.started_by.clone(),
        started_at: record.started_at.clone(),
        seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        jobs_done: record.state.done.len(),
        jobs_total: record.plan.job_count(),
        left_cordoned: left_cordoned.clone(),
        snapshots: ctx.snapshots.clone(),
        log_file: log.path().display().to_string(),
        plan: record.plan.clone(),
        steps,
    };
    if !print_machine(global.output, &report)? {
        print_summary(&report);
    }
    match (status, failed_node) {
        ("done", _) => Ok(SUCCESS),
        ("stopped", _) => {
            log.say("stopped on request; run again with --resume to continue");
            Ok(FAILURE)
        }
        (_, node) => {
            let mut message = String::from("upgrade apply stopped");
            if let Some(node) = &node {
                message.push_str(&format!(" at node {node}"));
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

async fn dry_run(
    client: &kube::Client,
    config: &ApplyConfig,
    record: &RunRecord,
) -> anyhow::Result<i32> {
    let observed = observe::observe(client)
        .await
        .map_err(|e| anyhow::Error::new(e).context("cannot read the nodes"))?;
    let actions = simulate(
        &record.state,
        &observed.facts,
        &record.plan,
        &record.options,
        100_000,
    );
    let mut state = record.state.clone();
    let mut lines = Vec::new();
    for action in &actions {
        lines.push(describe(action, &record.plan, &state));
        if let Action::RunCommands { job } = action {
            let target = NodeTarget {
                job: job.clone(),
                address: observed.addresses.get(&job.node).cloned(),
            };
            match config.executor.commands(&target) {
                Ok(commands) => lines.extend(commands.iter().map(|c| format!("    $ {c}"))),
                Err(e) => lines.push(format!("    ! {e}")),
            }
        }
        if let Action::Snapshot { .. } = action
            && let Some((dir, _)) = &config.snapshot
        {
            lines.push(format!(
                "    etcd snapshot save {}/etcd-before-{}-<time>.db, then verify it",
                dir.display(),
                record.plan.target
            ));
        }
        state.begin(action);
        state.record(action);
    }
    if config.snapshot.is_none() {
        eprintln!(
            "warning: --no-snapshot: no etcd snapshot would be taken before the control plane"
        );
    }
    #[derive(serde::Serialize)]
    struct DryRun<'a> {
        kind: &'static str,
        plan: &'a ApplyPlan,
        actions: &'a [Action],
        lines: &'a [String],
    }
    let out = DryRun {
        kind: "UpgradeApplyDryRun",
        plan: &record.plan,
        actions: &actions,
        lines: &lines,
    };
    if !print_machine(crate::output::OutputFormat::Table, &out)? {
        println!(
            "Dry run (nothing is changed): upgrade to {}",
            record.plan.target
        );
        for line in &lines {
            println!("{line}");
        }
    }
    Ok(SUCCESS)
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

async fn save(
    ctx: &Ctx<'_>,
    store: &mut RunStore,
    record: &mut RunRecord,
) -> Result<(), StepError> {
    record.updated_at = now_text();
    let deadline = ctx.config.node_timeout;
    let start = Instant::now();
    loop {
        match store.save(record).await {
            Ok(()) => return Ok(()),
            Err(e @ kubemaint_cluster::apply::ApplyError::Conflict) => {
                return Err(StepError::at(None, e.into()));
            }
            Err(e) if start.elapsed() < deadline => {
                ctx.log
                    .log(&format!("cannot write the run record ({e}); retrying"));
                tokio::time::sleep(POLL).await;
            }
            Err(e) => return Err(StepError::at(None, e.into())),
        }
    }
}

async fn observe_now(ctx: &Ctx<'_>) -> Result<Observed, StepError> {
    retrying("read the nodes", &ctx.log, ctx.config.node_timeout, || {
        observe::observe(&ctx.client)
    })
    .await
    .map_err(|e| StepError::at(None, e.into()))
}

async fn drive(
    ctx: &mut Ctx<'_>,
    store: &mut RunStore,
    record: &mut RunRecord,
    held: &lease::HeldLease,
    steps: &mut Vec<StepReport>,
) -> Result<(), StepError> {
    loop {
        if held.lost() {
            return Err(StepError::at(
                None,
                anyhow::anyhow!(
                    "another run took over the Lease kube-system/kubemaint-upgrade-apply"
                ),
            ));
        }
        if ctx.stop.load(Ordering::SeqCst) {
            record.status = RunStatus::Stopped;
            save(ctx, store, record).await?;
            return Ok(());
        }
        let observed = observe_now(ctx).await?;
        let action = next(
            &record.state,
            &observed.facts,
            &record.plan,
            &record.options,
        );
        match &action {
            Action::Done => {
                record.status = RunStatus::Done;
                record.last_action = Some(action);
                save(ctx, store, record).await?;
                ctx.log
                    .say(&format!("done: every node runs {}", record.plan.target));
                return Ok(());
            }
            Action::Stop { reason } => {
                return Err(StepError::at(None, anyhow::anyhow!("{reason}")));
            }
            _ => {}
        }
        ctx.log.say(&describe(&action, &record.plan, &record.state));
        record.state.begin(&action);
        record.last_action = Some(action.clone());
        save(ctx, store, record).await?;
        let started_at = now_text();
        let started = Instant::now();
        let result = execute(ctx, &action, &observed, record).await;
        let seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        match result {
            Ok(true) => {
                steps.push(StepReport {
                    action: action.clone(),
                    started: started_at,
                    seconds,
                    outcome: "ok".into(),
                });
                record.state.record(&action);
                save(ctx, store, record).await?;
            }
            Ok(false) => {
                steps.push(StepReport {
                    action,
                    started: started_at,
                    seconds,
                    outcome: "stopped".into(),
                });
                record.status = RunStatus::Stopped;
                save(ctx, store, record).await?;
                return Ok(());
            }
            Err(e) => {
                steps.push(StepReport {
                    action,
                    started: started_at,
                    seconds,
                    outcome: format!("{:#}", e.error),
                });
                return Err(e);
            }
        }
    }
}

/// Runs one action; `Ok(false)` when a stop request cut it short.
async fn execute(
    ctx: &mut Ctx<'_>,
    action: &Action,
    observed: &Observed,
    record: &RunRecord,
) -> Result<bool, StepError> {
    let nodes_api: Api<Node> = Api::all(ctx.client.clone());
    match action {
        Action::Snapshot { .. } => {
            let Some((dir, connection)) = &ctx.config.snapshot else {
                return Ok(true);
            };
            let file = dir.join(format!(
                "etcd-before-{}-{}.db",
                record.plan.target,
                jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ")
            ));
            let saved = snapshot(ctx, file, connection.clone())
                .await
                .map_err(|e| StepError::at(None, e))?;
            ctx.log.say(&format!(
                "etcd snapshot saved and verified: {}",
                saved.display()
            ));
            ctx.snapshots.push(saved.display().to_string());
            Ok(true)
        }
        Action::Skip { .. } | Action::StartBatch { .. } => Ok(true),
        Action::Cordon { nodes: names } | Action::Uncordon { nodes: names } => {
            let desired = matches!(action, Action::Cordon { .. });
            for name in names {
                let node = nodes_api.get(name).await.map_err(|e| {
                    StepError::at(
                        Some(name),
                        anyhow::Error::new(e).context(format!("cannot read node {name}")),
                    )
                })?;
                let result =
                    nodes::apply(&nodes_api, &node, desired, "kubemaint/upgrade-apply", None).await;
                match result.line() {
                    Ok(line) => ctx.log.say(&line),
                    Err(line) => return Err(StepError::at(Some(name), anyhow::anyhow!(line))),
                }
            }
            Ok(true)
        }
        Action::Drain { nodes: names } => drain(ctx, names).await.map(|()| true),
        Action::RunCommands { job } => {
            let target = NodeTarget {
                job: job.clone(),
                address: observed.addresses.get(&job.node).cloned(),
            };
            let cx = ExecContext {
                log: &*ctx.log,
                stop: &ctx.stop,
            };
            match ctx.config.executor.run(&target, cx).await {
                Ok(ExecOutcome::Completed) => Ok(true),
                Ok(ExecOutcome::Stopped { .. }) => Ok(false),
                Err(e) => Err(StepError::at(Some(&job.node), e.into())),
            }
        }
        Action::Wait {
            nodes: names,
            version,
            control_plane,
        } => {
            let deadline = Instant::now() + ctx.config.node_timeout;
            let mut last_said = Instant::now();
            loop {
                let missing = match observe::observe(&ctx.client).await {
                    Ok(now) => {
                        let mut missing = Vec::new();
                        for name in names {
                            let answer = if *control_plane {
                                match now.endpoints.get(name) {
                                    Some(endpoint) => {
                                        observe::apiserver_version(&ctx.kube_config, endpoint).await
                                    }
                                    None => ApiserverAnswer::NotAsked,
                                }
                            } else {
                                ApiserverAnswer::NotAsked
                            };
                            missing.extend(wait_missing(
                                name,
                                now.facts.nodes.get(name),
                                control_plane.then_some((now.mirror_pods.as_slice(), &answer)),
                                version,
                            ));
                        }
                        missing
                    }
                    Err(e) => vec![format!("the API server does not answer ({e})")],
                };
                if missing.is_empty() {
                    return Ok(true);
                }
                if Instant::now() >= deadline {
                    return Err(StepError::at(
                        names.first().map(String::as_str),
                        anyhow::anyhow!(
                            "timed out after {} waiting for: {}",
                            kubemaint_core::duration::format(ctx.config.node_timeout),
                            missing.join("; ")
                        ),
                    ));
                }
                if last_said.elapsed() >= Duration::from_secs(10) {
                    ctx.log
                        .say(&format!("  waiting for: {}", missing.join("; ")));
                    last_said = Instant::now();
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Action::HealthGate { .. } => {
            let deadline = Instant::now() + ctx.config.health_timeout;
            let mut last_said = Instant::now();
            loop {
                let missing = match observe::health(&ctx.client, ctx.pdb_version).await {
                    Ok(facts) => health_missing(&facts, &record.budgets_before),
                    Err(e) => vec![format!("cannot read the cluster's health ({e})")],
                };
                if missing.is_empty() {
                    return Ok(true);
                }
                if Instant::now() >= deadline {
                    return Err(StepError::at(
                        None,
                        anyhow::anyhow!(
                            "the health gate timed out after {}; missing: {}",
                            kubemaint_core::duration::format(ctx.config.health_timeout),
                            missing.join("; ")
                        ),
                    ));
                }
                if last_said.elapsed() >= Duration::from_secs(10) {
                    ctx.log.say(&format!(
                        "  health gate waiting for: {}",
                        missing.join("; ")
                    ));
                    last_said = Instant::now();
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Action::Done | Action::Stop { .. } => Ok(true),
    }
}

async fn drain(ctx: &Ctx<'_>, names: &[String]) -> Result<(), StepError> {
    let first = names.first().map(String::as_str);
    let config = DrainConfig {
        nodes: NodeChoice::Names(names.to_vec()),
        filters: FilterOptions {
            force: false,
            ignore_daemonsets: true,
            delete_emptydir_data: true,
            skip_wait_for_delete_timeout_seconds: 0,
        },
        disable_eviction: false,
        grace_period_seconds: -1,
        timeout: ctx.config.drain_timeout,
        pod_selector: None,
        chunk_size: 500,
        dry_run: None,
        max_concurrent_evictions: std::num::NonZeroUsize::new(50)
            .unwrap_or(std::num::NonZeroUsize::MIN),
        eviction_retry_delay: Duration::from_secs(5),
        stuck: StuckPolicy::Fail,
        uncordon_on_failure: false,
        max_parallel_nodes: std::num::NonZeroUsize::new(names.len().max(1))
            .unwrap_or(std::num::NonZeroUsize::MIN),
        order: NodeOrder::Given,
    };
    let clients = Clients {
        client: ctx.client.clone(),
        evict: ctx.evict.clone(),
    };
    let prepared = drain::prepare(clients, config).await.map_err(|e| {
        StepError::at(
            first,
            anyhow::Error::new(e).context("cannot prepare the drain"),
        )
    })?;
    let Some(prepared) = prepared else {
        return Err(StepError::at(
            first,
            anyhow::anyhow!("nodes {} not found", names.join(", ")),
        ));
    };
    for warning in &prepared.warnings {
        ctx.log.say(warning);
    }
    // The batch decision (pods of the batch that fit on no node that stays refuse it, nothing
    // changed), the cordons and the drain, in the given order, all nodes at once.
    let report = prepared
        .run(Arc::new(DrainLines(ctx.log.clone())))
        .await
        .map_err(|e| {
            StepError::at(
                first,
                anyhow::Error::new(e).context("cannot drain the batch"),
            )
        })?;
    let failed: Vec<String> = report
        .nodes
        .iter()
        .filter(|n| n.status == drain::NodeStatus::Failed)
        .map(|n| format!("{}: {}", n.node, n.error.clone().unwrap_or_default()))
        .collect();
    if !failed.is_empty() || !report.pending.is_empty() {
        let node = report.pending.first().cloned();
        return Err(StepError {
            node,
            error: anyhow::anyhow!("the drain failed: {}", failed.join("; ")),
        });
    }
    for node in &report.nodes {
        ctx.log.say(&format!(
            "node/{} drained: {} pods in {:.1}s",
            node.node,
            node.pods.len(),
            node.seconds
        ));
    }
    Ok(())
}

async fn snapshot(
    ctx: &Ctx<'_>,
    file: PathBuf,
    connection: crate::commands::etcd::connection::ConnectionArgs,
) -> anyhow::Result<PathBuf> {
    let _ = ctx.global;
    std::fs::create_dir_all(file.parent().unwrap_or(std::path::Path::new(".")))
        .with_context(|| format!("cannot create --backup-dir for {}", file.display()))?;
    let saved = crate::commands::etcd::save::save_verified(file, connection).await?;
    Ok(saved)
}

fn print_summary(report: &Report) {
    println!(
        "upgrade apply to {}: {} ({} of {} node jobs done, {:.1}s)",
        report.target, report.status, report.jobs_done, report.jobs_total, report.seconds
    );
    for snapshot in &report.snapshots {
        println!("  etcd snapshot: {snapshot}");
    }
    if let Some(node) = &report.failed_node {
        println!("  stopped at node {node}");
    }
    if !report.left_cordoned.is_empty() {
        println!(
            "  left cordoned by kubemaint: {} (`kubemaint uncordon NODE` or --resume)",
            report.left_cordoned.join(", ")
        );
    }
    println!("  run log: {}", report.log_file);
}
