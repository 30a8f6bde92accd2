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

/// Groups `(message, pod)` pairs by message, keeping first-appearance order (kubectl uses a Go
/// map, whose order is random; ours is deterministic).
fn group<'a>(items: impl Iterator<Item = (&'a str, &'a PodRef)>) -> Vec<(&'a str, Vec<String>)> {
    let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
    for (msg, pod) in items {
        match groups.iter_mut().find(|(m, _)| *m == msg) {
            Some((_, pods)) => pods.push(pod.to_string()),
            None => groups.push((msg, vec![pod.to_string()])),
        }
    }
    groups
}

impl FilterOutcome {
    /// The pods kubectl would delete/evict, in input order.
    pub fn pods_to_delete(&self) -> impl Iterator<Item = &PodFilterResult> {
        self.results.iter().filter(|r| r.delete)
    }

    /// kubectl's `Warnings()` string (printed as `Warning: <this>`), empty when none:
    /// `msg: ns/a, ns/b; msg2: ns/c`.
    pub fn warnings(&self) -> String {
        group(
            self.results
                .iter()
                .filter(|r| r.verdict == Verdict::Warning)
                .map(|r| (r.message.as_str(), &r.pod)),
        )
        .into_iter()
        .map(|(m, pods)| format!("{m}: {}", pods.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
    }

    /// kubectl's per-message errors, each `cannot delete <msg>: ns/a, ns/b`. Non-empty means the
    /// node fails before any eviction.
    pub fn errors(&self) -> Vec<String> {
        group(
            self.results
                .iter()
                .filter(|r| r.verdict == Verdict::Error)
                .map(|r| {
                    let m = if r.message.is_empty() {
                        "unexpected error"
                    } else {
                        r.message.as_str()
                    };
                    (m, &r.pod)
                }),
        )
        .into_iter()
        .map(|(m, pods)| format!("cannot delete {m}: {}", pods.join(", ")))
        .collect()
    }

    /// The errors joined the way kubectl's `utilerrors.NewAggregate` prints them: one error
    /// alone, else `[e1, e2]`.
    pub fn aggregated_error(&self) -> Option<String> {
        aggregate(&self.errors())
    }
}

/// Formats errors like Go's `utilerrors.NewAggregate(errs).Error()`: one message as is,
/// several in brackets, repeated messages once.
pub fn aggregate(errors: &[String]) -> Option<String> {
    let mut seen = std::collections::BTreeSet::new();
    let unique: Vec<&str> = errors
        .iter()
        .map(String::as_str)
        .filter(|e| seen.insert(*e))
        .collect();
    match unique.as_slice() {
        [] => None,
        [one] => Some((*one).to_owned()),
        many => Some(format!("[{}]", many.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use proptest::prelude::*;

    use super::*;
    use crate::drain::testing::{PodBuilder, now};

    fn opts(force: bool, ignore_ds: bool, emptydir: bool, skip: i64) -> FilterOptions {
        FilterOptions {
            force,
            ignore_daemonsets: ignore_ds,
            delete_emptydir_data: emptydir,
            skip_wait_for_delete_timeout_seconds: skip,
        }
    }

    fn p(name: &str) -> PodBuilder {
        PodBuilder::new("ns", name)
    }

    #[test]
    fn verdict_table() {
        use FilterName::*;
        use Verdict::*;
        let found = |_: &str, _: &str| DaemonSetLookup::Found;
        let missing = |_: &str, _: &str| DaemonSetLookup::NotFound;
        let none = FilterOptions::default();
        #[allow(clippy::type_complexity)]
        let cases: Vec<(
            &str,
            Pod,
            FilterOptions,
            &dyn Fn(&str, &str) -> DaemonSetLookup,
            bool,
            Verdict,
            &str,
            FilterName,
        )> = vec![
            (
                "replicaset pod",
                p("a").rs("rs").build(),
                none.clone(),
                &found,
                true,
                Okay,
                "",
                Unreplicated,
            ),
            (
                "bare pod",
                p("a").build(),
                none.clone(),
                &found,
                false,
                Error,
                UNMANAGED_FATAL,
                Unreplicated,
            ),
            (
                "bare pod --force",
                p("a").build(),
                opts(true, false, false, 0),
                &found,
                true,
                Warning,
                UNMANAGED_WARNING,
                Unreplicated,
            ),
            (
                "ds pod",
                p("a").ds("d").build(),
                none.clone(),
                &found,
                false,
                Error,
                DAEMONSET_FATAL,
                DaemonSet,
            ),
            (
                "ds pod --ignore-daemonsets",
                p("a").ds("d").build(),
                opts(false, true, false, 0),
                &found,
                false,
                Warning,
                DAEMONSET_WARNING,
                DaemonSet,
            ),
            (
                "orphan ds pod",
                p("a").ds("d").build(),
                opts(false, true, false, 0),
                &missing,
                false,
                Error,
                "daemonsets.apps \"d\" not found",
                DaemonSet,
            ),
            (
                "orphan ds pod --force",
                p("a").ds("d").build(),
                opts(true, false, false, 0),
                &missing,
                true,
                Okay,
                "",
                Unreplicated,
            ),
            (
                "finished ds pod",
                p("a").ds("d").phase("Succeeded").build(),
                none.clone(),
                &missing,
                true,
                Okay,
                "",
                Unreplicated,
            ),
            (
                "third-party DaemonSet kind is a plain controller",
                p("a")
                    .owned("apps.kruise.io/v1alpha1", "DaemonSet", "d")
                    .build(),
                none.clone(),
                &missing,
                true,
                Okay,
                "",
                Unreplicated,
            ),
            (
                "mirror pod",
                p("a").mirror().build(),
                none.clone(),
                &found,
                false,
                Skip,
                "",
                Mirror,
            ),
            (
                "mirror pod --force",
                p("a").mirror().build(),
                opts(true, true, true, 0),
                &found,
                false,
                Skip,
                "",
                Mirror,
            ),
            (
                "emptyDir",
                p("a").rs("r").empty_dir().build(),
                none.clone(),
                &found,
                false,
                Error,
                LOCAL_STORAGE_FATAL,
                LocalStorage,
            ),
            // kubectl drops the local-storage warning when a later filter says Okay.
            (
                "emptyDir --delete-emptydir-data",
                p("a").rs("r").empty_dir().build(),
                opts(false, false, true, 0),
                &found,
                true,
                Okay,
                "",
                Unreplicated,
            ),
            (
                "bare emptyDir, no flags: local storage first",
                p("a").empty_dir().build(),
                none.clone(),
                &found,
                false,
                Error,
                LOCAL_STORAGE_FATAL,
                LocalStorage,
            ),
            (
                "bare emptyDir --delete-emptydir-data",
                p("a").empty_dir().build(),
                opts(false, false, true, 0),
                &found,
                false,
                Error,
                UNMANAGED_FATAL,
                Unreplicated,
            ),
            (
                "bare emptyDir, both flags",
                p("a").empty_dir().build(),
                opts(true, false, true, 0),
                &found,
                true,
                Warning,
                UNMANAGED_WARNING,
                Unreplicated,
            ),
            (
                "finished bare pod",
                p("a").phase("Failed").build(),
                none.clone(),
                &found,
                true,
                Okay,
                "",
                Unreplicated,
            ),
            (
                "finished emptyDir pod",
                p("a").phase("Succeeded").empty_dir().build(),
                none.clone(),
                &found,
                true,
                Okay,
                "",
                Unreplicated,
            ),
            (
                "deleted long ago, skip 60",
                p("a").deleted_ago(100).build(),
                opts(false, false, false, 60),
                &found,
                false,
                Skip,
                "",
                SkipDeleted,
            ),
            (
                "deleted exactly 60s ago, skip 60 (strict >)",
                p("a").rs("r").deleted_ago(60).build(),
                opts(false, false, false, 60),
                &found,
                true,
                Okay,
                "",
                Unreplicated,
            ),
            (
                "deleted long ago, no skip flag",
                p("a").rs("r").deleted_ago(1000).build(),
                none.clone(),
                &found,
                true,
                Okay,
                "",
                Unreplicated,
            ),
            (
                "deletion in the future (grace period)",
                p("a").rs("r").deleted_ago(-30).build(),
                opts(false, false, false, 1),
                &found,
                true,
                Okay,
                "",
                Unreplicated,
            ),
            (
                "skipped deleted DS pod needs no lookup",
                p("a").ds("d").deleted_ago(100).build(),
                opts(false, false, false, 10),
                &missing,
                false,
                Skip,
                "",
                SkipDeleted,
            ),
        ];
        for (what, pod, o, lookup, delete, verdict, msg, by) in cases {
            let r = filter_pod(&pod, &o, lookup, now());
            assert_eq!(
                (r.delete, r.verdict, r.message.as_str(), r.decided_by),
                (delete, verdict, msg, by),
                "{what}"
            );
        }
    }

    #[test]
    fn failed_lookup_is_an_error_with_the_api_message() {
        let pod = p("a").ds("d").build();
        let r = filter_pod(
            &pod,
            &opts(true, true, true, 0),
            &|_, _| DaemonSetLookup::Failed("daemonsets.apps \"d\" is forbidden".into()),
            now(),
        );
        assert_eq!(r.verdict, Verdict::Error);
        assert_eq!(r.message, "daemonsets.apps \"d\" is forbidden");
    }

    #[test]
    fn notes_keep_dropped_warnings() {
        let pod = p("a").empty_dir().build();
        let r = filter_pod(
            &pod,
            &opts(true, false, true, 0),
            &|_, _| DaemonSetLookup::Found,
            now(),
        );
        assert_eq!(r.notes, vec![LOCAL_STORAGE_WARNING, UNMANAGED_WARNING]);
    }

    #[test]
    fn aggregated_messages_match_kubectl() {
        let pods = vec![
            p("bare1").build(),
            p("ds1").ds("d").build(),
            p("bare2").build(),
            p("web").rs("r").build(),
        ];
        let out = filter_pods(
            &pods,
            &FilterOptions::default(),
            &|_, _| DaemonSetLookup::Found,
            now(),
        );
        assert_eq!(
            out.errors(),
            vec![
                "cannot delete Pods declare no controller (use --force to override): ns/bare1, ns/bare2",
                "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): ns/ds1",
            ]
        );
        assert_eq!(
            out.aggregated_error().unwrap(),
            "[cannot delete Pods declare no controller (use --force to override): ns/bare1, ns/bare2, cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): ns/ds1]"
        );
        assert_eq!(out.warnings(), "");
        let out = filter_pods(
            &pods,
            &opts(true, true, false, 0),
            &|_, _| DaemonSetLookup::Found,
            now(),
        );
        assert!(out.errors().is_empty());
        assert_eq!(
            out.warnings(),
            "deleting Pods that declare no controller: ns/bare1, ns/bare2; ignoring DaemonSet-managed Pods: ns/ds1"
        );
        let names: Vec<_> = out.pods_to_delete().map(|r| r.pod.name.as_str()).collect();
        assert_eq!(names, ["bare1", "bare2", "web"]);
    }

    #[test]
    fn single_error_is_not_bracketed() {
        let out = filter_pods(
            &[p("x").build()],
            &FilterOptions::default(),
            &|_, _| DaemonSetLookup::Found,
            now(),
        );
        assert_eq!(
            out.aggregated_error().unwrap(),
            "cannot delete Pods declare no controller (use --force to override): ns/x"
        );
    }

    #[test]
    fn lookups_needed() {
        let pods = vec![
            p("a").ds("d1").build(),
            p("b").ds("d2").phase("Succeeded").build(),
            p("c").ds("d3").deleted_ago(100).build(),
            p("e").rs("r").build(),
        ];
        let need = daemonsets_to_look_up(&pods, &opts(false, false, false, 10), now());
        assert_eq!(
            need.into_iter().collect::<Vec<_>>(),
            vec![("ns".to_owned(), "d1".to_owned())]
        );
    }

    #[derive(Debug, Clone)]
    struct Features {
        controller: u8,
        finished: bool,
        mirror: bool,
        empty_dir: bool,
        deleted_ago: Option<i64>,
    }

    fn features() -> impl Strategy<Value = Features> {
        (
            0u8..4,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(-100i64..1000),
        )
            .prop_map(
                |(controller, finished, mirror, empty_dir, deleted_ago)| Features {
                    controller,
                    finished,
                    mirror,
                    empty_dir,
                    deleted_ago,
                },
            )
    }

    fn build(i: usize, f: &Features) -> Pod {
        let mut b = p(&format!("p{i}"));
        b = match f.controller {
            1 => b.rs("r"),
            2 => b.ds("d"),
            3 => b.owned("batch/v1", "Job", "j"),
            _ => b,
        };
        if f.finished {
            b = b.phase("Succeeded");
        }
        if f.mirror {
            b = b.mirror();
        }
        if f.empty_dir {
            b = b.empty_dir();
        }
        if let Some(s) = f.deleted_ago {
            b = b.deleted_ago(s);
        }
        b.build()
    }

    proptest! {
        #[test]
        fn invariants(
            fs in proptest::collection::vec(features(), 0..12),
            force in any::<bool>(), ignore in any::<bool>(), emptydir in any::<bool>(),
            skip in 0i64..200, ds_exists in any::<bool>(),
        ) {
            let o = opts(force, ignore, emptydir, skip);
            let pods: Vec<Pod> = fs.iter().enumerate().map(|(i, f)| build(i, f)).collect();
            let calls = RefCell::new(Vec::new());
            let lookup = |ns: &str, name: &str| {
                calls.borrow_mut().push((ns.to_owned(), name.to_owned()));
                if ds_exists { DaemonSetLookup::Found } else { DaemonSetLookup::NotFound }
            };
            let out = filter_pods(&pods, &o, &lookup, now());
            let again = filter_pods(&pods, &o, &|_, _| if ds_exists { DaemonSetLookup::Found } else { DaemonSetLookup::NotFound }, now());
            prop_assert_eq!(&out, &again);
            let needed = daemonsets_to_look_up(&pods, &o, now());
            for c in calls.borrow().iter() {
                prop_assert!(needed.contains(c));
            }
            for (f, r) in fs.iter().zip(&out.results) {
                if f.mirror {
                    prop_assert!(!r.delete, "mirror pod deleted: {:?}", f);
                }
                if f.controller == 2 && !f.finished && ds_exists {
                    prop_assert!(!r.delete, "live DaemonSet pod deleted: {:?}", f);
                }
                if r.verdict == Verdict::Error {
                    prop_assert!(!r.delete);
                    let key = r.pod.to_string();
                    let listed = out.errors().iter().any(|e| {
                        e.rsplit_once(": ").is_some_and(|(_, pods)| pods.split(", ").any(|p| p == key))
                    });
                    prop_assert!(listed, "error pod {} not in aggregated errors", key);
                }
                if f.controller == 0 && !f.finished && !force && r.delete {
                    prop_assert!(false, "bare pod deleted without --force: {:?}", f);
                }
                if f.empty_dir && !f.finished && !emptydir {
                    prop_assert!(!r.delete, "emptyDir pod deleted without flag: {:?}", f);
                }
            }
            prop_assert_eq!(out.errors().is_empty(), out.results.iter().all(|r| r.verdict != Verdict::Error));
        }
    }
}
