//! The answer to an eviction (or delete): the parts of the server's `Status` body that matter,
//! and what the answer means for the pod.

use serde::{Deserialize, Serialize};

use super::{DISRUPTION_BUDGET_CAUSE, NAMESPACE_TERMINATING_CAUSE};

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
