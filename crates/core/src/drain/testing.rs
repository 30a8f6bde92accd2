//! Fixture builders for drain tests.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, Node, NodeSpec, NodeStatus, Pod, PodCondition, PodSpec,
    PodStatus, ResourceRequirements, Taint, Toleration, Volume,
};
use k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::MIRROR_POD_ANNOTATION;

/// A fixed "now" for tests.
pub fn now() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

/// Builds pods.
#[derive(Clone)]
pub struct PodBuilder(pub Pod);

impl PodBuilder {
    /// A Running, Ready pod `ns/name` on `node1` with a single container.
    pub fn new(ns: &str, name: &str) -> Self {
        PodBuilder(Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                uid: Some(format!("uid-{ns}-{name}")),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }
    fn spec(&mut self) -> &mut PodSpec {
        self.0.spec.as_mut().unwrap()
    }
    /// Bound to `node`.
    pub fn on(mut self, node: &str) -> Self {
        self.spec().node_name = Some(node.into());
        self
    }
    /// Controlled by `kind/name` of `api_version`.
    pub fn owned(mut self, api_version: &str, kind: &str, name: &str) -> Self {
        self.0.metadata.owner_references = Some(vec![OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            controller: Some(true),
            ..Default::default()
        }]);
        self
    }
    /// Controlled by a ReplicaSet.
    pub fn rs(self, name: &str) -> Self {
        self.owned("apps/v1", "ReplicaSet", name)
    }
    /// Controlled by a DaemonSet.
    pub fn ds(self, name: &str) -> Self {
        self.owned("apps/v1", "DaemonSet", name)
    }
    /// Mirror pod.
    pub fn mirror(mut self) -> Self {
        self.0
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(MIRROR_POD_ANNOTATION.into(), "hash".into());
        self
    }
    /// With an emptyDir volume.
    pub fn empty_dir(mut self) -> Self {
        self.spec().volumes.get_or_insert_default().push(Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
        self
    }
    /// In `phase`.
    pub fn phase(mut self, phase: &str) -> Self {
        self.0.status.as_mut().unwrap().phase = Some(phase.into());
        self
    }
    /// Not Ready.
    pub fn unready(mut self) -> Self {
        self.0.status.as_mut().unwrap().conditions = None;
        self
    }
    /// Deletion timestamp `secs_ago` seconds before [`now`].
    pub fn deleted_ago(mut self, secs_ago: i64) -> Self {
        let ts = now() - jiff::SignedDuration::from_secs(secs_ago);
        self.0.metadata.deletion_timestamp = Some(Time(ts));
        self
    }
    /// With a label.
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_default()
            .insert(k.into(), v.into());
        self
    }
    /// Container requests (`cpu`, `memory`).
    pub fn requests(mut self, cpu: &str, mem: &str) -> Self {
        let mut r = BTreeMap::new();
        r.insert("cpu".to_owned(), Quantity(cpu.into()));
        r.insert("memory".to_owned(), Quantity(mem.into()));
        self.spec().containers[0].resources = Some(ResourceRequirements {
            requests: Some(r),
            ..Default::default()
        });
        self
    }
    /// With a toleration.
    pub fn tolerate(
        mut self,
        key: &str,
        op: &str,
        value: Option<&str>,
        effect: Option<&str>,
    ) -> Self {
        self.spec()
            .tolerations
            .get_or_insert_default()
            .push(Toleration {
                key: Some(key.into()),
                operator: Some(op.into()),
                value: value.map(Into::into),
                effect: effect.map(Into::into),
                ..Default::default()
            });
        self
    }
    /// With a nodeSelector entry.
    pub fn node_selector(mut self, k: &str, v: &str) -> Self {
        self.spec()
            .node_selector
            .get_or_insert_default()
            .insert(k.into(), v.into());
        self
    }
    /// Done.
    pub fn build(self) -> Pod {
        self.0
    }
}

/// Builds nodes.
pub struct NodeBuilder(pub Node);

impl NodeBuilder {
    /// A schedulable node with 4 CPU, 8Gi memory, 110 pods.
    pub fn new(name: &str) -> Self {
        let mut alloc = BTreeMap::new();
        alloc.insert("cpu".to_owned(), Quantity("4".into()));
        alloc.insert("memory".to_owned(), Quantity("8Gi".into()));
        alloc.insert("pods".to_owned(), Quantity("110".into()));
        let mut labels = BTreeMap::new();
        labels.insert("kubernetes.io/hostname".to_owned(), name.to_owned());
        NodeBuilder(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                allocatable: Some(alloc),
                ..Default::default()
            }),
        })
    }
    /// Cordoned.
    pub fn cordoned(mut self) -> Self {
        self.0.spec.as_mut().unwrap().unschedulable = Some(true);
        self
    }
    /// With a taint.
    pub fn taint(mut self, key: &str, value: Option<&str>, effect: &str) -> Self {
        self.0
            .spec
            .as_mut()
            .unwrap()
            .taints
            .get_or_insert_default()
            .push(Taint {
                key: key.into(),
                value: value.map(Into::into),
                effect: effect.into(),
                ..Default::default()
            });
        self
    }
    /// With a label.
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_default()
            .insert(k.into(), v.into());
        self
    }
    /// Allocatable cpu/memory.
    pub fn alloc(mut self, cpu: &str, mem: &str) -> Self {
        let a = self
            .0
            .status
            .as_mut()
            .unwrap()
            .allocatable
            .as_mut()
            .unwrap();
        a.insert("cpu".into(), Quantity(cpu.into()));
        a.insert("memory".into(), Quantity(mem.into()));
        self
    }
    /// With an annotation.
    pub fn annotate(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(k.into(), v.into());
        self
    }
    /// Done.
    pub fn build(self) -> Node {
        self.0
    }
}

/// A PDB `ns/name` selecting `app=<app>`, with status numbers.
pub fn pdb(
    ns: &str,
    name: &str,
    app: &str,
    min_available: Option<IntOrString>,
    max_unavailable: Option<IntOrString>,
    (allowed, current, desired, expected): (i32, i32, i32, i32),
) -> PodDisruptionBudget {
    let mut ml = BTreeMap::new();
    ml.insert("app".to_owned(), app.to_owned());
    PodDisruptionBudget {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            min_available,
            max_unavailable,
            selector: Some(LabelSelector {
                match_labels: Some(ml),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(PodDisruptionBudgetStatus {
            disruptions_allowed: Some(allowed),
            current_healthy: Some(current),
            desired_healthy: Some(desired),
            expected_pods: Some(expected),
            observed_generation: Some(1),
            ..Default::default()
        }),
    }
}
