//! Choosing the member to take a snapshot from, when several endpoints are given.
//!
//! etcdctl refuses more than one endpoint for `snapshot save` ("snapshot must be requested to one
//! selected node"). We accept several, ask each for its Status, and pick one healthy voting member
//! (not a learner, no alarms, same cluster). Among those we prefer a follower over the leader:
//! streaming a large snapshot loads the serving member, and on the leader that can delay
//! heartbeats (etcd #13913). Otherwise the user's order is kept (list the local member first).
//! Pure: the probes come in, the decision goes out.

use serde::Serialize;

/// What one member said about itself (from `Maintenance.Status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberStatus {
    /// The member's ID.
    pub member_id: u64,
    /// The cluster's ID.
    pub cluster_id: u64,
    /// etcd server version.
    pub version: String,
    /// The leader's member ID as this member sees it (0: no leader).
    pub leader: u64,
    /// Whether this member is a learner.
    pub is_learner: bool,
    /// Raft index.
    pub raft_index: u64,
    /// Backend database size in bytes.
    pub db_size: i64,
    /// Store revision in the response header.
    pub revision: i64,
    /// Errors the member reports (alarms such as NOSPACE or CORRUPT).
    pub errors: Vec<String>,
}

/// One cluster member (from `Cluster.MemberList`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberInfo {
    /// Member ID, hex as etcdctl prints it.
    #[serde(serialize_with = "hex_id")]
    pub id: u64,
    /// Member name (empty until it has started).
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs.
    pub client_urls: Vec<String>,
    /// Whether it is a learner.
    pub is_learner: bool,
}

/// Serialises an etcd ID as 16 hex digits, as etcd logs and `etcdctl member list` show it.
pub fn hex_id<S: serde::Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{id:016x}"))
}

/// The outcome of probing one endpoint.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The endpoint (as shown to the user).
    pub endpoint: String,
    /// Its status, or why it could not be reached.
    pub status: Result<MemberStatus, String>,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Index into the probes.
    pub index: usize,
    /// Why this one, in a sentence.
    pub reason: String,
    /// The other endpoints and why they were passed over.
    pub passed_over: Vec<(String, String)>,
}

/// No endpoint qualifies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no healthy voting etcd member to take the snapshot from:\n{}\nFix the endpoints or the failing members and retry",
    .reasons.iter().map(|(e, r)| format!("  {e}: {r}")).collect::<Vec<_>>().join("\n")
)]
pub struct NoMember {
    /// Each endpoint and why it does not qualify.
    pub reasons: Vec<(String, String)>,
}

