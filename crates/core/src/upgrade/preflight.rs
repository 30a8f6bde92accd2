//! Preflight verdicts for an upgrade: each check a line with pass / warn / fail and what to do.
//!
//! The command gathers facts (nodes, etcd members, backups, certificates, objects in removed
//! API versions, drain blockers) and these functions judge them; time is passed in.

use std::fmt;

use std::collections::{BTreeMap, HashMap};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Serialize;

use super::removed::RemovedApi;
use super::skew::SkewFinding;
use super::version::{Minor, Version};
use crate::drain::pdb::{BlockerKind, SelectorSemantics, node_blockers};
use crate::drain::{controller_of, is_daemonset_ref, is_finished, is_mirror_pod};
use crate::upgrade::plan::addon_version;

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to do.
    Pass,
    /// Worth a look; the upgrade can go on.
    Warn,
    /// Fix this before upgrading.
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
        })
    }
}

/// One preflight line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short stable name (`nodes-ready`, `etcd-health`, ...).
    pub name: String,
    /// The verdict.
    pub status: Status,
    /// What was found.
    pub message: String,
    /// What to do about it (absent on a pass).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl Check {
    fn new(name: &str, status: Status, message: String, action: Option<String>) -> Self {
        Self {
            name: name.to_string(),
            status,
            message,
            action,
        }
    }

    fn pass(name: &str, message: String) -> Self {
        Self::new(name, Status::Pass, message, None)
    }
}

/// The worst status of a list (pass for an empty list).
pub fn worst(checks: &[Check]) -> Status {
    checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Pass)
}

fn list(names: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

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

/// An etcd member as reported by the member itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMemberFacts {
    /// Member name.
    pub name: String,
    /// Endpoint asked.
    pub endpoint: String,
    /// Server version reported by the member (`3.4.13`), `None` when it did not answer.
    pub version: Option<String>,
    /// Error when unreachable.
    pub error: Option<String>,
}

/// etcd 3.5 → 3.6 (Kubernetes 1.33 → 1.34) is only safe from 3.5.26 on (etcd blog, "zombie
/// members", <https://etcd.io/blog/2025/zombie_members_upgrade/>).
pub const ETCD_MIN_BEFORE_3_6: Version = Version::new(3, 5, 26);

