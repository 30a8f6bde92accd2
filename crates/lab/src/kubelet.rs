//! Simulated kubelets: one task simulates every node of the lab, as kwok does.
//!
//! Each running node keeps its Lease in `kube-node-lease` and its Ready condition fresh, so the
//! real node-lifecycle controller treats it as healthy; pods bound to it go Running and then Ready,
//! and on graceful deletion they shut down for a while (bounded by their grace period) and are
//! then deleted with grace 0 and a UID precondition, as a kubelet finishes a deletion. A stopped
//! node does none of this, so the controller marks it NotReady and its deleted pods stay Terminating.
//!
//! Everything is derived from the objects and `lab.json`, not from memory, so restarting the
//! simulator picks up where it was (Terminating pods are finished, Running pods left alone).
//! The pods' side is [`crate::podsim`]; what the simulator did and what failed goes to
//! `DIR/logs/kubelet-sim.log` ([`SimLog`]).
//!
//! Pod annotations ([`crate::annotations`]) tune behaviour per pod:
//! - `lab.kubemaint.io/ready-delay-ms`: time from start to Ready (default: the lab's setting);
//! - `lab.kubemaint.io/shutdown-delay-ms`: time to shut down after deletion (bounded by the grace period);
//! - `lab.kubemaint.io/exit-after-ms` (+ `lab.kubemaint.io/exit-code`): the containers exit after that
//!   long; with restartPolicy Never/OnFailure the pod ends Succeeded (code 0) or Failed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::Notify;

pub use crate::podsim::SimLog;
use crate::podsim::{PodSim, k8s_time};
use crate::state::{LabState, NodeSpec};

/// A kubelet renews its lease every 10 s (a quarter of the 40 s lease duration).
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// How often node status is re-posted when nothing changed (kubelet: up to 5 min; shorter here).
const STATUS_REFRESH: Duration = Duration::from_secs(30);
/// How long a restarted kubelet reports NotReady before Ready (PLEG and runtime checks).
const RESTART_NOT_READY: Duration = Duration::from_secs(2);

