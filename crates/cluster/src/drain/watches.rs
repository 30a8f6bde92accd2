//! The watches a drain waits on instead of polling: the pods of one node (and the node), and
//! every PodDisruptionBudget, feeding the shared budget gate of the run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kubemaint_core::drain::PodRef;
use kubemaint_core::drain::gate::BudgetGate;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::ClusterError;

/// Watches the pods of one node, and the node itself (its readiness decides whether a pod
/// past its grace period is stuck); removal waits read it instead of polling.
#[derive(Clone)]
pub struct Tracker {
    store: Store<Pod>,
    node: Store<Node>,
    pub(super) changes: watch::Receiver<u64>,
}

impl Tracker {
    /// Starts a watch on `spec.nodeName=<node>` and on the node, and waits for their first lists.
    pub async fn start(
        client: &kube::Client,
        node: &str,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), ClusterError> {
        let api: Api<Pod> = Api::all(client.clone());
        let cfg = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let (store, writer) = reflector::store();
        let (tx, rx) = watch::channel(0u64);
        let pods = reflector::reflector(writer, watcher(api, cfg)).default_backoff();
        let nodes_api: Api<Node> = Api::all(client.clone());
        let node_cfg = watcher::Config::default().fields(&format!("metadata.name={node}"));
        let (node_store, node_writer) = reflector::store();
        let nodes =
            reflector::reflector(node_writer, watcher(nodes_api, node_cfg)).default_backoff();
        let handle = tokio::spawn(async move {
            futures::pin_mut!(pods);
            futures::pin_mut!(nodes);
            loop {
                let ok = tokio::select! {
                    ev = pods.next() => match ev { Some(ev) => ev.is_ok(), None => break },
                    ev = nodes.next() => match ev { Some(ev) => ev.is_ok(), None => break },
                };
                if ok {
                    tx.send_modify(|v| *v += 1);
                }
            }
        });
        store
            .wait_until_ready()
            .await
            .map_err(|source| ClusterError::Watch {
                what: format!("the pods of node {node}"),
                source,
            })?;
        node_store
            .wait_until_ready()
            .await
            .map_err(|source| ClusterError::Watch {
                what: format!("node {node}"),
                source,
            })?;
        Ok((
            Tracker {
                store,
                node: node_store,
                changes: rx,
            },
            handle,
        ))
    }

    pub(super) fn get(&self, pod: &PodRef) -> Option<Arc<Pod>> {
        self.store
            .get(&ObjectRef::new(&pod.name).within(&pod.namespace))
    }

    pub(super) fn node(&self) -> Option<Arc<Node>> {
        self.node.state().into_iter().next()
    }
}

/// Disruptions each PDB allows, kept current by a watch, handed out one eviction attempt at a
/// time: a PDB-blocked pod retries as soon as its budget allows a disruption (instead of
/// kubectl's fixed 5 s), and only as many pods retry as the budget allows, so a budget of 1
/// does not draw a burst of refused requests from every waiting pod.
#[derive(Clone)]
pub struct PdbGate {
    state: Arc<Mutex<GateState>>,
    pub(super) changes: watch::Receiver<u64>,
}

/// The pure gate and when the watch last delivered each budget.
#[derive(Default)]
struct GateState {
    gate: BudgetGate,
    updated: BTreeMap<String, Instant>,
}

fn pdb_entry(obj: &DynamicObject) -> (String, i64, Vec<String>) {
    let key = format!(
        "{}/{}",
        obj.metadata.namespace.as_deref().unwrap_or_default(),
        obj.metadata.name.as_deref().unwrap_or_default()
    );
    let allowed = obj.data["status"]["disruptionsAllowed"]
        .as_i64()
        .unwrap_or(0);
    let disrupted = obj.data["status"]["disruptedPods"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    (key, allowed, disrupted)
}

impl PdbGate {
    /// Starts a watch on all PDBs of `version`.
    pub fn start(client: &kube::Client, version: &str) -> (Self, tokio::task::JoinHandle<()>) {
        let api: Api<DynamicObject> =
            Api::all_with(client.clone(), &crate::read::pdb_resource(version));
        let (tx, rx) = watch::channel(0u64);
        let state: Arc<Mutex<GateState>> = Arc::default();
        let map = state.clone();
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        let handle = tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                let Ok(ev) = ev else { continue };
                {
                    let mut m = map.lock().expect("pdb map");
                    match &ev {
                        watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                            let (k, v, disrupted) = pdb_entry(o);
                            tracing::debug!(pdb = %k, disruptions_allowed = v, "budget update");
                            m.gate.observe(&k, v, disrupted);
                            m.updated.insert(k, Instant::now());
                        }
                        watcher::Event::Delete(o) => {
                            let k = pdb_entry(o).0;
                            m.gate.forget(&k);
                            m.updated.remove(&k);
                        }
                        watcher::Event::Init | watcher::Event::InitDone => {}
                    }
                }
                tx.send_modify(|v| *v += 1);
            }
        });
        (PdbGate { state, changes: rx }, handle)
    }

    /// A gate that never opens by itself (no watch): callers fall back to their retry delay.
    pub fn inert() -> Self {
        PdbGate {
            state: Arc::default(),
            changes: watch::channel(0).1,
        }
    }

    /// Takes a disruption of budget `key` for pod `pod` (shared by every node of the run).
    pub(super) fn try_take(&self, key: &str, pod: &str) -> bool {
        self.state.lock().expect("pdb gate").gate.try_take(key, pod)
    }

    /// Gives back `pod`'s disruption: its eviction did not happen.
    pub(super) fn release(&self, key: &str, pod: &str) {
        self.state.lock().expect("pdb gate").gate.release(key, pod);
    }

    pub(super) fn knows(&self, key: &str) -> bool {
        self.state.lock().expect("pdb gate").gate.knows(key)
    }

    /// Whether the watch delivered budget `key` within `window`: then it is alive and a
    /// timed retry would only draw a refusal.
    pub(super) fn fresh(&self, key: &str, window: Duration) -> bool {
        let m = self.state.lock().expect("pdb gate");
        m.updated.get(key).is_some_and(|t| t.elapsed() < window)
    }
}
