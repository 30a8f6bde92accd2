//! `upgrade apply --dry-run`.

use kubemaint_cluster::apply::observe;
use kubemaint_cluster::apply::store::RunRecord;
use kubemaint_cluster::exec::NodeTarget;
use kubemaint_core::upgrade::apply::simulate::simulate;
use kubemaint_core::upgrade::apply::{Action, ApplyPlan};

use super::ApplyConfig;
use super::view::describe;
use crate::exit::SUCCESS;
use crate::output::print_machine;

/// `--dry-run`: the whole run as the core's simulation sees it, with every command; nothing
/// is touched.
pub(super) async fn dry_run(
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
        if let Action::RunCommands { jobs } = action {
            for job in jobs {
                let target = NodeTarget {
                    job: job.clone(),
                    address: observed.addresses.get(&job.node).cloned(),
                };
                let prefix = if jobs.len() > 1 {
                    format!("{}: ", job.node)
                } else {
                    String::new()
                };
                if let Some(via) = config.executor.via(&target) {
                    lines.push(format!("    {prefix}on the node through `{via}`:"));
                }
                match config.executor.commands(&target) {
                    Ok(commands) => {
                        lines.extend(commands.iter().map(|c| format!("    {prefix}$ {c}")))
                    }
                    Err(e) => lines.push(format!("    {prefix}! {e}")),
                }
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
