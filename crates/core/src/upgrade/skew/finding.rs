//! What the policy reports: the rule broken and the two parties it is measured between.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Component;
use crate::upgrade::version::Version;

/// A rule of the skew policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The newest and oldest kube-apiserver instances must be within one minor.
    ApiserverHaSkew,
    /// A kubelet must not be newer than kube-apiserver.
    KubeletNewerThanApiserver,
    /// A kubelet may be at most 3 minors older than kube-apiserver (2 below 1.25).
    KubeletTooOld,
    /// kube-proxy must not be newer than kube-apiserver.
    KubeProxyNewerThanApiserver,
    /// kube-proxy may be at most 3 minors older than kube-apiserver (2 below 1.25).
    KubeProxyTooOld,
    /// kube-proxy within 3 minors (2 below 1.25) of the kubelet on its node.
    KubeProxyKubeletSkew,
    /// controller-manager / scheduler / cloud-controller-manager not newer than kube-apiserver.
    ControlPlaneNewerThanApiserver,
    /// controller-manager / scheduler / cloud-controller-manager at most one minor older.
    ControlPlaneTooOld,
    /// kubectl within one minor of kube-apiserver.
    KubectlSkew,
    /// kubeadm's own check before `upgrade apply`: kubelets at most 1 minor older than the
    /// target (kubeadm < 1.29, `MaximumAllowedMinorVersionKubeletSkew = 1`), 3 from 1.29
    /// (`MinimumKubeletVersion = getSkewedKubernetesVersion(-3)`).
    KubeadmKubeletSkew,
}

impl Rule {
    /// The rule in one sentence, as the policy states it.
    pub fn text(self) -> &'static str {
        match self {
            Self::ApiserverHaSkew => {
                "the newest and oldest kube-apiserver instances must be within one minor version"
            }
            Self::KubeletNewerThanApiserver => "kubelet must not be newer than kube-apiserver",
            Self::KubeletTooOld => {
                "kubelet may be up to three minor versions older than kube-apiserver (two while the kubelet is older than 1.25)"
            }
            Self::KubeProxyNewerThanApiserver => "kube-proxy must not be newer than kube-apiserver",
            Self::KubeProxyTooOld => {
                "kube-proxy may be up to three minor versions older than kube-apiserver (two while kube-proxy is older than 1.25)"
            }
            Self::KubeProxyKubeletSkew => {
                "kube-proxy may be up to three minor versions older or newer than the kubelet on its node (two below 1.25)"
            }
            Self::ControlPlaneNewerThanApiserver => {
                "kube-controller-manager, kube-scheduler and cloud-controller-manager must not be newer than any kube-apiserver they talk to"
            }
            Self::ControlPlaneTooOld => {
                "kube-controller-manager, kube-scheduler and cloud-controller-manager may be at most one minor version older than kube-apiserver"
            }
            Self::KubectlSkew => {
                "kubectl is supported within one minor version (older or newer) of kube-apiserver"
            }
            Self::KubeadmKubeletSkew => {
                "kubeadm upgrade apply refuses kubelets more than one minor older than the target (three from kubeadm 1.29)"
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// One side of a finding: a component instance and its version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Party {
    /// The component.
    pub component: Component,
    /// Its node, when it runs on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Its version.
    pub version: Version,
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(node) => write!(f, "{} {} on {node}", self.component, self.version),
            None => write!(f, "{} {}", self.component, self.version),
        }
    }
}

/// A violation of one rule between two parties.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SkewFinding {
    /// The rule broken.
    pub rule: Rule,
    /// The component out of policy.
    pub subject: Party,
    /// The component it is measured against.
    pub reference: Party,
}

impl fmt::Display for SkewFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} vs {}: {}",
            self.subject,
            self.reference,
            self.rule.text()
        )
    }
}
