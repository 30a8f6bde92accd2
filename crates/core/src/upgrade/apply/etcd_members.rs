//! etcd's members as the health gate asks them directly (member list, then every member's
//! `Maintenance.Status`, as `etcdctl endpoint status --cluster`): the facts and the pure
//! verdict — healthy with one leader every voting member follows, or what is missing.

use serde::{Deserialize, Serialize};

/// What one etcd member said about itself (`Maintenance.Status`, as `etcdctl endpoint status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAnswer {
    /// Its member ID (`header.member_id`).
    pub member_id: u64,
    /// The leader's member ID as it knows it; 0: none.
    pub leader: u64,
    /// Its raft index.
    pub raft_index: u64,
    /// A learner (not a voting member yet).
    pub is_learner: bool,
    /// Its alarms and errors (`errors`).
    pub errors: Vec<String>,
    /// Its server version.
    pub version: String,
}

/// One member of the member list and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberProbe {
    /// Member name.
    pub name: String,
    /// The client URL asked.
    pub endpoint: String,
    /// Its status, or why it did not answer.
    pub answer: Result<MemberAnswer, String>,
}

/// The etcd members as asked directly by the health gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum EtcdMembers {
    /// No etcd connection configured: not asked (the gate has `/readyz/etcd` only).
    NotAsked,
    /// The connection is configured but no member could be reached from here: unknown, which
    /// is not a failure (the API server may reach etcd where this machine cannot).
    Unreachable {
        /// Why.
        reason: String,
    },
    /// The member list and every member's answer.
    Asked {
        /// In member-list order.
        members: Vec<MemberProbe>,
    },
}

/// How far (raft entries) a member may trail the leader's raft index and still count as
/// caught up: the members are asked one after another, so writes land in between.
pub const RAFT_INDEX_SLACK: u64 = 1000;

/// What keeps the asked etcd members from being healthy with a leader: a member that does not
/// answer, reports errors (alarms), is a learner, has no leader, disagrees with the others on
/// the leader, trails the leader by more than [`RAFT_INDEX_SLACK`] entries; or a leader that is
/// not in the member list. Unknown members ([`EtcdMembers::NotAsked`],
/// [`EtcdMembers::Unreachable`]) miss nothing.
pub fn etcd_members_missing(members: &EtcdMembers) -> Vec<String> {
    let EtcdMembers::Asked { members } = members else {
        return Vec::new();
    };
    if members.is_empty() {
        return vec!["etcd: the member list is empty".into()];
    }
    let mut missing = Vec::new();
    let answered: Vec<(&MemberProbe, &MemberAnswer)> = members
        .iter()
        .filter_map(|m| m.answer.as_ref().ok().map(|a| (m, a)))
        .collect();
    for member in members {
        let name = &member.name;
        match &member.answer {
            Err(e) => missing.push(format!(
                "etcd member {name} ({}) does not answer: {e}",
                member.endpoint
            )),
            Ok(a) => {
                if !a.errors.is_empty() {
                    missing.push(format!(
                        "etcd member {name} reports: {}",
                        a.errors.join("; ")
                    ));
                }
                if a.is_learner {
                    missing.push(format!(
                        "etcd member {name} is a learner, not yet a voting member"
                    ));
                }
                if a.leader == 0 {
                    missing.push(format!("etcd member {name} has no leader"));
                }
            }
        }
    }
    let mut leaders: Vec<u64> = answered
        .iter()
        .map(|(_, a)| a.leader)
        .filter(|l| *l != 0)
        .collect();
    leaders.sort_unstable();
    leaders.dedup();
    let name_of = |id: u64| {
        answered
            .iter()
            .find(|(_, a)| a.member_id == id)
            .map(|(m, _)| m.name.clone())
    };
    match leaders.as_slice() {
        [] => {}
        [leader] => match answered.iter().find(|(_, a)| a.member_id == *leader) {
            Some((_, la)) => {
                for (m, a) in &answered {
                    let behind = la.raft_index.saturating_sub(a.raft_index);
                    if behind > RAFT_INDEX_SLACK {
                        missing.push(format!(
                            "etcd member {} is {behind} raft entries behind the leader {} (raft index {} vs {})",
                            m.name,
                            name_of(*leader).unwrap_or_default(),
                            a.raft_index,
                            la.raft_index
                        ));
                    }
                }
            }
            None if members.iter().all(|m| m.answer.is_ok()) => missing.push(format!(
                "etcd: the leader {leader:x} the members name is not in the member list"
            )),
            // The leader may be the member that did not answer: that is already named.
            None => {}
        },
        several => {
            let views: Vec<String> = answered
                .iter()
                .filter(|(_, a)| a.leader != 0)
                .map(|(m, a)| {
                    format!(
                        "{} says {}",
                        m.name,
                        name_of(a.leader).unwrap_or_else(|| format!("{:x}", a.leader))
                    )
                })
                .collect();
            missing.push(format!(
                "etcd members disagree on the leader ({} leaders: {})",
                several.len(),
                views.join(", ")
            ));
        }
    }
    missing
}

