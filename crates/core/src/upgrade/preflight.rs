//! Preflight verdicts for an upgrade: each check a line with pass / warn / fail and what to do.
//!
//! The command gathers facts (nodes, etcd members, backups, certificates, objects in removed
//! API versions, the local kubectl) and these functions judge them; time is passed in. The
//! drain's own checks (PDB blockers, room for a drained node) are in
//! [`super::drain_checks`].

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::removed::RemovedApi;
use super::skew::{self, ClusterVersions, Instance, Rule, SkewFinding};
use super::version::{Minor, Version};
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
    pub(crate) fn new(name: &str, status: Status, message: String, action: Option<String>) -> Self {
        Self {
            name: name.to_string(),
            status,
            message,
            action,
        }
    }

    pub(crate) fn pass(name: &str, message: String) -> Self {
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

pub(crate) fn list(names: &[String]) -> String {
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

#[cfg(test)]
mod tests;
