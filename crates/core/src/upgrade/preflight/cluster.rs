//! The cluster's own state before an upgrade: node readiness, the skew now, kubelets behind
//! the control plane, and the local kubectl against the API servers.

use super::{Check, Status, list};
use crate::upgrade::skew::{self, ClusterVersions, Instance, Rule, SkewFinding};
use crate::upgrade::version::{Minor, Version};

/// A node's readiness and schedulability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// Node name.
    pub name: String,
    /// The `Ready` condition (`None`: no condition reported).
    pub ready: Option<bool>,
    /// `spec.unschedulable`.
    pub cordoned: bool,
}

/// NotReady nodes fail (a drain or kubelet upgrade cannot be verified on them); cordoned nodes
/// warn (someone else's maintenance may be under way, and `uncordon` after the upgrade would
/// undo it).
pub fn check_nodes(nodes: &[NodeFacts]) -> Vec<Check> {
    let not_ready: Vec<String> = nodes
        .iter()
        .filter(|n| n.ready != Some(true))
        .map(|n| n.name.clone())
        .collect();
    let cordoned: Vec<String> = nodes
        .iter()
        .filter(|n| n.cordoned)
        .map(|n| n.name.clone())
        .collect();
    let ready = if not_ready.is_empty() {
        Check::pass(
            "nodes-ready",
            format!("all {} nodes are Ready", nodes.len()),
        )
    } else {
        Check::new(
            "nodes-ready",
            Status::Fail,
            format!("{} node(s) not Ready: {}", not_ready.len(), list(&not_ready)),
            Some("bring them back (kubectl describe node NAME) or remove them from the cluster before upgrading".into()),
        )
    };
    let schedulable = if cordoned.is_empty() {
        Check::pass("nodes-cordoned", "no node is cordoned".into())
    } else {
        Check::new(
            "nodes-cordoned",
            Status::Warn,
            format!("{} node(s) already cordoned: {}", cordoned.len(), list(&cordoned)),
            Some("find out who cordoned them and why; the runbook's uncordon would end that maintenance".into()),
        )
    };
    vec![ready, schedulable]
}

/// The skew policy now: any finding fails.
pub fn check_current_skew(findings: &[SkewFinding]) -> Check {
    if findings.is_empty() {
        return Check::pass(
            "version-skew",
            "every component is within the version skew policy".into(),
        );
    }
    Check::new(
        "version-skew",
        Status::Fail,
        format!(
            "{} skew violation(s) now: {}",
            findings.len(),
            findings
                .iter()
                .take(5)
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Some("bring the named components within policy first (the plan's catch-up steps do this where an upgrade can)".into()),
    )
}

/// Kubelets behind the control plane's minor (a warning: they are upgraded in the plan's
/// kubelet phase, or first when a step would push them out of the window).
pub fn check_kubelets_behind(control_plane: &Version, kubelets: &[(String, Version)]) -> Check {
    let behind: Vec<String> = kubelets
        .iter()
        .filter(|(_, v)| control_plane.minors_above(v) > 0)
        .map(|(n, v)| format!("{n} ({v})"))
        .collect();
    if behind.is_empty() {
        return Check::pass(
            "kubelets-behind",
            format!(
                "every kubelet is at the control plane's minor {}",
                control_plane.minor_of()
            ),
        );
    }
    Check::new(
        "kubelets-behind",
        Status::Warn,
        format!(
            "{} kubelet(s) behind the control plane {control_plane}: {}",
            behind.len(),
            list(&behind)
        ),
        Some("upgrade them (drain, kubelet package, restart, uncordon) as the plan orders".into()),
    )
}

/// kubectl findings of the skew engine for a kubectl against these API servers.
fn kubectl_findings(kubectl: &Version, apiservers: Vec<Instance>) -> Vec<SkewFinding> {
    skew::check(&ClusterVersions {
        apiservers,
        kubectl: Some(kubectl.clone()),
        ..Default::default()
    })
    .into_iter()
    .filter(|f| f.rule == Rule::KubectlSkew)
    .collect()
}

/// The local kubectl (its version, or why it is unknown) against the API servers now and the
/// plan's target: kubectl is supported within one minor of kube-apiserver. A client outside
/// that window warns (it is the operator's tool, not the cluster's state) and names the minors
/// that fit now.
pub fn check_kubectl(
    kubectl: Result<&Version, &str>,
    apiservers: &[Instance],
    target: &Version,
) -> Check {
    let kubectl = match kubectl {
        Ok(v) => v,
        Err(why) => {
            return Check::new(
                "kubectl",
                Status::Warn,
                format!("local kubectl not checked: {why}"),
                Some("use a kubectl within one minor of kube-apiserver at every step".into()),
            );
        }
    };
    let mut problems: Vec<String> = kubectl_findings(kubectl, apiservers.to_vec())
        .iter()
        .map(|f| format!("now: {f}"))
        .collect();
    let after = Instance {
        node: None,
        version: target.clone(),
    };
    problems.extend(
        kubectl_findings(kubectl, vec![after])
            .iter()
            .map(|f| format!("after the upgrade: {f}")),
    );
    if problems.is_empty() {
        return Check::pass(
            "kubectl",
            format!(
                "kubectl {kubectl} is within one minor of every kube-apiserver now and of the target {target}"
            ),
        );
    }
    Check::new(
        "kubectl",
        Status::Warn,
        problems.join("; "),
        Some(format!(
            "use kubectl {} now and move it with each step (the runbook installs it on every node)",
            fitting(apiservers)
        )),
    )
}

/// The kubectl minors within one minor of every API server (`1.19–1.21`).
fn fitting(apiservers: &[Instance]) -> String {
    let oldest = apiservers.iter().map(|a| a.version.minor_of()).min();
    let newest = apiservers.iter().map(|a| a.version.minor_of()).max();
    match (oldest, newest) {
        (Some(o), Some(n)) => {
            let low = Minor::new(n.major, n.minor.saturating_sub(1));
            let high = o.next();
            if low == high {
                low.to_string()
            } else {
                format!("{low}–{high}")
            }
        }
        _ => "within one minor of kube-apiserver".into(),
    }
}
