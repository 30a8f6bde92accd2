//! Client-side PodDisruptionBudget evaluation, with the API server's eviction rules
//! (`pkg/registry/core/pod/storage/eviction.go`) and the disruption controller's arithmetic.
//!
//! The point is to say *before* evicting which budget will block which pod and why, including
//! budgets that can never allow an eviction at the current scale and pods covered by several
//! budgets (which the eviction subresource refuses with a 500).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::{PodRef, is_finished, is_ready};

/// How an empty (`{}`) PDB selector reads, which depends on the API version it was read from.
///
/// In `policy/v1beta1` an empty selector selects nothing; in `policy/v1` it selects every pod
/// of the namespace (the server converts between the two with the
/// `pdb.kubernetes.io/deprecated-v1beta1-empty-selector-match` marker, which the ordinary
/// matching below handles). A missing selector selects nothing in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SelectorSemantics {
    /// Objects read through `policy/v1`.
    #[default]
    V1,
    /// Objects read through `policy/v1beta1` (Kubernetes ≤ 1.20 serves only this).
    V1beta1,
}

/// Whether a label selector matches a label set (standard semantics: empty matches all;
/// an unknown operator matches nothing).
pub fn label_selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|r| {
        let values = r.values.as_deref().unwrap_or_default();
        let got = labels.get(&r.key);
        match r.operator.as_str() {
            "In" => got.is_some_and(|g| values.contains(g)),
            "NotIn" => got.is_none_or(|g| !values.contains(g)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// Renders a selector the way Go's `labels.Selector.String()` does (`app=web,tier in (a,b)`),
/// or `<none>` for a missing selector.
pub fn selector_string(sel: Option<&LabelSelector>) -> String {
    let Some(sel) = sel else {
        return "<none>".to_owned();
    };
    let mut parts: Vec<(String, String)> = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        parts.push((k.clone(), format!("{k}={v}")));
    }
    for r in sel.match_expressions.iter().flatten() {
        let mut vals = r.values.clone().unwrap_or_default();
        vals.sort();
        let s = match r.operator.as_str() {
            "In" => format!("{} in ({})", r.key, vals.join(",")),
            "NotIn" => format!("{} notin ({})", r.key, vals.join(",")),
            "Exists" => r.key.clone(),
            "DoesNotExist" => format!("!{}", r.key),
            op => format!("{} {op} ({})", r.key, vals.join(",")),
        };
        parts.push((r.key.clone(), s));
    }
    parts.sort();
    if parts.is_empty() {
        return "<everything>".to_owned();
    }
    parts
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(",")
}

/// `namespace/name` of a PDB.
pub fn pdb_key(pdb: &PodDisruptionBudget) -> String {
    format!(
        "{}/{}",
        pdb.metadata.namespace.as_deref().unwrap_or_default(),
        pdb.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Whether `pdb` covers `pod` for the eviction subresource.
pub fn pdb_selects(pdb: &PodDisruptionBudget, pod: &Pod, sem: SelectorSemantics) -> bool {
    if pdb.metadata.namespace != pod.metadata.namespace {
        return false;
    }
    let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    if sem == SelectorSemantics::V1beta1 && selector_is_empty(sel) {
        return false;
    }
    let empty = BTreeMap::new();
    label_selector_matches(sel, pod.metadata.labels.as_ref().unwrap_or(&empty))
}

/// The PDBs covering `pod`, in input order.
pub fn pdbs_for_pod<'a>(
    pod: &Pod,
    pdbs: &'a [PodDisruptionBudget],
    sem: SelectorSemantics,
) -> Vec<&'a PodDisruptionBudget> {
    pdbs.iter().filter(|p| pdb_selects(p, pod, sem)).collect()
}

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

/// What the API server will do with an eviction of one pod, judged from the PDBs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PodPdbVerdict {
    /// No PDB covers the pod.
    NotCovered,
    /// The server deletes the pod without a PDB check (terminal, Pending or already deleting).
    Ignored {
        /// Why.
        reason: String,
    },
    /// More than one PDB covers the pod: the server answers 500 and never evicts it.
    MultiplePdbs {
        /// `namespace/name` of every covering PDB.
        pdbs: Vec<String>,
    },
    /// The pod is not Ready and the budget lets unhealthy pods go.
    UnhealthyAllowed {
        /// The PDB.
        pdb: String,
    },
    /// The budget currently allows at least one disruption.
    Allowed {
        /// The PDB.
        pdb: String,
        /// `status.disruptionsAllowed`.
        disruptions_allowed: i64,
    },
    /// The server will refuse (429) until the controller processed the PDB's latest spec.
    Stale {
        /// The PDB.
        pdb: String,
    },
    /// The budget allows no disruption now; eviction waits for pods to become healthy.
    Blocked {
        /// The PDB.
        pdb: String,
        /// Human explanation with numbers.
        explanation: String,
    },
    /// The budget can never allow an eviction at the current scale: the drain would hang.
    NeverAllowed {
        /// The PDB.
        pdb: String,
        /// Human explanation with numbers.
        explanation: String,
    },
}

/// The server's `canIgnorePDB`: terminal or Pending pods, and pods already being deleted.
pub fn can_ignore_pdb(pod: &Pod) -> Option<String> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Some("pod is already being deleted".to_owned());
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    match phase {
        Some(p @ ("Succeeded" | "Failed" | "Pending")) => Some(format!("pod phase is {p}")),
        _ if is_finished(pod) => Some("pod has finished".to_owned()),
        _ => None,
    }
}

