//! etcd before an upgrade: member health, count and the version floor, and the age of the
//! newest snapshot.

use jiff::{SignedDuration, Timestamp};

use super::{Check, Status, humanize, list};
use crate::upgrade::plan::addon_version;
use crate::upgrade::version::Version;

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
