//! kubemaint-cluster: the cluster edge. Everything here talks to a Kubernetes API server
//! (discovery, listing, cordon patches, evictions, watches); every decision it acts on comes
//! from `kubemaint-core` as a pure function.
//!
//! - [`read`]: discovery (Eviction and PodDisruptionBudget API versions) and the listings the
//!   drain planner needs (nodes, pods, PDBs, DaemonSets, volume node affinity).
//! - [`nodes`]: resolving node names or a selector, and kubectl's cordon / uncordon.
//! - [`upgrade`]: the reads behind upgrade plans: every component's version per node and the
//!   preflight facts that need the API.
//! - [`drain`]: the drain engine, driven by a resolved [`kubemaint_core::drain::config::DrainConfig`]:
//!   [`drain::drain`] reads, plans, decides the batch, cordons and removes pods,
//!   reporting kubectl's lines through a [`drain::Reporter`] and returning a
//!   [`drain::DrainReport`].
//! - [`apply`]: `upgrade apply`'s run record (ConfigMap), Lease and observations.
//! - [`exec`]: running a node's upgrade commands (`upgrade apply`): the [`exec::Executor`]
//!   trait and the local [`exec::command::CommandExecutor`].
//!
//! Clients: kube retries HTTP 429 by itself, which would hide a PodDisruptionBudget refusal;
//! the eviction client handed in must have `default_retry` off.
#![warn(missing_docs)]

pub mod apply;
pub mod drain;
pub mod exec;
pub mod nodes;
pub mod read;
pub mod upgrade;

/// Errors of the cluster edge. Messages say what failed and what to check; the API error is
/// the source.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A request failed.
    #[error("cannot {what}")]
    Request {
        /// What was asked (`list nodes`, `get node worker-1`, ...).
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Named nodes do not exist.
    #[error("{}: check the node names with `kubectl get nodes`", .names.iter().map(|n| format!("nodes \"{n}\" not found")).collect::<Vec<_>>().join(", "))]
    NodesNotFound {
        /// The missing names.
        names: Vec<String>,
    },
    /// A PodDisruptionBudget did not have the shape of `policy/v1`.
    #[error("unexpected PodDisruptionBudget shape from the API server")]
    PdbShape(#[source] serde_json::Error),
    /// A watch ended before its first list.
    #[error("the watch of {what} ended before its first list")]
    Watch {
        /// What was watched.
        what: String,
        /// Why.
        #[source]
        source: kube::runtime::reflector::store::WriterDropped,
    },
}

impl ClusterError {
    pub(crate) fn request(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| ClusterError::Request { what, source }
    }
}
