//! The pure parts of evicting a pod: choosing the Eviction API version from discovery (as
//! kubectl's `CheckEvictionSupport`), building the Eviction body, and classifying the answer.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::PodRef;
use super::cordon::DryRun;

/// Message of the API server's 500 for pods under several PDBs.
pub const MULTIPLE_PDB_MESSAGE: &str = "This pod has more than one PodDisruptionBudget";
/// `StatusCause.reason` the server puts on PDB refusals.
pub const DISRUPTION_BUDGET_CAUSE: &str = "DisruptionBudget";
/// `StatusCause.reason` for evictions in a terminating namespace.
pub const NAMESPACE_TERMINATING_CAUSE: &str = "NamespaceTerminating";

/// The group/version of the Eviction body to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum EvictionVersion {
    /// `policy/v1` (Kubernetes ≥ 1.22).
    #[serde(rename = "policy/v1")]
    V1,
    /// `policy/v1beta1` (any server with the eviction subresource).
    #[serde(rename = "policy/v1beta1")]
    V1beta1,
}

impl EvictionVersion {
    /// `apiVersion` string.
    pub fn api_version(self) -> &'static str {
        match self {
            EvictionVersion::V1 => "policy/v1",
            EvictionVersion::V1beta1 => "policy/v1beta1",
        }
    }
}

/// How pods leave the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "version", rename_all = "lowercase")]
pub enum RemovalMethod {
    /// POST `pods/{name}/eviction` with this body version (PDBs respected).
    Evict(EvictionVersion),
    /// Plain `DELETE` (`--disable-eviction`, or a server without the subresource): PDBs are
    /// not consulted.
    Delete,
}

/// kubectl's `CheckEvictionSupport` on the `GET /api/v1` resource list: the `pods/eviction`
/// entry with kind `Eviction` and a non-empty group and version. `policy/v1` is used as is;
/// any other advertised version falls back to `policy/v1beta1`, as kubectl does. `None` means
/// the server has no eviction subresource.
pub fn eviction_version_from_discovery(core_v1: &[APIResource]) -> Option<EvictionVersion> {
    core_v1.iter().find_map(|r| {
        let group = r.group.as_deref().unwrap_or_default();
        let version = r.version.as_deref().unwrap_or_default();
        (r.name == "pods/eviction"
            && r.kind == "Eviction"
            && !group.is_empty()
            && !version.is_empty())
        .then_some(if group == "policy" && version == "v1" {
            EvictionVersion::V1
        } else {
            EvictionVersion::V1beta1
        })
    })
}

/// kubectl's choice of removal method: `--disable-eviction` forces `DELETE`, otherwise the
/// discovered eviction version, else `DELETE`.
pub fn removal_method(
    disable_eviction: bool,
    discovered: Option<EvictionVersion>,
) -> RemovalMethod {
    match (disable_eviction, discovered) {
        (false, Some(v)) => RemovalMethod::Evict(v),
        _ => RemovalMethod::Delete,
    }
}

/// Options shared by evictions and deletes (kubectl's `makeDeleteOptions`, plus a UID
/// precondition which kubectl does not send).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// `--grace-period`; sent only when `>= 0`.
    pub grace_period_seconds: i64,
    /// UID precondition: evict/delete only this incarnation of the pod (409 otherwise).
    pub uid: Option<String>,
    /// `--dry-run=server`: `dryRun: ["All"]`.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// The `DeleteOptions` JSON object (no `kind`/`apiVersion`, as client-go sends it inside an
    /// Eviction and as the body of a DELETE).
    pub fn to_json(&self) -> Value {
        let mut o = serde_json::Map::new();
        if self.grace_period_seconds >= 0 {
            o.insert(
                "gracePeriodSeconds".into(),
                json!(self.grace_period_seconds),
            );
        }
        if let Some(uid) = self.uid.as_deref().filter(|u| !u.is_empty()) {
            o.insert("preconditions".into(), json!({ "uid": uid }));
        }
        if self.dry_run {
            o.insert("dryRun".into(), json!(["All"]));
        }
        Value::Object(o)
    }
}

