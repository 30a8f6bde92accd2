//! The pod side of the simulated kubelets ([`crate::kubelet`]): pods bound to a running node go
//! Running and then Ready, exit when told to, and finish their graceful deletion — and the
//! simulator's own log, `DIR/logs/kubelet-sim.log`.
//!
//! Like a real kubelet's status manager, the simulator posts a pod's status whenever the API's
//! differs from the one it wants, not only once: other clients change it too. The real
//! node-lifecycle controller sets every pod of a node whose heartbeats went stale to Ready=False
//! (`MarkPodsNotReady`), and when the node is back its kubelet reports them Ready again. What
//! the simulator remembers of its own posts only keeps it from posting twice while its watch has
//! not yet shown the first post ([`needs_post`]).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::annotations::{
    EXIT_AFTER_ANNOTATION, EXIT_CODE_ANNOTATION, READY_DELAY_ANNOTATION, SHUTDOWN_DELAY_ANNOTATION,
};
use crate::state::{NodeSpec, SimSettings};

/// Formats a timestamp as Kubernetes `Time` (RFC 3339, seconds).
pub(crate) fn k8s_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The simulated kubelets' log: `DIR/logs/kubelet-sim.log`, one timestamped line per notable
/// action or failure (appended, so a simulator run as a process and its stderr can share it).
#[derive(Debug, Clone)]
pub struct SimLog {
    path: PathBuf,
}

impl SimLog {
    /// The log of the lab in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            path: crate::process::log_dir(dir).join("kubelet-sim.log"),
        }
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (a log that cannot be written is not worth stopping the kubelets for).
    pub fn line(&self, message: impl std::fmt::Display) {
        let line = format!("{} {message}\n", Timestamp::now());
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
    }
}

/// When this simulator started a pod and first saw it deleted, to the millisecond: the API's
/// `startTime` and `deletionTimestamp` have whole seconds, which would turn a 1.5 s delay into
/// anything from 0.5 to 1.5 s.
#[derive(Debug, Default)]
struct PodClock {
    started: Option<SystemTime>,
    deletion_seen: Option<SystemTime>,
}

/// A status this simulator posted for a pod: what it posted (`Phase/ready`) and the
/// `resourceVersion` of the pod as its watch showed it then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// `Running/true`, ...
    pub key: String,
    /// The version the post was decided on.
    pub seen_version: Option<String>,
}

/// Whether to post the status `want` (`Phase/ready`) for a pod the watch shows with status
/// `shown` at `version`, given what was last posted for it: yes when the two differ, unless
/// that very status was posted on this very version — then the watch has not caught up with
/// the post yet. Once the watch shows a newer version still differing, someone else changed
/// the status after the post (the node-lifecycle controller marking it NotReady): post again.
pub fn needs_post(shown: &str, version: Option<&str>, want: &str, last: Option<&Posted>) -> bool {
    if shown == want {
        return false;
    }
    !last.is_some_and(|p| p.key == want && p.seen_version.as_deref() == version)
}

/// The pods' side of the simulator: what it posted, its clocks and the pod IPs it handed out.
#[derive(Debug)]
pub(crate) struct PodSim {
    log: SimLog,
    /// Per pod UID.
    posted: HashMap<String, Posted>,
    /// UIDs whose final deletion was sent.
    finishing: HashSet<String>,
    clocks: HashMap<String, PodClock>,
    ip_counter: HashMap<u32, u32>,
}

impl PodSim {
    pub(crate) fn new(log: SimLog) -> Self {
        Self {
            log,
            posted: HashMap::new(),
            finishing: HashSet::new(),
            clocks: HashMap::new(),
            ip_counter: HashMap::new(),
        }
    }

    /// Forgets pods that are gone.
    pub(crate) fn retain(&mut self, live: &HashSet<String>) {
        self.posted.retain(|uid, _| live.contains(uid));
        self.finishing.retain(|uid| live.contains(uid));
        self.clocks.retain(|uid, _| live.contains(uid));
    }

