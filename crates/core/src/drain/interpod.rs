//! The capacity preflight's rules that depend on the other pods of a node or of a topology
//! domain: host ports (the scheduler's `NodePorts` filter), required pod affinity and
//! anti-affinity, including the anti-affinity of pods already in place (`InterPodAffinity`), and
//! `DoNotSchedule` topology spread constraints (`PodTopologySpread`).
//!
//! Kubernetes semantics kept: a term's namespaces default to its pod's own; a node without the
//! term's topology label satisfies no affinity and violates no anti-affinity; the first pod of
//! a group may be placed when no pod matches its affinity term and it matches that term itself.
//! Topology spread counts, as the scheduler does by default, every node that has the key and
//! passes the pod's node selection, cordoned or tainted ones included (`nodeTaintsPolicy: Ignore`):
//! a drained node's domain then counts zero, which is why spread pods often cannot move.
//! `matchLabelKeys` and a `nodeTaintsPolicy: Honor` are not modelled.
//! Approximation: a term with a `namespaceSelector` is taken to cover every namespace (namespace
//! labels are not read): anti-affinity may then refuse a node the scheduler would take, and
//! affinity may accept one it would not. Such terms are rare (Kubernetes ≥ 1.22).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, PodAffinityTerm};

use super::node_selection::matches_node_selection;
use super::pdb::label_selector_matches;

/// A node as the inter-pod rules see it: its labels and the pods it hosts (or will host).
#[derive(Debug, Clone, Copy)]
pub struct NodeView<'n, 'p> {
    /// The node (node selection decides which nodes topology spread counts).
    pub node: &'n Node,
    /// Node labels (topology keys are looked up here).
    pub labels: &'n BTreeMap<String, String>,
    /// Pods on the node, including the ones the preflight already placed there.
    pub pods: &'p [&'p Pod],
}

/// Which inter-pod rule a node fails, worded like the scheduler's reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterPodUnfit {
    /// A host port the pod asks for is taken.
    HostPorts,
    /// A required pod affinity term has no matching pod in the node's domain.
    PodAffinity,
    /// A required pod anti-affinity term matches a pod in the node's domain.
    PodAntiAffinity,
    /// A pod in the domain has a required anti-affinity term that matches this pod.
    ExistingPodsAntiAffinity,
    /// Placing the pod here would exceed a `DoNotSchedule` constraint's `maxSkew`.
    TopologySpread,
}

impl std::fmt::Display for InterPodUnfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InterPodUnfit::HostPorts => {
                "node(s) didn't have free ports for the requested pod ports"
            }
            InterPodUnfit::PodAffinity => "node(s) didn't match pod affinity rules",
            InterPodUnfit::PodAntiAffinity => "node(s) didn't match pod anti-affinity rules",
            InterPodUnfit::ExistingPodsAntiAffinity => {
                "node(s) didn't satisfy existing pods anti-affinity rules"
            }
            InterPodUnfit::TopologySpread => "node(s) didn't match pod topology spread constraints",
        })
    }
}

/// `(protocol, host IP, port)` of every container port with a `hostPort`.
fn host_ports(pod: &Pod) -> impl Iterator<Item = (&str, &str, i32)> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|&h| h > 0)?;
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let ip = p.host_ip.as_deref().unwrap_or_default();
            Some((proto, ip, port))
        })
}

/// Whether two host IPs overlap: the wildcard (empty or `0.0.0.0`) overlaps everything.
fn ips_overlap(a: &str, b: &str) -> bool {
    let any = |ip: &str| ip.is_empty() || ip == "0.0.0.0";
    any(a) || any(b) || a == b
}

/// Whether `pod` asks for a host port already used by one of `others`.
pub fn host_port_conflict(pod: &Pod, others: &[&Pod]) -> bool {
    host_ports(pod).any(|(proto, ip, port)| {
        others
            .iter()
            .flat_map(|o| host_ports(o))
            .any(|(p2, ip2, port2)| port == port2 && proto == p2 && ips_overlap(ip, ip2))
    })
}

/// The pod's required pod affinity terms.
pub(crate) fn required_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

/// The pod's required pod anti-affinity terms.
pub(crate) fn required_anti_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

/// Whether the term (declared by a pod in namespace `owner_ns`) selects `candidate`.
fn term_selects(term: &PodAffinityTerm, owner_ns: &str, candidate: &Pod) -> bool {
    let ns = candidate.metadata.namespace.as_deref().unwrap_or_default();
    let listed = term.namespaces.as_deref().unwrap_or_default();
    let ns_ok = if term.namespace_selector.is_some() {
        true
    } else if listed.is_empty() {
        ns == owner_ns
    } else {
        listed.iter().any(|n| n == ns)
    };
    let empty = BTreeMap::new();
    let labels = candidate.metadata.labels.as_ref().unwrap_or(&empty);
    ns_ok
        && term
            .label_selector
            .as_ref()
            .is_some_and(|sel| label_selector_matches(sel, labels))
}