/// Judges one pod's eviction against the PDBs, in the server's order: ignorable pods,
/// several PDBs, unhealthy-pod policy, stale status, then `disruptionsAllowed`.
pub fn evaluate_pod(
    pod: &Pod,
    pdbs: &[PodDisruptionBudget],
    sem: SelectorSemantics,
) -> PodPdbVerdict {
    if let Some(reason) = can_ignore_pdb(pod) {
        return PodPdbVerdict::Ignored { reason };
    }
    let covering = pdbs_for_pod(pod, pdbs, sem);
    let pdb = match covering.as_slice() {
        [] => return PodPdbVerdict::NotCovered,
        [one] => *one,
        many => {
            return PodPdbVerdict::MultiplePdbs {
                pdbs: many.iter().map(|p| pdb_key(p)).collect(),
            };
        }
    };
    let key = pdb_key(pdb);
    let n = budget_numbers(pdb);
    if !is_ready(pod) {
        let always = pdb
            .spec
            .as_ref()
            .and_then(|s| s.unhealthy_pod_eviction_policy.as_deref())
            == Some("AlwaysAllow");
        if always || (n.current_healthy >= n.desired_healthy && n.desired_healthy > 0) {
            return PodPdbVerdict::UnhealthyAllowed { pdb: key };
        }
    }
    if n.stale {
        return PodPdbVerdict::Stale { pdb: key };
    }
    if n.disruptions_allowed > 0 {
        return PodPdbVerdict::Allowed {
            pdb: key,
            disruptions_allowed: n.disruptions_allowed,
        };
    }
    if never_allows(pdb).is_some() {
        return PodPdbVerdict::NeverAllowed {
            pdb: key,
            explanation: explain(pdb),
        };
    }
    PodPdbVerdict::Blocked {
        pdb: key,
        explanation: explain(pdb),
    }
}

/// Kind of a drain blocker found in the PDBs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockerKind {
    /// Pods covered by several PDBs: eviction fails with a 500, always.
    MultiplePdbs,
    /// The PDB can never allow an eviction at the current scale.
    NeverAllows,
    /// The PDB allows no disruption right now.
    NoDisruptionsNow,
    /// The PDB status is stale; the server answers 429 until it is processed.
    Stale,
    /// More pods of this node are under the PDB than it allows at once: evictions are paced by
    /// replacements becoming healthy (not a deadlock).
    Paced,
}