/// The in-process simulator: stops when [`Handle::stop`] is called or the handle is dropped.
#[derive(Debug)]
pub struct Handle {
    stop: Arc<Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Handle {
    /// Runs the simulator for the lab in `dir` on its own thread and runtime.
    pub fn spawn(dir: PathBuf) -> Handle {
        let stop = Arc::new(Notify::new());
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("kubelet-sim".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
                rt.block_on(async move {
                    tokio::select! {
                        res = run(dir) => if let Err(e) = res { tracing::error!("kubelet simulator stopped: {e:#}") },
                        () = stop2.notified() => {}
                    }
                });
            })
            .expect("spawn kubelet-sim thread");
        Handle {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the simulator and waits for its thread.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Formats a timestamp as Kubernetes `MicroTime` (RFC 3339, microseconds).
fn k8s_micro_time(t: Timestamp) -> String {
    format!(
        "{}.{:06}Z",
        t.strftime("%Y-%m-%dT%H:%M:%S"),
        t.subsec_microsecond()
    )
}

struct NodeRuntime {
    last_lease: Option<SystemTime>,
    last_status: Option<SystemTime>,
    restarts_seen: Option<u32>,
    restarted_at: Option<SystemTime>,
    ready_reported: Option<bool>,
}

/// Runs the simulator for the lab in `dir` until an error (the caller cancels by dropping the future).
pub async fn run(dir: PathBuf) -> anyhow::Result<()> {
    let client = crate::api::client_for(&dir.join(crate::pki::SIM_KUBECONFIG)).await?;
    let pods_api: Api<Pod> = Api::all(client.clone());
    let log = SimLog::new(&dir);
    log.line("simulator started");
    let (store, writer) = reflector::store();
    let changed = Arc::new(Notify::new());
    let changed2 = changed.clone();
    let watch_log = log.clone();
    let watch = watcher(pods_api.clone(), watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .for_each(move |event| {
            match event {
                Ok(watcher::Event::InitDone) => watch_log.line("pod watch: (re)listed"),
                Ok(_) => {}
                Err(e) => watch_log.line(format_args!("pod watch: {e}")),
            }
            changed2.notify_one();
            futures::future::ready(())
        });
    tokio::spawn(watch);

    let mut nodes_rt: HashMap<String, NodeRuntime> = HashMap::new();
    let mut pods = PodSim::new(log.clone());
    let mut state = LabState::load(&dir)?;
    let mut state_mtime = std::fs::metadata(LabState::path(&dir))
        .and_then(|m| m.modified())
        .ok();
    loop {
        if let Ok(m) = std::fs::metadata(LabState::path(&dir)).and_then(|m| m.modified())
            && Some(m) != state_mtime
            && let Ok(s) = LabState::load(&dir)
        {
            state = s;
            state_mtime = Some(m);
        }
        let now = SystemTime::now();
        for spec in &state.nodes {
            let rt = nodes_rt.entry(spec.name.clone()).or_insert(NodeRuntime {
                last_lease: None,
                last_status: None,
                restarts_seen: None,
                restarted_at: None,
                ready_reported: None,
            });
            if !spec.running {
                continue;
            }
            let was_ready = rt.ready_reported;
            if let Err(e) = heartbeat(&client, spec, rt, now).await {
                log.line(format_args!("node {}: heartbeat failed: {e}", spec.name));
            }
            if rt.ready_reported != was_ready
                && let Some(ready) = rt.ready_reported
            {
                log.line(format_args!(
                    "node {}: posted Ready={ready} (kubelet {}, restarts {})",
                    spec.name, spec.kubelet_version, spec.restarts
                ));
            }
            if spec.control_plane && rt.last_status == Some(now) {
                match ensure_mirror_pods(&client, spec, &state, &store).await {
                    Ok(done) => {
                        for action in done {
                            log.line(format_args!("node {}: mirror pods: {action}", spec.name));
                        }
                    }
                    Err(e) => log.line(format_args!("node {}: mirror pods: {e}", spec.name)),
                }
            }
        }
        let running: BTreeMap<&str, &NodeSpec> = state
            .nodes
            .iter()
            .filter(|n| n.running)
            .map(|n| (n.name.as_str(), n))
            .collect();
        let live: HashSet<String> = store
            .state()
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        pods.retain(&live);
        for pod in store.state() {
            let Some(node) = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .and_then(|n| running.get(n))
            else {
                continue;
            };
            if let Err(e) = pods.reconcile(&client, &pod, node, &state.sim).await {
                tracing::debug!(
                    "pod {}/{}: {e}",
                    pod.namespace().unwrap_or_default(),
                    pod.name_any()
                );
            }
        }
        tokio::select! {
            () = changed.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

async fn heartbeat(
    client: &kube::Client,
    spec: &NodeSpec,
    rt: &mut NodeRuntime,
    now: SystemTime,
) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let due = |last: Option<SystemTime>, every: Duration| {
        last.is_none_or(|t| now.duration_since(t).unwrap_or_default() >= every)
    };
    let restarted = rt.restarts_seen != Some(spec.restarts);
    if restarted {
        if rt.restarts_seen.is_some() {
            rt.restarted_at = Some(now);
        }
        rt.restarts_seen = Some(spec.restarts);
    }
    let in_restart = rt
        .restarted_at
        .is_some_and(|t| now.duration_since(t).unwrap_or_default() < RESTART_NOT_READY);
    let ready = !in_restart;
    let mut post_status =
        restarted || due(rt.last_status, STATUS_REFRESH) || rt.ready_reported != Some(ready);
    if nodes.get_opt(&spec.name).await?.is_none() || rt.last_status.is_none() {
        if nodes.get_opt(&spec.name).await?.is_none() {
            nodes
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(node_object(spec))?,
                )
                .await?;
        }
        post_status = true;
    }
    if due(rt.last_lease, LEASE_RENEW) || post_status {
        renew_lease(client, spec).await?;
        rt.last_lease = Some(now);
    }
    if post_status {
        let status = node_status(spec, ready, Timestamp::now());
        nodes
            .patch_status(
                &spec.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await?;
        rt.last_status = Some(now);
        rt.ready_reported = Some(ready);
    }
    Ok(())
}

async fn renew_lease(client: &kube::Client, spec: &NodeSpec) -> anyhow::Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = k8s_micro_time(Timestamp::now());
    if leases.get_opt(&spec.name).await?.is_none() {
        let nodes: Api<Node> = Api::all(client.clone());
        let uid = nodes.get(&spec.name).await?.uid().unwrap_or_default();
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": { "name": spec.name, "namespace": "kube-node-lease",
                "ownerReferences": [{ "apiVersion": "v1", "kind": "Node", "name": spec.name, "uid": uid }] },
            "spec": { "holderIdentity": spec.name, "leaseDurationSeconds": 40, "renewTime": now }
        });
        leases
            .create(&PostParams::default(), &serde_json::from_value(lease)?)
            .await?;
    } else {
        leases
            .patch(
                &spec.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "renewTime": now, "holderIdentity": spec.name } })),
            )
            .await?;
    }
    Ok(())
}

