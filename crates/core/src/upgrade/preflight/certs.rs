//! Certificate expiry in the kubeadm PKI.

use jiff::{SignedDuration, Timestamp};

use super::{Check, Status, humanize, list};

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
