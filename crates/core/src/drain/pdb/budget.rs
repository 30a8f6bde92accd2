//! A PodDisruptionBudget's numbers: the status the disruption controller wrote, its scaled
//! `minAvailable`/`maxUnavailable`, and whether it can ever allow an eviction.

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::selector::{pdb_key, selector_string};

/// Parses `NN%` (the API only allows integer percentages).
fn percent(s: &str) -> Option<i64> {
    s.strip_suffix('%')?.parse().ok()
}

/// `intstr.GetScaledValueFromIntOrPercent(v, total, roundUp=true)`.
pub fn scaled_value(v: &IntOrString, total: i64) -> Option<i64> {
    match v {
        IntOrString::Int(i) => Some(i64::from(*i)),
        IntOrString::String(s) => {
            let p = percent(s)?;
            Some((p * total + 99).div_euclid(100))
        }
    }
}

fn intstr_display(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// The PDB's status numbers as the disruption controller last wrote them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetNumbers {
    /// `status.disruptionsAllowed`.
    pub disruptions_allowed: i64,
    /// `status.currentHealthy`.
    pub current_healthy: i64,
    /// `status.desiredHealthy`.
    pub desired_healthy: i64,
    /// `status.expectedPods`.
    pub expected_pods: i64,
    /// `status.observedGeneration < metadata.generation`: the controller has not processed the
    /// latest spec yet, and the server refuses evictions (429) until it has.
    pub stale: bool,
    /// No status at all yet.
    pub missing: bool,
}

/// Reads [`BudgetNumbers`] from a PDB.
pub fn budget_numbers(pdb: &PodDisruptionBudget) -> BudgetNumbers {
    let Some(st) = pdb.status.as_ref() else {
        return BudgetNumbers {
            missing: true,
            stale: true,
            ..Default::default()
        };
    };
    BudgetNumbers {
        disruptions_allowed: st.disruptions_allowed.map(i64::from).unwrap_or_default(),
        current_healthy: st.current_healthy.map(i64::from).unwrap_or_default(),
        desired_healthy: st.desired_healthy.map(i64::from).unwrap_or_default(),
        expected_pods: st.expected_pods.map(i64::from).unwrap_or_default(),
        stale: st.observed_generation.unwrap_or(0) < pdb.metadata.generation.unwrap_or(0),
        missing: false,
    }
}

/// Why a PDB can never allow a voluntary eviction at the current scale, if it cannot.
///
/// Uses the disruption controller's rules: with `maxUnavailable`, desired healthy =
/// expected − scaled(maxUnavailable); with `minAvailable`, desired = scaled(minAvailable)
/// (percentages round up). If desired ≥ expected, even a fully healthy workload has no
/// disruption to spare.
pub fn never_allows(pdb: &PodDisruptionBudget) -> Option<String> {
    let spec = pdb.spec.as_ref()?;
    let n = budget_numbers(pdb);
    let expected = n.expected_pods;
    if let Some(mu) = spec.max_unavailable.as_ref() {
        // maxUnavailable 0 or 0% is a deadlock whatever the scale.
        let zero = match mu {
            IntOrString::Int(i) => *i <= 0,
            IntOrString::String(s) => percent(s).is_some_and(|p| p <= 0),
        };
        if zero {
            return Some(format!("maxUnavailable is {}", intstr_display(mu)));
        }
        return None;
    }
    let ma = spec.min_available.as_ref()?;
    if n.missing || expected <= 0 {
        if let IntOrString::String(s) = ma
            && percent(s).is_some_and(|p| p >= 100)
        {
            return Some(format!("minAvailable is {s}"));
        }
        return None;
    }
    let desired = scaled_value(ma, expected)?;
    if desired < expected {
        return None;
    }
    Some(match ma {
        IntOrString::Int(_) if expected == 1 => {
            format!("minAvailable {desired} with a single pod")
        }
        IntOrString::Int(_) => format!("minAvailable {desired} >= {expected} expected pods"),
        IntOrString::String(s) => {
            format!("minAvailable {s} of {expected} expected pods = {desired}")
        }
    })
}

/// A one-line human explanation of a PDB's state, e.g.
/// `PDB ns/web-pdb (selector app=web) allows 0 disruptions: 2 healthy, 3 needed`.
pub fn explain(pdb: &PodDisruptionBudget) -> String {
    let n = budget_numbers(pdb);
    let sel = selector_string(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()));
    let head = format!("PDB {} (selector {sel})", pdb_key(pdb));
    if n.missing {
        return format!(
            "{head} has no status yet (the disruption controller has not processed it)"
        );
    }
    let mut s = format!(
        "{head} allows {} disruption{}: {} healthy, {} needed",
        n.disruptions_allowed,
        if n.disruptions_allowed == 1 { "" } else { "s" },
        n.current_healthy,
        n.desired_healthy
    );
    if let Some(why) = never_allows(pdb) {
        s.push_str(&format!("; it can never allow an eviction ({why})"));
    }
    if n.stale {
        s.push_str("; its status is stale (observedGeneration < generation)");
    }
    s
}
