//! The cluster edge of `kubemaint upgrade apply`: the run's record in a ConfigMap (optimistic
//! concurrency), the run's Lease, and the observations the core's next-step function, waits
//! and health gate decide on.
//!
//! - [`store`]: the run record (`kube-system/kubemaint-upgrade-apply`, key `run.json`),
//!   written with the `resourceVersion` read, so two writers never overwrite each other.
//! - [`lease`]: the `coordination.k8s.io/v1` Lease held and renewed while a run is alive.
//! - [`observe`]: node facts, mirror pods, a control-plane node's own `/version`, etcd and
//!   PodDisruptionBudget health.

pub mod lease;
pub mod observe;
pub mod store;

/// The namespace of the run's ConfigMap and Lease.
pub const NAMESPACE: &str = "kube-system";
/// The name of the run's ConfigMap and Lease.
pub const NAME: &str = "kubemaint-upgrade-apply";

/// Errors of the upgrade-apply edge.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A request failed.
    #[error("cannot {what}")]
    Request {
        /// What was asked.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Another run holds the Lease.
    #[error(
        "another `upgrade apply` is running: the Lease {NAMESPACE}/{NAME} is held by {holder}, renewed {renewed_ago}s ago (it goes stale in {stale_in}s if that run is gone); wait for it, or stop it and run again with --resume"
    )]
    Held {
        /// The holder's identity.
        holder: String,
        /// Seconds since its last renewal.
        renewed_ago: i64,
        /// Seconds until it goes stale.
        stale_in: i64,
    },
    /// The record changed under us (someone else wrote it).
    #[error(
        "the run record {NAMESPACE}/{NAME} was changed by someone else while this run held the Lease; stopping (check who else runs `upgrade apply`, then --resume)"
    )]
    Conflict,
    /// The Lease was taken by another run.
    #[error("the Lease {NAMESPACE}/{NAME} was taken over by {holder}; this run stops")]
    LeaseLost {
        /// Who holds it now.
        holder: String,
    },
    /// PodDisruptionBudgets could not be read.
    #[error("cannot read the PodDisruptionBudgets for the health gate")]
    Budgets {
        /// Why.
        #[source]
        source: Box<crate::ClusterError>,
    },
    /// The record does not parse.
    #[error(
        "the run record {NAMESPACE}/{NAME} is not a kubemaint run (key run.json); delete the ConfigMap to start over"
    )]
    Record(#[source] serde_json::Error),
}

impl ApplyError {
    pub(crate) fn request(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| ApplyError::Request { what, source }
    }
}

/// Whether a kube error is the API's 409 Conflict / AlreadyExists.
pub(crate) fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Whether a kube error is the API's 404.
pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
