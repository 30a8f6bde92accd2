//! The whole run as it would go if every action succeeded: what `--dry-run` prints. Each
//! action's expected effect is applied to the facts (a cordon makes a node unschedulable, a
//! node's commands bring it to the job's version, an uncordon undoes kubemaint's cordon), so
//! the sequence is exactly what [`next`] would decide step by step.

use super::{Action, ApplyPlan, Facts, Options, Role, RunState, next};

/// The actions from `state` to the end (the last one is [`Action::Done`] or
/// [`Action::Stop`]), at most `limit` of them.
pub fn simulate(
    state: &RunState,
    facts: &Facts,
    plan: &ApplyPlan,
    options: &Options,
    limit: usize,
) -> Vec<Action> {
    let mut state = state.clone();
    let mut facts = facts.clone();
    let mut actions = Vec::new();
    while actions.len() < limit {
        let action = next(&state, &facts, plan, options);
        state.begin(&action);
        match &action {
            Action::Done | Action::Stop { .. } => {
                actions.push(action);
                break;
            }
            Action::Cordon { nodes } => set(&mut facts, nodes, |f| f.unschedulable = true),
            Action::Uncordon { nodes } => set(&mut facts, nodes, |f| f.unschedulable = false),
            Action::RunCommands { jobs } => {
                for job in jobs {
                    if let Some(f) = facts.nodes.get_mut(&job.node) {
                        f.kubelet = Some(job.version.clone());
                        if job.role == Role::ControlPlane {
                            f.control_plane = Some(job.version.clone());
                        }
                        f.ready = true;
                    }
                }
            }
            _ => {}
        }
        state.record(&action);
        actions.push(action);
    }
    actions
}

fn set(facts: &mut Facts, nodes: &[String], change: impl Fn(&mut super::NodeFacts)) {
    for node in nodes {
        if let Some(f) = facts.nodes.get_mut(node) {
            change(f);
        }
    }
}
