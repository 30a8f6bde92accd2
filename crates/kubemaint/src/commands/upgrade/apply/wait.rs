//! The run's waits: a batch's nodes Ready at the version, and the health gate. Each one
//! re-checks when the cluster changes — watches of the nodes, the control-plane mirror pods
//! and the PodDisruptionBudgets wake it ([`Changes`]) — and at least every [`RECHECK`] for
//! what no watch covers (`/readyz/etcd`, a control-plane node's own `/version`), until the
//! condition holds or its deadline passes; the timeout then names what is still missing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kubemaint_cluster::apply::observe;
use kubemaint_core::upgrade::Version;
use kubemaint_core::upgrade::apply::health::{
    ApiserverAnswer, EtcdMembers, etcd_members_summary, health_missing, wait_missing,
};

use super::changes::Changes;
use super::ctx::{Ctx, StepError};
use super::view::RunLog;
use crate::commands::upgrade::checks::etcd_members_health;

/// How often a wait says on stderr what it still waits for.
const SAY_EVERY: Duration = Duration::from_secs(10);

/// Evaluates `missing` until it is empty (`Ok`) or `timeout` passes (`Err` with what is still
/// missing), saying every [`SAY_EVERY`] what it waits for.
async fn until<F, Fut>(
    changes: &Changes,
    log: &RunLog,
    timeout: Duration,
    what: &str,
    mut missing: F,
) -> Result<(), Vec<String>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_said = Instant::now();
    loop {
        let now_missing = missing().await;
        if now_missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(now_missing);
        }
        if last_said.elapsed() >= SAY_EVERY {
            log.say(&format!("  {what} waiting for: {}", now_missing.join("; ")));
            last_said = Instant::now();
        }
        changes.next(deadline).await;
    }
}

/// Waits until every node of `names` is Ready at `version` (control-plane nodes: their mirror
/// pods at the target images and Ready, their own API server answering `/version` with it).
pub(super) async fn nodes(
    ctx: &Ctx<'_>,
    names: &[String],
    version: &Version,
    control_plane: bool,
) -> Result<(), StepError> {
    let check = || async {
        let now = match observe::observe(&ctx.client).await {
            Ok(now) => now,
            Err(e) => return vec![format!("the API server does not answer ({e})")],
        };
        let mut missing = Vec::new();
        for name in names {
            let answer = match (control_plane, now.endpoints.get(name)) {
                (true, Some(endpoint)) => {
                    observe::apiserver_version(&ctx.kube_config, endpoint).await
                }
                _ => ApiserverAnswer::NotAsked,
            };
            missing.extend(wait_missing(
                name,
                now.facts.nodes.get(name),
                control_plane.then_some((now.mirror_pods.as_slice(), &answer)),
                version,
            ));
        }
        missing
    };
    until(
        &ctx.changes,
        &ctx.log,
        ctx.config.node_timeout,
        "wait",
        check,
    )
    .await
    .map_err(|missing| {
        StepError::at(
            names.first().map(String::as_str),
            anyhow::anyhow!(
                "timed out after {} waiting for: {}",
                kubemaint_core::duration::format(ctx.config.node_timeout),
                missing.join("; ")
            ),
        )
    })
}

/// The health gate: nodes Ready, control-plane pods Ready, `/readyz/etcd`, the etcd members
/// asked directly when an etcd connection is configured (unknown, not a failure, when they
/// cannot be reached), every PodDisruptionBudget back at its healthy count of before the run
/// (`budgets_before`). Returns what the etcd members said when the gate passed.
pub(super) async fn health(
    ctx: &Ctx<'_>,
    budgets_before: &BTreeMap<String, i32>,
) -> Result<EtcdMembers, StepError> {
    let last = std::sync::Mutex::new(EtcdMembers::NotAsked);
    let check = || async {
        let members = etcd_members_health(ctx.config.etcd_members.as_ref()).await;
        let missing = match observe::health(&ctx.client, ctx.pdb_version, members.clone()).await {
            Ok(facts) => health_missing(&facts, budgets_before),
            Err(e) => vec![format!("cannot read the cluster's health ({e})")],
        };
        if let Ok(mut last) = last.lock() {
            *last = members;
        }
        missing
    };
    until(
        &ctx.changes,
        &ctx.log,
        ctx.config.health_timeout,
        "health gate",
        check,
    )
    .await
    .map_err(|missing| {
        StepError::at(
            None,
            anyhow::anyhow!(
                "the health gate timed out after {}; missing: {}",
                kubemaint_core::duration::format(ctx.config.health_timeout),
                missing.join("; ")
            ),
        )
    })?;
    let members = last.into_inner().unwrap_or(EtcdMembers::NotAsked);
    ctx.log.say(&format!(
        "  health gate passed; {}",
        etcd_members_summary(&members)
    ));
    Ok(members)
}
