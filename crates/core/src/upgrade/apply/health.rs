//! What a wait or the health gate still misses, from observed facts: pure verdicts the edge
//! polls until they are empty or a deadline passes (the timeout then names what is missing).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::NodeFacts;
pub use super::etcd_members::{
    EtcdMembers, MemberAnswer, MemberProbe, RAFT_INDEX_SLACK, etcd_members_missing,
    etcd_members_summary,
};
use crate::upgrade::version::Version;

/// The control-plane components kubeadm runs as static pods, in kubeadm's order.
pub const STATIC_PODS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// One static pod's mirror pod as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorPod {
    /// `component` label: `kube-apiserver`, ...
    pub component: String,
    /// The node it runs on.
    pub node: String,
    /// Its image's version tag, when it parses.
    pub version: Option<Version>,
    /// Its Ready condition is True.
    pub ready: bool,
}

/// A control-plane node's API server asked directly for `/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiserverAnswer {
    /// It answered with this `gitVersion`.
    Version(String),
    /// It did not answer; why.
    Error(String),
    /// No address known for it (no advertise-address annotation): not asked.
    NotAsked,
}

/// What the wait for one node still misses: Ready, the kubelet at `version`, and on a
/// control-plane node its kube-apiserver, kube-controller-manager and kube-scheduler mirror
/// pods at `version` and Ready, and its API server answering `/version` with it.
pub fn wait_missing(
    node: &str,
    facts: Option<&NodeFacts>,
    control_plane: Option<(&[MirrorPod], &ApiserverAnswer)>,
    version: &Version,
) -> Vec<String> {
    let mut missing = Vec::new();
    let Some(facts) = facts else {
        return vec![format!("node {node} is not in the cluster")];
    };
    if !facts.ready {
        missing.push(format!("node {node} is not Ready"));
    }
    match &facts.kubelet {
        Some(k) if k >= version => {}
        Some(k) => missing.push(format!("kubelet on {node} reports {k}, not {version}")),
        None => missing.push(format!("kubelet on {node} reports no version")),
    }
    if let Some((pods, answer)) = control_plane {
        for component in &STATIC_PODS[1..] {
            let pod = pods
                .iter()
                .find(|p| p.node == node && p.component == *component);
            match pod {
                None => missing.push(format!("no {component} mirror pod on {node}")),
                Some(p) => {
                    match &p.version {
                        Some(v) if v >= version => {}
                        Some(v) => missing.push(format!("{component} on {node} runs {v}")),
                        None => {
                            missing.push(format!("{component} on {node}: image has no version"))
                        }
                    }
                    if !p.ready {
                        missing.push(format!("{component} on {node} is not Ready"));
                    }
                }
            }
        }
        match answer {
            ApiserverAnswer::Version(v) if Version::parse(v).is_ok_and(|v| v >= *version) => {}
            ApiserverAnswer::Version(v) => missing.push(format!(
                "the API server on {node} answers /version with {v}"
            )),
            ApiserverAnswer::Error(e) => missing.push(format!(
                "the API server on {node} does not answer /version: {e}"
            )),
            ApiserverAnswer::NotAsked => {}
        }
    }
    missing
}

/// A PodDisruptionBudget's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetHealth {
    /// `namespace/name`.
    pub name: String,
    /// `status.currentHealthy`.
    pub current_healthy: i32,
    /// `status.desiredHealthy`.
    pub desired_healthy: i32,
    /// `status.expectedPods`.
    pub expected_pods: i32,
}

/// etcd's health as observed (the API server's `/readyz/etcd`, and the members when an etcd
/// connection is configured).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EtcdHealth {
    /// Healthy, with a leader.
    Healthy,
    /// Not healthy: why.
    Unhealthy(String),
}

/// Everything the health gate looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthFacts {
    /// Every node.
    pub nodes: BTreeMap<String, NodeFacts>,
    /// Every control-plane mirror pod.
    pub mirror_pods: Vec<MirrorPod>,
    /// etcd as the API server sees it.
    pub etcd: EtcdHealth,
    /// etcd's members asked directly (when configured).
    pub etcd_members: EtcdMembers,
    /// Every PodDisruptionBudget.
    pub budgets: Vec<BudgetHealth>,
}

