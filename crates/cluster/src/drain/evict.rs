//! Removing pods from a node: eviction (or delete) requests with kubectl's retry semantics,
//! watch-based waiting for deletion and for PDB changes, bounded concurrency.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kubemaint_core::drain::PodRef;
use kubemaint_core::drain::cordon::DryRun;
use kubemaint_core::drain::eviction::{
    ApiStatus, DeleteOptions, EvictionOutcome, Gone, NextStep, RemovalMethod, RetrySettings,
    RetryWait, blocking_budget, classify_eviction_response, eviction_body, next_step,
};
use kubemaint_core::drain::filters::should_skip_deleted;
use kubemaint_core::drain::plan::{evicting_line, removed_line};
use kubemaint_core::drain::report::PodWaits;
use kubemaint_core::drain::stuck::{
    StuckAction, StuckPolicy, StuckTerminating, stuck_action, stuck_terminating,
};
use serde::Serialize;
use tokio::time::Instant;

pub use super::watches::{PdbGate, Tracker};
use super::{NodeLive, Reporter};

/// How a pod's removal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PodResult {
    /// Evicted and gone.
    Evicted,
    /// Deleted and gone.
    Deleted,
    /// Already gone (404) before or during eviction.
    AlreadyGone,
    /// Replaced by a new pod with the same name (UID changed / UID precondition failed).
    Replaced,
    /// Still terminating past `--skip-wait-for-delete-timeout`: no longer waited for.
    SkippedWait,
    /// Stuck Terminating on a NotReady node, then force-deleted (`--force-delete-after`).
    ForceDeleted,
    /// Server dry-run accepted the eviction.
    DryRunAccepted,
    /// Server dry-run refused it (PDB); kubectl would retry forever here.
    DryRunBlocked,
    /// Failed (per-pod error).
    Failed,
}

/// Outcome of one pod.
#[derive(Debug, Clone, Serialize)]
pub struct PodOutcome {
    /// The pod.
    pub pod: PodRef,
    /// Result.
    pub result: PodResult,
    /// Eviction/delete requests sent.
    pub attempts: u32,
    /// Seconds from the first request to the end.
    pub seconds: f64,
    /// Last PDB refusal, if any (`PDB name: server message`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
    /// The error, for failures (kubectl's wording).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Last seen stuck Terminating past its grace period on a NotReady node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stuck: Option<StuckTerminating>,
    /// What the pod waited for, in seconds (budgets, retries, its termination).
    pub waited: PodWaits,
}

/// Longest wait for a watched budget before retrying anyway.
const WATCHED_BUDGET_SAFETY_NET: Duration = Duration::from_secs(30);
/// How many times that wait is renewed while the watch keeps reporting the budget (so a pod
/// tries at least every 2 minutes).
const SAFETY_NET_REARMS: u32 = 3;

/// A pod currently refused by a PDB (for progress lines).
#[derive(Debug, Clone)]
pub struct Blocked {
    /// Since when.
    pub since: Instant,
    /// PDB name and message.
    pub what: String,
}

/// Everything a removal needs.
#[derive(Clone)]
pub struct Remover {
    /// Client without automatic 429 retries.
    pub client: kube::Client,
    /// Evict or delete.
    pub method: RemovalMethod,
    /// `--grace-period`.
    pub grace_period: i64,
    /// `--dry-run`.
    pub dry_run: Option<DryRun>,
    /// Delay between retries when nothing else wakes us (kubectl: 5 s).
    pub retry_delay: Duration,
    /// Per-node deadline (`--timeout`).
    pub deadline: Option<Instant>,
    /// `--timeout` as kubectl prints it.
    pub timeout_text: String,
    /// `--skip-wait-for-delete-timeout`.
    pub skip_wait_seconds: i64,
    /// Budgets' allowed disruptions, from a watch.
    pub pdb_gate: PdbGate,
    /// Pod watch of the node.
    pub tracker: Tracker,
    /// What holds the node up right now (blocked and stuck pods).
    pub live: Arc<NodeLive>,
    /// Where kubectl's lines go.
    pub reporter: Arc<dyn Reporter>,
    /// What to do with pods stuck Terminating on a NotReady node.
    pub stuck_policy: StuckPolicy,
    /// Pods whose first attempt waits for their budget (`namespace/name`) through the watch.
    pub first_gate: Arc<BTreeMap<PodRef, String>>,
}

pub(crate) enum Sent {
    Outcome(EvictionOutcome),
    Transport(String),
}