/// A PDB problem affecting the drain of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PdbBlocker {
    /// What kind of problem.
    pub kind: BlockerKind,
    /// `namespace/name` of the PDB(s) involved.
    pub pdbs: Vec<String>,
    /// Pods of the node affected.
    pub pods: Vec<PodRef>,
    /// Human explanation.
    pub explanation: String,
}

/// Groups the PDB verdicts of the pods to evict from one node into blockers (sorted by kind,
/// then PDB name).
pub fn node_blockers(
    pods: &[&Pod],
    pdbs: &[PodDisruptionBudget],
    sem: SelectorSemantics,
) -> Vec<PdbBlocker> {
    let mut out: BTreeMap<(BlockerKind, Vec<String>), (Vec<PodRef>, String)> = BTreeMap::new();
    let mut per_pdb: BTreeMap<String, (i64, Vec<PodRef>, String)> = BTreeMap::new();
    for pod in pods {
        let v = evaluate_pod(pod, pdbs, sem);
        let (kind, keys, text) = match &v {
            PodPdbVerdict::MultiplePdbs { pdbs: keys } => (
                BlockerKind::MultiplePdbs,
                keys.clone(),
                format!(
                    "pod is covered by {} PodDisruptionBudgets ({}); the eviction API refuses such pods (HTTP 500). Remove the overlap or use --disable-eviction",
                    keys.len(),
                    keys.join(", ")
                ),
            ),
            PodPdbVerdict::NeverAllowed { pdb, explanation } => (
                BlockerKind::NeverAllows,
                vec![pdb.clone()],
                explanation.clone(),
            ),
            PodPdbVerdict::Blocked { pdb, explanation } => (
                BlockerKind::NoDisruptionsNow,
                vec![pdb.clone()],
                explanation.clone(),
            ),
            PodPdbVerdict::Stale { pdb } => (
                BlockerKind::Stale,
                vec![pdb.clone()],
                format!(
                    "PDB {pdb} has not been processed by the disruption controller yet; evictions are refused until it is"
                ),
            ),
            PodPdbVerdict::Allowed {
                pdb,
                disruptions_allowed,
            } => {
                let e = per_pdb.entry(pdb.clone()).or_insert_with(|| {
                    let p = pdbs.iter().find(|p| &pdb_key(p) == pdb);
                    (
                        *disruptions_allowed,
                        Vec::new(),
                        p.map(explain).unwrap_or_default(),
                    )
                });
                e.1.push(PodRef::of(pod));
                continue;
            }
            _ => continue,
        };
        out.entry((kind, keys))
            .or_insert_with(|| (Vec::new(), text))
            .0
            .push(PodRef::of(pod));
    }
    for (pdb, (allowed, pods, text)) in per_pdb {
        if i64::try_from(pods.len()).unwrap_or(i64::MAX) > allowed {
            let text = format!(
                "{text}; {} pods of this node are covered, so evictions proceed as replacements become healthy",
                pods.len()
            );
            out.insert((BlockerKind::Paced, vec![pdb]), (pods, text));
        }
    }
    out.into_iter()
        .map(|((kind, pdbs), (pods, explanation))| PdbBlocker {
            kind,
            pdbs,
            pods,
            explanation,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;
    use crate::drain::testing::{PodBuilder, pdb};

    fn int(i: i32) -> Option<IntOrString> {
        Some(IntOrString::Int(i))
    }
    fn pct(s: &str) -> Option<IntOrString> {
        Some(IntOrString::String(s.into()))
    }
    fn web(name: &str) -> Pod {
        PodBuilder::new("ns", name)
            .rs("web")
            .label("app", "web")
            .build()
    }

    #[test]
    fn selection() {
        let b = pdb("ns", "b", "web", int(1), None, (1, 3, 2, 3));
        assert!(pdb_selects(&b, &web("a"), SelectorSemantics::V1));
        let other_ns = PodBuilder::new("other", "a").label("app", "web").build();
        assert!(!pdb_selects(&b, &other_ns, SelectorSemantics::V1));
        assert!(!pdb_selects(
            &b,
            &PodBuilder::new("ns", "a").build(),
            SelectorSemantics::V1
        ));

        let mut empty = b.clone();
        empty.spec.as_mut().unwrap().selector = Some(LabelSelector::default());
        assert!(pdb_selects(&empty, &web("a"), SelectorSemantics::V1));
        assert!(!pdb_selects(&empty, &web("a"), SelectorSemantics::V1beta1));
        let mut none = b.clone();
        none.spec.as_mut().unwrap().selector = None;
        assert!(!pdb_selects(&none, &web("a"), SelectorSemantics::V1));

        let mut exprs = b.clone();
        exprs.spec.as_mut().unwrap().selector = Some(LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "app".into(),
                    operator: "In".into(),
                    values: Some(vec!["web".into(), "api".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        });
        assert!(pdb_selects(&exprs, &web("a"), SelectorSemantics::V1));
        let canary = PodBuilder::new("ns", "c")
            .label("app", "web")
            .label("canary", "1")
            .build();
        assert!(!pdb_selects(&exprs, &canary, SelectorSemantics::V1));
        assert_eq!(
            selector_string(exprs.spec.as_ref().unwrap().selector.as_ref()),
            "app in (api,web),!canary"
        );
        // The v1beta1 "match none" marker written by the server never matches.
        let mut marker = b.clone();
        marker.spec.as_mut().unwrap().selector = Some(LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "pdb.kubernetes.io/deprecated-v1beta1-empty-selector-match".into(),
                operator: "Exists".into(),
                values: None,
            }]),
        });
        assert!(!pdb_selects(&marker, &web("a"), SelectorSemantics::V1));
    }

    #[test]
    fn never_allows_table() {
        for (what, min, max, expected, want) in [
            (
                "minAvailable = replicas",
                int(3),
                None,
                3,
                Some("minAvailable 3 >= 3 expected pods"),
            ),
            (
                "minAvailable > replicas",
                int(5),
                None,
                3,
                Some("minAvailable 5 >= 3 expected pods"),
            ),
            (
                "single replica",
                int(1),
                None,
                1,
                Some("minAvailable 1 with a single pod"),
            ),
            ("minAvailable < replicas", int(2), None, 3, None),
            (
                "minAvailable 100%",
                pct("100%"),
                None,
                4,
                Some("minAvailable 100% of 4 expected pods = 4"),
            ),
            (
                "minAvailable 90% of 3 rounds up to 3",
                pct("90%"),
                None,
                3,
                Some("minAvailable 90% of 3 expected pods = 3"),
            ),
            ("minAvailable 50% of 3 = 2", pct("50%"), None, 3, None),
            (
                "maxUnavailable 0",
                None,
                int(0),
                3,
                Some("maxUnavailable is 0"),
            ),
            (
                "maxUnavailable 0%",
                None,
                pct("0%"),
                3,
                Some("maxUnavailable is 0%"),
            ),
            ("maxUnavailable 1", None, int(1), 3, None),
            (
                "maxUnavailable 10% of 3 rounds up to 1",
                None,
                pct("10%"),
                3,
                None,
            ),
            ("no pods at all", int(1), None, 0, None),
        ] {
            let b = pdb("ns", "b", "web", min, max, (0, expected, 0, expected));
            assert_eq!(never_allows(&b).as_deref(), want, "{what}");
        }
    }

    #[test]
    fn explanation_reads_well() {
        let b = pdb("ns", "web-pdb", "web", int(3), None, (0, 2, 3, 3));
        assert_eq!(
            explain(&b),
            "PDB ns/web-pdb (selector app=web) allows 0 disruptions: 2 healthy, 3 needed; it can never allow an eviction (minAvailable 3 >= 3 expected pods)"
        );
        let b = pdb("ns", "web-pdb", "web", None, int(1), (0, 2, 2, 3));
        assert_eq!(
            explain(&b),
            "PDB ns/web-pdb (selector app=web) allows 0 disruptions: 2 healthy, 2 needed"
        );
    }

    #[test]
    fn pod_verdicts() {
        let ok = pdb("ns", "ok", "web", None, int(1), (1, 3, 2, 3));
        let zero = pdb("ns", "zero", "web", None, int(1), (0, 2, 2, 3));
        let never = pdb("ns", "never", "web", int(3), None, (0, 3, 3, 3));
        let sem = SelectorSemantics::V1;
        assert_eq!(
            evaluate_pod(&web("a"), std::slice::from_ref(&ok), sem),
            PodPdbVerdict::Allowed {
                pdb: "ns/ok".into(),
                disruptions_allowed: 1
            }
        );
        assert!(matches!(
            evaluate_pod(&web("a"), std::slice::from_ref(&zero), sem),
            PodPdbVerdict::Blocked { .. }
        ));
        assert!(matches!(
            evaluate_pod(&web("a"), std::slice::from_ref(&never), sem),
            PodPdbVerdict::NeverAllowed { .. }
        ));
        assert_eq!(
            evaluate_pod(&web("a"), &[ok.clone(), zero.clone()], sem),
            PodPdbVerdict::MultiplePdbs {
                pdbs: vec!["ns/ok".into(), "ns/zero".into()]
            }
        );
        assert_eq!(
            evaluate_pod(
                &PodBuilder::new("ns", "x").build(),
                std::slice::from_ref(&ok),
                sem
            ),
            PodPdbVerdict::NotCovered
        );
        let done = PodBuilder::new("ns", "d")
            .label("app", "web")
            .phase("Succeeded")
            .build();
        assert!(matches!(
            evaluate_pod(&done, &[ok.clone(), zero.clone()], sem),
            PodPdbVerdict::Ignored { .. }
        ));
        // Unready pod, healthy budget: the server lets it go (IfHealthyBudget).
        let unready = PodBuilder::new("ns", "u")
            .label("app", "web")
            .rs("web")
            .unready()
            .build();
        let healthy_zero = pdb("ns", "hz", "web", None, int(0), (0, 3, 3, 4));
        assert_eq!(
            evaluate_pod(&unready, std::slice::from_ref(&healthy_zero), sem),
            PodPdbVerdict::UnhealthyAllowed {
                pdb: "ns/hz".into()
            }
        );
        let mut stale = ok.clone();
        stale.metadata.generation = Some(2);
        assert_eq!(
            evaluate_pod(&web("a"), &[stale], sem),
            PodPdbVerdict::Stale {
                pdb: "ns/ok".into()
            }
        );
    }

    #[test]
    fn blockers_group_by_pdb() {
        let one = pdb("ns", "one", "web", None, int(1), (1, 3, 2, 3));
        let pods = [web("a"), web("b")];
        let refs: Vec<&Pod> = pods.iter().collect();
        let b = node_blockers(&refs, std::slice::from_ref(&one), SelectorSemantics::V1);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].kind, BlockerKind::Paced);
        assert_eq!(b[0].pods.len(), 2);
        let never = pdb("ns", "never", "web", int(3), None, (0, 3, 3, 3));
        let b = node_blockers(&refs, std::slice::from_ref(&never), SelectorSemantics::V1);
        assert_eq!(b[0].kind, BlockerKind::NeverAllows);
        assert_eq!(b[0].pdbs, vec!["ns/never"]);
        let b = node_blockers(&refs, &[one, never], SelectorSemantics::V1);
        assert_eq!(b[0].kind, BlockerKind::MultiplePdbs);
        assert!(
            b[0].explanation.contains("ns/one, ns/never"),
            "{}",
            b[0].explanation
        );
    }
}