/// One line on the etcd members for the run log and report: healthy with the leader named,
/// what is missing, or why they are unknown.
pub fn etcd_members_summary(members: &EtcdMembers) -> String {
    match members {
        EtcdMembers::NotAsked => "etcd members: unknown (not asked: no --pki-dir, --kubeadm, --endpoints or ETCDCTL_ENDPOINTS; the gate relies on the API server's /readyz/etcd)".into(),
        EtcdMembers::Unreachable { reason } => format!(
            "etcd members: unknown (cannot reach etcd from here: {reason}; not a failure, the gate relies on the API server's /readyz/etcd)"
        ),
        EtcdMembers::Asked { members: list } => {
            let missing = etcd_members_missing(members);
            if !missing.is_empty() {
                return format!("etcd members: {}", missing.join("; "));
            }
            let leader = list
                .iter()
                .filter_map(|m| m.answer.as_ref().ok())
                .map(|a| a.leader)
                .next()
                .unwrap_or(0);
            let leader_name = list
                .iter()
                .find(|m| m.answer.as_ref().is_ok_and(|a| a.member_id == leader))
                .map(|m| m.name.as_str())
                .unwrap_or("?");
            let indexes: Vec<u64> = list
                .iter()
                .filter_map(|m| m.answer.as_ref().ok().map(|a| a.raft_index))
                .collect();
            format!(
                "etcd members: {} healthy, leader {leader_name}, raft index {}..{}",
                list.len(),
                indexes.iter().min().copied().unwrap_or(0),
                indexes.iter().max().copied().unwrap_or(0)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, id: u64, leader: u64, raft_index: u64) -> MemberProbe {
        MemberProbe {
            name: name.into(),
            endpoint: format!("https://127.0.0.1:{}", 2379 + id),
            answer: Ok(MemberAnswer {
                member_id: id,
                leader,
                raft_index,
                is_learner: false,
                errors: Vec::new(),
                version: "3.4.23".into(),
            }),
        }
    }

    fn asked(members: Vec<MemberProbe>) -> EtcdMembers {
        EtcdMembers::Asked { members }
    }

    #[test]
    fn etcd_members_are_healthy_only_with_one_leader_every_member_follows() {
        let healthy = || {
            vec![
                member("cp-1", 1, 2, 1200),
                member("cp-2", 2, 2, 1203),
                member("cp-3", 3, 2, 1201),
            ]
        };
        let with = |f: &dyn Fn(&mut Vec<MemberProbe>)| {
            let mut m = healthy();
            f(&mut m);
            etcd_members_missing(&asked(m))
        };
        // (what is wrong, what the gate names)
        let cases: Vec<(Vec<String>, &[&str])> = vec![
            (with(&|_| {}), &[]),
            (
                with(&|m| m[2].answer = Err("connection refused".into())),
                &["etcd member cp-3 (https://127.0.0.1:2382) does not answer: connection refused"],
            ),
            (
                // The leader itself is down: named once, no second complaint about the leader.
                with(&|m| m[1].answer = Err("deadline exceeded".into())),
                &["etcd member cp-2 (https://127.0.0.1:2381) does not answer: deadline exceeded"],
            ),
            (
                with(&|m| {
                    for p in m.iter_mut() {
                        if let Ok(a) = &mut p.answer {
                            a.leader = 0;
                        }
                    }
                }),
                &[
                    "etcd member cp-1 has no leader",
                    "etcd member cp-2 has no leader",
                    "etcd member cp-3 has no leader",
                ],
            ),
            (
                with(&|m| {
                    if let Ok(a) = &mut m[0].answer {
                        a.leader = 1;
                    }
                }),
                &[
                    "etcd members disagree on the leader (2 leaders: cp-1 says cp-1, cp-2 says cp-2, cp-3 says cp-2)",
                ],
            ),
            (
                with(&|m| {
                    if let Ok(a) = &mut m[0].answer {
                        a.errors = vec!["NOSPACE".into()];
                    }
                }),
                &["etcd member cp-1 reports: NOSPACE"],
            ),
            (
                with(&|m| {
                    if let Ok(a) = &mut m[2].answer {
                        a.is_learner = true;
                    }
                }),
                &["etcd member cp-3 is a learner, not yet a voting member"],
            ),
            (
                with(&|m| {
                    if let Ok(a) = &mut m[0].answer {
                        a.raft_index = 100;
                    }
                }),
                &[
                    "etcd member cp-1 is 1103 raft entries behind the leader cp-2 (raft index 100 vs 1203)",
                ],
            ),
            (
                with(&|m| {
                    for p in m.iter_mut() {
                        if let Ok(a) = &mut p.answer {
                            a.leader = 9;
                        }
                    }
                }),
                &["etcd: the leader 9 the members name is not in the member list"],
            ),
            (
                etcd_members_missing(&asked(Vec::new())),
                &["etcd: the member list is empty"],
            ),
            (
                etcd_members_missing(&EtcdMembers::Unreachable {
                    reason: "no route".into(),
                }),
                &[],
            ),
            (etcd_members_missing(&EtcdMembers::NotAsked), &[]),
        ];
        for (i, (got, want)) in cases.iter().enumerate() {
            assert_eq!(got, want, "case {i}");
        }
        assert_eq!(
            etcd_members_summary(&asked(healthy())),
            "etcd members: 3 healthy, leader cp-2, raft index 1200..1203"
        );
        assert!(
            etcd_members_summary(&EtcdMembers::Unreachable {
                reason: "no route".into()
            })
            .starts_with("etcd members: unknown (cannot reach etcd from here: no route;")
        );
        // Within the slack a trailing member is caught up.
        let mut close = healthy();
        if let Ok(a) = &mut close[0].answer {
            a.raft_index = 1203 - RAFT_INDEX_SLACK;
        }
        assert!(etcd_members_missing(&asked(close)).is_empty());
    }

    proptest::proptest! {
        /// A healthy member set (every member answers, no errors, one leader among them, all
        /// within the slack) is never held up; making any one member fail always is, by name.
        #[test]
        fn one_failing_member_is_always_named(
            n in 1usize..6,
            leader in 0usize..6,
            base in 0u64..1_000_000,
            lags in proptest::collection::vec(0u64..=RAFT_INDEX_SLACK, 6),
            broken in 0usize..6,
            how in 0u8..4,
        ) {
            let leader = leader % n;
            let mut members: Vec<MemberProbe> = (0..n)
                .map(|i| member(&format!("m{i}"), i as u64 + 1, leader as u64 + 1,
                    if i == leader { base + RAFT_INDEX_SLACK } else { base + RAFT_INDEX_SLACK - lags[i] }))
                .collect();
            proptest::prop_assert!(etcd_members_missing(&asked(members.clone())).is_empty());
            let broken = broken % n;
            match (&mut members[broken].answer, how) {
                (answer, 0) => *answer = Err("down".into()),
                (Ok(a), 1) => a.errors.push("CORRUPT".into()),
                (Ok(a), 2) => a.is_learner = true,
                (Ok(a), _) => a.leader = 0,
                (Err(_), _) => unreachable!("every member answered"),
            }
            let missing = etcd_members_missing(&asked(members));
            let name = format!("etcd member m{broken} ");
            proptest::prop_assert!(missing.iter().any(|l| l.starts_with(&name)), "{:?}", missing);
        }
    }
}
