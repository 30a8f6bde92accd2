//! The run's Lease (`coordination.k8s.io/v1`, `kube-system/kubemaint-upgrade-apply`): taken
//! when a run starts, renewed while it lives, released when it ends. A second run is refused
//! while the Lease is held; a stale one (not renewed within its duration: the holder is gone)
//! is taken over. Every write carries the `resourceVersion` read, so two runs racing for it
//! cannot both win.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kubemaint_core::upgrade::apply::lock::{LeaseVerdict, LeaseView, lease_verdict};
use tokio::sync::Mutex;

use super::{ApplyError, NAME, NAMESPACE, is_conflict, is_not_found};

/// How the Lease was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// It was free.
    Free,
    /// It was stale: its holder had not renewed it for `renewed_ago` seconds.
    TookOver {
        /// The previous holder.
        holder: String,
        /// Seconds since its last renewal.
        renewed_ago: i64,
    },
}

/// A held Lease.
pub struct HeldLease {
    api: Api<Lease>,
    identity: String,
    duration: Duration,
    current: Mutex<Lease>,
    lost: Arc<AtomicBool>,
}

fn view(lease: &Lease) -> LeaseView {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseView {
        holder: spec.holder_identity,
        renewed_at: spec
            .renew_time
            .or(spec.acquire_time)
            .map(|t| t.0.as_second()),
        duration_seconds: spec.lease_duration_seconds,
    }
}

/// Takes the Lease for `identity` (`user@host/pid`), or says who holds it.
pub async fn acquire(
    client: kube::Client,
    identity: &str,
    duration: Duration,
) -> Result<(Arc<HeldLease>, Acquired), ApplyError> {
    let api: Api<Lease> = Api::namespaced(client, NAMESPACE);
    let now = jiff::Timestamp::now();
    let existing = match api.get(NAME).await {
        Ok(lease) => Some(lease),
        Err(e) if is_not_found(&e) => None,
        Err(e) => {
            return Err(ApplyError::request(format!(
                "read the Lease {NAMESPACE}/{NAME}"
            ))(e));
        }
    };
    let (acquired, transitions) = match &existing {
        None => (Acquired::Free, 0),
        Some(lease) => {
            let transitions = lease
                .spec
                .as_ref()
                .and_then(|s| s.lease_transitions)
                .unwrap_or(0);
            match lease_verdict(&view(lease), identity, now.as_second()) {
                LeaseVerdict::Free | LeaseVerdict::Ours => (Acquired::Free, transitions + 1),
                LeaseVerdict::Held {
                    holder,
                    renewed_ago,
                    stale_in,
                } => {
                    return Err(ApplyError::Held {
                        holder,
                        renewed_ago,
                        stale_in,
                    });
                }
                LeaseVerdict::Stale {
                    holder,
                    renewed_ago,
                } => (
                    Acquired::TookOver {
                        holder,
                        renewed_ago,
                    },
                    transitions + 1,
                ),
            }
        }
    };
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(NAMESPACE.into()),
            resource_version: existing
                .as_ref()
                .and_then(|l| l.metadata.resource_version.clone()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(identity.into()),
            lease_duration_seconds: Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }),
    };
    let pp = PostParams::default();
    let written = match existing {
        None => api.create(&pp, &lease).await,
        Some(_) => api.replace(NAME, &pp, &lease).await,
    };
    let lease = match written {
        Ok(lease) => lease,
        // Someone else took it between our read and our write: they won.
        Err(e) if is_conflict(&e) => {
            let holder = api
                .get(NAME)
                .await
                .ok()
                .and_then(|l| l.spec.and_then(|s| s.holder_identity))
                .unwrap_or_else(|| "another run".into());
            return Err(ApplyError::Held {
                holder,
                renewed_ago: 0,
                stale_in: duration.as_secs() as i64,
            });
        }
        Err(e) => {
            return Err(ApplyError::request(format!(
                "take the Lease {NAMESPACE}/{NAME}"
            ))(e));
        }
    };
    Ok((
        Arc::new(HeldLease {
            api,
            identity: identity.into(),
            duration,
            current: Mutex::new(lease),
            lost: Arc::new(AtomicBool::new(false)),
        }),
        acquired,
    ))
}

impl HeldLease {
    /// Renews the Lease once.
    pub async fn renew(&self) -> Result<(), ApplyError> {
        let mut current = self.current.lock().await;
        let mut lease = current.clone();
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        }
        match self.api.replace(NAME, &PostParams::default(), &lease).await {
            Ok(written) => {
                *current = written;
                Ok(())
            }
            Err(e) if is_conflict(&e) => {
                self.lost.store(true, Ordering::SeqCst);
                let holder = self
                    .api
                    .get(NAME)
                    .await
                    .ok()
                    .and_then(|l| l.spec.and_then(|s| s.holder_identity))
                    .unwrap_or_default();
                Err(ApplyError::LeaseLost { holder })
            }
            Err(e) => Err(ApplyError::request(format!(
                "renew the Lease {NAMESPACE}/{NAME}"
            ))(e)),
        }
    }

    /// Renews every third of the duration until the returned task is aborted; sets
    /// [`HeldLease::lost`] when another run took the Lease (failed renewals are retried: the
    /// Lease only goes stale after a whole duration without one).
    pub fn keep_alive(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let period = me.duration / 3;
            loop {
                tokio::time::sleep(period).await;
                match me.renew().await {
                    Ok(()) => {}
                    Err(ApplyError::LeaseLost { holder }) => {
                        tracing::warn!(%holder, "the run's Lease was taken over");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew the run's Lease; retrying"),
                }
            }
        })
    }

    /// Whether another run took the Lease.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// This run's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Releases the Lease (clears the holder) so the next run starts at once.
    pub async fn release(&self) -> Result<(), ApplyError> {
        let current = self.current.lock().await;
        let mut lease = current.clone();
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        }
        match self.api.replace(NAME, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            Err(e) => Err(ApplyError::request(format!(
                "release the Lease {NAMESPACE}/{NAME}"
            ))(e)),
        }
    }
}
