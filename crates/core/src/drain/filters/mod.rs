//! kubectl's drain pod filters (`k8s.io/kubectl/pkg/drain/filters.go`), in kubectl's order and
//! with kubectl's verdicts and messages.
//!
//! Filters run in this order and stop at the first one that says "do not delete":
//! 1. skip-deleted (only with `--skip-wait-for-delete-timeout`),
//! 2. DaemonSet (needs the result of a DaemonSet `GET`, passed in as [`DaemonSetLookup`]),
//! 3. mirror pods,
//! 4. local storage (`emptyDir` volumes only),
//! 5. unreplicated (no controller).
//!
//! As in kubectl, the verdict of the last filter that ran is the pod's verdict, so an earlier
//! warning can be overwritten by a later `Okay`; kubectl's aggregated warning line is
//! reproduced from that final verdict, while [`PodFilterResult::notes`] keeps every warning
//! for kubemaint's own report.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use super::{PodRef, controller_of, is_daemonset_ref, is_finished, is_mirror_pod};

mod messages;
#[cfg(test)]
mod tests;

pub use messages::aggregate;

/// kubectl: error for DaemonSet pods without `--ignore-daemonsets`.
pub const DAEMONSET_FATAL: &str = "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)";
/// kubectl: warning for DaemonSet pods with `--ignore-daemonsets`.
pub const DAEMONSET_WARNING: &str = "ignoring DaemonSet-managed Pods";
/// kubectl: error for pods with `emptyDir` volumes without `--delete-emptydir-data`.
pub const LOCAL_STORAGE_FATAL: &str =
    "Pods with local storage (use --delete-emptydir-data to override)";
/// kubectl: warning for pods with `emptyDir` volumes with `--delete-emptydir-data`.
pub const LOCAL_STORAGE_WARNING: &str = "deleting Pods with local storage";
/// kubectl 1.27–1.35: error for pods without a controller and without `--force`. Printed as
/// `cannot delete Pods declare no controller (use --force to override): ns/name`.
pub const UNMANAGED_FATAL: &str = "Pods declare no controller (use --force to override)";
/// kubectl: warning for pods without a controller with `--force`.
pub const UNMANAGED_WARNING: &str = "deleting Pods that declare no controller";

/// The subset of `kubectl drain` flags that the filters read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FilterOptions {
    /// `--force`: allow pods without a controller and orphaned DaemonSet pods.
    pub force: bool,
    /// `--ignore-daemonsets`: skip DaemonSet pods with a warning instead of failing.
    pub ignore_daemonsets: bool,
    /// `--delete-emptydir-data`: allow pods with `emptyDir` volumes.
    pub delete_emptydir_data: bool,
    /// `--skip-wait-for-delete-timeout` in seconds; `0` (or negative) disables it.
    pub skip_wait_for_delete_timeout_seconds: i64,
}

/// Result of `GET apps/v1 DaemonSet` for a DaemonSet-controlled pod, done by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonSetLookup {
    /// The DaemonSet exists.
    Found,
    /// The API answered 404: the pod is an orphan.
    NotFound,
    /// Any other error; the string is the error text kubectl would print.
    Failed(String),
}

/// kubectl's `PodDeleteStatus.Reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Delete/evict, nothing to say.
    Okay,
    /// Do not touch, silently (mirror pods, long-deleted pods).
    Skip,
    /// Delete or not according to `delete`, with a warning message.
    Warning,
    /// The node cannot be drained because of this pod.
    Error,
}

/// Which filter produced the final verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilterName {
    /// `skipDeletedFilter`.
    SkipDeleted,
    /// `daemonSetFilter`.
    DaemonSet,
    /// `mirrorPodFilter`.
    Mirror,
    /// `localStorageFilter`.
    LocalStorage,
    /// `unreplicatedFilter`.
    Unreplicated,
}

/// The filters' verdict for one pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodFilterResult {
    /// The pod.
    pub pod: PodRef,
    /// Whether kubectl would delete/evict it.
    pub delete: bool,
    /// kubectl's final status kind.
    pub verdict: Verdict,
    /// kubectl's final message (empty for `Okay`/`Skip`).
    pub message: String,
    /// The filter that decided (the last one that ran).
    pub decided_by: FilterName,
    /// Every warning raised on the way, including those kubectl drops.
    pub notes: Vec<String>,
}

/// The filters' verdicts for all pods of one node, in input order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FilterOutcome {
    /// One entry per input pod.
    pub results: Vec<PodFilterResult>,
}

/// Error text of a 404 on `GET daemonsets.apps`, as client-go renders it.
pub fn daemonset_not_found_message(name: &str) -> String {
    format!("daemonsets.apps \"{name}\" not found")
}

/// kubectl's `shouldSkipPod`: deletion timestamp older than the timeout (whole seconds,
/// truncated, strictly greater).
pub fn should_skip_deleted(pod: &Pod, timeout_seconds: i64, now: Timestamp) -> bool {
    if timeout_seconds <= 0 {
        return false;
    }
    let Some(ts) = pod.metadata.deletion_timestamp.as_ref() else {
        return false;
    };
    // Go: int(time.Since(ts).Seconds()) > N, i.e. truncated toward zero.
    now.duration_since(ts.0).as_secs() > timeout_seconds
}