/// The Eviction body for `POST /api/v1/namespaces/{ns}/pods/{name}/eviction`.
pub fn eviction_body(
    version: EvictionVersion,
    namespace: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Value {
    json!({
        "apiVersion": version.api_version(),
        "kind": "Eviction",
        "metadata": { "name": name, "namespace": namespace },
        "deleteOptions": opts.to_json(),
    })
}

/// One `StatusCause` of a `Status` body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct StatusCause {
    /// Machine-readable cause (`DisruptionBudget`, `NamespaceTerminating`, ...).
    #[serde(default)]
    pub reason: String,
    /// Human text.
    #[serde(default)]
    pub message: String,
    /// Field, if any.
    #[serde(default)]
    pub field: String,
}

/// `Status.details`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// Causes.
    #[serde(default)]
    pub causes: Vec<StatusCause>,
    /// Suggested delay before retrying.
    #[serde(default)]
    pub retry_after_seconds: Option<u32>,
}

/// The parts of a `metav1.Status` response body that matter here (deserializable from the raw
/// JSON the API server sends).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ApiStatus {
    /// HTTP code as the server reports it.
    #[serde(default)]
    pub code: u16,
    /// `reason` (`TooManyRequests`, `NotFound`, ...).
    #[serde(default)]
    pub reason: String,
    /// Human message.
    #[serde(default)]
    pub message: String,
    /// Details.
    #[serde(default)]
    pub details: Option<StatusDetails>,
}

impl ApiStatus {
    fn causes(&self) -> &[StatusCause] {
        self.details
            .as_ref()
            .map(|d| d.causes.as_slice())
            .unwrap_or_default()
    }

    /// Whether a cause with this reason is present (`apierrors.HasStatusCause`).
    pub fn has_cause(&self, reason: &str) -> bool {
        self.causes().iter().any(|c| c.reason == reason)
    }
}

/// What to do after an eviction (or delete) attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EvictionOutcome {
    /// Accepted (2xx): wait for the pod to go.
    Accepted,
    /// The pod (this incarnation) is already gone: 404, or 409 on the UID precondition.
    Done {
        /// Which way it is gone.
        gone: Gone,
    },
    /// Refused by a PodDisruptionBudget (429 with a `DisruptionBudget` cause): retry.
    RetryPdb {
        /// PDB name parsed from the cause, if present.
        pdb: Option<String>,
        /// The server's message and cause, for the user.
        message: String,
        /// Server-suggested delay (`Retry-After` / `retryAfterSeconds`), when non-zero.
        retry_after_seconds: Option<u32>,
    },
    /// 429 without a PDB cause (API priority and fairness): retry.
    Throttled {
        /// Message.
        message: String,
        /// Server-suggested delay, when non-zero.
        retry_after_seconds: Option<u32>,
    },
    /// 403 `NamespaceTerminating`: if the pod is already being deleted, kubectl waits for it
    /// (`pod_deleting`); otherwise it retries.
    NamespaceTerminating {
        /// Whether the pod already had a deletion timestamp.
        pod_deleting: bool,
        /// Message.
        message: String,
    },
    /// 500 "more than one PodDisruptionBudget": never succeeds; a per-pod failure.
    MultiplePdb {
        /// Message.
        message: String,
    },
    /// Anything else: a per-pod failure.
    Failed {
        /// HTTP code.
        code: u16,
        /// Message.
        message: String,
    },
}

/// Why a pod counts as removed without an accepted request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gone {
    /// 404: no pod of that name any more.
    NotFound,
    /// 409 on the UID precondition: a new pod of the same name replaced the one listed.
    Replaced,
}

