//! One node's drain inside a run: (re)plan it against the shared snapshot, fail it on
//! kubectl's filter errors, remove its pods through the shared gate, and say what held it up.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kubemaint_core::drain::PodRef;
use kubemaint_core::drain::cordon::DryRun;
use kubemaint_core::drain::filters::aggregate;
use kubemaint_core::drain::plan::{
    NodePlan, NodeTarget, PodAction, drained_line, node_failed_line, plan_drain,
};
use kubemaint_core::drain::report::held_up;
use tokio::time::Instant;

use super::evict::{PdbGate, PodOutcome, PodResult, Remover, Tracker};
use super::{NodeLive, NodeOutcome, NodeStatus, Shared};
use crate::nodes::{self, CordonResult};
use crate::read;

/// Plans (unless the preflight plan is fresh) and drains one node.
pub(super) async fn drain_node(
    shared: &Shared,
    target: NodeTarget,
    fresh: Option<NodePlan>,
    cordon: Option<CordonResult>,
) -> NodeOutcome {
    let started = Instant::now();
    let started_at = jiff::Timestamp::now();
    let started_after = shared.run_started.elapsed().as_secs_f64();
    let config = &shared.config;
    let dry_run = config.dry_run;
    let node = target.name.clone();
    let mut outcome = NodeOutcome {
        node: node.clone(),
        status: NodeStatus::Drained,
        error: None,
        errors: Vec::new(),
        cordon,
        left_cordoned: dry_run.is_none(),
        pods: Vec::new(),
        started: started_at,
        finished: started_at,
        started_after_seconds: started_after,
        finished_after_seconds: started_after,
        seconds: 0.0,
        held_up: Vec::new(),
    };
    let result = match fresh {
        Some(p) => Ok((p, target)),
        None => replan(shared, &node).await,
    };
    let result = match result {
        Err(e) => Err(vec![e]),
        Ok((node_plan, target)) => run_plan(shared, &node_plan, &target, &mut outcome).await,
    };
    let reporter = &shared.reporter;
    match result {
        Ok(()) => reporter.out(&drained_line(&node, dry_run)),
        Err(errs) => {
            reporter.err(&node_failed_line(&node, &errs));
            outcome.status = NodeStatus::Failed;
            outcome.error = aggregate(&errs);
            outcome.errors = errs;
            if dry_run.is_none() {
                let nodes_api: Api<Node> = Api::all(shared.clients.client.clone());
                let after =
                    nodes::after_failure(&nodes_api, &node, config.uncordon_on_failure).await;
                if let Some(line) = after.line {
                    reporter.err(&line);
                }
                outcome.left_cordoned = after.left_cordoned;
            }
        }
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome.finished = jiff::Timestamp::now();
    outcome.finished_after_seconds = shared.run_started.elapsed().as_secs_f64();
    outcome.held_up = held_up(outcome.pods.iter().map(|p| &p.waited));
    outcome
}

/// Lists the node's pods again and plans it against the shared snapshot.
async fn replan(shared: &Shared, node: &str) -> Result<(NodePlan, NodeTarget), String> {
    let config = &shared.config;
    let client = &shared.clients.client;
    let pods = read::node_pods(
        client,
        node,
        config.pod_selector.as_deref(),
        config.chunk_size,
    )
    .await
    .map_err(|e| format!("{e}: {}", error_sources(&e)))?;
    let mut lookups = shared.snapshot.lock().await.daemonsets.clone();
    read::daemonset_lookups(client, &pods, &config.filters, &mut lookups).await;
    let target = NodeTarget {
        name: node.to_owned(),
        pods,
    };
    let mut snapshot = shared.snapshot.lock().await;
    snapshot.daemonsets.extend(lookups);
    let plan = plan_drain(
        &snapshot,
        std::slice::from_ref(&target),
        &shared.options,
        jiff::Timestamp::now(),
    )
    .nodes
    .remove(0);
    Ok((plan, target))
}

pub(super) fn error_sources(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}

/// Executes one node's plan: kubectl's filter errors fail it before any eviction; otherwise
/// its pods are removed (or listed, under client dry-run).
async fn run_plan(
    shared: &Shared,
    node_plan: &NodePlan,
    target: &NodeTarget,
    outcome: &mut NodeOutcome,
) -> Result<(), Vec<String>> {
    if !node_plan.errors.is_empty() {
        return Err(node_plan.errors.clone());
    }
    let reporter = &shared.reporter;
    if !node_plan.warnings.is_empty() {
        reporter.err(&format!("Warning: {}", node_plan.warnings));
    }
    let to_remove = |p: &&kubemaint_core::drain::plan::PodPlan| {
        matches!(p.action, PodAction::Evict | PodAction::Delete)
    };
    if shared.config.dry_run == Some(DryRun::Client) {
        for p in node_plan.pods.iter().filter(to_remove) {
            reporter.out(&format!("evicting pod {} (dry run)", p.pod));
        }
        outcome.status = NodeStatus::Planned;
        return Ok(());
    }
    let pods: Vec<Pod> = {
        let snapshot = shared.snapshot.lock().await;
        node_plan
            .pods
            .iter()
            .filter(to_remove)
            .filter_map(|p| {
                target
                    .pods
                    .iter()
                    .chain(snapshot.pods.iter())
                    .find(|tp| PodRef::of(tp) == p.pod)
                    .cloned()
            })
            .collect()
    };
    // Pods whose budget allowed a disruption at planning time take their first attempt
    // through the budget gate, like a retry: with a budget of 1, the pods behind the first do
    // not each draw a refused request first.
    let first_gate: BTreeMap<_, _> = node_plan
        .pods
        .iter()
        .filter_map(|p| match &p.pdb {
            Some(kubemaint_core::drain::pdb::PodPdbVerdict::Allowed { pdb, .. }) => {
                Some((p.pod.clone(), pdb.clone()))
            }
            _ => None,
        })
        .collect();
    drain_pods(shared, &target.name, pods, first_gate, outcome).await
}

async fn drain_pods(
    shared: &Shared,
    node: &str,
    pods: Vec<Pod>,
    first_gate: BTreeMap<PodRef, String>,
    outcome: &mut NodeOutcome,
) -> Result<(), Vec<String>> {
    if pods.is_empty() {
        return Ok(());
    }
    let config = &shared.config;
    let (tracker, watch_handle) = Tracker::start(&shared.clients.client, node)
        .await
        .map_err(|e| vec![format!("{e}: {}", error_sources(&e))])?;
    let live = Arc::new(NodeLive::default());
    let remover = Remover {
        client: shared.clients.evict.clone(),
        method: shared.options.method,
        grace_period: config.grace_period_seconds,
        dry_run: config.dry_run,
        retry_delay: config.eviction_retry_delay,
        deadline: config.timeout.map(|t| Instant::now() + t),
        timeout_text: kubemaint_core::duration::format(config.timeout.unwrap_or_default()),
        skip_wait_seconds: config.filters.skip_wait_for_delete_timeout_seconds,
        pdb_gate: shared.gate.clone().unwrap_or_else(PdbGate::inert),
        tracker,
        live: live.clone(),
        reporter: shared.reporter.clone(),
        stuck_policy: config.stuck,
        first_gate: Arc::new(first_gate),
    };
    shared.reporter.node_started(node, pods.len(), live);
    let results: Vec<PodOutcome> = futures::stream::iter(pods)
        .map(|p| {
            let r = remover.clone();
            async move {
                let o = r.remove(p).await;
                r.reporter.pod_finished(node);
                o
            }
        })
        .buffer_unordered(config.max_concurrent_evictions.get())
        .collect()
        .await;
    shared.reporter.node_finished(node);
    watch_handle.abort();
    let failed = |r: &&PodOutcome| r.result == PodResult::Failed;
    let mut errors: Vec<String> = results
        .iter()
        .filter(failed)
        .filter_map(|r| r.error.clone())
        .collect();
    let blocked_dry: Vec<String> = results
        .iter()
        .filter(|r| r.result == PodResult::DryRunBlocked)
        .map(|r| format!("{} ({})", r.pod, r.blocked_by.clone().unwrap_or_default()))
        .collect();
    let pending: Vec<String> = results
        .iter()
        .filter(failed)
        .map(|r| format!("pod/{}", r.pod.name))
        .collect();
    let stuck_failed: Vec<String> = results
        .iter()
        .filter(failed)
        .filter_map(|r| {
            r.stuck
                .as_ref()
                .map(|s| format!("{} ({}s past its grace period)", r.pod, s.stuck_seconds))
        })
        .collect();
    let stuck_node = results
        .iter()
        .find_map(|r| r.stuck.as_ref().map(|s| s.node.describe()));
    outcome.pods = results;
    if let (false, Some(why)) = (stuck_failed.is_empty(), stuck_node) {
        errors.push(format!(
            "{} pods stuck Terminating because {why}: {}; bring the kubelet back, or rerun with --force-delete-after DURATION to force-delete them",
            stuck_failed.len(),
            stuck_failed.join(", ")
        ));
    }
    if !blocked_dry.is_empty() {
        // kubectl retries these forever under server dry-run (the budget never moves); we stop
        // and report the node as not drainable right now.
        errors.push(format!(
            "server dry-run: evictions refused by a PodDisruptionBudget: {}",
            blocked_dry.join(", ")
        ));
    }
    match aggregate(&errors) {
        None => Ok(()),
        Some(err) => {
            shared.reporter.err(&format!(
                "There are pending pods in node \"{node}\" when an error occurred: {err}"
            ));
            for p in pending {
                shared.reporter.err(&p);
            }
            Err(errors)
        }
    }
}
