//! Which pods a PodDisruptionBudget covers: label selectors, their two readings of `{}`, and
//! how they print.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;

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