/// Health, member count and version of etcd. `members` is `None` when etcd was not asked (no
/// `--pki-dir`/`--kubeadm`), which is a warning: the upgrade touches etcd first.
pub fn check_etcd(
    members: Option<&[EtcdMemberFacts]>,
    unreachable_reason: Option<&str>,
    target_etcd: &str,
) -> Vec<Check> {
    let Some(members) = members else {
        return vec![Check::new(
            "etcd-health",
            Status::Warn,
            format!(
                "etcd not checked: {}",
                unreachable_reason.unwrap_or("no --pki-dir or --kubeadm given")
            ),
            Some(if unreachable_reason.is_some() {
                "check the etcd connection (--endpoints, --kubeadm=MANIFEST, --pki-dir; ETCDCTL_* variables)".into()
            } else {
                "pass --pki-dir /etc/kubernetes/pki (or --kubeadm) so the members are asked directly".into()
            }),
        )];
    };
    let mut out = Vec::new();
    let down: Vec<String> = members
        .iter()
        .filter(|m| m.version.is_none())
        .map(|m| {
            format!(
                "{} ({}: {})",
                m.name,
                m.endpoint,
                m.error.as_deref().unwrap_or("no answer")
            )
        })
        .collect();
    if down.is_empty() {
        out.push(Check::pass(
            "etcd-health",
            format!("all {} etcd member(s) answer", members.len()),
        ));
    } else {
        out.push(Check::new(
            "etcd-health",
            Status::Fail,
            format!("{} of {} etcd member(s) do not answer: {}", down.len(), members.len(), list(&down)),
            Some("restore the member(s) before upgrading: kubeadm upgrades etcd first and needs quorum throughout".into()),
        ));
    }
    out.push(if members.len() % 2 == 0 {
        Check::new(
            "etcd-members",
            Status::Warn,
            format!(
                "{} etcd members: an even count tolerates no more failures than one fewer",
                members.len()
            ),
            Some("run an odd number of members (1, 3, 5)".into()),
        )
    } else {
        Check::pass("etcd-members", format!("{} etcd member(s)", members.len()))
    });
    let target = addon_version(target_etcd);
    let versions: Vec<(String, Version)> = members
        .iter()
        .filter_map(|m| Some((m.name.clone(), addon_version(m.version.as_deref()?)?)))
        .collect();
    if let Some(target) = target {
        let crosses_3_6 = target.major == 3 && target.minor >= 6;
        let too_old: Vec<String> = versions
            .iter()
            .filter(|(_, v)| {
                crosses_3_6 && v.major == 3 && v.minor == 5 && *v < ETCD_MIN_BEFORE_3_6
            })
            .map(|(n, v)| format!("{n} ({})", &v.to_string()[1..]))
            .collect();
        if !too_old.is_empty() {
            out.push(Check::new(
                "etcd-version",
                Status::Fail,
                format!(
                    "the target deploys etcd {target_etcd}; member(s) {} are below 3.5.26, the only safe start for 3.5 → 3.6",
                    list(&too_old)
                ),
                Some("upgrade etcd to 3.5.26 or later first (etcd.io/blog/2025/zombie_members_upgrade)".into()),
            ));
        } else if versions.is_empty() {
            out.push(Check::new(
                "etcd-version",
                Status::Warn,
                "no etcd member reported its version".into(),
                None,
            ));
        } else {
            let shown: Vec<String> = versions
                .iter()
                .map(|(n, v)| format!("{n} {}", &v.to_string()[1..]))
                .collect();
            out.push(Check::pass(
                "etcd-version",
                format!("etcd {} → {target_etcd} is a supported path", list(&shown)),
            ));
        }
    }
    out
}

/// Age of the newest snapshot kubemaint knows of (from the `.manifest.json` files of
/// `--backup-dir`): none fails, older than `max_age` warns.
pub fn check_backup(
    dir: Option<&str>,
    newest: Option<(String, Timestamp)>,
    now: Timestamp,
    max_age: SignedDuration,
) -> Check {
    let Some(dir) = dir else {
        return Check::new(
            "etcd-backup",
            Status::Warn,
            "backups not checked (no --backup-dir)".into(),
            Some("pass --backup-dir DIR where `kubemaint etcd snapshot save` writes".into()),
        );
    };
    let Some((file, taken)) = newest else {
        return Check::new(
            "etcd-backup",
            Status::Fail,
            format!("no etcd snapshot with a kubemaint manifest in {dir}"),
            Some(format!(
                "kubemaint etcd snapshot save {dir}/etcd-$(date +%Y%m%dT%H%M%S).db --pki-dir /etc/kubernetes/pki"
            )),
        );
    };
    let age = now.duration_since(taken);
    let shown = humanize(age);
    if age > max_age {
        Check::new(
            "etcd-backup",
            Status::Warn,
            format!("newest snapshot {file} is {shown} old"),
            Some(
                "take a fresh snapshot right before the upgrade: kubemaint etcd snapshot save"
                    .into(),
            ),
        )
    } else {
        Check::pass(
            "etcd-backup",
            format!("newest snapshot {file} is {shown} old"),
        )
    }
}

fn humanize(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// One certificate of the kubeadm PKI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// Path relative to the PKI dir (`apiserver.crt`).
    pub name: String,
    /// `notAfter`.
    pub not_after: Timestamp,
    /// Whether it is a CA (kubeadm does not renew CAs).
    pub is_ca: bool,
}

