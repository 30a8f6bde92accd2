//! kubemaint-core: the decisions kubemaint makes, as pure functions from data to data.
//!
//! Nothing here talks to a cluster, a file or a clock: callers feed objects in and get
//! verdicts out, so every rule is unit- and property-tested without a server.
//!
//! Modules over Kubernetes object types (`k8s-openapi`: [`drain`]) come with the default `k8s`
//! feature, so the etcd crate shares [`duration`] without depending on Kubernetes.
#![warn(missing_docs)]

#[cfg(feature = "k8s")]
pub mod drain;
pub mod duration;
pub mod retention;
pub mod schedule;
pub mod secret;
pub mod upgrade;
