use std::time::Duration;

use super::*;
use crate::drain::PodRef;
use crate::drain::cordon::DryRun;

fn res(name: &str, kind: &str, group: &str, version: &str) -> APIResource {
    APIResource {
        name: name.into(),
        kind: kind.into(),
        group: Some(group.into()),
        version: Some(version.into()),
        ..Default::default()
    }
}

#[test]
fn discovery() {
    let pods = res("pods", "Pod", "", "");
    assert_eq!(
        eviction_version_from_discovery(&[
            pods.clone(),
            res("pods/eviction", "Eviction", "policy", "v1")
        ]),
        Some(EvictionVersion::V1)
    );
    assert_eq!(
        eviction_version_from_discovery(&[res("pods/eviction", "Eviction", "policy", "v1beta1")]),
        Some(EvictionVersion::V1beta1)
    );
    assert_eq!(
        eviction_version_from_discovery(&[res("pods/eviction", "Eviction", "policy", "v2")]),
        Some(EvictionVersion::V1beta1),
        "kubectl falls back to v1beta1 for anything but policy/v1"
    );
    assert_eq!(
        eviction_version_from_discovery(&[res("pods/eviction", "Eviction", "", "")]),
        None
    );
    assert_eq!(eviction_version_from_discovery(&[pods]), None);
    assert_eq!(
        removal_method(true, Some(EvictionVersion::V1)),
        RemovalMethod::Delete
    );
    assert_eq!(removal_method(false, None), RemovalMethod::Delete);
    assert_eq!(
        removal_method(false, Some(EvictionVersion::V1beta1)),
        RemovalMethod::Evict(EvictionVersion::V1beta1)
    );
}

#[test]
fn bodies() {
    let b = eviction_body(
        EvictionVersion::V1beta1,
        "ns",
        "p",
        &DeleteOptions {
            grace_period_seconds: -1,
            uid: Some("u1".into()),
            dry_run: false,
        },
    );
    assert_eq!(
        b,
        json!({"apiVersion":"policy/v1beta1","kind":"Eviction","metadata":{"name":"p","namespace":"ns"},
               "deleteOptions":{"preconditions":{"uid":"u1"}}})
    );
    let b = eviction_body(
        EvictionVersion::V1,
        "ns",
        "p",
        &DeleteOptions {
            grace_period_seconds: 0,
            uid: None,
            dry_run: true,
        },
    );
    assert_eq!(
        b,
        json!({"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"p","namespace":"ns"},
               "deleteOptions":{"gracePeriodSeconds":0,"dryRun":["All"]}})
    );
    // The body also parses as the typed policy/v1 Eviction.
    let typed: k8s_openapi::api::policy::v1::Eviction = serde_json::from_value(b).unwrap();
    assert_eq!(typed.delete_options.unwrap().grace_period_seconds, Some(0));
}

fn status(json: Value) -> ApiStatus {
    serde_json::from_value(json).unwrap()
}