/// What keeps the cluster from being healthy: nodes not Ready, control-plane mirror pods
/// not Ready, etcd (the API server's view and, when asked, the members'), and PDB-covered workloads not back at their healthy count — every expected
/// pod, or as many as were healthy when the run started (`baseline`, by budget name) if fewer
/// were then.
pub fn health_missing(facts: &HealthFacts, baseline: &BTreeMap<String, i32>) -> Vec<String> {
    let mut missing = Vec::new();
    for (name, node) in &facts.nodes {
        if !node.ready {
            missing.push(format!("node {name} is not Ready"));
        }
    }
    for pod in &facts.mirror_pods {
        if !pod.ready {
            missing.push(format!("{} on {} is not Ready", pod.component, pod.node));
        }
    }
    if let EtcdHealth::Unhealthy(why) = &facts.etcd {
        missing.push(format!("etcd: {why}"));
    }
    missing.extend(etcd_members_missing(&facts.etcd_members));
    for budget in &facts.budgets {
        let before = baseline
            .get(&budget.name)
            .copied()
            .unwrap_or(budget.expected_pods);
        let wanted = budget.expected_pods.min(before).max(budget.desired_healthy);
        if budget.current_healthy < wanted {
            missing.push(format!(
                "PodDisruptionBudget {}: {} of {} pods healthy, waiting for {wanted}",
                budget.name, budget.current_healthy, budget.expected_pods
            ));
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn node(ready: bool, kubelet: &str) -> NodeFacts {
        NodeFacts {
            ready,
            unschedulable: false,
            kubelet: Some(v(kubelet)),
            control_plane: None,
        }
    }

    fn pods(version: &str, ready: bool) -> Vec<MirrorPod> {
        STATIC_PODS
            .iter()
            .map(|c| MirrorPod {
                component: c.to_string(),
                node: "cp-1".into(),
                version: Some(v(version)),
                ready,
            })
            .collect()
    }

    #[test]
    fn waits_name_what_is_missing() {
        let target = v("v1.20.2");
        let ok = node(true, "v1.20.2");
        assert!(wait_missing("w-1", Some(&ok), None, &target).is_empty());
        assert_eq!(
            wait_missing("w-1", Some(&node(false, "v1.19.16")), None, &target),
            [
                "node w-1 is not Ready",
                "kubelet on w-1 reports v1.19.16, not v1.20.2"
            ]
        );
        assert_eq!(
            wait_missing("w-9", None, None, &target),
            ["node w-9 is not in the cluster"]
        );
        let answer = ApiserverAnswer::Version("v1.20.2".into());
        let new = pods("v1.20.2", true);
        assert!(wait_missing("cp-1", Some(&ok), Some((&new, &answer)), &target).is_empty());
        let old = pods("v1.19.16", false);
        let stale = ApiserverAnswer::Version("v1.19.16".into());
        let missing = wait_missing("cp-1", Some(&ok), Some((&old, &stale)), &target);
        assert_eq!(missing.len(), 7, "{missing:?}");
        assert!(missing.contains(&"kube-apiserver on cp-1 runs v1.19.16".to_string()));
        assert!(
            missing.contains(&"the API server on cp-1 answers /version with v1.19.16".to_string())
        );
        let down = ApiserverAnswer::Error("connection refused".into());
        assert_eq!(
            wait_missing("cp-1", Some(&ok), Some((&new, &down)), &target),
            ["the API server on cp-1 does not answer /version: connection refused"]
        );
    }

    #[test]
    fn the_health_gate_wants_every_budget_back_to_where_it_was() {
        let budget = |current, expected| BudgetHealth {
            name: "default/web".into(),
            current_healthy: current,
            desired_healthy: 3,
            expected_pods: expected,
        };
        let facts = |budgets| HealthFacts {
            nodes: [("w-1".to_string(), node(true, "v1.20.2"))].into(),
            mirror_pods: pods("v1.20.2", true),
            etcd: EtcdHealth::Healthy,
            etcd_members: EtcdMembers::NotAsked,
            budgets,
        };
        let none = BTreeMap::new();
        assert!(health_missing(&facts(vec![budget(4, 4)]), &none).is_empty());
        assert_eq!(
            health_missing(&facts(vec![budget(3, 4)]), &none),
            ["PodDisruptionBudget default/web: 3 of 4 pods healthy, waiting for 4"]
        );
        // 3 of 4 were healthy before the run: 3 is back where it was.
        let before = [("default/web".to_string(), 3)].into();
        assert!(health_missing(&facts(vec![budget(3, 4)]), &before).is_empty());
        // Never below the budget's own floor.
        let low = [("default/web".to_string(), 1)].into();
        assert_eq!(health_missing(&facts(vec![budget(2, 4)]), &low).len(), 1);
        let mut sick = facts(vec![]);
        sick.nodes.insert("w-2".into(), node(false, "v1.20.2"));
        sick.mirror_pods[3].ready = false;
        sick.etcd = EtcdHealth::Unhealthy("no leader".into());
        assert_eq!(
            health_missing(&sick, &none),
            [
                "node w-2 is not Ready",
                "kube-scheduler on cp-1 is not Ready",
                "etcd: no leader"
            ]
        );
    }

    #[test]
    fn the_gate_adds_what_the_etcd_members_miss() {
        let facts = HealthFacts {
            nodes: BTreeMap::new(),
            mirror_pods: Vec::new(),
            etcd: EtcdHealth::Healthy,
            etcd_members: EtcdMembers::Asked {
                members: vec![MemberProbe {
                    name: "cp-1".into(),
                    endpoint: "https://127.0.0.1:2379".into(),
                    answer: Ok(MemberAnswer {
                        member_id: 1,
                        leader: 0,
                        raft_index: 5,
                        is_learner: false,
                        errors: Vec::new(),
                        version: "3.4.23".into(),
                    }),
                }],
            },
            budgets: Vec::new(),
        };
        assert_eq!(
            health_missing(&facts, &BTreeMap::new()),
            ["etcd member cp-1 has no leader"]
        );
    }
}