/// Certificate expiry: expired fails; a CA within a year warns (kubeadm never renews CAs); a
/// leaf within 30 days warns (kubeadm renews leaves during `upgrade apply` unless
/// `--certificate-renewal=false`).
pub fn check_certificates(dir: Option<&str>, certs: &[CertFacts], now: Timestamp) -> Check {
    let Some(dir) = dir else {
        return Check::new(
            "certificates",
            Status::Warn,
            "certificates not checked (no --pki-dir)".into(),
            Some("pass --pki-dir /etc/kubernetes/pki".into()),
        );
    };
    if certs.is_empty() {
        return Check::new(
            "certificates",
            Status::Warn,
            format!("no certificate found in {dir}"),
            None,
        );
    }
    let left = |c: &CertFacts| c.not_after.duration_since(now);
    let expired: Vec<String> = certs
        .iter()
        .filter(|c| left(c).is_negative())
        .map(|c| c.name.clone())
        .collect();
    if !expired.is_empty() {
        return Check::new(
            "certificates",
            Status::Fail,
            format!("expired: {}", list(&expired)),
            Some(
                "kubeadm certs renew all (leaves); a new CA needs the manual CA rotation procedure"
                    .into(),
            ),
        );
    }
    let soon: Vec<String> = certs
        .iter()
        .filter(|c| {
            let limit = if c.is_ca { 365 } else { 30 };
            left(c) < SignedDuration::from_hours(24 * limit)
        })
        .map(|c| format!("{} ({} left)", c.name, humanize(left(c))))
        .collect();
    let earliest = certs
        .iter()
        .min_by_key(|c| c.not_after)
        .map(|c| format!("{} expires first, in {}", c.name, humanize(left(c))));
    if soon.is_empty() {
        Check::pass(
            "certificates",
            format!(
                "{} certificate(s) valid; {}",
                certs.len(),
                earliest.unwrap_or_default()
            ),
        )
    } else {
        Check::new(
            "certificates",
            Status::Warn,
            format!("expiring soon: {}", list(&soon)),
            Some(
                "kubeadm upgrade apply renews leaf certificates; plan a CA rotation for CAs".into(),
            ),
        )
    }
}

/// An object found using a removed API version, and how that was established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedApiUse {
    /// `apiVersion` in use (`policy/v1beta1`).
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// `namespace/name` or `name`.
    pub object: String,
    /// How it was detected (`only policy/v1beta1 is served`, `managedFields: kubectl-create`, ...).
    pub detected_by: String,
}

/// Objects in API versions the path removes: each removal crossed with objects fails, the
/// others pass. `checked` names the removals whose objects were actually listed.
pub fn check_removed_apis(
    from: Minor,
    to: Minor,
    removals: &[&RemovedApi],
    found: &[RemovedApiUse],
    not_checked: &[String],
) -> Vec<Check> {
    let mut out = Vec::new();
    for removal in removals {
        let api_version = removal.api_version();
        let objects: Vec<String> = found
            .iter()
            .filter(|f| f.api_version == api_version && f.kind == removal.kind)
            .map(|f| format!("{} [{}]", f.object, f.detected_by))
            .collect();
        if !objects.is_empty() {
            out.push(Check::new(
                "removed-api",
                Status::Fail,
                format!(
                    "{} {} is removed in {}; {} object(s) use it: {}",
                    api_version,
                    removal.kind,
                    removal.removed_in,
                    objects.len(),
                    list(&objects)
                ),
                Some(format!(
                    "migrate manifests and clients to {} before the {} step (re-apply the objects with the new apiVersion)",
                    removal.replacement, removal.removed_in
                )),
            ));
        }
    }
    if out.is_empty() {
        let message = if removals.is_empty() {
            format!("no API version is removed between {from} and {to}")
        } else {
            format!(
                "{} removed API version(s) between {from} and {to}; no object found using them",
                removals.len()
            )
        };
        out.push(Check::pass("removed-api", message));
    }
    if !not_checked.is_empty() {
        out.push(Check::new(
            "removed-api",
            Status::Warn,
            format!("could not list: {}", list(not_checked)),
            Some("check these with an account that may list them".into()),
        ));
    }
    out
}

/// A PDB problem for draining one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrainBlocker {
    /// The node.
    pub node: String,
    /// The drain core's explanation.
    pub explanation: String,
    /// Whether it can never resolve by waiting (deadlock PDB, several PDBs over one pod).
    pub permanent: bool,
}

