//! What wakes the run's waits and retries: watches of the nodes, the control-plane mirror
//! pods and the PodDisruptionBudgets ([`Changes`]), and [`RECHECK`] for what no watch covers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Notify;

use super::view::RunLog;

/// The longest a wait goes without looking again when no watch event came (etcd's health and
/// an API server's `/version` have no watch; a watch may be reconnecting).
pub(super) const RECHECK: Duration = Duration::from_secs(1);

/// Wakes the waits when a node, a control-plane mirror pod or a PodDisruptionBudget changes.
/// The watches run for the whole run (reconnecting with backoff while an API server
/// restarts); a change while nobody waits leaves one wake-up for the next wait.
pub(super) struct Changes {
    notify: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Changes {
    /// Starts the watches (nodes; pods labelled `tier=control-plane` in kube-system;
    /// PodDisruptionBudgets through `pdb_version`).
    pub(super) fn start(client: &kube::Client, pdb_version: &str) -> Self {
        let notify = Arc::new(Notify::new());
        let nodes = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .map(|e| e.is_ok());
        let mirror = watcher(
            Api::<Pod>::namespaced(client.clone(), "kube-system"),
            watcher::Config::default().labels("tier=control-plane"),
        )
        .default_backoff()
        .map(|e| e.is_ok());
        let budgets = watcher(
            Api::<DynamicObject>::all_with(
                client.clone(),
                &kubemaint_cluster::read::pdb_resource(pdb_version),
            ),
            watcher::Config::default(),
        )
        .default_backoff()
        .map(|e| e.is_ok());
        let wake = notify.clone();
        let task = tokio::spawn(async move {
            let all = futures::stream::select(nodes, futures::stream::select(mirror, budgets));
            futures::pin_mut!(all);
            while let Some(ok) = all.next().await {
                if ok {
                    wake.notify_one();
                }
            }
        });
        Self { notify, task }
    }

    /// Returns at the next change, after [`RECHECK`], or at `deadline`, whichever is first.
    pub(super) async fn next(&self, deadline: Instant) {
        let limit = deadline
            .saturating_duration_since(Instant::now())
            .min(RECHECK);
        let _ = tokio::time::timeout(limit, self.notify.notified()).await;
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Retries `f` on errors until `deadline` (the API server restarts while its own node is
/// upgraded: a single control plane is briefly unreachable), looking again after every
/// change or [`RECHECK`].
pub(super) async fn retrying<T, E: std::fmt::Display, F, Fut>(
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
                tokio::time::sleep(RECHECK).await;
            }
            Err(e) => return Err(e),
        }
    }
}
