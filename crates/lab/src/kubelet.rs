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
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::annotations::{
    EXIT_AFTER_ANNOTATION, EXIT_CODE_ANNOTATION, READY_DELAY_ANNOTATION, SHUTDOWN_DELAY_ANNOTATION,
};
use crate::state::{LabState, NodeSpec, SimSettings};

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

/// Formats a timestamp as Kubernetes `Time` (RFC 3339, seconds).
fn k8s_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
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
    let (store, writer) = reflector::store();
    let changed = Arc::new(Notify::new());
    let changed2 = changed.clone();
    let watch = watcher(pods_api.clone(), watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .for_each(move |_| {
            changed2.notify_one();
            futures::future::ready(())
        });
    tokio::spawn(watch);

    let mut nodes_rt: HashMap<String, NodeRuntime> = HashMap::new();
    // Per pod UID: the status we last posted (so we do not post it again before the watch catches up).
    let mut posted: HashMap<String, String> = HashMap::new();
    let mut finishing: HashSet<String> = HashSet::new();
    let mut clocks: HashMap<String, PodClock> = HashMap::new();
    let mut ip_counter: HashMap<u32, u32> = HashMap::new();
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
            if let Err(e) = heartbeat(&client, spec, rt, now).await {
                tracing::warn!("node {}: heartbeat failed: {e}", spec.name);
            }
            if spec.control_plane
                && rt.last_status == Some(now)
                && let Err(e) = ensure_mirror_pods(&client, spec, &state, &store).await
            {
                tracing::warn!("node {}: mirror pods: {e}", spec.name);
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
        posted.retain(|uid, _| live.contains(uid));
        finishing.retain(|uid| live.contains(uid));
        clocks.retain(|uid, _| live.contains(uid));
        for pod in store.state() {
            let Some(node) = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .and_then(|n| running.get(n))
            else {
                continue;
            };
            if let Err(e) = reconcile_pod(
                &client,
                &pod,
                node,
                &state.sim,
                &mut posted,
                &mut finishing,
                &mut clocks,
                &mut ip_counter,
            )
            .await
            {
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

/// When this simulator started a pod and first saw it deleted, to the millisecond: the API's
/// `startTime` and `deletionTimestamp` have whole seconds, which would turn a 1.5 s delay into
/// anything from 0.5 to 1.5 s.
#[derive(Debug, Default)]
struct PodClock {
    started: Option<SystemTime>,
    deletion_seen: Option<SystemTime>,
}

fn annotation_ms(pod: &Pod, key: &str) -> Option<u64> {
    pod.annotations().get(key).and_then(|v| v.parse().ok())
}

fn ts_of(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> SystemTime {
    SystemTime::from(t.0)
}

#[allow(clippy::too_many_arguments)]
async fn reconcile_pod(
    client: &kube::Client,
    pod: &Pod,
    node: &NodeSpec,
    sim: &SimSettings,
    posted: &mut HashMap<String, String>,
    finishing: &mut HashSet<String>,
    clocks: &mut HashMap<String, PodClock>,
    ip_counter: &mut HashMap<u32, u32>,
) -> anyhow::Result<()> {
    let uid = pod.uid().unwrap_or_default();
    let ns = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let now = SystemTime::now();
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_else(|| "Pending".into());

    if let Some(deleted) = &pod.metadata.deletion_timestamp {
        if finishing.contains(&uid) {
            return Ok(());
        }
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .unwrap_or(30)
            .max(0) as u64;
        // Like a kubelet, the graceful stop starts when the deletion is seen (deletionTimestamp,
        // request time + grace, has whole seconds only), and never outlives the grace period: a
        // pod deleted while its node was down is gone as soon as the node is back.
        let clock = clocks.entry(uid.clone()).or_default();
        let seen = *clock.deletion_seen.get_or_insert(now);
        let finished = matches!(phase.as_str(), "Succeeded" | "Failed");
        let shutdown = if finished {
            0
        } else {
            annotation_ms(pod, SHUTDOWN_DELAY_ANNOTATION).unwrap_or(sim.shutdown_delay_ms)
        };
        // deletionTimestamp has whole seconds (rounded down): the deadline may be 1 s later.
        let deadline = ts_of(deleted) + Duration::from_secs(1);
        let done_at =
            (seen + Duration::from_millis(shutdown).min(Duration::from_secs(grace))).min(deadline);
        if now >= done_at {
            finishing.insert(uid.clone());
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&pod.name_any(), &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => {
                    finishing.remove(&pod.uid().unwrap_or_default());
                    return Err(e.into());
                }
            }
        }
        return Ok(());
    }
    if matches!(phase.as_str(), "Succeeded" | "Failed") {
        return Ok(());
    }
    let clock = clocks.entry(uid.clone()).or_default();
    // Our own start time if we started it; `startTime` (whole seconds) after a simulator restart.
    let started = clock
        .started
        .or_else(|| status.start_time.as_ref().map(ts_of));
    let ready_delay = Duration::from_millis(
        annotation_ms(pod, READY_DELAY_ANNOTATION).unwrap_or(sim.ready_delay_ms),
    );
    let exit_after = annotation_ms(pod, EXIT_AFTER_ANNOTATION).map(Duration::from_millis);
    let restart_policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    let exit_code: i32 = pod
        .annotations()
        .get(EXIT_CODE_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);

    let start = *clock.started.get_or_insert(started.unwrap_or(now));
    let elapsed = now.duration_since(start).unwrap_or_default();
    let exited = exit_after.is_some_and(|d| elapsed >= d)
        && (restart_policy == "Never" || (restart_policy == "OnFailure" && exit_code == 0));
    let ready = !exited && elapsed >= ready_delay;
    let desired_phase = if exited {
        if exit_code == 0 {
            "Succeeded"
        } else {
            "Failed"
        }
    } else {
        "Running"
    };
    let key = format!("{desired_phase}/{ready}");
    let current_ready = status
        .conditions
        .as_ref()
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let current_key = format!("{phase}/{current_ready}");
    if current_key == key || posted.get(&uid) == Some(&key) {
        return Ok(());
    }
    let pod_ip = match status.pod_ip.clone() {
        Some(ip) => ip,
        None => {
            let n = ip_counter.entry(node.index).or_insert(1);
            *n = (*n % 250) + 1;
            format!("10.244.{}.{}", node.index, n)
        }
    };
    let body = pod_status(
        pod,
        node,
        desired_phase,
        ready,
        exit_code,
        Timestamp::try_from(start).unwrap_or_else(|_| Timestamp::now()),
        &pod_ip,
    );
    api.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": body })),
    )
    .await?;
    posted.insert(uid, key);
    Ok(())
}

fn pod_status(
    pod: &Pod,
    node: &NodeSpec,
    phase: &str,
    ready: bool,
    exit_code: i32,
    start: Timestamp,
    pod_ip: &str,
) -> Value {
    let t = k8s_time(start);
    let now = k8s_time(Timestamp::now());
    let spec = pod.spec.clone().unwrap_or_default();
    let running = phase == "Running";
    let b = |v: bool| if v { "True" } else { "False" };
    let state = |name: &str, image: &str, init: bool| {
        let st = if init || !running {
            let code = if init { 0 } else { exit_code };
            json!({ "terminated": { "exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }, "startedAt": t, "finishedAt": now } })
        } else {
            json!({ "running": { "startedAt": t } })
        };
        json!({
            "name": name, "image": image, "imageID": format!("docker-pullable://{image}"),
            "containerID": format!("docker://{:064x}", fxhash(&format!("{}/{name}", pod.uid().unwrap_or_default()))),
            "ready": !init && ready, "started": !init && running, "restartCount": 0, "state": st,
        })
    };
    let containers: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| state(&c.name, c.image.as_deref().unwrap_or(""), false))
        .collect();
    let inits: Vec<Value> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| state(&c.name, c.image.as_deref().unwrap_or(""), true))
        .collect();
    let host_ip = format!("10.0.0.{}", 10 + node.index);
    let host_network = spec.host_network.unwrap_or(false);
    let ip = if host_network {
        host_ip.clone()
    } else {
        pod_ip.to_string()
    };
    let mut status = json!({
        "phase": phase,
        "conditions": [
            { "type": "Initialized", "status": "True", "lastTransitionTime": t, "lastProbeTime": null },
            { "type": "Ready", "status": b(ready), "lastTransitionTime": now, "lastProbeTime": null },
            { "type": "ContainersReady", "status": b(ready), "lastTransitionTime": now, "lastProbeTime": null },
            { "type": "PodScheduled", "status": "True", "lastTransitionTime": t, "lastProbeTime": null },
        ],
        "hostIP": host_ip, "podIP": ip, "podIPs": [{ "ip": ip }], "startTime": t,
        "containerStatuses": containers, "qosClass": "BestEffort",
    });
    if !inits.is_empty() {
        status["initContainerStatuses"] = json!(inits);
    }
    status
}

/// A small stable hash for fake container IDs.
fn fxhash(s: &str) -> u128 {
    s.bytes().fold(0xcbf29ce484222325u128, |h, b| {
        (h ^ u128::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// A kubelet creates a mirror pod for each static pod in `/etc/kubernetes/manifests`, and
/// replaces it when the manifest changed ([`crate::kubeadm::sync_mirror_pods`]).
async fn ensure_mirror_pods(
    client: &kube::Client,
    spec: &NodeSpec,
    state: &LabState,
    store: &reflector::Store<Pod>,
) -> anyhow::Result<()> {
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
        return Ok(());
    };
    let uid = node.uid().unwrap_or_default();
    crate::kubeadm::sync_mirror_pods(client, spec, state, &uid, &existing).await?;
    Ok(())
}