/// Drain blockers: permanent ones fail (every kubelet upgrade drains its node), temporary ones
/// warn.
pub fn check_drain(nodes_checked: usize, blockers: &[DrainBlocker]) -> Check {
    if blockers.is_empty() {
        return Check::pass(
            "drain-pdb",
            format!("no PodDisruptionBudget blocks draining any of {nodes_checked} node(s)"),
        );
    }
    let permanent: Vec<String> = blockers
        .iter()
        .filter(|b| b.permanent)
        .map(|b| format!("{}: {}", b.node, b.explanation))
        .collect();
    let temporary: Vec<String> = blockers
        .iter()
        .filter(|b| !b.permanent)
        .map(|b| format!("{}: {}", b.node, b.explanation))
        .collect();
    if !permanent.is_empty() {
        Check::new(
            "drain-pdb",
            Status::Fail,
            format!("draining would hang: {}", list(&permanent)),
            Some("fix the budgets (scale up, relax minAvailable/maxUnavailable, remove overlapping PDBs) before upgrading kubelets".into()),
        )
    } else {
        Check::new(
            "drain-pdb",
            Status::Warn,
            format!("draining would wait: {}", list(&temporary)),
            Some("wait for the workloads to become healthy, or expect slow drains".into()),
        )
    }
}

