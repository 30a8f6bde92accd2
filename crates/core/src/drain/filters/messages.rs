//! kubectl's summary of the filters' verdicts for a node: the `Warning:` line and the errors
//! that fail the node, grouped by message, and Go's aggregate-error format.

use super::{FilterOutcome, PodFilterResult, Verdict};
use crate::drain::PodRef;

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
