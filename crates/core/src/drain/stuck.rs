//! Pods stuck Terminating on an unreachable node.
//!
//! A pod's `deletionTimestamp` is the moment its grace period ends. Normally the kubelet removes
//! the pod around then; when the node's kubelet is gone (node NotReady or Unknown), nobody does,
//! and a drain would wait forever. These functions decide, from the pod, its node and the time,
//! whether a pod is such a case and what the opt-in policy says to do about it.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde::Serialize;

/// Why a node cannot finish pod deletions: its Ready condition is not `True`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeDown {
    /// Node name.
    pub node: String,
    /// The Ready condition's status (`False`, `Unknown`, or `Missing` when absent).
    pub status: String,
    /// The condition's reason (e.g. `NodeStatusUnknown`).
    pub reason: String,
    /// The condition's message (e.g. `Kubelet stopped posting node status.`).
    pub message: String,
}

impl NodeDown {
    /// `node worker-3 is NotReady (kubelet stopped posting node status)`.
    pub fn describe(&self) -> String {
        let detail = self.message.trim().trim_end_matches('.');
        let detail = if detail.is_empty() {
            self.reason.as_str()
        } else {
            detail
        };
        // The message starts a sentence ("Kubelet stopped ..."); inside parentheses it reads
        // better in lower case.
        let mut chars = detail.chars();
        let detail = match chars.next() {
            Some(c) => c.to_lowercase().chain(chars).collect::<String>(),
            None => String::new(),
        };
        if detail.is_empty() {
            format!("node {} is NotReady (Ready={})", self.node, self.status)
        } else {
            format!(
                "node {} is NotReady (Ready={}: {detail})",
                self.node, self.status
            )
        }
    }
}

/// The node's readiness: `None` when Ready=True, else why it is down.
pub fn node_down(node: &Node) -> Option<NodeDown> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    match ready {
        Some(c) if c.status == "True" => None,
        Some(c) => Some(NodeDown {
            node: name,
            status: c.status.clone(),
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        }),
        None => Some(NodeDown {
            node: name,
            status: "Missing".into(),
            reason: "no Ready condition".into(),
            message: String::new(),
        }),
    }
}

/// A pod past its grace period on a node that cannot finish deleting it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StuckTerminating {
    /// When its grace period ended (its `deletionTimestamp`).
    pub since: Timestamp,
    /// Its grace period (`deletionGracePeriodSeconds`), in seconds.
    pub grace_seconds: i64,
    /// How long past the grace period it is, in whole seconds.
    pub stuck_seconds: i64,
    /// Why the pod cannot go away.
    pub node: NodeDown,
}

impl StuckTerminating {
    /// One line for progress output and reports.
    pub fn explain(&self, pod: &str) -> String {
        format!(
            "pod {pod} is stuck Terminating {}s past its {}s grace period: {}; the pod cannot finish terminating",
            self.stuck_seconds,
            self.grace_seconds,
            self.node.describe()
        )
    }
}

/// Whether `pod` is stuck Terminating: it has a `deletionTimestamp` in the past (grace period
/// over) and its node is not Ready. `node` is the pod's node as last seen (`None` when unknown;
/// then the pod is not judged stuck: without the node we cannot say why).
pub fn stuck_terminating(
    pod: &Pod,
    node: Option<&Node>,
    now: Timestamp,
) -> Option<StuckTerminating> {
    let since = pod.metadata.deletion_timestamp.as_ref()?.0;
    let node = node?;
    let on_node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    if on_node.is_some() && on_node != node.metadata.name.as_deref() {
        return None;
    }
    if now <= since {
        return None;
    }
    let down = node_down(node)?;
    Some(StuckTerminating {
        since,
        grace_seconds: pod.metadata.deletion_grace_period_seconds.unwrap_or(0),
        stuck_seconds: now.duration_since(since).as_secs(),
        node: down,
    })
}

/// What to do about stuck pods (`--force-delete-after`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StuckPolicy {
    /// Report them and keep waiting; the node fails at `--timeout`.
    Fail,
    /// Force-delete (grace 0, UID precondition) a pod stuck at least this long.
    ForceDeleteAfter(#[serde(with = "secs")] std::time::Duration),
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// The verdict for a stuck pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StuckAction {
    /// Keep waiting (report it).
    Wait,
    /// Force-delete it now.
    ForceDelete,
}

