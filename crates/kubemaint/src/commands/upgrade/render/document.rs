//! The `-o json|yaml` document: kubeadm's `UpgradePlan` rows plus what kubeadm does not have.

use std::collections::BTreeMap;

use kubemaint_cluster::upgrade::versions::Discovered;
use kubemaint_core::upgrade::Version;
use kubemaint_core::upgrade::plan::{Action, Phase, addon_version};
use kubemaint_core::upgrade::preflight::Check;
use kubemaint_core::upgrade::skew::SkewFinding;
use serde::Serialize;

use super::{Report, step_description};

/// One row of kubeadm's component table.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentUpgradePlan {
    /// Component name.
    pub name: String,
    /// Node, when per node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Current version (empty when unknown).
    pub current_version: String,
    /// Version after the plan.
    pub new_version: String,
    /// Where in the step (our addition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Why it moves early (our addition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One step, as kubeadm's `AvailableUpgrade`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailableUpgrade {
    /// `step 1 of 2: v1.19.16 -> v1.20.15`.
    pub description: String,
    /// The version reached.
    pub version: String,
    /// etcd kubeadm deploys for it.
    pub etcd_version: String,
    /// CoreDNS kubeadm deploys for it.
    pub core_dns_version: String,
    /// The moves in order.
    pub components: Vec<ComponentUpgradePlan>,
    /// Skew findings predicted inside the step (empty: within policy throughout).
    pub violations: Vec<SkewFinding>,
}

/// The `-o json|yaml` document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanDocument<'a> {
    /// `kubemaint/v1alpha1`.
    pub api_version: &'static str,
    /// `UpgradePlan`.
    pub kind: &'static str,
    /// Oldest kube-apiserver.
    pub current_version: String,
    /// `/version`.
    pub server_version: Option<&'a str>,
    /// `kubeadm-config` ClusterConfiguration `kubernetesVersion`.
    pub kubeadm_config_version: Option<&'a str>,
    /// Target.
    pub target_version: String,
    /// Release index source.
    pub release_index: &'a str,
    /// Every component found, where, and from what.
    pub discovered: &'a [Discovered],
    /// Kubelet node names per version.
    pub kubelets_by_version: BTreeMap<String, Vec<String>>,
    /// The whole plan per component: current → target.
    pub components: Vec<ComponentUpgradePlan>,
    /// Skew findings now.
    pub findings: &'a [SkewFinding],
    /// The steps.
    pub available_upgrades: Vec<AvailableUpgrade>,
    /// Preflight lines.
    pub preflight: &'a [Check],
    /// What could not be discovered.
    pub unknown: &'a [String],
}

fn action_row(a: &Action) -> ComponentUpgradePlan {
    ComponentUpgradePlan {
        name: a.component.name().to_string(),
        node_name: a.node.clone(),
        current_version: a.from.clone().unwrap_or_default(),
        new_version: a.to.clone(),
        phase: Some(a.phase),
        reason: a.reason.clone(),
    }
}

/// Table order: kubeadm's (control plane, etcd, add-ons), then kubelets.
fn component_rank(name: &str) -> usize {
    [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "cloud-controller-manager",
        "etcd",
        "kube-proxy",
        "CoreDNS",
        "kubelet",
    ]
    .iter()
    .position(|n| *n == name)
    .unwrap_or(usize::MAX)
}

/// The overall current → target row per discovered component.
pub fn summary_rows(report: &Report<'_>) -> Vec<ComponentUpgradePlan> {
    let last = report.plan.steps.last();
    let target = report.plan.target.to_string();
    let mut found: Vec<&Discovered> = report
        .found
        .components
        .iter()
        .filter(|d| d.name != "kubeadm-config")
        .collect();
    found.sort_by_key(|d| component_rank(&d.name));
    found
        .into_iter()
        .map(|d| {
            let current = d.current_version.clone().unwrap_or_default();
            let new_version = match d.name.as_str() {
                "etcd" => match (last, addon_version(&current)) {
                    (Some(step), Some(have))
                        if addon_version(&step.etcd).is_some_and(|want| want > have) =>
                    {
                        step.etcd.clone()
                    }
                    _ => current.clone(),
                },
                "CoreDNS" => match (last, addon_version(&current)) {
                    (Some(step), Some(have))
                        if addon_version(&step.coredns).is_some_and(|want| want > have) =>
                    {
                        step.coredns.clone()
                    }
                    _ => current.clone(),
                },
                _ => match Version::parse(&current) {
                    Ok(v) if v >= report.plan.target => current.clone(),
                    _ => target.clone(),
                },
            };
            ComponentUpgradePlan {
                name: d.name.clone(),
                node_name: d.node_name.clone(),
                current_version: current,
                new_version,
                phase: None,
                reason: None,
            }
        })
        .collect()
}

pub(super) fn kubelets_by_version(report: &Report<'_>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in &report.found.state.versions.kubelets {
        out.entry(k.version.to_string())
            .or_default()
            .push(k.node.clone().unwrap_or_default());
    }
    out
}

/// The JSON/YAML document.
pub fn document<'a>(report: &'a Report<'a>) -> PlanDocument<'a> {
    PlanDocument {
        api_version: "kubemaint/v1alpha1",
        kind: "UpgradePlan",
        current_version: report.plan.current.to_string(),
        server_version: report.server_version,
        kubeadm_config_version: report.found.kubeadm_kubernetes_version.as_deref(),
        target_version: report.plan.target.to_string(),
        release_index: report.index_source,
        discovered: &report.found.components,
        kubelets_by_version: kubelets_by_version(report),
        components: summary_rows(report),
        findings: &report.plan.current_findings,
        available_upgrades: report
            .plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| AvailableUpgrade {
                description: step_description(report.plan, i),
                version: s.version.to_string(),
                etcd_version: s.etcd.clone(),
                core_dns_version: s.coredns.clone(),
                components: s.actions.iter().map(action_row).collect(),
                violations: s.violations.clone(),
            })
            .collect(),
        preflight: report.checks,
        unknown: &report.found.unknown,
    }
}
