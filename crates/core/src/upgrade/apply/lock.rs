//! Who may run: the verdict on the run's Lease (`coordination.k8s.io/v1`), from its holder,
//! last renewal and duration. A Lease whose holder has not renewed it within its duration is
//! stale: the holder is gone and a new run takes it over, saying so.

use serde::{Deserialize, Serialize};

/// The Lease as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseView {
    /// `spec.holderIdentity` (`None` or empty: released).
    pub holder: Option<String>,
    /// `spec.renewTime` (else `acquireTime`), seconds since the epoch.
    pub renewed_at: Option<i64>,
    /// `spec.leaseDurationSeconds`.
    pub duration_seconds: Option<i32>,
}

/// What a run that wants the Lease may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseVerdict {
    /// Nobody holds it: take it.
    Free,
    /// Held by this very process (a retry): keep it.
    Ours,
    /// Held and alive: refuse to start.
    Held {
        /// Who holds it.
        holder: String,
        /// Seconds since its last renewal.
        renewed_ago: i64,
        /// Seconds until it goes stale.
        stale_in: i64,
    },
    /// Held but not renewed within its duration: take it over, saying so.
    Stale {
        /// The previous holder.
        holder: String,
        /// Seconds since its last renewal.
        renewed_ago: i64,
    },
}

/// The verdict at `now` (seconds since the epoch) for a run identified as `me`.
pub fn lease_verdict(lease: &LeaseView, me: &str, now: i64) -> LeaseVerdict {
    let holder = match lease.holder.as_deref() {
        None | Some("") => return LeaseVerdict::Free,
        Some(h) if h == me => return LeaseVerdict::Ours,
        Some(h) => h.to_string(),
    };
    // A Lease without a renewal time or duration was never renewed as ours are: stale.
    let (Some(renewed_at), Some(duration)) = (lease.renewed_at, lease.duration_seconds) else {
        return LeaseVerdict::Stale {
            holder,
            renewed_ago: 0,
        };
    };
    let renewed_ago = now - renewed_at;
    let stale_in = i64::from(duration) - renewed_ago;
    if stale_in > 0 {
        LeaseVerdict::Held {
            holder,
            renewed_ago,
            stale_in,
        }
    } else {
        LeaseVerdict::Stale {
            holder,
            renewed_ago,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let lease = |holder: Option<&str>, renewed_at, duration| LeaseView {
            holder: holder.map(str::to_string),
            renewed_at,
            duration_seconds: duration,
        };
        let me = "root@host/12";
        assert_eq!(
            lease_verdict(&lease(None, None, None), me, 100),
            LeaseVerdict::Free
        );
        assert_eq!(
            lease_verdict(&lease(Some(""), Some(99), Some(30)), me, 100),
            LeaseVerdict::Free
        );
        assert_eq!(
            lease_verdict(&lease(Some(me), Some(0), Some(30)), me, 100),
            LeaseVerdict::Ours
        );
        assert_eq!(
            lease_verdict(&lease(Some("ann@b/7"), Some(90), Some(30)), me, 100),
            LeaseVerdict::Held {
                holder: "ann@b/7".into(),
                renewed_ago: 10,
                stale_in: 20
            }
        );
        assert_eq!(
            lease_verdict(&lease(Some("ann@b/7"), Some(70), Some(30)), me, 100),
            LeaseVerdict::Stale {
                holder: "ann@b/7".into(),
                renewed_ago: 30
            }
        );
        assert!(matches!(
            lease_verdict(&lease(Some("ann@b/7"), None, Some(30)), me, 100),
            LeaseVerdict::Stale { .. }
        ));
    }
}
