//! Node drain decisions: kubectl's pod filters, PDB math, capacity preflight, eviction
//! request/response handling and cordon bookkeeping, all as pure functions.
//!
//! The I/O edge (the `kubemaint` binary) lists objects, feeds them in here with the current
//! time, and executes the resulting [`plan::DrainPlan`]. Behaviour that must match
//! `kubectl drain` follows `k8s.io/kubectl/pkg/drain` (filters.go, drain.go, cordon.go); where we
//! deliberately differ it is said in the item's docs.

pub mod capacity;
pub mod config;
pub mod cordon;
pub mod eviction;
pub mod filters;
pub mod gate;
pub mod interpod;
pub mod node_selection;
pub mod pdb;
pub mod plan;
pub mod quantity;
pub mod stuck;

#[cfg(test)]
pub(crate) mod testing;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::Serialize;

/// Annotation the kubelet puts on mirror pods of static pods (`corev1.MirrorPodAnnotationKey`).
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Identity of a pod as printed by kubectl (`namespace/name`) plus its UID.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PodRef {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod UID (empty when the object carried none, e.g. in hand-written fixtures).
    pub uid: String,
}

impl PodRef {
    /// Builds the reference of `pod`.
    pub fn of(pod: &Pod) -> Self {
        PodRef {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The owner reference with `controller: true`, as `metav1.GetControllerOf` returns it.
pub fn controller_of(pod: &Pod) -> Option<&OwnerReference> {
    pod.metadata
        .owner_references
        .as_deref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether the pod reached a terminal phase (`Succeeded` or `Failed`).
pub fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether the controller reference names an `apps/v1` DaemonSet.
///
/// Current kubectl (since kubectl commit `6323c5bc5`) checks kind **and** apiVersion, so a
/// third-party `DaemonSet` kind (e.g. OpenKruise) is treated like any other controller.
/// kubectl 1.27 compared the kind only; we follow the newer, fixed rule.
pub fn is_daemonset_ref(r: &OwnerReference) -> bool {
    r.kind == "DaemonSet" && r.api_version == "apps/v1"
}

/// Whether the pod is the mirror of a static pod.
pub fn is_mirror_pod(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION))
}

/// Whether the pod is Ready (condition `Ready=True`).
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod module_graph {
    //! The drain modules must not import each other in a circle: a circle means a piece shared
    //! by both sits in the wrong one (as node selection once sat in `capacity`, used by
    //! `interpod`, which `capacity` uses).

    use std::collections::{BTreeMap, BTreeSet};

    /// Every module of `drain`, with its source (checked against the `mod` lines of `mod.rs`).
    const MODULES: &[(&str, &str)] = &[
        ("capacity", include_str!("capacity.rs")),
        ("config", include_str!("config.rs")),
        ("cordon", include_str!("cordon.rs")),
        ("eviction", include_str!("eviction.rs")),
        ("filters", include_str!("filters.rs")),
        ("gate", include_str!("gate.rs")),
        ("interpod", include_str!("interpod.rs")),
        ("node_selection", include_str!("node_selection.rs")),
        ("pdb", include_str!("pdb.rs")),
        ("plan", include_str!("plan.rs")),
        ("quantity", include_str!("quantity.rs")),
        ("stuck", include_str!("stuck.rs")),
        ("testing", include_str!("testing.rs")),
    ];

    /// Sibling modules named by `super::X` or `crate::drain::X` paths in the non-test part.
    fn imports(src: &str, names: &BTreeSet<&str>) -> BTreeSet<String> {
        let code = src.split("#[cfg(test)]").next().unwrap_or_default();
        let mut out = BTreeSet::new();
        for prefix in ["super::", "crate::drain::"] {
            let mut rest = code;
            while let Some(i) = rest.find(prefix) {
                rest = &rest[i + prefix.len()..];
                let segments: Vec<&str> = if let Some(inner) = rest.strip_prefix('{') {
                    let end = inner.find('}').unwrap_or(inner.len());
                    inner[..end].split(',').collect()
                } else {
                    vec![rest]
                };
                for seg in segments {
                    let ident: String = seg
                        .trim_start()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if names.contains(ident.as_str()) {
                        out.insert(ident);
                    }
                }
            }
        }
        out
    }

    fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
        fn visit(
            n: &str,
            graph: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(i) = path.iter().position(|p| p == n) {
                let mut cycle = path[i..].to_vec();
                cycle.push(n.to_owned());
                return Some(cycle);
            }
            if done.contains(n) {
                return None;
            }
            path.push(n.to_owned());
            for m in graph.get(n).into_iter().flatten() {
                if let Some(c) = visit(m, graph, path, done) {
                    return Some(c);
                }
            }
            path.pop();
            done.insert(n.to_owned());
            None
        }
        let mut done = BTreeSet::new();
        graph
            .keys()
            .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
    }

    #[test]
    fn the_module_list_is_complete() {
        let declared: BTreeSet<&str> = include_str!("mod.rs")
            .lines()
            .filter_map(|l| {
                let l = l
                    .trim_start_matches("pub(crate) ")
                    .trim_start_matches("pub ");
                l.strip_prefix("mod ")?.strip_suffix(';')
            })
            .collect();
        let listed: BTreeSet<&str> = MODULES.iter().map(|(n, _)| *n).collect();
        assert_eq!(declared, listed);
    }

    #[test]
    fn drain_modules_import_no_circle() {
        let names: BTreeSet<&str> = MODULES.iter().map(|(n, _)| *n).collect();
        let graph: BTreeMap<String, BTreeSet<String>> = MODULES
            .iter()
            .map(|(n, src)| ((*n).to_owned(), imports(src, &names)))
            .collect();
        assert_eq!(find_cycle(&graph), None, "import graph: {graph:?}");
    }

    #[test]
    fn the_cycle_finder_finds_cycles() {
        let names: BTreeSet<&str> = ["a", "b", "c"].into();
        let graph: BTreeMap<String, BTreeSet<String>> = [
            ("a", "use super::{PodRef, b::X};"),
            ("b", "use crate::drain::c::Y;"),
            ("c", "fn f() { super::a::g() }"),
        ]
        .iter()
        .map(|(n, src)| ((*n).to_owned(), imports(src, &names)))
        .collect();
        assert_eq!(
            find_cycle(&graph),
            Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
    }
}
