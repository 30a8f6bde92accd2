//! Nodes: resolving names or a label selector as kubectl's resource builder does, and kubectl's
//! cordon / uncordon (a strategic-merge patch of `spec.unschedulable`, no request when the node
//! is already as wanted) with kubemaint's cordon-ownership annotations
//! (`kubemaint_core::drain::cordon`).

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kubemaint_core::drain::config::NodeChoice;
use kubemaint_core::drain::cordon::{self, AutoUncordon, CordonDecision, DryRun, auto_uncordon};
use serde::Serialize;

use crate::ClusterError;

/// Field manager recorded on kubemaint's writes (the server's field owner of
/// `spec.unschedulable` tells whether kubemaint made a cordon).
pub const FIELD_MANAGER: &str = "kubemaint";

/// Resolves node names or a label selector into Node objects: a missing named node fails
/// everything before any change.
pub async fn resolve(
    nodes_api: &Api<Node>,
    choice: &NodeChoice,
    chunk_size: u32,
) -> Result<Vec<Node>, ClusterError> {
    match choice {
        NodeChoice::Selector(sel) => {
            let mut out = Vec::new();
            let mut lp = ListParams::default().labels(sel);
            if chunk_size > 0 {
                lp = lp.limit(chunk_size);
            }
            loop {
                let page = nodes_api
                    .list(&lp)
                    .await
                    .map_err(ClusterError::request(format!(
                        "list nodes with selector {sel:?}"
                    )))?;
                out.extend(page.items);
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(c) => lp = lp.continue_token(&c),
                    None => return Ok(out),
                }
            }
        }
        NodeChoice::Names(names) => {
            let mut out = Vec::new();
            let mut missing = Vec::new();
            for name in names {
                match nodes_api.get_opt(name).await {
                    Ok(Some(n)) => out.push(n),
                    Ok(None) => missing.push(name.clone()),
                    Err(e) => return Err(ClusterError::request(format!("get node {name}"))(e)),
                }
            }
            if missing.is_empty() {
                Ok(out)
            } else {
                Err(ClusterError::NodesNotFound { names: missing })
            }
        }
    }
}

/// kubectl's verb for a cordon or uncordon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CordonVerb {
    /// `cordoned`.
    #[serde(rename = "cordoned")]
    Cordoned,
    /// `already cordoned`.
    #[serde(rename = "already cordoned")]
    AlreadyCordoned,
    /// `uncordoned`.
    #[serde(rename = "uncordoned")]
    Uncordoned,
    /// `already uncordoned`.
    #[serde(rename = "already uncordoned")]
    AlreadyUncordoned,
}

impl CordonVerb {
    fn of(desired: bool, already: bool) -> Self {
        match (desired, already) {
            (true, false) => CordonVerb::Cordoned,
            (true, true) => CordonVerb::AlreadyCordoned,
            (false, false) => CordonVerb::Uncordoned,
            (false, true) => CordonVerb::AlreadyUncordoned,
        }
    }
}

/// Result of cordoning or uncordoning one node (for `-o json`).
#[derive(Debug, Clone, Serialize)]
pub struct CordonResult {
    /// Node name.
    pub node: String,
    /// kubectl's verb.
    pub result: CordonVerb,
    /// The dry-run strategy the line was printed under, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<DryRun>,
    /// Whether a request was sent (or would be, in client dry-run).
    pub changed: bool,
    /// The error, if the patch failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CordonResult {
    /// kubectl's line for a successful step (`node/x cordoned (dry run)`), or its error line.
    pub fn line(&self) -> Result<String, String> {
        let desired = matches!(
            self.result,
            CordonVerb::Cordoned | CordonVerb::AlreadyCordoned
        );
        let already = matches!(
            self.result,
            CordonVerb::AlreadyCordoned | CordonVerb::AlreadyUncordoned
        );
        match &self.error {
            None => Ok(cordon::output_line(
                &self.node,
                desired,
                already,
                self.dry_run,
            )),
            Some(e) => Err(format!(
                "error: unable to {} node \"{}\": {e}",
                if desired { "cordon" } else { "uncordon" },
                self.node
            )),
        }
    }
}

/// Applies the cordon (`desired = true`, recording `by`) or uncordon decision to one node.
pub async fn apply(
    nodes_api: &Api<Node>,
    node: &Node,
    desired: bool,
    by: &str,
    dry_run: Option<DryRun>,
) -> CordonResult {
    let name = node.metadata.name.clone().unwrap_or_default();
    let decision = if desired {
        cordon::cordon(node, by, jiff::Timestamp::now())
    } else {
        cordon::uncordon(node)
    };
    let (already, patch) = match decision {
        CordonDecision::Already => (true, None),
        CordonDecision::Patch { patch } => (false, Some(patch)),
        CordonDecision::CleanupAnnotations { patch } => (true, Some(patch)),
    };
    let mut error = None;
    if let Some(patch) = patch.as_ref()
        && dry_run != Some(DryRun::Client)
    {
        let mut pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        pp.dry_run = dry_run == Some(DryRun::Server);
        if let Err(e) = nodes_api.patch(&name, &pp, &Patch::Strategic(patch)).await {
            error = Some(e.to_string());
        }
    }
    CordonResult {
        node: name,
        result: CordonVerb::of(desired, already),
        dry_run,
        changed: !already,
        error,
    }
}

/// What became of the cordon of a node whose drain failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CordonAfterFailure {
    /// Whether the node is left cordoned.
    pub left_cordoned: bool,
    /// What to tell the operator.
    pub line: Option<String>,
}

/// After a failed drain: the node stays cordoned (say so and how to undo it), or it is
/// uncordoned with `undo` (`--uncordon-on-failure`) when kubemaint made the cordon.
pub async fn after_failure(nodes_api: &Api<Node>, node: &str, undo: bool) -> CordonAfterFailure {
    let left = |left_cordoned, line: String| CordonAfterFailure {
        left_cordoned,
        line: Some(line),
    };
    let current = match nodes_api.get(node).await {
        Ok(n) => n,
        Err(e) => {
            return left(
                true,
                format!("warning: cannot re-read node {node} to report its cordon: {e}"),
            );
        }
    };
    match auto_uncordon(&current, FIELD_MANAGER) {
        AutoUncordon::NotCordoned => CordonAfterFailure {
            left_cordoned: false,
            line: None,
        },
        AutoUncordon::LeaveCordoned { reason } => left(true, reason),
        AutoUncordon::Uncordon { patch } if undo => {
            let pp = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..Default::default()
            };
            match nodes_api.patch(node, &pp, &Patch::Strategic(&patch)).await {
                Ok(_) => left(
                    false,
                    format!("node/{node} uncordoned (--uncordon-on-failure)"),
                ),
                Err(e) => left(
                    true,
                    format!(
                        "error: unable to uncordon node \"{node}\": {e}; run `kubemaint uncordon {node}`"
                    ),
                ),
            }
        }
        AutoUncordon::Uncordon { .. } => left(
            true,
            format!(
                "node/{node} is left cordoned by kubemaint; run `kubemaint uncordon {node}` when done, or pass --uncordon-on-failure"
            ),
        ),
    }
}
