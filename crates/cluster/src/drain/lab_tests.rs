//! The eviction edge against a real v1.20 API server (the lab): a StatefulSet pod deleted and
//! recreated under the same name after kubemaint listed it must not be evicted by mistake. The
//! UID precondition makes the server answer 409, which counts as done, and the new pod lives on.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kubemaint_core::drain::PodRef;
use kubemaint_core::drain::eviction::{EvictionOutcome, Gone, RemovalMethod};
use kubemaint_core::drain::stuck::StuckPolicy;
use kubemaint_lab::state::SimSettings;
use kubemaint_lab::testing::{Kubectl, pod_ready, wait_for};
use kubemaint_lab::{KubeletMode, Lab, UpOptions};

use super::evict::{PdbGate, PodResult, Remover, Sent, Tracker};
use super::{NodeLive, Reporter};
use crate::read as cluster;

/// Lines go to the test's output.
struct Print;

impl Reporter for Print {
    fn out(&self, line: &str) {
        eprintln!("{line}");
    }
    fn err(&self, line: &str) {
        eprintln!("{line}");
    }
}

const STS: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: uid}
spec:
  serviceName: web
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers: [{name: c, image: registry.example/web:1}]
";

fn ready_web_0(kc: &Kubectl) -> Pod {
    let mut pod = serde_json::Value::Null;
    wait_for("uid/web-0 Ready", Duration::from_secs(60), || {
        let out = kc.run(&["get", "pod", "-n", "uid", "web-0", "-o", "json"]);
        pod = serde_json::from_slice(&out.stdout).unwrap_or_default();
        out.status.success() && pod_ready(&pod) && pod["metadata"]["deletionTimestamp"].is_null()
    });
    serde_json::from_value(pod).expect("pod JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_with_a_stale_uid_is_refused_and_counts_as_done() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = UpOptions::new(dir.path(), 1);
    opts.kubelets = KubeletMode::InProcess;
    opts.sim = SimSettings {
        ready_delay_ms: 300,
        shutdown_delay_ms: 300,
    };
    let lab = Lab::up(opts)
        .await
        .unwrap_or_else(|e| panic!("lab up: {e}"));
    let kc = Kubectl::new(&lab.kubeconfig());
    // kubectl and the waits block: keep them off the runtime's other worker.
    let (old, new) = tokio::task::block_in_place(|| {
        kc.ok(&["create", "namespace", "uid"]);
        kc.apply(STS);
        let old = ready_web_0(&kc);
        // The pod is replaced behind our back: same name, new UID.
        kc.ok(&["delete", "pod", "-n", "uid", "web-0", "--wait=true"]);
        (old, ready_web_0(&kc))
    });
    let old_uid = old.metadata.uid.clone().unwrap();
    let new_uid = new.metadata.uid.clone().unwrap();
    assert_ne!(old_uid, new_uid, "the StatefulSet recreated web-0");

    let kubeconfig = Kubeconfig::read_from(lab.kubeconfig()).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let policy = cluster::discover(&client).await.unwrap();
    let version = policy.eviction.expect("the lab serves pods/eviction");
    let node = new.spec.as_ref().unwrap().node_name.clone().unwrap();
    let (tracker, handle) = Tracker::start(&client, &node).await.unwrap();
    let remover = Remover {
        client: client.clone(),
        method: RemovalMethod::Evict(version),
        grace_period: -1,
        dry_run: None,
        retry_delay: Duration::from_secs(5),
        deadline: Some(tokio::time::Instant::now() + Duration::from_secs(30)),
        timeout_text: "30s".into(),
        skip_wait_seconds: 0,
        pdb_gate: PdbGate::inert(),
        tracker,
        live: Arc::new(NodeLive::default()),
        reporter: Arc::new(Print),
        stuck_policy: StuckPolicy::Fail,
        first_gate: Arc::default(),
    };

    // The request itself: the server refuses the stale UID with 409, classified as done.
    match remover.send(&old, &PodRef::of(&old)).await {
        Sent::Outcome(EvictionOutcome::Done { gone }) => assert_eq!(gone, Gone::Replaced),
        Sent::Outcome(o) => panic!("stale-UID eviction: unexpected outcome {o:?}"),
        Sent::Transport(e) => panic!("stale-UID eviction: transport error {e}"),
    }
    // The whole per-pod flow: one request, "replaced", nothing waited for.
    let outcome = remover.remove(old.clone()).await;
    assert_eq!(outcome.result, PodResult::Replaced, "{outcome:?}");
    assert_eq!(outcome.attempts, 1, "{outcome:?}");
    handle.abort();

    // The new incarnation is untouched.
    let pods: Api<Pod> = Api::namespaced(client, "uid");
    let now = pods.get("web-0").await.unwrap();
    assert_eq!(now.metadata.uid.as_deref(), Some(new_uid.as_str()));
    assert!(
        now.metadata.deletion_timestamp.is_none(),
        "the recreated pod was evicted"
    );
}
