//! kubectl's drain output lines (per pod, per node, and the closing error lines), so ours
//! read the same as `kubectl drain`'s.

use crate::drain::PodRef;
use crate::drain::cordon::DryRun;
use crate::drain::eviction::RemovalMethod;
use crate::drain::filters::aggregate;

/// kubectl's per-pod start line: `evicting pod ns/name`, with ` (dry run)` /
/// ` (server dry run)`.
pub fn evicting_line(pod: &PodRef, dry_run: Option<DryRun>) -> String {
    match dry_run {
        None => format!("evicting pod {pod}"),
        Some(DryRun::Client) => format!("evicting pod {pod} (dry run)"),
        Some(DryRun::Server) => format!("evicting pod {pod} (server dry run)"),
    }
}

/// kubectl's per-pod completion line: `pod/name evicted` or `pod/name deleted`.
pub fn removed_line(pod: &PodRef, method: RemovalMethod) -> String {
    match method {
        RemovalMethod::Evict(_) => format!("pod/{} evicted", pod.name),
        RemovalMethod::Delete => format!("pod/{} deleted", pod.name),
    }
}

/// kubectl's per-node completion line: `node/x drained` (with dry-run suffixes).
pub fn drained_line(node: &str, dry_run: Option<DryRun>) -> String {
    match dry_run {
        None => format!("node/{node} drained"),
        Some(DryRun::Client) => format!("node/{node} drained (dry run)"),
        Some(DryRun::Server) => format!("node/{node} drained (server dry run)"),
    }
}

/// kubectl's per-node failure line on stderr, from the node's errors. kubectl 1.27 prints
/// `due to error:%s` with no space before the (aggregated) error.
pub fn node_failed_line(node: &str, errors: &[String]) -> String {
    format!(
        "error: unable to drain node \"{node}\" due to error:{}, continuing command...",
        aggregate(errors).unwrap_or_default()
    )
}

/// kubectl's closing lines after `There are pending nodes to be drained:`: drain returns the
/// aggregate of the failed nodes' aggregated errors, and kubectl's `CheckErr` unwraps an
/// aggregate of one and prints an aggregate one error per line, without an `error: ` prefix.
/// So one failed node prints each of its errors on its own line; several nodes print one line
/// per node, each that node's aggregate (`[a, b]` when it has several).
pub fn closing_error_lines(failed_nodes: &[Vec<String>]) -> Vec<String> {
    match failed_nodes {
        [one] => one.clone(),
        many => many.iter().filter_map(|errs| aggregate(errs)).collect(),
    }
}
