//! Kubernetes version upgrades as pure decisions: versions, the skew policy, the release index,
//! the path planner, the removed-API table and the preflight verdicts.
//!
//! The `kubemaint upgrade plan` command discovers the versions a cluster runs, hands them in
//! here as a [`plan::ClusterState`], and prints the [`plan::UpgradePlan`] and the
//! [`preflight::Check`]s that come back. `kubemaint upgrade apply` turns the plan into node
//! jobs and runs them through the state machine of [`apply`].

pub mod apply;
pub mod drain_checks;
pub mod node_commands;
pub mod plan;
pub mod preflight;
pub mod releases;
pub mod removed;
pub mod skew;
pub mod version;

pub use plan::{ClusterState, UpgradePlan, plan};
pub use releases::ReleaseIndex;
pub use skew::{ClusterVersions, Component, Instance};
pub use version::{Minor, Version};
