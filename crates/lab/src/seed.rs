//! `kubemaint-lab seed`: a representative workload for demos and tests, in namespace `demo`.
//!
//! Deployments under PodDisruptionBudgets, a StatefulSet, a DaemonSet, a bare pod, a pod with an
//! emptyDir volume and a finished Job pod: every kind of pod `kubectl drain` treats differently.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use crate::annotations::EXIT_AFTER_ANNOTATION;
use crate::api::create;
use crate::error::LabError;

/// The namespace the seed workload lives in.
pub const NAMESPACE: &str = "demo";

/// A `policy/v1beta1` PodDisruptionBudget API (what a 1.20 server serves).
pub fn pdb_api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("policy", "v1beta1", "PodDisruptionBudget"),
        "poddisruptionbudgets",
    );
    Api::namespaced_with(client.clone(), ns, &ar)
}

fn deployment(name: &str, replicas: i32, extra_spec: Value) -> Value {
    let mut pod_spec = json!({ "containers": [{ "name": "app", "image": format!("registry.example/{name}:1.0"),
        "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } } }], "terminationGracePeriodSeconds": 30 });
    if let (Some(spec), Some(extra)) = (pod_spec.as_object_mut(), extra_spec.as_object()) {
        spec.extend(extra.clone());
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "namespace": NAMESPACE, "labels": { "app": name } },
        "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": pod_spec } }
    })
}

/// Creates the seed workload (idempotent).
pub async fn apply(client: &kube::Client) -> Result<(), LabError> {
    let nss: Api<Namespace> = Api::all(client.clone());
    create(
        &nss,
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": NAMESPACE } }),
    )
    .await?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    create(&deploys, deployment("web", 6, json!({}))).await?;
    create(&deploys, deployment("api", 3, json!({}))).await?;
    create(
        &deploys,
        deployment(
            "cache",
            1,
            json!({ "volumes": [{ "name": "scratch", "emptyDir": {} }] }),
        ),
    )
    .await?;
    let pdbs = pdb_api(client, NAMESPACE);
    for (name, rule) in [
        ("web", json!({ "maxUnavailable": 1 })),
        ("api", json!({ "minAvailable": 2 })),
    ] {
        let mut spec = json!({ "selector": { "matchLabels": { "app": name } } });
        spec.as_object_mut()
            .expect("object")
            .extend(rule.as_object().expect("object").clone());
        let obj = json!({ "apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
            "metadata": { "name": name, "namespace": NAMESPACE }, "spec": spec });
        create(&pdbs, obj).await?;
    }
    let svcs: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    create(&svcs, json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "db", "namespace": NAMESPACE },
        "spec": { "clusterIP": "None", "selector": { "app": "db" }, "ports": [{ "port": 5432 }] } })).await?;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), NAMESPACE);
    create(&sts, json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": { "name": "db", "namespace": NAMESPACE },
        "spec": { "serviceName": "db", "replicas": 3, "selector": { "matchLabels": { "app": "db" } },
            "template": { "metadata": { "labels": { "app": "db" } },
                "spec": { "containers": [{ "name": "db", "image": "registry.example/db:13" }] } } }
    })).await?;
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), NAMESPACE);
    create(&dss, json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": { "name": "node-agent", "namespace": NAMESPACE },
        "spec": { "selector": { "matchLabels": { "app": "node-agent" } },
            "template": { "metadata": { "labels": { "app": "node-agent" } },
                "spec": { "containers": [{ "name": "agent", "image": "registry.example/agent:2.1" }] } } }
    })).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    create(&pods, json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "debug", "namespace": NAMESPACE, "labels": { "app": "debug" } },
        "spec": { "containers": [{ "name": "shell", "image": "registry.example/toolbox:1" }] }
    })).await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
    create(&jobs, json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": { "name": "migrate", "namespace": NAMESPACE },
        "spec": { "backoffLimit": 0, "template": {
            "metadata": { "annotations": { EXIT_AFTER_ANNOTATION: "1000" } },
            "spec": { "restartPolicy": "Never", "containers": [{ "name": "migrate", "image": "registry.example/migrate:1" }] } } }
    })).await?;
    Ok(())
}

/// Waits until the seed workload is up: Deployments available, StatefulSet and DaemonSet ready,
/// the bare pod Ready and the Job finished.
pub async fn wait_ready(client: &kube::Client, timeout: Duration) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), NAMESPACE);
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), NAMESPACE);
    let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    loop {
        let mut ok = true;
        for d in deploys
            .list(&Default::default())
            .await
            .map_err(|source| LabError::Kube {
                context: "list deployments".into(),
                source,
            })?
        {
            let want = d.spec.replicas.unwrap_or(1);
            ok &= d
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0)
                == want;
        }
        if let Ok(Some(s)) = sts.get_opt("db").await {
            ok &= s
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
                == 3;
        }
        if let Ok(Some(d)) = dss.get_opt("node-agent").await {
            let st = d.status.unwrap_or_default();
            ok &= st.desired_number_scheduled > 0 && st.number_ready == st.desired_number_scheduled;
        }
        if let Ok(Some(j)) = jobs.get_opt("migrate").await {
            ok &= j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) == 1;
        }
        if let Ok(Some(p)) = pods.get_opt("debug").await {
            ok &= p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        }
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LabError::Timeout {
                what: "the seed workload in namespace demo".into(),
                secs: timeout.as_secs(),
                logs: "logs/".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
