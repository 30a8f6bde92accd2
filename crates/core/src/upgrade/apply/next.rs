//! The next-step function.

use super::{
    Action, ApplyPlan, Batch, BatchPhase, Facts, JobKey, NodeJob, Options, Role, RunState, Stage,
    StopReason,
};

/// What to do next, from the recorded `state`, the `facts` just observed, the run's `plan` and
/// `options`. Pure: the same inputs always give the same action.
///
/// Invariants (property-tested): a batch never holds more than `options.max_unavailable`
/// nodes (one on a control-plane stage), only nodes of the batch are ever cordoned by the run,
/// only nodes in [`RunState::cordoned`] are ever uncordoned, a finished job is never started
/// again, and a node whose commands failed is never uncordoned (the run stops with
/// [`StopReason::CommandsFailed`] once the batch's other nodes are back).
pub fn next(state: &RunState, facts: &Facts, plan: &ApplyPlan, options: &Options) -> Action {
    match &state.batch {
        Some(batch) => in_batch(state, batch, facts, plan),
        None => between_batches(state, facts, plan, options),
    }
}

fn in_batch(state: &RunState, batch: &Batch, facts: &Facts, plan: &ApplyPlan) -> Action {
    let Some(stage) = plan.stages.get(batch.stage) else {
        return inconsistent(format!("batch of stage {} not in the plan", batch.stage));
    };
    let mut jobs: Vec<&NodeJob> = Vec::new();
    for node in &batch.nodes {
        match stage.jobs.iter().find(|j| &j.node == node) {
            Some(job) => jobs.push(job),
            None => return inconsistent(format!("{node} is not in stage {}", batch.stage)),
        }
        if !facts.nodes.contains_key(node) {
            return Action::Stop {
                reason: StopReason::NodeGone { node: node.clone() },
            };
        }
    }
    match batch.phase {
        BatchPhase::Cordon => {
            let schedulable =
                batch.nodes_where(|n| facts.nodes.get(n).is_some_and(|f| !f.unschedulable));
            if !schedulable.is_empty() {
                return Action::Cordon { nodes: schedulable };
            }
            // Nothing to cordon: straight to the drain.
            Action::Drain {
                nodes: batch.nodes.clone(),
            }
        }
        BatchPhase::Drain => Action::Drain {
            nodes: batch.nodes.clone(),
        },
        // After the drain, each node's own progress decides (several nodes are in flight).
        BatchPhase::Upgrade | BatchPhase::Wait | BatchPhase::Uncordon | BatchPhase::Health => {
            after_drain(state, batch, &jobs, stage)
        }
    }
}

/// A drained batch: every node's commands not yet done (and not failed) at once, then the
/// upgraded nodes' wait, then their uncordon; failed nodes stop the run once the others are
/// back; otherwise the health gate.
fn after_drain(state: &RunState, batch: &Batch, jobs: &[&NodeJob], stage: &Stage) -> Action {
    let pending: Vec<NodeJob> = jobs
        .iter()
        .filter(|j| !batch.upgraded.contains(&j.node) && !batch.failed.contains(&j.node))
        .map(|j| (*j).clone())
        .collect();
    if !pending.is_empty() {
        return Action::RunCommands { jobs: pending };
    }
    let to_wait = batch.nodes_where(|n| batch.upgraded.contains(n) && !batch.waited.contains(n));
    if !to_wait.is_empty() {
        return Action::Wait {
            nodes: to_wait,
            version: stage.version.clone(),
            control_plane: stage.role == Role::ControlPlane,
        };
    }
    let ours = batch.nodes_where(|n| batch.waited.contains(n) && state.cordoned.contains(n));
    if !ours.is_empty() {
        return Action::Uncordon { nodes: ours };
    }
    let failed = batch.nodes_where(|n| batch.failed.contains(n));
    if !failed.is_empty() {
        return Action::Stop {
            reason: StopReason::CommandsFailed { nodes: failed },
        };
    }
    Action::HealthGate { stage: batch.stage }
}

fn between_batches(state: &RunState, facts: &Facts, plan: &ApplyPlan, options: &Options) -> Action {
    if let Some(node) = state.cordoned.iter().next() {
        // Cordons are only made inside a batch and undone before it ends.
        return inconsistent(format!("{node} recorded as cordoned outside any batch"));
    }
    for (index, stage) in plan.stages.iter().enumerate() {
        let pending: Vec<&NodeJob> = stage
            .jobs
            .iter()
            .filter(|j| {
                !state.done.contains(&JobKey {
                    stage: index,
                    node: j.node.clone(),
                })
            })
            .collect();
        if pending.is_empty() {
            continue;
        }
        if let Some(job) = pending.iter().find(|j| !facts.nodes.contains_key(&j.node)) {
            return Action::Stop {
                reason: StopReason::NodeGone {
                    node: job.node.clone(),
                },
            };
        }
        let already: Vec<String> = pending
            .iter()
            .filter(|j| facts.nodes[&j.node].at(j))
            .map(|j| j.node.clone())
            .collect();
        if !already.is_empty() {
            return Action::Skip {
                stage: index,
                nodes: already,
            };
        }
        if options.snapshot
            && stage.kind == super::StageKind::ControlPlane
            && !state.snapshots.contains(&index)
        {
            return Action::Snapshot { stage: index };
        }
        let size = match stage.role {
            Role::ControlPlane => 1,
            Role::Worker => options.max_unavailable.max(1),
        };
        // Nodes already cordoned by someone else are out anyway: take them first.
        let mut order = pending.clone();
        order.sort_by_key(|j| !facts.nodes[&j.node].unschedulable);
        return Action::StartBatch {
            stage: index,
            nodes: order.iter().take(size).map(|j| j.node.clone()).collect(),
        };
    }
    Action::Done
}

fn inconsistent(what: String) -> Action {
    Action::Stop {
        reason: StopReason::Inconsistent { what },
    }
}