/// The Node a kubeadm-joined kubelet registers.
fn node_object(spec: &NodeSpec) -> Value {
    let mut labels = json!({
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux",
    });
    let mut taints = json!([]);
    if spec.control_plane {
        labels["node-role.kubernetes.io/control-plane"] = json!("");
        labels["node-role.kubernetes.io/master"] = json!("");
        // kubeadm 1.20 taints control-plane nodes with the `master` key.
        taints = json!([{ "key": "node-role.kubernetes.io/master", "effect": "NoSchedule" }]);
    }
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": spec.name, "labels": labels,
            "annotations": {
                "kubeadm.alpha.kubernetes.io/cri-socket": "/var/run/dockershim.sock",
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            }
        },
        "spec": { "podCIDR": format!("10.244.{}.0/24", spec.index), "podCIDRs": [format!("10.244.{}.0/24", spec.index)], "taints": taints }
    })
}

fn node_status(spec: &NodeSpec, ready: bool, now: Timestamp) -> Value {
    let t = k8s_time(now);
    let cond = |type_: &str, status: &str, reason: &str, message: &str| json!({ "type": type_, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": t, "lastTransitionTime": t });
    let (cpu, memory) = if spec.control_plane {
        ("2", "4030000Ki")
    } else {
        ("4", "8150000Ki")
    };
    let resources = json!({ "cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "51474912Ki", "hugepages-2Mi": "0" });
    let ready_cond = if ready {
        cond(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status. AppArmor enabled",
        )
    } else {
        cond(
            "Ready",
            "False",
            "KubeletNotReady",
            "container runtime status check may not have completed yet",
        )
    };
    json!({
        "capacity": resources, "allocatable": resources,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ready_cond,
        ],
        "addresses": [{ "type": "InternalIP", "address": format!("10.0.0.{}", 10 + spec.index) }, { "type": "Hostname", "address": spec.name }],
        "daemonEndpoints": { "kubeletEndpoint": { "Port": 10250 } },
        "nodeInfo": {
            "machineID": format!("{:032x}", spec.index + 1), "systemUUID": format!("00000000-0000-0000-0000-{:012x}", spec.index + 1),
            "bootID": format!("00000000-0000-0000-0001-{:012x}", spec.index + 1),
            "kernelVersion": "6.1.0-18-amd64", "osImage": "Debian GNU/Linux 12 (bookworm)",
            "containerRuntimeVersion": "docker://20.10.5", "kubeletVersion": spec.kubelet_version,
            "kubeProxyVersion": spec.kubelet_version, "operatingSystem": "linux", "architecture": "amd64",
        }
    })
}

/// A kubelet creates a mirror pod for each static pod in `/etc/kubernetes/manifests`, and
/// replaces it when the manifest changed ([`crate::kubeadm::sync_mirror_pods`]).
/// Returns what it changed.
async fn ensure_mirror_pods(
    client: &kube::Client,
    spec: &NodeSpec,
    state: &LabState,
    store: &reflector::Store<Pod>,
) -> anyhow::Result<Vec<String>> {
    let existing: HashMap<String, (Option<String>, Option<String>)> = store
        .state()
        .iter()
        .filter(|p| p.namespace().as_deref() == Some("kube-system"))
        .map(|p| {
            let hash = p.annotations().get(crate::kubeadm::CONFIG_HASH).cloned();
            (p.name_any(), (hash, p.uid()))
        })
        .collect();
    let nodes: Api<Node> = Api::all(client.clone());
    let Some(node) = nodes.get_opt(&spec.name).await? else {
        return Ok(Vec::new());
    };
    let uid = node.uid().unwrap_or_default();
    Ok(crate::kubeadm::sync_mirror_pods(client, spec, state, &uid, &existing).await?)
}
