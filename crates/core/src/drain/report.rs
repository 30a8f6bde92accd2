//! What held a node's drain up: each pod's waits (for a PodDisruptionBudget to allow its
//! eviction, between other retries, for its termination) summed up per cause for the node, and
//! the per-node line of the drain's closing summary.
//!
//! A node's pods are removed concurrently, so a node is held up by its slowest pods: per cause
//! the summary gives the longest single wait and how many pods waited on it, not a sum (which
//! would count overlapping waits several times).

use std::collections::BTreeMap;

use serde::Serialize;

/// One pod's waits, in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PodWaits {
    /// Waiting for each PodDisruptionBudget (`namespace/name`) to allow the pod's eviction.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub budgets: BTreeMap<String, f64>,
    /// Between other retries (API throttling, a terminating namespace, a budget the server did
    /// not name).
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: f64,
    /// From the accepted eviction (or delete) until the pod was gone.
    pub termination: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl PodWaits {
    /// Adds `seconds` of waiting for budget `pdb` (`namespace/name`).
    pub fn budget(&mut self, pdb: &str, seconds: f64) {
        *self.budgets.entry(pdb.to_owned()).or_default() += seconds;
    }
}

/// What a node waited on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Cause {
    /// A PodDisruptionBudget that did not allow a disruption yet.
    Budget {
        /// `namespace/name`.
        pdb: String,
    },
    /// Retries for other reasons (throttling, a terminating namespace).
    Retries,
    /// Evicted pods still terminating.
    Termination,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Budget { pdb } => write!(f, "PDB {pdb}"),
            Cause::Retries => f.write_str("retries"),
            Cause::Termination => f.write_str("waiting for pod termination"),
        }
    }
}

/// One cause that held a node up.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HoldUp {
    /// What.
    pub cause: Cause,
    /// How many of the node's pods waited on it.
    pub pods: usize,
    /// The longest wait of one pod, in seconds.
    pub longest_seconds: f64,
}

/// Waits shorter than this are not worth a line (a request's round trip).
const NOTICEABLE_SECONDS: f64 = 0.05;

/// The causes that held a node up, longest first (ties by cause), from its pods' waits.
pub fn held_up<'a>(pods: impl IntoIterator<Item = &'a PodWaits>) -> Vec<HoldUp> {
    let mut by: BTreeMap<Cause, (usize, f64)> = BTreeMap::new();
    let mut add = |cause: Cause, seconds: f64| {
        if seconds >= NOTICEABLE_SECONDS {
            let e = by.entry(cause).or_default();
            e.0 += 1;
            e.1 = e.1.max(seconds);
        }
    };
    for p in pods {
        for (pdb, s) in &p.budgets {
            add(Cause::Budget { pdb: pdb.clone() }, *s);
        }
        add(Cause::Retries, p.retries);
        add(Cause::Termination, p.termination);
    }
    let mut out: Vec<HoldUp> = by
        .into_iter()
        .map(|(cause, (pods, longest_seconds))| HoldUp {
            cause,
            pods,
            longest_seconds,
        })
        .collect();
    out.sort_by(|a, b| {
        b.longest_seconds
            .total_cmp(&a.longest_seconds)
            .then_with(|| a.cause.cmp(&b.cause))
    });
    out
}

/// How a node's drain ended, as the summary line says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Every pod gone.
    Drained,
    /// Failed.
    Failed,
}