/// Picks the member to snapshot from.
pub fn choose(probes: &[Probe], members: &[MemberInfo]) -> Result<Choice, NoMember> {
    let learner_in_list = |id: u64| members.iter().any(|m| m.id == id && m.is_learner);
    // The cluster the first reachable member belongs to is "the" cluster.
    let cluster = probes
        .iter()
        .find_map(|p| p.status.as_ref().ok().map(|s| s.cluster_id));
    let mut rejected: Vec<(usize, String)> = Vec::new();
    let mut ok: Vec<usize> = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        let why = match &p.status {
            Err(e) => Some(e.clone()),
            Ok(s) if s.is_learner || learner_in_list(s.member_id) => {
                Some("is a learner (not a voting member; its data may lag)".to_string())
            }
            Ok(s) if !s.errors.is_empty() => {
                Some(format!("reports errors: {}", s.errors.join("; ")))
            }
            Ok(s) if Some(s.cluster_id) != cluster => Some(format!(
                "belongs to another cluster ({:016x}, not {:016x})",
                s.cluster_id,
                cluster.unwrap_or_default()
            )),
            Ok(s) if s.leader == 0 => Some("has no leader (cluster without quorum?)".to_string()),
            Ok(_) => None,
        };
        match why {
            Some(w) => rejected.push((i, w)),
            None => ok.push(i),
        }
    }
    let Some(&first) = ok.first() else {
        return Err(NoMember {
            reasons: rejected
                .into_iter()
                .map(|(i, w)| (probes[i].endpoint.clone(), w))
                .collect(),
        });
    };
    let status = |i: usize| {
        probes[i]
            .status
            .as_ref()
            .expect("healthy probe has a status")
    };
    let is_leader = |i: usize| status(i).leader == status(i).member_id;
    let (index, reason) = match ok.iter().copied().find(|&i| !is_leader(i)) {
        Some(i) if ok.len() > 1 && is_leader(first) => (
            i,
            "healthy follower (preferred over the leader, which a large snapshot would load)"
                .to_string(),
        ),
        _ if ok.len() == 1 && probes.len() == 1 => (first, "the only endpoint given".to_string()),
        _ => (
            first,
            format!(
                "first healthy voting member in the order given{}",
                if is_leader(first) {
                    " (the leader)"
                } else {
                    ""
                }
            ),
        ),
    };
    let mut passed_over: Vec<(String, String)> = rejected
        .into_iter()
        .map(|(i, w)| (probes[i].endpoint.clone(), w))
        .collect();
    for &i in &ok {
        if i != index {
            passed_over.push((
                probes[i].endpoint.clone(),
                "healthy, not needed".to_string(),
            ));
        }
    }
    Ok(Choice {
        index,
        reason,
        passed_over,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(id: u64, leader: u64) -> MemberStatus {
        MemberStatus {
            member_id: id,
            cluster_id: 7,
            version: "3.5.1".into(),
            leader,
            is_learner: false,
            raft_index: 10,
            db_size: 1,
            revision: 1,
            errors: vec![],
        }
    }
    fn probe(ep: &str, s: Result<MemberStatus, &str>) -> Probe {
        Probe {
            endpoint: ep.into(),
            status: s.map_err(str::to_string),
        }
    }

    #[test]
    fn single_endpoint() {
        let c = choose(&[probe("a", Ok(st(1, 1)))], &[]).unwrap();
        assert_eq!(c.index, 0);
        assert_eq!(c.reason, "the only endpoint given");
    }

    #[test]
    fn prefers_a_follower_over_the_leader() {
        let probes = [
            probe("a", Ok(st(1, 1))),
            probe("b", Ok(st(2, 1))),
            probe("c", Ok(st(3, 1))),
        ];
        let c = choose(&probes, &[]).unwrap();
        assert_eq!(c.index, 1);
        assert!(c.reason.contains("follower"));
        assert_eq!(c.passed_over.len(), 2);
    }

    #[test]
    fn keeps_user_order_among_followers() {
        let probes = [probe("a", Ok(st(2, 1))), probe("b", Ok(st(1, 1)))];
        assert_eq!(choose(&probes, &[]).unwrap().index, 0);
    }

    #[test]
    fn skips_learners_unreachable_and_alarmed() {
        let mut learner = st(2, 1);
        learner.is_learner = true;
        let mut alarmed = st(3, 1);
        alarmed.errors = vec!["NOSPACE".into()];
        let listed_learner = st(4, 1);
        let probes = [
            probe("down", Err("connection refused")),
            probe("learner", Ok(learner)),
            probe("alarmed", Ok(alarmed)),
            probe("listed-learner", Ok(listed_learner)),
            probe("leader", Ok(st(1, 1))),
        ];
        let members = [MemberInfo {
            id: 4,
            name: "d".into(),
            peer_urls: vec![],
            client_urls: vec![],
            is_learner: true,
        }];
        let c = choose(&probes, &members).unwrap();
        assert_eq!(c.index, 4);
        assert!(c.reason.contains("leader"));
        let reasons: Vec<_> = c.passed_over.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(reasons, ["down", "learner", "alarmed", "listed-learner"]);
    }

    #[test]
    fn nothing_healthy_lists_every_reason() {
        let mut learner = st(2, 1);
        learner.is_learner = true;
        let err = choose(
            &[
                probe("a", Err("connection refused")),
                probe("b", Ok(learner)),
            ],
            &[],
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("a: connection refused") && msg.contains("b: is a learner"),
            "{msg}"
        );
    }

    #[test]
    fn other_cluster_and_no_leader_are_skipped() {
        let mut other = st(5, 5);
        other.cluster_id = 99;
        let probes = [
            probe("a", Ok(st(1, 0))),
            probe("b", Ok(st(2, 3))),
            probe("c", Ok(other)),
        ];
        let c = choose(&probes, &[]).unwrap();
        assert_eq!(c.index, 1);
        assert!(c.passed_over[0].1.contains("no leader"));
        assert!(c.passed_over[1].1.contains("another cluster"));
    }
}
