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
