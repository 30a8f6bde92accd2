//! kubectl's per-pod retry loop after an eviction attempt, as one decision per outcome.

use std::time::Duration;

use super::{EvictionOutcome, Gone};
use crate::drain::PodRef;
use crate::drain::cordon::DryRun;

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