/// Parses `The disruption budget NAME needs N healthy pods and has M currently` (and
/// `The disruption budget NAME is still being processed by the server.`) into the PDB name.
pub fn pdb_name_from_cause(message: &str) -> Option<String> {
    let rest = message.strip_prefix("The disruption budget ")?;
    let name = rest.split_whitespace().next()?;
    Some(name.trim_end_matches('.').to_owned())
}

/// Classifies an eviction response. `status` is the parsed body when it was a `Status`;
/// `retry_after_header` is the `Retry-After` header in seconds, if any; `pod_deleting` says
/// whether the pod we tried to evict already had a deletion timestamp.
pub fn classify_eviction_response(
    http_code: u16,
    status: Option<&ApiStatus>,
    retry_after_header: Option<u32>,
    pod_deleting: bool,
) -> EvictionOutcome {
    let empty = ApiStatus::default();
    let st = status.unwrap_or(&empty);
    let message = if st.message.is_empty() {
        format!("HTTP {http_code}")
    } else {
        st.message.clone()
    };
    let retry_after = st
        .details
        .as_ref()
        .and_then(|d| d.retry_after_seconds)
        .or(retry_after_header)
        .filter(|s| *s > 0);
    match http_code {
        200..=299 => EvictionOutcome::Accepted,
        404 => EvictionOutcome::Done {
            gone: Gone::NotFound,
        },
        // Two wordings: the storage layer's ("Precondition failed: UID in precondition: …")
        // and the eviction handler's own check, which a v1.20 server answers with ("the UID in
        // the precondition (…) does not match the UID in record (…)").
        409 if message.contains("Precondition failed")
            || message.contains("UID in precondition")
            || message.contains("UID in the precondition") =>
        {
            EvictionOutcome::Done {
                gone: Gone::Replaced,
            }
        }
        429 => {
            let cause = st
                .causes()
                .iter()
                .find(|c| c.reason == DISRUPTION_BUDGET_CAUSE);
            match cause {
                Some(c) => EvictionOutcome::RetryPdb {
                    pdb: pdb_name_from_cause(&c.message),
                    message: if c.message.is_empty() {
                        message
                    } else {
                        format!("{message} {}", c.message)
                    },
                    retry_after_seconds: retry_after,
                },
                None if message.contains("disruption budget") => EvictionOutcome::RetryPdb {
                    pdb: None,
                    message,
                    retry_after_seconds: retry_after,
                },
                None => EvictionOutcome::Throttled {
                    message,
                    retry_after_seconds: retry_after,
                },
            }
        }
        403 if st.has_cause(NAMESPACE_TERMINATING_CAUSE) => EvictionOutcome::NamespaceTerminating {
            pod_deleting,
            message,
        },
        500 if message.contains("more than one PodDisruptionBudget") => {
            EvictionOutcome::MultiplePdb { message }
        }
        code => EvictionOutcome::Failed { code, message },
    }
}

/// How a retried eviction waits before its next attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryWait {
    /// Sleep this long: the server's `retryAfterSeconds`, or the retry delay.
    Pause(Duration),
    /// Until budget `namespace/name` allows a disruption (the executor watches it), with the
    /// retry delay as a safety net.
    Budget {
        /// `namespace/name` of the PodDisruptionBudget.
        key: String,
    },
}

/// What the executor does after one eviction (or delete) attempt: kubectl's per-pod retry
/// loop, decided here so that every outcome has one tested answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextStep {
    /// The request was accepted: wait for the pod to disappear.
    WaitForDeletion,
    /// Nothing more to do for this pod.
    Done(Gone),
    /// Try again after `wait`.
    Retry {
        /// How to wait.
        wait: RetryWait,
        /// kubectl's stderr line announcing the retry (`None`: kubectl has none, e.g. API
        /// priority and fairness throttling, which client-go retries silently).
        line: Option<String>,
        /// What blocks the pod, for progress and the report (`PDB ns/name: message`).
        blocked_by: Option<String>,
    },
    /// Server dry-run refused by a budget: the budget never moves under dry-run, so retrying
    /// (as kubectl does) would loop forever; report the pod as blocked instead.
    DryRunBlocked {
        /// kubectl's line for the refusal (it would retry after it).
        line: String,
        /// `PDB ns/name: message`, or the server's message.
        blocked_by: String,
    },
    /// A per-pod failure, in kubectl's words.
    Fail {
        /// The error line.
        error: String,
    },
}