#[test]
fn classification() {
    let pdb429 = status(
        json!({"kind":"Status","apiVersion":"v1","status":"Failure","code":429,"reason":"TooManyRequests",
        "message":"Cannot evict pod as it would violate the pod's disruption budget.",
        "details":{"causes":[{"reason":"DisruptionBudget","message":"The disruption budget web-pdb needs 3 healthy pods and has 2 currently"}]}}),
    );
    assert_eq!(
        classify_eviction_response(429, Some(&pdb429), None, false),
        EvictionOutcome::RetryPdb {
            pdb: Some("web-pdb".into()),
            message: "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget web-pdb needs 3 healthy pods and has 2 currently".into(),
            retry_after_seconds: None,
        }
    );
    let stale = status(
        json!({"code":429,"message":"Cannot evict pod as it would violate the pod's disruption budget.",
        "details":{"retryAfterSeconds":10,"causes":[{"reason":"DisruptionBudget","message":"The disruption budget web-pdb is still being processed by the server."}]}}),
    );
    assert!(matches!(
        classify_eviction_response(429, Some(&stale), Some(3), false),
        EvictionOutcome::RetryPdb { pdb: Some(ref n), retry_after_seconds: Some(10), .. } if n == "web-pdb"
    ));
    let apf = status(
        json!({"code":429,"reason":"TooManyRequests","message":"Too many requests, please try again later."}),
    );
    assert_eq!(
        classify_eviction_response(429, Some(&apf), Some(2), false),
        EvictionOutcome::Throttled {
            message: "Too many requests, please try again later.".into(),
            retry_after_seconds: Some(2)
        }
    );
    assert!(matches!(
        classify_eviction_response(404, None, None, false),
        EvictionOutcome::Done {
            gone: Gone::NotFound
        }
    ));
    let uid = status(
        json!({"code":409,"reason":"Conflict","message":"Operation cannot be fulfilled on Pod \"p\": Precondition failed: UID in precondition: a, UID in object meta: b"}),
    );
    assert!(matches!(
        classify_eviction_response(409, Some(&uid), None, false),
        EvictionOutcome::Done {
            gone: Gone::Replaced
        }
    ));
    // The v1.20 eviction handler's wording (seen on the lab).
    let uid120 = status(
        json!({"code":409,"reason":"Conflict","message":"Operation cannot be fulfilled on Pod \"web-0\": the UID in the precondition (a) does not match the UID in record (b). The object might have been deleted and then recreated"}),
    );
    assert!(matches!(
        classify_eviction_response(409, Some(&uid120), None, false),
        EvictionOutcome::Done {
            gone: Gone::Replaced
        }
    ));
    let other409 =
        status(json!({"code":409,"reason":"Conflict","message":"the object has been modified"}));
    assert!(matches!(
        classify_eviction_response(409, Some(&other409), None, false),
        EvictionOutcome::Failed { code: 409, .. }
    ));
    let multi = status(
        json!({"code":500,"reason":"InternalError","message":"This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."}),
    );
    assert!(matches!(
        classify_eviction_response(500, Some(&multi), None, false),
        EvictionOutcome::MultiplePdb { .. }
    ));
    let nsterm = status(
        json!({"code":403,"reason":"Forbidden","message":"pods \"p\" is forbidden: unable to create new content in namespace x because it is being terminated",
        "details":{"causes":[{"reason":"NamespaceTerminating","message":"namespace x is being terminated","field":"metadata.namespace"}]}}),
    );
    assert!(matches!(
        classify_eviction_response(403, Some(&nsterm), None, true),
        EvictionOutcome::NamespaceTerminating {
            pod_deleting: true,
            ..
        }
    ));
    let forbidden = status(json!({"code":403,"reason":"Forbidden","message":"no"}));
    assert!(matches!(
        classify_eviction_response(403, Some(&forbidden), None, false),
        EvictionOutcome::Failed { code: 403, .. }
    ));
    assert_eq!(
        classify_eviction_response(201, None, None, false),
        EvictionOutcome::Accepted
    );
    assert_eq!(
        classify_eviction_response(503, None, None, false),
        EvictionOutcome::Failed {
            code: 503,
            message: "HTTP 503".into()
        }
    );
}

fn pod() -> PodRef {
    PodRef {
        namespace: "ns".into(),
        name: "p".into(),
        uid: "u1".into(),
    }
}

#[test]
fn blocking_budget_of_a_blocked_by_text() {
    let refused = "Cannot evict pod as it would violate the pod's disruption budget.";
    for (text, want) in [
        (format!("PDB ns/web: {refused}"), Some("ns/web")),
        (refused.to_owned(), None),
        ("PDB without a colon".to_owned(), None),
    ] {
        assert_eq!(blocking_budget(&text), want, "{text}");
    }
    // What next_step writes is what blocking_budget reads.
    let step = next_step(
        EvictionOutcome::RetryPdb {
            pdb: Some("web".into()),
            message: refused.into(),
            retry_after_seconds: Some(3),
        },
        &pod(),
        RetrySettings {
            dry_run: None,
            delay: Duration::from_secs(5),
            delay_text: "5s",
        },
    );
    let NextStep::Retry {
        blocked_by: Some(b),
        ..
    } = step
    else {
        panic!("{step:?}")
    };
    assert_eq!(blocking_budget(&b), Some("ns/web"));
}