/// The drain's PDB preflight for every node: the pods a drain would evict (not mirror pods,
/// not DaemonSet pods, not finished) judged against the PDBs of their namespace.
pub fn drain_blockers(
    nodes: &[Node],
    pods: &[Pod],
    pdbs: &[PodDisruptionBudget],
    sem: SelectorSemantics,
) -> Vec<DrainBlocker> {
    let mut pdbs_by_ns: HashMap<&str, Vec<PodDisruptionBudget>> = HashMap::new();
    for pdb in pdbs {
        pdbs_by_ns
            .entry(pdb.metadata.namespace.as_deref().unwrap_or(""))
            .or_default()
            .push(pdb.clone());
    }
    // node → namespace → pods to evict (only namespaces that have PDBs matter).
    let mut per_node: HashMap<&str, BTreeMap<&str, Vec<&Pod>>> = HashMap::new();
    for pod in pods {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        if !pdbs_by_ns.contains_key(ns)
            || is_mirror_pod(pod)
            || is_finished(pod)
            || controller_of(pod).is_some_and(is_daemonset_ref)
        {
            continue;
        }
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            per_node
                .entry(node)
                .or_default()
                .entry(ns)
                .or_default()
                .push(pod);
        }
    }
    let mut out = Vec::new();
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let Some(namespaces) = per_node.get(name) else {
            continue;
        };
        for (ns, pods) in namespaces {
            for blocker in node_blockers(pods, &pdbs_by_ns[ns], sem) {
                let permanent = match blocker.kind {
                    BlockerKind::MultiplePdbs | BlockerKind::NeverAllows => true,
                    BlockerKind::NoDisruptionsNow | BlockerKind::Stale => false,
                    BlockerKind::Paced => continue,
                };
                out.push(DrainBlocker {
                    node: name.to_string(),
                    explanation: blocker.explanation,
                    permanent,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn nodes() {
        let checks = check_nodes(&[
            NodeFacts {
                name: "a".into(),
                ready: Some(true),
                cordoned: false,
            },
            NodeFacts {
                name: "b".into(),
                ready: Some(false),
                cordoned: true,
            },
            NodeFacts {
                name: "c".into(),
                ready: None,
                cordoned: false,
            },
        ]);
        assert_eq!(checks[0].status, Status::Fail);
        assert!(checks[0].message.contains("b, c"), "{}", checks[0].message);
        assert_eq!(checks[1].status, Status::Warn);
        assert!(checks[1].message.contains('b'));
        let ok = check_nodes(&[NodeFacts {
            name: "a".into(),
            ready: Some(true),
            cordoned: false,
        }]);
        assert_eq!(worst(&ok), Status::Pass);
    }

    #[test]
    fn backups_by_age() {
        let now = ts("2026-12-04T12:00:00Z");
        let day = SignedDuration::from_hours(24);
        assert_eq!(check_backup(None, None, now, day).status, Status::Warn);
        assert_eq!(
            check_backup(Some("/b"), None, now, day).status,
            Status::Fail
        );
        let fresh = check_backup(
            Some("/b"),
            Some(("x.db".into(), ts("2026-12-04T11:00:00Z"))),
            now,
            day,
        );
        assert_eq!(fresh.status, Status::Pass);
        assert!(fresh.message.contains("60m"), "{}", fresh.message);
        let old = check_backup(
            Some("/b"),
            Some(("x.db".into(), ts("2026-12-01T12:00:00Z"))),
            now,
            day,
        );
        assert_eq!(old.status, Status::Warn);
        assert!(old.message.contains("3d"));
        // Exactly at the limit still passes.
        let edge = check_backup(
            Some("/b"),
            Some(("x.db".into(), ts("2026-12-03T12:00:00Z"))),
            now,
            day,
        );
        assert_eq!(edge.status, Status::Pass);
    }

    #[test]
    fn certificates_by_expiry() {
        let now = ts("2026-12-04T12:00:00Z");
        let cert = |name: &str, not_after: &str, is_ca| CertFacts {
            name: name.into(),
            not_after: ts(not_after),
            is_ca,
        };
        assert_eq!(check_certificates(None, &[], now).status, Status::Warn);
        let ok = check_certificates(
            Some("/pki"),
            &[
                cert("apiserver.crt", "2027-06-01T00:00:00Z", false),
                cert("ca.crt", "2035-01-01T00:00:00Z", true),
            ],
            now,
        );
        assert_eq!(ok.status, Status::Pass);
        assert!(ok.message.contains("apiserver.crt expires first"));
        let soon = check_certificates(
            Some("/pki"),
            &[cert("apiserver.crt", "2026-12-20T00:00:00Z", false)],
            now,
        );
        assert_eq!(soon.status, Status::Warn);
        let ca_soon = check_certificates(
            Some("/pki"),
            &[cert("ca.crt", "2027-06-01T00:00:00Z", true)],
            now,
        );
        assert_eq!(ca_soon.status, Status::Warn);
        let expired = check_certificates(
            Some("/pki"),
            &[cert(
                "front-proxy-client.crt",
                "2026-12-01T00:00:00Z",
                false,
            )],
            now,
        );
        assert_eq!(expired.status, Status::Fail);
        assert!(expired.message.contains("front-proxy-client.crt"));
    }

    #[test]
    fn etcd_checks() {
        let member = |name: &str, version: Option<&str>| EtcdMemberFacts {
            name: name.into(),
            endpoint: format!("https://{name}:2379"),
            version: version.map(str::to_string),
            error: version.is_none().then(|| "connection refused".to_string()),
        };
        assert_eq!(check_etcd(None, None, "3.4.13-0")[0].status, Status::Warn);
        let healthy = [member("a", Some("3.4.13"))];
        assert_eq!(
            worst(&check_etcd(Some(&healthy), None, "3.4.13-0")),
            Status::Pass
        );
        let one_down = [
            member("a", Some("3.4.13")),
            member("b", None),
            member("c", Some("3.4.13")),
        ];
        let checks = check_etcd(Some(&one_down), None, "3.4.13-0");
        assert_eq!(checks[0].status, Status::Fail);
        assert!(checks[0].message.contains("connection refused"));
        let even = [member("a", Some("3.4.13")), member("b", Some("3.4.13"))];
        assert_eq!(
            check_etcd(Some(&even), None, "3.4.13-0")[1].status,
            Status::Warn
        );
        // 3.5 → 3.6 needs 3.5.26.
        let old35 = [member("a", Some("3.5.24"))];
        let checks = check_etcd(Some(&old35), None, "3.6.5-0");
        assert_eq!(checks[2].status, Status::Fail);
        let new35 = [member("a", Some("3.5.26"))];
        assert_eq!(
            check_etcd(Some(&new35), None, "3.6.5-0")[2].status,
            Status::Pass
        );
        assert_eq!(
            check_etcd(Some(&old35), None, "3.5.24-0")[2].status,
            Status::Pass
        );
    }

    #[test]
    fn removed_api_checks() {
        use crate::upgrade::removed::removed_between;
        let from = Minor::new(1, 19);
        let to = Minor::new(1, 25);
        let removals: Vec<_> = removed_between(from, to).collect();
        let found = [RemovedApiUse {
            api_version: "policy/v1beta1".into(),
            kind: "PodDisruptionBudget".into(),
            object: "default/web".into(),
            detected_by: "only policy/v1beta1 is served".into(),
        }];
        let checks = check_removed_apis(from, to, &removals, &found, &[]);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, Status::Fail);
        assert!(checks[0].message.contains("default/web"));
        assert!(checks[0].action.as_deref().unwrap().contains("policy/v1"));
        let clean =
            check_removed_apis(from, to, &removals, &[], &["batch/v1beta1 cronjobs".into()]);
        assert_eq!(clean[0].status, Status::Pass);
        assert_eq!(clean[1].status, Status::Warn);
        let none = check_removed_apis(from, Minor::new(1, 21), &[], &[], &[]);
        assert!(none[0].message.contains("no API version is removed"));
    }

    #[test]
    fn drain_blockers_per_node() {
        use crate::drain::testing::{NodeBuilder, PodBuilder, pdb};
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let nodes = vec![
            NodeBuilder::new("w1").build(),
            NodeBuilder::new("w2").build(),
        ];
        let pods = vec![
            PodBuilder::new("db", "db-0")
                .on("w1")
                .label("app", "db")
                .rs("db")
                .build(),
            PodBuilder::new("web", "web-0")
                .on("w2")
                .label("app", "web")
                .rs("web")
                .build(),
            // DaemonSet and mirror pods are not evicted by a drain: never blockers.
            PodBuilder::new("db", "agent")
                .on("w2")
                .label("app", "db")
                .ds("agent")
                .build(),
            PodBuilder::new("db", "static")
                .on("w2")
                .label("app", "db")
                .mirror()
                .build(),
        ];
        let budgets = vec![
            // maxUnavailable 0: a deadlock whatever the scale.
            pdb(
                "db",
                "db-pdb",
                "db",
                None,
                Some(IntOrString::Int(0)),
                (0, 1, 1, 1),
            ),
            // Healthy budget with room: no blocker.
            pdb(
                "web",
                "web-pdb",
                "web",
                None,
                Some(IntOrString::Int(1)),
                (1, 2, 1, 2),
            ),
        ];
        let found = drain_blockers(&nodes, &pods, &budgets, SelectorSemantics::V1);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].node, "w1");
        assert!(found[0].permanent);
        assert!(
            found[0].explanation.contains("db/db-pdb"),
            "{}",
            found[0].explanation
        );
        assert_eq!(check_drain(2, &found).status, Status::Fail);
    }

    #[test]
    fn drain_and_skew() {
        assert_eq!(check_drain(3, &[]).status, Status::Pass);
        let temp = DrainBlocker {
            node: "w1".into(),
            explanation: "PDB x allows 0".into(),
            permanent: false,
        };
        assert_eq!(
            check_drain(3, std::slice::from_ref(&temp)).status,
            Status::Warn
        );
        let perm = DrainBlocker {
            permanent: true,
            ..temp.clone()
        };
        assert_eq!(check_drain(3, &[temp, perm]).status, Status::Fail);
        assert_eq!(check_current_skew(&[]).status, Status::Pass);
        let behind = check_kubelets_behind(
            &Version::new(1, 19, 16),
            &[
                ("w2".into(), Version::new(1, 18, 20)),
                ("w1".into(), Version::new(1, 19, 16)),
            ],
        );
        assert_eq!(behind.status, Status::Warn);
        assert!(behind.message.contains("w2 (v1.18.20)"));
    }
}
