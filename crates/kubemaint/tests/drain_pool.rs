//! Draining a node pool several nodes at once, on a real lab (8 workers, worker-1..4 labelled
//! `pool=blue`):
//!
//! 1. A set that cannot fit: pods of the pool need more CPU than the nodes that stay offer.
//!    `--max-parallel-nodes 4` refuses, naming every such pod, before any change: the lab's
//!    audit log shows no eviction and no write from kubemaint, and no node is cordoned.
//! 2. The pool drained 4 nodes at once: 3 Deployments spread over the 8 workers, each under a
//!    PodDisruptionBudget (minAvailable 6 of 8), a StatefulSet under `maxUnavailable: 1`, a
//!    DaemonSet. A watcher samples every 0.5 s each budget's status (`currentHealthy` against
//!    `desiredHealthy`) and the Ready pods of each workload: no sample below a minimum. At the
//!    end every pool node is cordoned, no pod but the DaemonSet's is left on it, the nodes were
//!    drained together (their removals overlap in time), and the report says per node when it
//!    started, when it was drained and what held it up.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kubemaint_lab::Lab;
use kubemaint_lab::testing::{Kubectl, start_lab, wait_for};

const POOL: [&str; 4] = ["worker-1", "worker-2", "worker-3", "worker-4"];

/// Runs kubemaint; fails the test if it runs longer than `limit`.
fn kubemaint(lab: &Lab, args: &[&str], limit: Duration) -> (Output, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubemaint"))
        .arg("--kubeconfig")
        .arg(lab.kubeconfig())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubemaint");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("kubemaint {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    let se = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("kubemaint {args:?} -> {:?}\n{so}\n{se}", out.status.code());
    (out, so, se)
}

/// kubemaint's requests in the lab's audit log: (evictions, writes of any kind).
fn kubemaint_requests(lab: &Lab) -> (usize, usize) {
    let audit = std::fs::read_to_string(lab.dir().join("logs/audit.log"))
        .expect("the lab writes DIR/logs/audit.log");
    let mut evictions = 0;
    let mut writes = 0;
    for line in audit.lines() {
        let e: serde_json::Value = serde_json::from_str(line).expect("audit event JSON");
        if !e["userAgent"]
            .as_str()
            .unwrap_or_default()
            .starts_with("kubemaint")
        {
            continue;
        }
        if e["objectRef"]["subresource"] == "eviction" {
            evictions += 1;
        }
        if !matches!(e["verb"].as_str(), Some("get" | "list" | "watch")) {
            writes += 1;
        }
    }
    (evictions, writes)
}

/// Ready pods of `ns`, not being deleted, per node.
fn ready_pods(kc: &Kubectl, ns: &str) -> Vec<(String, String, String)> {
    let v = kc.json(&["get", "pods", "-n", ns]);
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| kubemaint_lab::testing::pod_ready(p))
        .map(|p| {
            (
                p["metadata"]["labels"]["app"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                p["metadata"]["name"].as_str().unwrap().to_owned(),
                p["spec"]["nodeName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn wait_ready_count(kc: &Kubectl, ns: &str, n: usize) {
    wait_for(
        &format!("{n} Ready pods in {ns}"),
        Duration::from_secs(180),
        || ready_pods(kc, ns).len() >= n,
    );
}

const BIG: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: big, namespace: fit}
spec:
  replicas: 8
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: registry.example/big:1
        resources: {requests: {cpu: 2500m}}
";

fn workloads() -> String {
    let mut y = String::new();
    for app in ["a", "b", "c"] {
        y.push_str(&format!(
            "---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {app}, namespace: proof}}
spec:
  replicas: 8
  selector: {{matchLabels: {{app: {app}}}}}
  template:
    metadata: {{labels: {{app: {app}}}}}
    spec:
      terminationGracePeriodSeconds: 10
      topologySpreadConstraints: [{{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {{matchLabels: {{app: {app}}}}}}}]
      containers: [{{name: c, image: registry.example/{app}:1}}]
---
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {{name: {app}, namespace: proof}}
spec: {{minAvailable: 6, selector: {{matchLabels: {{app: {app}}}}}}}
"
        ));
    }
    // The StatefulSet prefers the pool, so that its pods have to move under maxUnavailable 1.
    y.push_str(
        "---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s, namespace: proof}
spec:
  serviceName: s
  replicas: 4
  selector: {matchLabels: {app: s}}
  template:
    metadata: {labels: {app: s}}
    spec:
      terminationGracePeriodSeconds: 10
      affinity:
        nodeAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            preference: {matchExpressions: [{key: pool, operator: In, values: [blue]}]}
      containers: [{name: c, image: registry.example/s:1}]
---
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: s, namespace: proof}
spec: {maxUnavailable: 1, selector: {matchLabels: {app: s}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds, namespace: proof}
spec:
  selector: {matchLabels: {app: ds}}
  template:
    metadata: {labels: {app: ds}}
    spec:
      containers: [{name: c, image: registry.example/ds:1}]
",
    );
    y
}

/// Minimum Ready pods per workload while the budgets hold (a, b, c: minAvailable 6; s: 4 - 1).
fn minimum(app: &str) -> Option<usize> {
    match app {
        "a" | "b" | "c" => Some(6),
        "s" => Some(3),
        _ => None,
    }
}

/// Samples taken so far.
static SAMPLES: AtomicUsize = AtomicUsize::new(0);

/// One sample of the watcher.
#[derive(Debug)]
struct Sample {
    at: Duration,
    /// Ready, not terminating pods per app.
    ready: BTreeMap<String, usize>,
    /// Per budget: (status.currentHealthy, status.desiredHealthy).
    budgets: BTreeMap<String, (i64, i64)>,
}

/// Samples the pods and budgets of `proof` every 0.5 s until `stop`; a failed sample fails
/// the test (a gap could hide a budget broken in it).
fn watcher(kubeconfig: PathBuf, stop: Arc<AtomicBool>) -> Vec<Sample> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = kubemaint_lab::api::client_for(&kubeconfig)
            .await
            .expect("watcher client");
        let pods: Api<Pod> = Api::namespaced(client.clone(), "proof");
        let start = Instant::now();
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::SeqCst) {
            tick.tick().await;
            let list = pods
                .list(&ListParams::default())
                .await
                .expect("watcher: list pods");
            let mut ready = BTreeMap::new();
            for p in &list.items {
                let ok =
                    p.metadata.deletion_timestamp.is_none() && kubemaint_core::drain::is_ready(p);
                let app = p
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("app"))
                    .cloned()
                    .unwrap_or_default();
                *ready.entry(app).or_insert(0) += usize::from(ok);
            }
            let req =
                http::Request::get("/apis/policy/v1beta1/namespaces/proof/poddisruptionbudgets")
                    .body(Vec::new())
                    .unwrap();
            let pdbs = client
                .request::<serde_json::Value>(req)
                .await
                .expect("watcher: list PodDisruptionBudgets");
            let budgets = pdbs["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    (
                        b["metadata"]["name"].as_str().unwrap().to_owned(),
                        (
                            b["status"]["currentHealthy"].as_i64().unwrap_or(0),
                            b["status"]["desiredHealthy"].as_i64().unwrap_or(0),
                        ),
                    )
                })
                .collect();
            samples.push(Sample {
                at: start.elapsed(),
                ready,
                budgets,
            });
            SAMPLES.fetch_add(1, Ordering::SeqCst);
        }
        samples
    })
}

