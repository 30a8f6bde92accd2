//! The cluster reads behind `kubemaint upgrade plan` (and `upgrade apply`, which re-reads the
//! cluster before and between its moves):
//!
//! - [`versions`]: every component's version as the cluster shows it (`/version`, nodes'
//!   kubelets, control-plane mirror pods per node, kube-proxy, CoreDNS, `kubeadm-config`),
//!   behind the [`versions::ClusterReader`] trait, reduced by the pure
//!   [`versions::interpret`] to the core planner's [`kubemaint_core::upgrade::ClusterState`].
//! - [`checks`]: the preflight facts that need the API (node readiness and cordons, PDBs that
//!   would block a drain, objects stored in API versions the target removes), handed to the
//!   core's verdicts in [`kubemaint_core::upgrade::preflight`].

pub mod checks;
pub mod versions;
