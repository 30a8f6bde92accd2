//! The shared PodDisruptionBudget gate: which eviction may spend a budget's allowed disruption
//! now. One gate serves every node of a drain, so two nodes never spend the same disruption.
//!
//! The gate learns budgets from a watch ([`BudgetGate::observe`]): `status.disruptionsAllowed`
//! and `status.disruptedPods`. The API server's eviction handler decrements the first and
//! records the pod in the second in one update, so a granted pod seen in `disruptedPods` is
//! already counted in `disruptionsAllowed`; until then the grant is held against the budget.
//! A stale observation (from before an eviction landed) therefore never frees a disruption
//! twice. A grant whose eviction was refused or failed is given back ([`BudgetGate::release`]).

use std::collections::{BTreeMap, BTreeSet};

/// What the gate knows of one budget.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Budget {
    /// `status.disruptionsAllowed` as last observed.
    allowed: i64,
    /// `status.disruptedPods` names as last observed.
    disrupted: BTreeSet<String>,
    /// Pods granted a disruption that the last observation does not show yet.
    granted: BTreeSet<String>,
}

/// Disruptions handed out per budget (`namespace/name`), pure bookkeeping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BudgetGate {
    budgets: BTreeMap<String, Budget>,
}

impl BudgetGate {
    /// An empty gate (knows no budget: [`BudgetGate::try_take`] grants nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an observation of budget `key`. Grants the observation shows (their pod is in
    /// `disrupted`) are settled; the others stay held.
    pub fn observe(
        &mut self,
        key: &str,
        allowed: i64,
        disrupted: impl IntoIterator<Item = String>,
    ) {
        let b = self.budgets.entry(key.to_owned()).or_default();
        b.allowed = allowed;
        b.disrupted = disrupted.into_iter().collect();
        let seen = &b.disrupted;
        b.granted.retain(|p| !seen.contains(p));
    }

    /// The budget was deleted.
    pub fn forget(&mut self, key: &str) {
        self.budgets.remove(key);
    }

    /// Whether the budget has been observed.
    pub fn knows(&self, key: &str) -> bool {
        self.budgets.contains_key(key)
    }

    /// Disruptions the budget can still grant.
    pub fn available(&self, key: &str) -> i64 {
        self.budgets.get(key).map_or(0, |b| {
            b.allowed - i64::try_from(b.granted.len()).unwrap_or(i64::MAX)
        })
    }

    /// Grants `pod` (its name, as `disruptedPods` keys it) a disruption of budget `key` if one
    /// is available. A pod already holding a grant keeps it (no second one).
    pub fn try_take(&mut self, key: &str, pod: &str) -> bool {
        let available = self.available(key);
        match self.budgets.get_mut(key) {
            Some(b) if b.granted.contains(pod) => true,
            Some(b) if available > 0 && !b.disrupted.contains(pod) => {
                b.granted.insert(pod.to_owned());
                true
            }
            _ => false,
        }
    }

    /// Gives back `pod`'s grant: its eviction was refused or failed.
    pub fn release(&mut self, key: &str, pod: &str) {
        if let Some(b) = self.budgets.get_mut(key) {
            b.granted.remove(pod);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn set(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn table() {
        let mut g = BudgetGate::new();
        assert!(
            !g.try_take("ns/web", "a"),
            "an unknown budget grants nothing"
        );
        g.observe("ns/web", 1, set(&[]));
        assert!(g.try_take("ns/web", "a"));
        assert!(g.try_take("ns/web", "a"), "a pod keeps its grant");
        assert!(!g.try_take("ns/web", "b"), "the one disruption is spent");
        // A stale observation (before a's eviction landed) frees nothing.
        g.observe("ns/web", 1, set(&[]));
        assert!(!g.try_take("ns/web", "b"));
        // The eviction landed: counted by the server, settled here.
        g.observe("ns/web", 0, set(&["a"]));
        assert_eq!(g.available("ns/web"), 0);
        assert!(!g.try_take("ns/web", "b"));
        // The replacement is healthy: the controller allows one again.
        g.observe("ns/web", 1, set(&[]));
        assert!(g.try_take("ns/web", "b"));
        // b's eviction was refused: its grant comes back.
        g.release("ns/web", "b");
        assert!(g.try_take("ns/web", "c"));
        g.forget("ns/web");
        assert!(!g.knows("ns/web"));
        assert!(!g.try_take("ns/web", "d"));
        // Budgets are independent.
        g.observe("ns/a", 2, set(&[]));
        g.observe("ns/b", 0, set(&[]));
        assert!(g.try_take("ns/a", "p1") && g.try_take("ns/a", "p2"));
        assert!(!g.try_take("ns/b", "p3"));
    }

    /// One step of a run: some node asks for a disruption for a pod, the server applies an
    /// eviction in flight, the watch delivers a (possibly old) server state, or the budget's
    /// controller sees a replacement healthy.
    #[derive(Clone, Debug)]
    enum Step {
        Take { pod: u8 },
        Apply { which: u8 },
        Observe { lag: u8 },
        Recover { which: u8 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u8..12).prop_map(|pod| Step::Take { pod }),
            any::<u8>().prop_map(|which| Step::Apply { which }),
            (0u8..4).prop_map(|lag| Step::Observe { lag }),
            any::<u8>().prop_map(|which| Step::Recover { which }),
        ]
    }

    proptest! {
        /// For any budget and any interleaving of nodes' requests, evictions landing, watch
        /// events arriving late and the controller recovering, the server never has to refuse
        /// an eviction the gate granted: the gate never grants more than the budget allows.
        #[test]
        fn never_grants_more_than_the_budget(
            initial in 0i64..4,
            steps in proptest::collection::vec(step(), 0..120),
        ) {
            // The server's budget, with every version the watch may deliver.
            let mut allowed = initial;
            let mut disrupted: BTreeSet<String> = BTreeSet::new();
            let mut history: Vec<(i64, BTreeSet<String>)> = vec![(allowed, disrupted.clone())];
            let mut seen = 0usize;
            let mut gate = BudgetGate::new();
            gate.observe("b", allowed, disrupted.clone());
            let mut in_flight: Vec<String> = Vec::new();
            let mut done: BTreeSet<String> = BTreeSet::new();
            for s in steps {
                match s {
                    Step::Take { pod } => {
                        let p = format!("p{pod}");
                        if !done.contains(&p) && !in_flight.contains(&p) && gate.try_take("b", &p) {
                            in_flight.push(p);
                        }
                    }
                    Step::Apply { which } => {
                        if !in_flight.is_empty() {
                            let p = in_flight.remove(which as usize % in_flight.len());
                            prop_assert!(allowed > 0, "the server refused {p}: the gate over-granted");
                            allowed -= 1;
                            disrupted.insert(p.clone());
                            done.insert(p);
                            history.push((allowed, disrupted.clone()));
                        }
                    }
                    Step::Observe { lag } => {
                        // Watch events arrive in order, possibly behind the server.
                        let newest = history.len() - 1;
                        let v = newest.saturating_sub(lag as usize).max(seen);
                        seen = v;
                        let (a, d) = history[v].clone();
                        gate.observe("b", a, d);
                    }
                    Step::Recover { which } => {
                        if !disrupted.is_empty() {
                            let p = disrupted.iter().nth(which as usize % disrupted.len()).cloned().unwrap();
                            disrupted.remove(&p);
                            allowed += 1;
                            history.push((allowed, disrupted.clone()));
                        }
                    }
                }
            }
        }
    }
}