/// Applies the policy: force-delete once the pod has been stuck (past its grace period) at
/// least the configured time.
pub fn stuck_action(stuck: &StuckTerminating, policy: StuckPolicy, now: Timestamp) -> StuckAction {
    match policy {
        StuckPolicy::Fail => StuckAction::Wait,
        StuckPolicy::ForceDeleteAfter(after) => {
            let after = SignedDuration::try_from(after).unwrap_or(SignedDuration::MAX);
            if now.duration_since(stuck.since) >= after {
                StuckAction::ForceDelete
            } else {
                StuckAction::Wait
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::NodeCondition;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use proptest::prelude::*;

    use super::*;
    use crate::drain::testing::{NodeBuilder, PodBuilder, now};

    fn node(name: &str, ready: Option<(&str, &str, &str)>) -> Node {
        let mut n = NodeBuilder::new(name).build();
        if let Some((status, reason, message)) = ready {
            n.status.as_mut().unwrap().conditions = Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                ..Default::default()
            }]);
        }
        n
    }

    fn unknown(name: &str) -> Node {
        node(
            name,
            Some((
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
            )),
        )
    }

    fn deleting(secs_ago: i64, grace: i64) -> Pod {
        let mut p = PodBuilder::new("ns", "p")
            .on("worker-3")
            .rs("app-1")
            .deleted_ago(secs_ago)
            .build();
        p.metadata.deletion_grace_period_seconds = Some(grace);
        p
    }

    #[test]
    fn verdict_table() {
        let ready = node("worker-3", Some(("True", "KubeletReady", "ok")));
        let not_ready = node(
            "worker-3",
            Some(("False", "KubeletNotReady", "PLEG is not healthy")),
        );
        let down = unknown("worker-3");
        let no_cond = node("worker-3", None);
        let running = PodBuilder::new("ns", "p").on("worker-3").rs("a").build();
        // (pod, node, stuck?)
        let cases: Vec<(&str, Pod, Option<&Node>, Option<i64>)> = vec![
            ("not deleting", running, Some(&down), None),
            ("grace not over yet", deleting(-10, 30), Some(&down), None),
            (
                "exactly at the deadline",
                deleting(0, 30),
                Some(&down),
                None,
            ),
            (
                "past grace, node Ready",
                deleting(20, 30),
                Some(&ready),
                None,
            ),
            (
                "past grace, node unknown to us",
                deleting(20, 30),
                None,
                None,
            ),
            (
                "past grace, node Unknown",
                deleting(20, 30),
                Some(&down),
                Some(20),
            ),
            (
                "past grace, node False",
                deleting(7, 30),
                Some(&not_ready),
                Some(7),
            ),
            (
                "past grace, no condition",
                deleting(1, 0),
                Some(&no_cond),
                Some(1),
            ),
        ];
        for (what, pod, n, want) in cases {
            let got = stuck_terminating(&pod, n, now());
            assert_eq!(got.as_ref().map(|s| s.stuck_seconds), want, "{what}");
            if let Some(s) = got {
                assert_eq!(
                    s.since,
                    pod.metadata.deletion_timestamp.unwrap().0,
                    "{what}"
                );
            }
        }
    }

    #[test]
    fn other_nodes_do_not_count() {
        assert_eq!(
            stuck_terminating(&deleting(20, 30), Some(&unknown("worker-1")), now()),
            None
        );
    }

    #[test]
    fn explanation_names_node_reason_and_times() {
        let s = stuck_terminating(&deleting(12, 3), Some(&unknown("worker-3")), now()).unwrap();
        assert_eq!(s.grace_seconds, 3);
        assert_eq!(
            s.explain("ns/p"),
            "pod ns/p is stuck Terminating 12s past its 3s grace period: node worker-3 is NotReady (Ready=Unknown: kubelet stopped posting node status); the pod cannot finish terminating"
        );
        let bare = node("n", Some(("False", "", "")));
        assert_eq!(
            node_down(&bare).unwrap().describe(),
            "node n is NotReady (Ready=False)"
        );
    }

    #[test]
    fn policy() {
        let s = stuck_terminating(&deleting(10, 3), Some(&unknown("worker-3")), now()).unwrap();
        assert_eq!(
            stuck_action(&s, StuckPolicy::Fail, now()),
            StuckAction::Wait
        );
        let after = |secs| StuckPolicy::ForceDeleteAfter(Duration::from_secs(secs));
        assert_eq!(stuck_action(&s, after(5), now()), StuckAction::ForceDelete);
        assert_eq!(stuck_action(&s, after(10), now()), StuckAction::ForceDelete);
        assert_eq!(stuck_action(&s, after(11), now()), StuckAction::Wait);
        assert_eq!(stuck_action(&s, after(0), now()), StuckAction::ForceDelete);
        assert_eq!(stuck_action(&s, after(u64::MAX), now()), StuckAction::Wait);
    }

    proptest! {
        /// Stuck exactly when deleting, past the deadline and the node is not Ready; force
        /// deletion never happens before the configured time.
        #[test]
        fn stuck_iff_past_deadline_on_down_node(
            ago in -100i64..100,
            deleting_now in any::<bool>(),
            node_ready in any::<bool>(),
            after in 0u64..200,
        ) {
            let mut pod = deleting(ago, 30);
            if !deleting_now {
                pod.metadata.deletion_timestamp = None::<Time>;
            }
            let n = if node_ready {
                node("worker-3", Some(("True", "KubeletReady", "")))
            } else {
                unknown("worker-3")
            };
            let got = stuck_terminating(&pod, Some(&n), now());
            prop_assert_eq!(got.is_some(), deleting_now && ago > 0 && !node_ready);
            if let Some(s) = got {
                prop_assert_eq!(s.stuck_seconds, ago);
                let a = stuck_action(&s, StuckPolicy::ForceDeleteAfter(Duration::from_secs(after)), now());
                prop_assert_eq!(a == StuckAction::ForceDelete, ago as u64 >= after);
            }
        }
    }
}