#[test]
fn pool_drained_four_nodes_at_once_within_every_budget() {
    let dir = tempfile::tempdir().unwrap();
    let lab = start_lab(dir.path(), 8, 1000);
    let kc = Kubectl::new(&lab.kubeconfig());
    for n in POOL {
        kc.ok(&["label", "node", n, "pool=blue"]);
    }
    let drain_args = [
        "drain",
        "-l",
        "pool=blue",
        "--ignore-daemonsets",
        "--max-parallel-nodes",
        "4",
    ];

    // 1. A set that cannot fit: one 2.5-CPU pod on each 4-CPU worker; the pool's four have
    //    nowhere to go once the pool is cordoned. Refused before any change, naming them.
    kc.ok(&["create", "namespace", "fit"]);
    kc.apply(BIG);
    wait_ready_count(&kc, "fit", 8);
    let on_pool: Vec<String> = ready_pods(&kc, "fit")
        .into_iter()
        .filter(|(_, _, node)| POOL.contains(&node.as_str()))
        .map(|(_, name, _)| name)
        .collect();
    assert_eq!(on_pool.len(), 4, "one big pod per worker: {on_pool:?}");
    let (out, _, se) = kubemaint(&lab, &drain_args, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(1), "refused: {se}");
    assert!(
        se.contains("refusing to drain 4 nodes at once: 4 pod(s) fit on no node that stays"),
        "{se}"
    );
    for name in &on_pool {
        assert!(
            se.contains(&format!("fit/{name}: ")),
            "{name} not named: {se}"
        );
    }
    assert!(
        se.contains("Insufficient cpu"),
        "the scheduler's reason: {se}"
    );
    assert_eq!(
        kubemaint_requests(&lab),
        (0, 0),
        "(evictions, writes) sent by kubemaint before refusing"
    );
    for n in POOL {
        let node = kc.json(&["get", "node", n]);
        assert!(node["spec"]["unschedulable"].is_null(), "{n} was cordoned");
    }
    kc.ok(&["delete", "namespace", "fit", "--wait=true"]);

    // 2. The pool, 4 nodes at once, every budget sampled every 0.5 s.
    kc.ok(&["create", "namespace", "proof"]);
    kc.apply(&workloads());
    wait_ready_count(&kc, "proof", 24 + 4 + 8);
    let before = ready_pods(&kc, "proof");
    let mut moving: BTreeMap<String, usize> = BTreeMap::new();
    for (app, _, node) in &before {
        if app != "ds" && POOL.contains(&node.as_str()) {
            *moving.entry(app.clone()).or_default() += 1;
        }
    }
    eprintln!("pods to move off the pool: {moving:?}");
    for app in ["a", "b", "c", "s"] {
        assert!(
            moving.get(app).copied().unwrap_or(0) >= 2,
            "{app}: fewer than 2 pods on the pool, the budget would not pace anything: {moving:?}"
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let kubeconfig = lab.kubeconfig();
        std::thread::spawn(move || watcher(kubeconfig, stop))
    };
    // The first sample, before the drain starts.
    wait_for(
        "the watcher's first sample",
        Duration::from_secs(30),
        || sampler.is_finished() || SAMPLES.load(Ordering::SeqCst) > 0,
    );
    let mut args = drain_args.to_vec();
    args.extend(["-o", "json"]);
    let (out, so, se) = kubemaint(&lab, &args, Duration::from_secs(300));
    // The replacements' readiness is still sampled after the drain returns (DaemonSet pods
    // stay on cordoned nodes).
    wait_ready_count(&kc, "proof", 24 + 4 + 8);
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.join().expect("watcher");
    assert!(out.status.success(), "drain failed: {se}");

    // No budget below its minimum at any sample.
    assert!(samples.len() >= 4, "too few samples: {}", samples.len());
    let mut lowest: BTreeMap<String, usize> = BTreeMap::new();
    for s in &samples {
        for (app, &n) in &s.ready {
            let low = lowest.entry(app.clone()).or_insert(n);
            *low = (*low).min(n);
            if let Some(min) = minimum(app) {
                assert!(n >= min, "{app}: {n} Ready < {min} at {:?}: {s:?}", s.at);
            }
        }
        for (pdb, &(healthy, desired)) in &s.budgets {
            assert!(
                healthy >= desired,
                "PDB {pdb}: currentHealthy {healthy} < desiredHealthy {desired} at {:?}",
                s.at
            );
        }
        assert_eq!(s.budgets.len(), 4, "every budget sampled: {s:?}");
    }
    eprintln!(
        "{} samples over {:?}; lowest Ready per workload: {lowest:?}",
        samples.len(),
        samples.last().map(|s| s.at)
    );

    // Every pod off the pool, every pool node cordoned.
    let after = ready_pods(&kc, "proof");
    let left: Vec<_> = kc.json(&["get", "pods", "-n", "proof"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] != "ds")
        .filter(|p| POOL.contains(&p["spec"]["nodeName"].as_str().unwrap_or_default()))
        .map(|p| p["metadata"]["name"].clone())
        .collect();
    assert!(left.is_empty(), "pods left on the pool: {left:?}");
    for (app, n) in [("a", 8), ("b", 8), ("c", 8), ("s", 4)] {
        let ready = after.iter().filter(|(a, _, _)| a == app).count();
        assert_eq!(ready, n, "{app} back to full strength elsewhere");
    }
    for n in POOL {
        let node = kc.json(&["get", "node", n]);
        assert_eq!(node["spec"]["unschedulable"], true, "{n} cordoned");
    }

    // The report: every node drained, the nodes in flight together, and per node when it
    // started, when it ended and what held it up.
    let report: serde_json::Value = serde_json::from_str(&so).expect("JSON report");
    assert_eq!(report["max_parallel_nodes"], 4);
    let nodes = report["nodes"].as_array().unwrap();
    let mut names: Vec<&str> = nodes.iter().map(|n| n["node"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, POOL);
    let span = |n: &serde_json::Value| {
        (
            n["started_after_seconds"].as_f64().unwrap(),
            n["finished_after_seconds"].as_f64().unwrap(),
        )
    };
    for n in nodes {
        assert_eq!(n["status"], "drained", "{n}");
        let (s, f) = span(n);
        assert!(s <= f, "{n}");
        assert!(n["started"].is_string() && n["finished"].is_string(), "{n}");
        let held = n["held_up"].as_array().unwrap();
        assert!(
            held.iter().any(|h| h["cause"]["kind"] == "termination"),
            "every node waited for its pods to terminate: {n}"
        );
        for p in n["pods"].as_array().unwrap() {
            assert!(p["waited"]["termination"].is_number(), "{p}");
        }
    }
    // All four were in flight at once: each started before any of them ended.
    let first_end = nodes
        .iter()
        .map(|n| span(n).1)
        .fold(f64::INFINITY, f64::min);
    for n in nodes {
        assert!(span(n).0 < first_end, "not drained together: {report}");
    }
    // Budgets held some node up (8 pods of a, b and c under minAvailable 6 of 8 cannot all go
    // at once), and the report names them.
    let held_by_budget: Vec<&serde_json::Value> = nodes
        .iter()
        .flat_map(|n| n["held_up"].as_array().unwrap())
        .filter(|h| h["cause"]["kind"] == "budget")
        .collect();
    assert!(
        !held_by_budget.is_empty(),
        "no node held up by a budget: {report}"
    );
    for h in held_by_budget {
        let pdb = h["cause"]["pdb"].as_str().unwrap();
        assert!(
            ["proof/a", "proof/b", "proof/c", "proof/s"].contains(&pdb),
            "{h}"
        );
    }
    let (evictions, _) = kubemaint_requests(&lab);
    let moved: usize = moving.values().sum();
    assert!(
        evictions >= moved,
        "{evictions} eviction requests for {moved} pods"
    );
}