#[test]
fn next_step_per_outcome() {
    let settings = |dry_run| RetrySettings {
        dry_run,
        delay: Duration::from_secs(5),
        delay_text: "5s",
    };
    let pdb_refusal = |pdb: Option<&str>, after: Option<u32>| EvictionOutcome::RetryPdb {
        pdb: pdb.map(Into::into),
        message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
        retry_after_seconds: after,
    };
    let pdb_line = "error when evicting pods/\"p\" -n \"ns\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.";
    let cases: Vec<(EvictionOutcome, Option<DryRun>, NextStep)> = vec![
        (EvictionOutcome::Accepted, None, NextStep::WaitForDeletion),
        (
            EvictionOutcome::Accepted,
            Some(DryRun::Server),
            NextStep::WaitForDeletion,
        ),
        (
            EvictionOutcome::Done {
                gone: Gone::NotFound,
            },
            None,
            NextStep::Done(Gone::NotFound),
        ),
        (
            EvictionOutcome::Done {
                gone: Gone::Replaced,
            },
            None,
            NextStep::Done(Gone::Replaced),
        ),
        // A refusal naming its budget waits on that budget's watch.
        (
            pdb_refusal(Some("web"), None),
            None,
            NextStep::Retry {
                wait: RetryWait::Budget {
                    key: "ns/web".into(),
                },
                line: Some(pdb_line.into()),
                blocked_by: Some(
                    "PDB ns/web: Cannot evict pod as it would violate the pod's disruption budget."
                        .into(),
                ),
            },
        ),
        // The server's retryAfterSeconds comes first.
        (
            pdb_refusal(Some("web"), Some(10)),
            None,
            NextStep::Retry {
                wait: RetryWait::Pause(Duration::from_secs(10)),
                line: Some(pdb_line.into()),
                blocked_by: Some(
                    "PDB ns/web: Cannot evict pod as it would violate the pod's disruption budget."
                        .into(),
                ),
            },
        ),
        // No budget named: kubectl's fixed delay.
        (
            pdb_refusal(None, None),
            None,
            NextStep::Retry {
                wait: RetryWait::Pause(Duration::from_secs(5)),
                line: Some(pdb_line.into()),
                blocked_by: Some(
                    "Cannot evict pod as it would violate the pod's disruption budget.".into(),
                ),
            },
        ),
        // Under server dry-run a budget never moves: stop instead of looping.
        (
            pdb_refusal(Some("web"), None),
            Some(DryRun::Server),
            NextStep::DryRunBlocked {
                line: pdb_line.into(),
                blocked_by:
                    "PDB ns/web: Cannot evict pod as it would violate the pod's disruption budget."
                        .into(),
            },
        ),
        (
            EvictionOutcome::Throttled {
                message: "Too many requests".into(),
                retry_after_seconds: None,
            },
            None,
            NextStep::Retry {
                wait: RetryWait::Pause(THROTTLE_PAUSE),
                line: None,
                blocked_by: None,
            },
        ),
        (
            EvictionOutcome::Throttled {
                message: "Too many requests".into(),
                retry_after_seconds: Some(3),
            },
            None,
            NextStep::Retry {
                wait: RetryWait::Pause(Duration::from_secs(3)),
                line: None,
                blocked_by: None,
            },
        ),
        (
            EvictionOutcome::NamespaceTerminating {
                pod_deleting: true,
                message: "terminating".into(),
            },
            None,
            NextStep::WaitForDeletion,
        ),
        (
            EvictionOutcome::NamespaceTerminating {
                pod_deleting: false,
                message: "terminating".into(),
            },
            None,
            NextStep::Retry {
                wait: RetryWait::Pause(Duration::from_secs(5)),
                line: Some(
                    "error when evicting pod \"p\" from terminating namespace \"ns\" (will retry after 5s): terminating"
                        .into(),
                ),
                blocked_by: None,
            },
        ),
        (
            EvictionOutcome::MultiplePdb {
                message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
            },
            None,
            NextStep::Fail {
                error: "error when evicting pods/\"p\" -n \"ns\": This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
            },
        ),
        (
            EvictionOutcome::Failed {
                code: 403,
                message: "no".into(),
            },
            Some(DryRun::Server),
            NextStep::Fail {
                error: "error when evicting pods/\"p\" -n \"ns\": no".into(),
            },
        ),
    ];
    for (outcome, dry_run, want) in cases {
        let got = next_step(outcome.clone(), &pod(), settings(dry_run));
        assert_eq!(got, want, "{outcome:?} under {dry_run:?}");
    }
}
