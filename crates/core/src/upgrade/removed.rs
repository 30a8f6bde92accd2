//! API versions each Kubernetes minor stops serving.
//!
//! Sources: the Deprecated API Migration Guide
//! (`kubernetes/website:content/en/docs/reference/using-api/deprecation-guide.md`, sections
//! v1.16, v1.22, v1.25, v1.26, v1.27, v1.29, v1.32) and the tables of pluto
//! (`FairwindsOps/pluto:versions.yaml`) and kubent (`doitintl/kube-no-trouble` rego rules) as
//! compiled in `shared/reference/upgrade-2026.md` §B.

use serde::Serialize;

use super::version::Minor;

/// One resource in one API version that a release stops serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RemovedApi {
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// The removed version (`v1beta1`).
    pub version: &'static str,
    /// Kind (`PodDisruptionBudget`).
    pub kind: &'static str,
    /// Plural resource name used in URLs (`poddisruptionbudgets`).
    pub resource: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// The first minor that no longer serves it.
    pub removed_in: Minor,
    /// What to use instead (`policy/v1`), or a note when there is no replacement.
    pub replacement: &'static str,
}

impl RemovedApi {
    /// `group/version` as in an object's `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const fn api(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    resource: &'static str,
    namespaced: bool,
    removed_in: u32,
    replacement: &'static str,
) -> RemovedApi {
    RemovedApi {
        group,
        version,
        kind,
        resource,
        namespaced,
        removed_in: Minor::new(1, removed_in),
        replacement,
    }
}

