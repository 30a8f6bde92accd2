//! What every step of a run shares ([`Ctx`]), how a step fails ([`StepError`]), and the
//! run record's write-ahead [`save`].

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use kubemaint_cluster::apply::store::{RunRecord, RunStore};
use kubemaint_core::upgrade::apply::health::EtcdMembers;

use super::ApplyConfig;
use super::changes::{Changes, RECHECK};
use super::view::RunLog;
use crate::global::GlobalArgs;

/// The time now as the run record writes it (RFC 3339, whole seconds, UTC).
pub(super) fn now_text() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A failed step: the nodes it concerns (none, one, or every failed node of a batch) and why.
pub(super) struct StepError {
    pub(super) nodes: Vec<String>,
    pub(super) error: anyhow::Error,
}

impl StepError {
    pub(super) fn at(node: Option<&str>, error: anyhow::Error) -> Self {
        Self {
            nodes: node.map(str::to_string).into_iter().collect(),
            error,
        }
    }
}

/// Everything the steps need.
pub(super) struct Ctx<'a> {
    pub(super) config: &'a ApplyConfig,
    pub(super) global: &'a GlobalArgs,
    pub(super) client: kube::Client,
    pub(super) evict: kube::Client,
    pub(super) kube_config: kube::Config,
    pub(super) log: Arc<RunLog>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) pdb_version: &'static str,
    pub(super) snapshots: Vec<String>,
    /// What the etcd members said at the last passed health gate.
    pub(super) etcd_members: Option<EtcdMembers>,
    /// Wakes the waits when the cluster changes.
    pub(super) changes: Changes,
}

pub(super) async fn save(
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
                tokio::time::sleep(RECHECK).await;
            }
            Err(e) => return Err(StepError::at(None, e.into())),
        }
    }
}
