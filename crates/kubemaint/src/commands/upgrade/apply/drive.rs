//! One run's loop: observe → decide (the core's `next`) → record (write-ahead) → act →
//! record, until done, stopped or failed; and the actions themselves. A batch's node commands
//! run at once ([`run_commands`]), each node's end recorded as it comes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kubemaint_cluster::apply::lease;
use kubemaint_cluster::apply::observe::{self, Observed};
use kubemaint_cluster::apply::store::{RunRecord, RunStatus, RunStore};
use kubemaint_cluster::drain::{self, Clients};
use kubemaint_cluster::exec::{ExecContext, ExecOutcome, NodeTarget};
use kubemaint_cluster::nodes;
use kubemaint_core::drain::config::{DrainConfig, NodeChoice, NodeOrder};
use kubemaint_core::drain::stuck::StuckPolicy;
use kubemaint_core::upgrade::apply::{Action, NodeJob, StopReason, next};

use super::changes::retrying;
use super::ctx::{Ctx, StepError, now_text, save};
use super::view::{DrainLines, StepReport, describe};
use super::wait;

async fn observe_now(ctx: &Ctx<'_>) -> Result<Observed, StepError> {
    retrying("read the nodes", &ctx.log, ctx.config.node_timeout, || {
        observe::observe(&ctx.client)
    })
    .await
    .map_err(|e| StepError::at(None, e.into()))
}

pub(super) async fn drive(
    ctx: &mut Ctx<'_>,
    store: &mut RunStore,
    record: &mut RunRecord,
    held: &lease::HeldLease,
    steps: &mut Vec<StepReport>,
) -> Result<(), StepError> {
    // This invocation's command failures, each with its output's tail, for the final report.
    let mut failures: Vec<String> = Vec::new();
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
            Action::Stop {
                reason: StopReason::CommandsFailed { nodes },
            } => {
                // The batch's other nodes are back; the failed ones stay out.
                let detail = if failures.is_empty() {
                    action_text(&action)
                } else {
                    failures.join("\n")
                };
                return Err(StepError {
                    nodes: nodes.clone(),
                    error: anyhow::anyhow!("{detail}"),
                });
            }
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
        if let Action::RunCommands { jobs } = &action {
            let (stopped, failed) =
                run_commands(ctx, store, record, jobs, &observed, steps).await?;
            failures.extend(failed);
            if stopped {
                record.status = RunStatus::Stopped;
                save(ctx, store, record).await?;
                return Ok(());
            }
            continue;
        }
        let started_at = now_text();
        let started = Instant::now();
        let result = execute(ctx, &action, record).await;
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

/// Runs `jobs`' commands at once (each node's output goes to the run log under its name),
/// recording and saving each node's end as it comes: completed, failed (the node stays
/// cordoned; the core brings the others back, then stops the run), or cut short by a stop
/// request. Returns whether a stop cut some short, and each failure's text.
async fn run_commands(
    ctx: &Ctx<'_>,
    store: &mut RunStore,
    record: &mut RunRecord,
    jobs: &[NodeJob],
    observed: &Observed,
    steps: &mut Vec<StepReport>,
) -> Result<(bool, Vec<String>), StepError> {
    let cx = ExecContext {
        log: &*ctx.log,
        stop: &ctx.stop,
    };
    let executor = &ctx.config.executor;
    let mut running: FuturesUnordered<_> = jobs
        .iter()
        .map(|job| {
            let target = NodeTarget {
                job: job.clone(),
                address: observed.addresses.get(&job.node).cloned(),
            };
            async move {
                let started_at = now_text();
                let started = Instant::now();
                let result = executor.run(&target, cx).await;
                (target.job, started_at, started.elapsed(), result)
            }
        })
        .collect();
    let mut stopped = false;
    let mut failures = Vec::new();
    while let Some((job, started_at, took, result)) = running.next().await {
        let seconds = (took.as_secs_f64() * 10.0).round() / 10.0;
        let outcome = match result {
            Ok(ExecOutcome::Completed) => {
                ctx.log.say(&format!(
                    "{}: commands completed in {seconds:.1}s",
                    job.node
                ));
                record.state.node_upgraded(&job.node);
                "ok".to_string()
            }
            Ok(ExecOutcome::Stopped { .. }) => {
                stopped = true;
                "stopped".to_string()
            }
            Err(e) => {
                let text = format!("{e}");
                ctx.log.say(&format!(
                    "{}: FAILED after {seconds:.1}s, left cordoned: {text}",
                    job.node
                ));
                record.state.node_failed(&job.node);
                failures.push(text.clone());
                text
            }
        };
        steps.push(StepReport {
            action: Action::RunCommands {
                jobs: vec![job.clone()],
            },
            started: started_at,
            seconds,
            outcome,
        });
        record.last_action = Some(Action::RunCommands { jobs: vec![job] });
        // The other nodes' commands go on meanwhile (their output waits in the pipe).
        save(ctx, store, record).await?;
    }
    Ok((stopped, failures))
}

fn action_text(action: &Action) -> String {
    match action {
        Action::Stop { reason } => reason.to_string(),
        other => format!("{other:?}"),
    }
}

/// Runs one action; `Ok(false)` when a stop request cut it short.
async fn execute(
    ctx: &mut Ctx<'_>,
    action: &Action,
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
        Action::Wait {
            nodes: names,
            version,
            control_plane,
        } => wait::nodes(ctx, names, version, *control_plane)
            .await
            .map(|()| true),
        Action::HealthGate { .. } => {
            let members = wait::health(ctx, &record.budgets_before).await?;
            ctx.etcd_members = Some(members);
            Ok(true)
        }
        // Run node by node by `run_commands`, which records each node's end.
        Action::RunCommands { .. } => Ok(true),
        Action::Done | Action::Stop { .. } => Ok(true),
    }
}

async fn drain(ctx: &Ctx<'_>, names: &[String]) -> Result<(), StepError> {
    let first = names.first().map(String::as_str);
    let config = DrainConfig {
        nodes: NodeChoice::Names(names.to_vec()),
        filters: ctx.config.pods.filters.clone(),
        disable_eviction: ctx.config.pods.disable_eviction,
        grace_period_seconds: ctx.config.pods.grace_period_seconds,
        timeout: ctx.config.drain_timeout,
        pod_selector: ctx.config.pods.pod_selector.clone(),
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
        return Err(StepError {
            nodes: report.pending.clone(),
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