/// Every removal known, oldest release first.
pub const REMOVED_APIS: &[RemovedApi] = &[
    api(
        "extensions",
        "v1beta1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        16,
        "networking.k8s.io/v1",
    ),
    api(
        "extensions",
        "v1beta1",
        "DaemonSet",
        "daemonsets",
        true,
        16,
        "apps/v1",
    ),
    api(
        "apps",
        "v1beta2",
        "DaemonSet",
        "daemonsets",
        true,
        16,
        "apps/v1",
    ),
    api(
        "extensions",
        "v1beta1",
        "Deployment",
        "deployments",
        true,
        16,
        "apps/v1",
    ),
    api(
        "apps",
        "v1beta1",
        "Deployment",
        "deployments",
        true,
        16,
        "apps/v1",
    ),
    api(
        "apps",
        "v1beta2",
        "Deployment",
        "deployments",
        true,
        16,
        "apps/v1",
    ),
    api(
        "apps",
        "v1beta1",
        "StatefulSet",
        "statefulsets",
        true,
        16,
        "apps/v1",
    ),
    api(
        "apps",
        "v1beta2",
        "StatefulSet",
        "statefulsets",
        true,
        16,
        "apps/v1",
    ),
    api(
        "extensions",
        "v1beta1",
        "ReplicaSet",
        "replicasets",
        true,
        16,
        "apps/v1",
    ),
    api(
        "apps",
        "v1beta1",
        "ReplicaSet",
        "replicasets",
        true,
        16,
        "apps/v1",
    ),
    api(
        "apps",
        "v1beta2",
        "ReplicaSet",
        "replicasets",
        true,
        16,
        "apps/v1",
    ),
    api(
        "admissionregistration.k8s.io",
        "v1beta1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
        22,
        "admissionregistration.k8s.io/v1",
    ),
    api(
        "admissionregistration.k8s.io",
        "v1beta1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
        22,
        "admissionregistration.k8s.io/v1",
    ),
    api(
        "apiextensions.k8s.io",
        "v1beta1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        22,
        "apiextensions.k8s.io/v1",
    ),
    api(
        "apiregistration.k8s.io",
        "v1beta1",
        "APIService",
        "apiservices",
        false,
        22,
        "apiregistration.k8s.io/v1",
    ),
    api(
        "certificates.k8s.io",
        "v1beta1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        false,
        22,
        "certificates.k8s.io/v1",
    ),
    api(
        "coordination.k8s.io",
        "v1beta1",
        "Lease",
        "leases",
        true,
        22,
        "coordination.k8s.io/v1",
    ),
    api(
        "extensions",
        "v1beta1",
        "Ingress",
        "ingresses",
        true,
        22,
        "networking.k8s.io/v1",
    ),
    api(
        "networking.k8s.io",
        "v1beta1",
        "Ingress",
        "ingresses",
        true,
        22,
        "networking.k8s.io/v1",
    ),
    api(
        "networking.k8s.io",
        "v1beta1",
        "IngressClass",
        "ingressclasses",
        false,
        22,
        "networking.k8s.io/v1",
    ),
    api(
        "rbac.authorization.k8s.io",
        "v1beta1",
        "ClusterRole",
        "clusterroles",
        false,
        22,
        "rbac.authorization.k8s.io/v1",
    ),
    api(
        "rbac.authorization.k8s.io",
        "v1beta1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        22,
        "rbac.authorization.k8s.io/v1",
    ),
    api(
        "rbac.authorization.k8s.io",
        "v1beta1",
        "Role",
        "roles",
        true,
        22,
        "rbac.authorization.k8s.io/v1",
    ),
    api(
        "rbac.authorization.k8s.io",
        "v1beta1",
        "RoleBinding",
        "rolebindings",
        true,
        22,
        "rbac.authorization.k8s.io/v1",
    ),
    api(
        "scheduling.k8s.io",
        "v1beta1",
        "PriorityClass",
        "priorityclasses",
        false,
        22,
        "scheduling.k8s.io/v1",
    ),
    api(
        "storage.k8s.io",
        "v1beta1",
        "CSIDriver",
        "csidrivers",
        false,
        22,
        "storage.k8s.io/v1",
    ),
    api(
        "storage.k8s.io",
        "v1beta1",
        "CSINode",
        "csinodes",
        false,
        22,
        "storage.k8s.io/v1",
    ),
    api(
        "storage.k8s.io",
        "v1beta1",
        "StorageClass",
        "storageclasses",
        false,
        22,
        "storage.k8s.io/v1",
    ),
    api(
        "storage.k8s.io",
        "v1beta1",
        "VolumeAttachment",
        "volumeattachments",
        false,
        22,
        "storage.k8s.io/v1",
    ),
    api(
        "batch", "v1beta1", "CronJob", "cronjobs", true, 25, "batch/v1",
    ),
    api(
        "discovery.k8s.io",
        "v1beta1",
        "EndpointSlice",
        "endpointslices",
        true,
        25,
        "discovery.k8s.io/v1",
    ),
    api(
        "events.k8s.io",
        "v1beta1",
        "Event",
        "events",
        true,
        25,
        "events.k8s.io/v1",
    ),
    api(
        "autoscaling",
        "v2beta1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        25,
        "autoscaling/v2",
    ),
    api(
        "policy",
        "v1beta1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        25,
        "policy/v1",
    ),
    api(
        "policy",
        "v1beta1",
        "PodSecurityPolicy",
        "podsecuritypolicies",
        false,
        25,
        "none: migrate to Pod Security Admission",
    ),
    api(
        "node.k8s.io",
        "v1beta1",
        "RuntimeClass",
        "runtimeclasses",
        false,
        25,
        "node.k8s.io/v1",
    ),
    api(
        "flowcontrol.apiserver.k8s.io",
        "v1beta1",
        "FlowSchema",
        "flowschemas",
        false,
        26,
        "flowcontrol.apiserver.k8s.io/v1beta3",
    ),
    api(
        "flowcontrol.apiserver.k8s.io",
        "v1beta1",
        "PriorityLevelConfiguration",
        "prioritylevelconfigurations",
        false,
        26,
        "flowcontrol.apiserver.k8s.io/v1beta3",
    ),
    api(
        "autoscaling",
        "v2beta2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        26,
        "autoscaling/v2",
    ),
    api(
        "storage.k8s.io",
        "v1beta1",
        "CSIStorageCapacity",
        "csistoragecapacities",
        true,
        27,
        "storage.k8s.io/v1",
    ),
    api(
        "flowcontrol.apiserver.k8s.io",
        "v1beta2",
        "FlowSchema",
        "flowschemas",
        false,
        29,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    api(
        "flowcontrol.apiserver.k8s.io",
        "v1beta2",
        "PriorityLevelConfiguration",
        "prioritylevelconfigurations",
        false,
        29,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    api(
        "flowcontrol.apiserver.k8s.io",
        "v1beta3",
        "FlowSchema",
        "flowschemas",
        false,
        32,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    api(
        "flowcontrol.apiserver.k8s.io",
        "v1beta3",
        "PriorityLevelConfiguration",
        "prioritylevelconfigurations",
        false,
        32,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
];

/// The removals an upgrade from minor `from` to minor `to` crosses: removed after `from`, by
/// `to` (both inclusive of what they serve: `from` still serves them, `to` does not).
pub fn removed_between(from: Minor, to: Minor) -> impl Iterator<Item = &'static RemovedApi> {
    REMOVED_APIS
        .iter()
        .filter(move |r| r.removed_in > from && r.removed_in <= to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        let names = |from, to| {
            removed_between(Minor::new(1, from), Minor::new(1, to))
                .map(|r| format!("{} {}", r.api_version(), r.kind))
                .collect::<Vec<_>>()
        };
        assert!(names(19, 21).is_empty());
        assert!(names(19, 22).contains(&"networking.k8s.io/v1beta1 Ingress".to_string()));
        assert!(!names(19, 24).contains(&"policy/v1beta1 PodDisruptionBudget".to_string()));
        let crossing_25 = names(24, 25);
        assert!(crossing_25.contains(&"policy/v1beta1 PodDisruptionBudget".to_string()));
        assert!(crossing_25.contains(&"batch/v1beta1 CronJob".to_string()));
        assert!(crossing_25.iter().all(|n| !n.contains("Ingress")));
        assert!(names(25, 25).is_empty());
        assert!(
            names(31, 32).contains(&"flowcontrol.apiserver.k8s.io/v1beta3 FlowSchema".to_string())
        );
        assert_eq!(names(15, 34).len(), REMOVED_APIS.len());
    }

    #[test]
    fn table_is_ordered_and_well_formed() {
        for pair in REMOVED_APIS.windows(2) {
            assert!(pair[0].removed_in <= pair[1].removed_in);
        }
        for r in REMOVED_APIS {
            assert!(!r.version.is_empty() && !r.resource.is_empty());
            assert_eq!(r.resource, r.resource.to_lowercase());
        }
    }
}