/// Pods on the nodes whose `key` label equals `value`.
fn domain_pods<'a>(
    nodes: &'a [NodeView<'_, 'a>],
    key: &'a str,
    value: &'a str,
) -> impl Iterator<Item = &'a Pod> {
    nodes
        .iter()
        .filter(move |n| n.labels.get(key).map(String::as_str) == Some(value))
        .flat_map(|n| n.pods.iter().copied())
}

/// Checks the required pod affinity and anti-affinity terms (the pod's and those of the pods in
/// place) and topology spread for placing `pod` on `nodes[at]`. `guarded` lists the pods in
/// place that have required anti-affinity, with their node's index: they are few, and scanning
/// every pod of the cluster for them at each candidate node would not scale.
pub fn check_inter_pod(
    pod: &Pod,
    nodes: &[NodeView<'_, '_>],
    guarded: &[(usize, &Pod)],
    at: usize,
) -> Result<(), InterPodUnfit> {
    let node = nodes[at];
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let affinity = required_affinity(pod);
    if !affinity.is_empty() {
        // As the scheduler counts: a pod in place counts only if it matches every term, and each
        // term's domain (on this node) must hold such a pod.
        let matches_all = |q: &Pod| affinity.iter().all(|t| term_selects(t, ns, q));
        let mut satisfied = true;
        for term in affinity {
            let Some(value) = node.labels.get(&term.topology_key) else {
                return Err(InterPodUnfit::PodAffinity);
            };
            if !domain_pods(nodes, &term.topology_key, value).any(matches_all) {
                satisfied = false;
                break;
            }
        }
        if !satisfied {
            // The first pod of a group: no pod matching every term sits in any domain of the
            // terms' keys, and this pod matches every term itself.
            let any_in_a_domain = nodes.iter().any(|n| {
                affinity
                    .iter()
                    .any(|t| n.labels.contains_key(&t.topology_key))
                    && n.pods.iter().any(|q| matches_all(q))
            });
            if any_in_a_domain || !matches_all(pod) {
                return Err(InterPodUnfit::PodAffinity);
            }
        }
    }
    for term in required_anti_affinity(pod) {
        let Some(value) = node.labels.get(&term.topology_key) else {
            continue;
        };
        if domain_pods(nodes, &term.topology_key, value).any(|q| term_selects(term, ns, q)) {
            return Err(InterPodUnfit::PodAntiAffinity);
        }
    }
    for &(q_at, q) in guarded {
        let q_ns = q.metadata.namespace.as_deref().unwrap_or_default();
        for term in required_anti_affinity(q) {
            let key = &term.topology_key;
            let same_domain = match (nodes[q_at].labels.get(key), node.labels.get(key)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            };
            if same_domain && term_selects(term, q_ns, pod) {
                return Err(InterPodUnfit::ExistingPodsAntiAffinity);
            }
        }
    }
    check_spread(pod, nodes, at)
}

/// `DoNotSchedule` topology spread constraints: the skew after placing the pod on `nodes[at]`
/// (its domain's matching pods, plus itself if it matches, minus the least-loaded domain's)
/// must not exceed `maxSkew`.
fn check_spread(pod: &Pod, nodes: &[NodeView<'_, '_>], at: usize) -> Result<(), InterPodUnfit> {
    let Some(constraints) = pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
    else {
        return Ok(());
    };
    let hard: Vec<_> = constraints
        .iter()
        .filter(|c| c.when_unsatisfiable == "DoNotSchedule")
        .collect();
    if hard.is_empty() {
        return Ok(());
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let empty = BTreeMap::new();
    // Nodes counted: those with every constraint's key that pass the pod's node selection
    // (`nodeAffinityPolicy: Honor`, the default).
    let counted: Vec<&NodeView<'_, '_>> = nodes
        .iter()
        .filter(|n| hard.iter().all(|c| n.labels.contains_key(&c.topology_key)))
        .filter(|n| {
            hard.iter()
                .all(|c| c.node_affinity_policy.as_deref() == Some("Ignore"))
                || matches_node_selection(pod, n.node)
        })
        .collect();
    for c in hard {
        let Some(value) = nodes[at].labels.get(&c.topology_key) else {
            return Err(InterPodUnfit::TopologySpread);
        };
        let selects = |q: &Pod| {
            q.metadata.namespace.as_deref().unwrap_or_default() == ns
                && q.metadata.deletion_timestamp.is_none()
                && c.label_selector.as_ref().is_some_and(|sel| {
                    label_selector_matches(sel, q.metadata.labels.as_ref().unwrap_or(&empty))
                })
        };
        let mut per_domain: BTreeMap<&str, i64> = BTreeMap::new();
        for n in &counted {
            let d = n.labels[&c.topology_key].as_str();
            *per_domain.entry(d).or_default() +=
                n.pods.iter().filter(|q| selects(q)).count() as i64;
        }
        let fewest_domains = c.min_domains.unwrap_or(1).max(1) as usize;
        let min = if per_domain.len() < fewest_domains {
            0
        } else {
            per_domain.values().copied().min().unwrap_or(0)
        };
        let here = per_domain.get(value.as_str()).copied().unwrap_or(0) + i64::from(selects(pod));
        if here - min > i64::from(c.max_skew) {
            return Err(InterPodUnfit::TopologySpread);
        }
    }
    Ok(())
}