fn has_local_storage(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|vs| vs.iter().any(|v| v.empty_dir.is_some()))
}

/// The DaemonSets (`namespace`, `name`) whose existence the filters need to know for these pods;
/// the caller `GET`s exactly these (kubectl does one `GET` per such pod).
pub fn daemonsets_to_look_up(
    pods: &[Pod],
    opts: &FilterOptions,
    now: Timestamp,
) -> BTreeSet<(String, String)> {
    pods.iter()
        .filter(|p| !should_skip_deleted(p, opts.skip_wait_for_delete_timeout_seconds, now))
        .filter(|p| !is_finished(p))
        .filter_map(|p| {
            let r = controller_of(p)?;
            is_daemonset_ref(r).then(|| {
                (
                    p.metadata.namespace.clone().unwrap_or_default(),
                    r.name.clone(),
                )
            })
        })
        .collect()
}

struct Status {
    delete: bool,
    verdict: Verdict,
    message: String,
}

impl Status {
    fn okay() -> Self {
        Status {
            delete: true,
            verdict: Verdict::Okay,
            message: String::new(),
        }
    }
    fn skip() -> Self {
        Status {
            delete: false,
            verdict: Verdict::Skip,
            message: String::new(),
        }
    }
    fn warning(delete: bool, message: impl Into<String>) -> Self {
        Status {
            delete,
            verdict: Verdict::Warning,
            message: message.into(),
        }
    }
    fn error(message: impl Into<String>) -> Self {
        Status {
            delete: false,
            verdict: Verdict::Error,
            message: message.into(),
        }
    }
}

/// Runs kubectl's filters on one pod. `lookup` answers the DaemonSet `GET` for
/// DaemonSet-controlled, unfinished pods (it is not called for other pods).
pub fn filter_pod(
    pod: &Pod,
    opts: &FilterOptions,
    lookup: &dyn Fn(&str, &str) -> DaemonSetLookup,
    now: Timestamp,
) -> PodFilterResult {
    let finished = is_finished(pod);
    let controller = controller_of(pod);
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut notes = Vec::new();

    let filters: [(FilterName, &dyn Fn() -> Status); 5] = [
        (FilterName::SkipDeleted, &|| {
            if should_skip_deleted(pod, opts.skip_wait_for_delete_timeout_seconds, now) {
                Status::skip()
            } else {
                Status::okay()
            }
        }),
        (FilterName::DaemonSet, &|| match controller {
            Some(r) if is_daemonset_ref(r) => {
                if finished {
                    return Status::okay();
                }
                match lookup(ns, &r.name) {
                    DaemonSetLookup::NotFound if opts.force => {
                        Status::warning(true, daemonset_not_found_message(&r.name))
                    }
                    DaemonSetLookup::NotFound => {
                        Status::error(daemonset_not_found_message(&r.name))
                    }
                    DaemonSetLookup::Failed(e) => Status::error(e),
                    DaemonSetLookup::Found if !opts.ignore_daemonsets => {
                        Status::error(DAEMONSET_FATAL)
                    }
                    DaemonSetLookup::Found => Status::warning(false, DAEMONSET_WARNING),
                }
            }
            _ => Status::okay(),
        }),
        (FilterName::Mirror, &|| {
            if is_mirror_pod(pod) {
                Status::skip()
            } else {
                Status::okay()
            }
        }),
        (FilterName::LocalStorage, &|| {
            if !has_local_storage(pod) || finished {
                Status::okay()
            } else if !opts.delete_emptydir_data {
                Status::error(LOCAL_STORAGE_FATAL)
            } else {
                Status::warning(true, LOCAL_STORAGE_WARNING)
            }
        }),
        (FilterName::Unreplicated, &|| {
            if finished || controller.is_some() {
                Status::okay()
            } else if opts.force {
                Status::warning(true, UNMANAGED_WARNING)
            } else {
                Status::error(UNMANAGED_FATAL)
            }
        }),
    ];

    let mut last = (FilterName::SkipDeleted, Status::okay());
    for (name, f) in filters {
        let status = f();
        if status.verdict == Verdict::Warning {
            notes.push(status.message.clone());
        }
        let stop = !status.delete;
        last = (name, status);
        if stop {
            break;
        }
    }
    let (decided_by, status) = last;
    PodFilterResult {
        pod: PodRef::of(pod),
        delete: status.delete,
        verdict: status.verdict,
        message: status.message,
        decided_by,
        notes,
    }
}

/// Runs the filters over every pod of a node (kubectl's `filterPods`).
pub fn filter_pods(
    pods: &[Pod],
    opts: &FilterOptions,
    lookup: &dyn Fn(&str, &str) -> DaemonSetLookup,
    now: Timestamp,
) -> FilterOutcome {
    FilterOutcome {
        results: pods
            .iter()
            .map(|p| filter_pod(p, opts, lookup, now))
            .collect(),
    }
}