    /// Moves one pod of a running node along: finishes its deletion, or posts the status it
    /// should have now.
    pub(crate) async fn reconcile(
        &mut self,
        client: &kube::Client,
        pod: &Pod,
        node: &NodeSpec,
        sim: &SimSettings,
    ) -> anyhow::Result<()> {
        let uid = pod.uid().unwrap_or_default();
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let now = SystemTime::now();
        let status = pod.status.clone().unwrap_or_default();
        let phase = status.phase.clone().unwrap_or_else(|| "Pending".into());

        if let Some(deleted) = &pod.metadata.deletion_timestamp {
            if self.finishing.contains(&uid) {
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
            let clock = self.clocks.entry(uid.clone()).or_default();
            let seen = *clock.deletion_seen.get_or_insert(now);
            let finished = matches!(phase.as_str(), "Succeeded" | "Failed");
            let shutdown = if finished {
                0
            } else {
                annotation_ms(pod, SHUTDOWN_DELAY_ANNOTATION).unwrap_or(sim.shutdown_delay_ms)
            };
            // deletionTimestamp has whole seconds (rounded down): the deadline may be 1 s later.
            let deadline = ts_of(deleted) + Duration::from_secs(1);
            let done_at = (seen + Duration::from_millis(shutdown).min(Duration::from_secs(grace)))
                .min(deadline);
            if now >= done_at {
                self.finishing.insert(uid.clone());
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match api.delete(&pod.name_any(), &dp).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => {
                        self.finishing.remove(&uid);
                        return Err(e.into());
                    }
                }
            }
            return Ok(());
        }
        if matches!(phase.as_str(), "Succeeded" | "Failed") {
            return Ok(());
        }
        let clock = self.clocks.entry(uid.clone()).or_default();
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
        let version = pod.resource_version();
        let last = self.posted.get(&uid);
        if !needs_post(&current_key, version.as_deref(), &key, last) {
            return Ok(());
        }
        if last.is_some_and(|p| p.key == key) {
            self.log.line(format_args!(
                "pod {ns}/{} ({uid}): shows {current_key} at resourceVersion {} after this kubelet posted {key}: another client changed its status; posting {key} again",
                pod.name_any(),
                version.as_deref().unwrap_or("?")
            ));
        }
        let pod_ip = match status.pod_ip.clone() {
            Some(ip) => ip,
            None => {
                let n = self.ip_counter.entry(node.index).or_insert(1);
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
        // By name with the pod's UID as a precondition: a pod of the same name made since (a
        // replaced mirror pod) is not this one.
        let patch = json!({ "metadata": { "uid": uid }, "status": body });
        api.patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
        if ns == "kube-system" {
            self.log.line(format_args!(
                "pod {ns}/{} ({uid}) on {}: posted {key}",
                pod.name_any(),
                node.name
            ));
        }
        self.posted.insert(
            uid,
            Posted {
                key,
                seen_version: version,
            },
        );
        Ok(())
    }
}

fn annotation_ms(pod: &Pod, key: &str) -> Option<u64> {
    pod.annotations().get(key).and_then(|v| v.parse().ok())
}

fn ts_of(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> SystemTime {
    SystemTime::from(t.0)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn posted(key: &str, version: &str) -> Posted {
        Posted {
            key: key.into(),
            seen_version: Some(version.into()),
        }
    }

    #[test]
    fn a_status_is_posted_until_the_api_shows_it() {
        let ready = "Running/true";
        let unready = "Running/false";
        // (shown, version, want, last posted, post?)
        let table: [(&str, &str, &str, Option<Posted>, bool); 7] = [
            // Never posted: post when it differs.
            (unready, "10", ready, None, true),
            (ready, "10", ready, None, false),
            // Just posted on version 10; the watch still shows 10: wait for it.
            (unready, "10", ready, Some(posted(ready, "10")), false),
            // The watch shows the post.
            (ready, "11", ready, Some(posted(ready, "10")), false),
            // The node-lifecycle controller set Ready=False after the post (version 12):
            // a kubelet reports Ready again. (Before: never posted again, NotReady for good.)
            (unready, "12", ready, Some(posted(ready, "10")), true),
            // Something else changed in between, the post not shown yet: posting twice is harmless.
            (unready, "11", ready, Some(posted(ready, "10")), true),
            // A different status is wanted now (the readiness delay passed, the pod exited).
            (
                unready,
                "10",
                "Succeeded/false",
                Some(posted(ready, "10")),
                true,
            ),
        ];
        for (shown, version, want, last, post) in table {
            assert_eq!(
                needs_post(shown, Some(version), want, last.as_ref()),
                post,
                "shown {shown} at {version}, want {want}, last {last:?}"
            );
        }
    }
}