impl Remover {
    fn out(&self, line: &str) {
        self.reporter.out(line);
    }

    fn err(&self, line: &str) {
        self.reporter.err(line);
    }

    fn timed_out(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    pub(crate) async fn send(&self, pod: &Pod, r: &PodRef) -> Sent {
        let opts = DeleteOptions {
            grace_period_seconds: self.grace_period,
            uid: (!r.uid.is_empty())
                .then(|| pod.metadata.uid.clone().unwrap_or_else(|| r.uid.clone())),
            dry_run: self.dry_run == Some(DryRun::Server),
        };
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let result = match self.method {
            RemovalMethod::Evict(version) => {
                let body = eviction_body(version, &r.namespace, &r.name, &opts);
                let req =
                    kube::core::Request::new(format!("/api/v1/namespaces/{}/pods", r.namespace))
                        .create_subresource(
                            "eviction",
                            &r.name,
                            &PostParams::default(),
                            serde_json::to_vec(&body).unwrap_or_default(),
                        );
                match req {
                    Ok(req) => self.client.request_text(req).await.map(|_| ()),
                    Err(e) => return Sent::Transport(e.to_string()),
                }
            }
            RemovalMethod::Delete => {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &r.namespace);
                let dp = DeleteParams {
                    dry_run: opts.dry_run,
                    grace_period_seconds: u32::try_from(self.grace_period).ok(),
                    preconditions: opts.uid.clone().map(|uid| Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                api.delete(&r.name, &dp).await.map(|_| ())
            }
        };
        match result {
            Ok(()) => Sent::Outcome(EvictionOutcome::Accepted),
            Err(kube::Error::Api(status)) => {
                let st: ApiStatus = serde_json::to_value(&*status)
                    .ok()
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_default();
                Sent::Outcome(classify_eviction_response(
                    status.code,
                    Some(&st),
                    None,
                    deleting,
                ))
            }
            Err(e) => Sent::Transport(e.to_string()),
        }
    }

    /// Sleeps `d`, or until the deadline.
    async fn pause(&self, d: Duration) {
        let until = match self.deadline {
            Some(dl) => dl.min(Instant::now() + d),
            None => Instant::now() + d,
        };
        tokio::time::sleep_until(until).await;
    }

    /// Waits until budget `key` allows a disruption (taking it for `pod`: then `true`), or `d`
    /// passed, or the deadline.
    async fn wait_for_budget(&self, key: &str, pod: &str, d: Duration) -> bool {
        // With the budget under watch, the timed retry is only a safety net for a missed event.
        let watched = self.pdb_gate.knows(key);
        let d = if watched {
            d.max(WATCHED_BUDGET_SAFETY_NET)
        } else {
            d
        };
        let deadline = |d| match self.deadline {
            Some(dl) => dl.min(Instant::now() + d),
            None => Instant::now() + d,
        };
        let mut until = deadline(d);
        let mut rearmed = 0;
        let mut changes = self.pdb_gate.changes.clone();
        loop {
            if self.pdb_gate.try_take(key, pod) {
                return true;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {
                    // The safety net is for a watch gone quiet; one still reporting this budget
                    // will wake us when it allows a disruption. Still try now and then: the
                    // server may accept what the budget's numbers refuse (an unhealthy pod).
                    if watched
                        && rearmed < SAFETY_NET_REARMS
                        && !self.timed_out()
                        && self.pdb_gate.fresh(key, d)
                    {
                        rearmed += 1;
                        until = deadline(d);
                        continue;
                    }
                    return false;
                }
                r = changes.changed() => if r.is_err() {
                    tokio::time::sleep_until(until).await;
                    return false;
                },
            }
        }
    }

    /// Removes one pod and waits until it is gone (kubectl's per-pod goroutine).
    pub async fn remove(&self, pod: Pod) -> PodOutcome {
        let started = Instant::now();
        let r = PodRef::of(&pod);
        let mut active = pod;
        let mut attempts = 0u32;
        let mut blocked_by = None;
        let live = self.live.clone();
        // What this pod waited for (the node's summary says what held it up).
        let mut waits = PodWaits::default();
        let done = |result, attempts, blocked_by, error, waited: &PodWaits| PodOutcome {
            pod: r.clone(),
            result,
            attempts,
            seconds: started.elapsed().as_secs_f64(),
            blocked_by,
            error,
            stuck: live.stuck.lock().expect("stuck map").remove(&r),
            waited: waited.clone(),
        };
        let (name, ns) = (r.name.clone(), r.namespace.clone());
        // The budget disruption this pod holds, if any (given back if its eviction fails).
        let mut held: Option<String> = None;
        if let (None, Some(key)) = (self.dry_run, self.first_gate.get(&r)) {
            if self.pdb_gate.try_take(key, &name) {
                held = Some(key.clone());
            } else {
                self.live
                    .blocked
                    .lock()
                    .expect("progress map")
                    .entry(r.clone())
                    .or_insert(Blocked {
                        since: Instant::now(),
                        what: format!("PDB {key}: waiting for it to allow a disruption"),
                    });
                // Returns when the budget hands us a disruption, or after the safety net / retry
                // delay: then the eviction is tried anyway and the server decides.
                let t = Instant::now();
                if self.wait_for_budget(key, &name, self.retry_delay).await {
                    held = Some(key.clone());
                }
                waits.budget(key, t.elapsed().as_secs_f64());
            }
        }
        loop {
            if self.timed_out() {
                self.unblock(&r);
                if let Some(key) = held.take() {
                    self.pdb_gate.release(&key, &name);
                }
                return done(
                    PodResult::Failed,
                    attempts,
                    blocked_by,
                    Some(format!(
                        "error when evicting pods/\"{name}\" -n \"{ns}\": global timeout reached: {}",
                        self.timeout_text
                    )),
                    &waits,
                );
            }
            if matches!(self.method, RemovalMethod::Evict(_)) {
                self.out(&evicting_line(&r, self.dry_run));
            }
            attempts += 1;
            let outcome = match self.send(&active, &r).await {
                Sent::Outcome(o) => o,
                Sent::Transport(e) => EvictionOutcome::Failed {
                    code: 0,
                    message: e,
                },
            };
            let delay = kubemaint_core::duration::Go(self.retry_delay).to_string();
            let settings = RetrySettings {
                dry_run: self.dry_run,
                delay: self.retry_delay,
                delay_text: &delay,
            };
            let step = next_step(outcome, &r, settings);
            if !matches!(step, NextStep::WaitForDeletion)
                && let Some(key) = held.take()
            {
                self.pdb_gate.release(&key, &name);
            }
            match step {
                NextStep::WaitForDeletion => break,
                NextStep::Done(gone) => {
                    self.unblock(&r);
                    let result = match gone {
                        Gone::Replaced => PodResult::Replaced,
                        Gone::NotFound => PodResult::AlreadyGone,
                    };
                    return done(result, attempts, blocked_by, None, &waits);
                }
                NextStep::DryRunBlocked {
                    line,
                    blocked_by: what,
                } => {
                    self.err(&line);
                    return done(PodResult::DryRunBlocked, attempts, Some(what), None, &waits);
                }
                NextStep::Fail { error } => {
                    self.unblock(&r);
                    return done(PodResult::Failed, attempts, blocked_by, Some(error), &waits);
                }
                NextStep::Retry {
                    wait,
                    line,
                    blocked_by: what,
                } => {
                    if let Some(line) = line {
                        self.err(&line);
                    }
                    if let Some(what) = what {
                        self.live
                            .blocked
                            .lock()
                            .expect("progress map")
                            .entry(r.clone())
                            .or_insert(Blocked {
                                since: Instant::now(),
                                what: what.clone(),
                            })
                            .what = what.clone();
                        blocked_by = Some(what);
                    }
                    let t = Instant::now();
                    match wait {
                        RetryWait::Pause(d) => {
                            self.pause(d).await;
                            let waited = t.elapsed().as_secs_f64();
                            match blocked_by.as_deref().and_then(blocking_budget) {
                                Some(key) => waits.budget(key, waited),
                                None => waits.retries += waited,
                            }
                        }
                        RetryWait::Budget { key } => {
                            if self.wait_for_budget(&key, &name, self.retry_delay).await {
                                held = Some(key.clone());
                            }
                            waits.budget(&key, t.elapsed().as_secs_f64());
                        }
                    }
                }
            }
            // Refresh the pod, as kubectl does, but from the watch cache: gone or replaced
            // means done (kubectl would chase a recreated StatefulSet pod).
            match self.tracker.get(&r) {
                None => {
                    self.unblock(&r);
                    return done(PodResult::AlreadyGone, attempts, blocked_by, None, &waits);
                }
                Some(p)
                    if p.metadata.uid.as_deref() != Some(r.uid.as_str()) && !r.uid.is_empty() =>
                {
                    self.unblock(&r);
                    return done(PodResult::Replaced, attempts, blocked_by, None, &waits);
                }
                Some(p) => active = (*p).clone(),
            }
        }
        self.unblock(&r);
        if self.dry_run == Some(DryRun::Server) {
            return done(
                PodResult::DryRunAccepted,
                attempts,
                blocked_by,
                None,
                &waits,
            );
        }
        // Wait for deletion: gone, or UID changed, or past --skip-wait-for-delete-timeout.
        // Meanwhile, a pod past its grace period on a NotReady node is stuck: say so, and
        // force-delete it if the policy says so.
        let mut changes = self.tracker.changes.clone();
        let mut force_deleted = false;
        let terminating = Instant::now();
        loop {
            waits.termination = terminating.elapsed().as_secs_f64();
            let mut stuck_now = None;
            match self.tracker.get(&r) {
                None => break,
                Some(p)
                    if !r.uid.is_empty() && p.metadata.uid.as_deref() != Some(r.uid.as_str()) =>
                {
                    break;
                }
                Some(p)
                    if should_skip_deleted(&p, self.skip_wait_seconds, jiff::Timestamp::now()) =>
                {
                    self.out(&format!(
                        "pod \"{name}\" has DeletionTimestamp older than {} seconds, skipping",
                        self.skip_wait_seconds
                    ));
                    return done(PodResult::SkippedWait, attempts, blocked_by, None, &waits);
                }
                Some(p) => {
                    let now = jiff::Timestamp::now();
                    if let Some(s) = stuck_terminating(&p, self.tracker.node().as_deref(), now) {
                        let first = self
                            .live
                            .stuck
                            .lock()
                            .expect("stuck map")
                            .insert(r.clone(), s.clone())
                            .is_none();
                        if first {
                            self.err(&format!("warning: {}", s.explain(&r.to_string())));
                        }
                        if !force_deleted
                            && stuck_action(&s, self.stuck_policy, now) == StuckAction::ForceDelete
                        {
                            if let Err(e) = self.force_delete(&p, &r).await {
                                return done(
                                    PodResult::Failed,
                                    attempts,
                                    blocked_by,
                                    Some(e),
                                    &waits,
                                );
                            }
                            force_deleted = true;
                            self.out(&format!(
                                "pod/{name} force-deleted after {}s stuck Terminating (--force-delete-after {}): {}",
                                s.stuck_seconds,
                                match self.stuck_policy {
                                    StuckPolicy::ForceDeleteAfter(d) =>
                                        kubemaint_core::duration::format(d),
                                    StuckPolicy::Fail => String::new(),
                                },
                                s.node.describe()
                            ));
                        }
                        stuck_now = Some(s);
                    } else {
                        self.live.stuck.lock().expect("stuck map").remove(&r);
                    }
                }
            }
            if self.timed_out() {
                let mut msg = format!(
                    "error when waiting for pod \"{name}\" in namespace \"{ns}\" to terminate: global timeout reached: {}",
                    self.timeout_text
                );
                if let Some(s) = &stuck_now {
                    msg.push_str(&format!(
                        "; {}; pass --force-delete-after DURATION to force-delete pods stuck that long (only if the node is really down: a partitioned node may still run them)",
                        s.explain(&r.to_string())
                    ));
                }
                return done(PodResult::Failed, attempts, blocked_by, Some(msg), &waits);
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        if force_deleted {
            return done(PodResult::ForceDeleted, attempts, blocked_by, None, &waits);
        }
        self.out(&removed_line(&r, self.method));
        let result = match self.method {
            RemovalMethod::Evict(_) => PodResult::Evicted,
            RemovalMethod::Delete => PodResult::Deleted,
        };
        done(result, attempts, blocked_by, None, &waits)
    }

    /// DELETE with grace 0 and a UID precondition: removes the API object of a pod whose
    /// kubelet is gone. 404 and a failed precondition mean it is already gone.
    async fn force_delete(&self, pod: &Pod, r: &PodRef) -> Result<(), String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &r.namespace);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: pod.metadata.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&r.name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(format!(
                "error when force-deleting pod \"{}\" in namespace \"{}\": {e}",
                r.name, r.namespace
            )),
        }
    }

    fn unblock(&self, r: &PodRef) {
        self.live.blocked.lock().expect("progress map").remove(r);
    }
}