/// The budget (`namespace/name`) a [`NextStep`]'s `blocked_by` names, if the server named one.
pub fn blocking_budget(blocked_by: &str) -> Option<&str> {
    let rest = blocked_by.strip_prefix("PDB ")?;
    rest.split_once(": ").map(|(key, _)| key)
}

/// The retry settings [`next_step`] needs.
#[derive(Clone, Copy, Debug)]
pub struct RetrySettings<'a> {
    /// `--dry-run`.
    pub dry_run: Option<DryRun>,
    /// `--eviction-retry-delay` (kubectl: a fixed 5 s).
    pub delay: Duration,
    /// The same delay as printed in kubectl's lines (`5s`).
    pub delay_text: &'a str,
}

/// Delay after an API priority-and-fairness 429 without a server hint.
pub const THROTTLE_PAUSE: Duration = Duration::from_secs(1);

/// Decides what follows an attempt to evict `pod` that ended in `outcome`.
pub fn next_step(outcome: EvictionOutcome, pod: &PodRef, settings: RetrySettings<'_>) -> NextStep {
    let (name, ns) = (&pod.name, &pod.namespace);
    match outcome {
        EvictionOutcome::Accepted
        | EvictionOutcome::NamespaceTerminating {
            pod_deleting: true, ..
        } => NextStep::WaitForDeletion,
        EvictionOutcome::Done { gone } => NextStep::Done(gone),
        EvictionOutcome::RetryPdb {
            pdb,
            message,
            retry_after_seconds,
        } => {
            let blocked_by = match &pdb {
                Some(p) => format!("PDB {ns}/{p}: {message}"),
                None => message.clone(),
            };
            let line = format!(
                "error when evicting pods/\"{name}\" -n \"{ns}\" (will retry after {}): {message}",
                settings.delay_text
            );
            if settings.dry_run == Some(DryRun::Server) {
                return NextStep::DryRunBlocked { line, blocked_by };
            }
            let wait = match (retry_after_seconds, pdb) {
                // Honour the server's hint; a budget change cannot help before it.
                (Some(s), _) => RetryWait::Pause(Duration::from_secs(u64::from(s))),
                (None, Some(p)) => RetryWait::Budget {
                    key: format!("{ns}/{p}"),
                },
                (None, None) => RetryWait::Pause(settings.delay),
            };
            NextStep::Retry {
                wait,
                line: Some(line),
                blocked_by: Some(blocked_by),
            }
        }
        EvictionOutcome::Throttled {
            retry_after_seconds,
            ..
        } => NextStep::Retry {
            wait: RetryWait::Pause(
                retry_after_seconds.map_or(THROTTLE_PAUSE, |s| Duration::from_secs(u64::from(s))),
            ),
            line: None,
            blocked_by: None,
        },
        EvictionOutcome::NamespaceTerminating { message, .. } => NextStep::Retry {
            wait: RetryWait::Pause(settings.delay),
            line: Some(format!(
                "error when evicting pod \"{name}\" from terminating namespace \"{ns}\" (will retry after {}): {message}",
                settings.delay_text
            )),
            blocked_by: None,
        },
        EvictionOutcome::MultiplePdb { message } | EvictionOutcome::Failed { message, .. } => {
            NextStep::Fail {
                error: format!("error when evicting pods/\"{name}\" -n \"{ns}\": {message}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            eviction_version_from_discovery(&[res(
                "pods/eviction",
                "Eviction",
                "policy",
                "v1beta1"
            )]),
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
        let other409 = status(
            json!({"code":409,"reason":"Conflict","message":"the object has been modified"}),
        );
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
}