/// The summary line of one node: when its pod removal started and ended (seconds after the run
/// started) and what held it up, e.g. `node/w-1: started +0.0s, drained +7.5s (7.5s); held up
/// by PDB ns/a (2 pods, up to 4.1s), waiting for pod termination (5 pods, up to 1.6s)`.
pub fn summary_line(
    node: &str,
    ended: Ended,
    started_after: f64,
    ended_after: f64,
    held: &[HoldUp],
) -> String {
    let verb = match ended {
        Ended::Drained => "drained",
        Ended::Failed => "failed",
    };
    let mut line = format!(
        "node/{node}: started +{started_after:.1}s, {verb} +{ended_after:.1}s ({:.1}s)",
        (ended_after - started_after).max(0.0)
    );
    if held.is_empty() {
        line.push_str("; nothing held it up");
        return line;
    }
    let parts: Vec<String> = held
        .iter()
        .map(|h| {
            let pods = if h.pods == 1 { "pod" } else { "pods" };
            format!(
                "{} ({} {pods}, up to {:.1}s)",
                h.cause, h.pods, h.longest_seconds
            )
        })
        .collect();
    line.push_str("; held up by ");
    line.push_str(&parts.join(", "));
    line
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn waits(budgets: &[(&str, f64)], retries: f64, termination: f64) -> PodWaits {
        let mut w = PodWaits {
            retries,
            termination,
            ..PodWaits::default()
        };
        for (pdb, s) in budgets {
            w.budget(pdb, *s);
        }
        w
    }

    fn budget(pdb: &str) -> Cause {
        Cause::Budget { pdb: pdb.into() }
    }

    #[test]
    fn held_up_table() {
        type Case = (&'static str, Vec<PodWaits>, Vec<(Cause, usize, f64)>);
        let cases: Vec<Case> = vec![
            ("no pods", vec![], vec![]),
            ("round trips only", vec![waits(&[], 0.01, 0.02)], vec![]),
            (
                "termination only: longest, counted per pod",
                vec![waits(&[], 0.0, 1.5), waits(&[], 0.0, 2.5)],
                vec![(Cause::Termination, 2, 2.5)],
            ),
            (
                "a budget longer than termination comes first",
                vec![
                    waits(&[("ns/a", 4.0)], 0.0, 1.0),
                    waits(&[("ns/a", 2.0)], 0.0, 1.2),
                    waits(&[], 0.0, 1.1),
                ],
                vec![(budget("ns/a"), 2, 4.0), (Cause::Termination, 3, 1.2)],
            ),
            (
                "two waits of one pod on one budget add up",
                vec![{
                    let mut w = waits(&[("ns/a", 1.0)], 0.0, 0.5);
                    w.budget("ns/a", 2.0);
                    w
                }],
                vec![(budget("ns/a"), 1, 3.0), (Cause::Termination, 1, 0.5)],
            ),
            (
                "ties ordered by cause",
                vec![waits(&[("ns/b", 1.0), ("ns/a", 1.0)], 1.0, 1.0)],
                vec![
                    (budget("ns/a"), 1, 1.0),
                    (budget("ns/b"), 1, 1.0),
                    (Cause::Retries, 1, 1.0),
                    (Cause::Termination, 1, 1.0),
                ],
            ),
        ];
        for (name, pods, want) in cases {
            let got: Vec<(Cause, usize, f64)> = held_up(&pods)
                .into_iter()
                .map(|h| (h.cause, h.pods, h.longest_seconds))
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn summary_line_table() {
        let held = [
            HoldUp {
                cause: budget("proof/a"),
                pods: 2,
                longest_seconds: 4.06,
            },
            HoldUp {
                cause: Cause::Termination,
                pods: 1,
                longest_seconds: 1.6,
            },
        ];
        let cases = [
            (
                Ended::Drained,
                0.0,
                7.54,
                &held[..],
                "node/w-1: started +0.0s, drained +7.5s (7.5s); held up by PDB proof/a (2 pods, up to 4.1s), waiting for pod termination (1 pod, up to 1.6s)",
            ),
            (
                Ended::Failed,
                2.0,
                3.0,
                &[][..],
                "node/w-1: started +2.0s, failed +3.0s (1.0s); nothing held it up",
            ),
        ];
        for (ended, s, e, held, want) in cases {
            assert_eq!(summary_line("w-1", ended, s, e, held), want);
        }
    }

    proptest! {
        /// Every cause a pod waited on noticeably is named once, with the right pod count and
        /// the longest wait; the list is sorted longest first.
        #[test]
        fn held_up_counts_every_pod_and_keeps_the_longest(
            pods in prop::collection::vec(
                (prop::collection::btree_map("[ab]", 0.0f64..10.0, 0..3), 0.0f64..3.0, 0.0f64..5.0),
                0..12,
            )
        ) {
            let pods: Vec<PodWaits> = pods
                .into_iter()
                .map(|(b, retries, termination)| PodWaits { budgets: b, retries, termination })
                .collect();
            let held = held_up(&pods);
            for w in held.windows(2) {
                prop_assert!(w[0].longest_seconds >= w[1].longest_seconds);
            }
            for h in &held {
                let seconds: Vec<f64> = pods
                    .iter()
                    .map(|p| match &h.cause {
                        Cause::Budget { pdb } => p.budgets.get(pdb).copied().unwrap_or(0.0),
                        Cause::Retries => p.retries,
                        Cause::Termination => p.termination,
                    })
                    .filter(|s| *s >= NOTICEABLE_SECONDS)
                    .collect();
                prop_assert_eq!(h.pods, seconds.len());
                prop_assert_eq!(h.longest_seconds, seconds.iter().copied().fold(0.0, f64::max));
            }
            for p in &pods {
                let mut noticeable: Vec<Cause> = p
                    .budgets
                    .iter()
                    .filter(|(_, s)| **s >= NOTICEABLE_SECONDS)
                    .map(|(pdb, _)| Cause::Budget { pdb: pdb.clone() })
                    .collect();
                if p.retries >= NOTICEABLE_SECONDS {
                    noticeable.push(Cause::Retries);
                }
                if p.termination >= NOTICEABLE_SECONDS {
                    noticeable.push(Cause::Termination);
                }
                for c in noticeable {
                    prop_assert!(held.iter().any(|h| h.cause == c), "{c} missing");
                }
            }
            let named = held.len();
            let mut causes: Vec<&Cause> = held.iter().map(|h| &h.cause).collect();
            causes.sort();
            causes.dedup();
            prop_assert_eq!(causes.len(), named);
        }
    }
}
