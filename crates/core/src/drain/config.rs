//! A drain's resolved configuration: every flag checked and turned into the type the drain
//! uses, before any request is sent. Invalid combinations cannot be represented (one of node
//! names or a selector; at least one eviction in flight), so the executor never re-checks them.

use std::num::NonZeroUsize;
use std::time::Duration;

use serde::Serialize;

use super::cordon::DryRun;
use super::filters::FilterOptions;
use super::stuck::StuckPolicy;

/// Which nodes to drain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeChoice {
    /// These nodes, by name, in this order.
    Names(Vec<String>),
    /// The nodes matching this label selector.
    Selector(String),
}

/// Why a drain configuration was refused (a usage error: nothing was sent to the cluster).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Both node names and `--selector` (kubectl's message).
    #[error("cannot specify both a node name and a --selector option")]
    NamesAndSelector,
    /// Neither node names nor `--selector`.
    #[error("give at least one NODE name or a --selector (-l) label selector")]
    NoNodes,
    /// An empty node name or selector.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// `--max-concurrent-evictions 0`.
    #[error(
        "--max-concurrent-evictions must be at least 1 (it bounds the evictions in flight per node)"
    )]
    NoConcurrency,
    /// `--max-parallel-nodes 0`.
    #[error(
        "--max-parallel-nodes must be at least 1 (1 drains one node after another, as kubectl)"
    )]
    NoParallelNodes,
    /// `--eviction-retry-delay 0`: refused evictions would be retried in a busy loop.
    #[error("--eviction-retry-delay must be more than 0 (kubectl waits 5s)")]
    NoRetryDelay,
}

/// Everything a drain needs to know, resolved and validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DrainConfig {
    /// The nodes.
    pub nodes: NodeChoice,
    /// kubectl's filter flags.
    pub filters: FilterOptions,
    /// `--disable-eviction`: DELETE instead of the Eviction API (PDBs bypassed).
    pub disable_eviction: bool,
    /// `--grace-period`; negative uses each pod's own.
    pub grace_period_seconds: i64,
    /// `--timeout` per node; `None` waits forever (kubectl's `0`).
    pub timeout: Option<Duration>,
    /// `--pod-selector`, if not empty.
    pub pod_selector: Option<String>,
    /// `--chunk-size` (list page size; 0 disables paging).
    pub chunk_size: u32,
    /// `--dry-run`.
    pub dry_run: Option<DryRun>,
    /// `--max-concurrent-evictions` per node.
    pub max_concurrent_evictions: NonZeroUsize,
    /// `--eviction-retry-delay`.
    pub eviction_retry_delay: Duration,
    /// `--force-delete-after`.
    pub stuck: StuckPolicy,
    /// `--uncordon-on-failure`.
    pub uncordon_on_failure: bool,
    /// `--max-parallel-nodes`: nodes drained at once (1: one after another, as kubectl).
    pub max_parallel_nodes: NonZeroUsize,
    /// `--order`.
    pub order: NodeOrder,
}

/// The order nodes are drained in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeOrder {
    /// As given on the command line, or as listed for a selector (kubectl's order).
    Given,
    /// By node name.
    Name,
    /// Fewest blocking PodDisruptionBudgets first, then fewest pods to remove, then by name.
    LeastBlocked,
}

/// Node names xor a label selector, as kubectl's `drain`/`cordon` accept them.
pub fn node_choice(
    names: Vec<String>,
    selector: Option<String>,
) -> Result<NodeChoice, ConfigError> {
    match (names.is_empty(), selector) {
        (false, Some(_)) => Err(ConfigError::NamesAndSelector),
        (true, None) => Err(ConfigError::NoNodes),
        (true, Some(s)) if s.trim().is_empty() => Err(ConfigError::Empty("--selector")),
        (true, Some(s)) => Ok(NodeChoice::Selector(s)),
        (false, None) if names.iter().any(|n| n.is_empty()) => {
            Err(ConfigError::Empty("a NODE name"))
        }
        (false, None) => Ok(NodeChoice::Names(names)),
    }
}

/// `--max-concurrent-evictions`: at least one.
pub fn concurrency(n: usize) -> Result<NonZeroUsize, ConfigError> {
    NonZeroUsize::new(n).ok_or(ConfigError::NoConcurrency)
}

/// `--max-parallel-nodes`: at least one.
pub fn parallel_nodes(n: usize) -> Result<NonZeroUsize, ConfigError> {
    NonZeroUsize::new(n).ok_or(ConfigError::NoParallelNodes)
}

/// `--eviction-retry-delay`: more than zero.
pub fn retry_delay(d: Duration) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(ConfigError::NoRetryDelay)
    } else {
        Ok(d)
    }
}

/// `--timeout`: kubectl's `0` means no limit.
pub fn timeout(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_choices() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        type Case<'a> = (
            Vec<String>,
            Option<&'a str>,
            Result<NodeChoice, ConfigError>,
        );
        let cases: Vec<Case> = vec![
            (
                names(&["a", "b"]),
                None,
                Ok(NodeChoice::Names(names(&["a", "b"]))),
            ),
            (
                vec![],
                Some("pool=blue"),
                Ok(NodeChoice::Selector("pool=blue".into())),
            ),
            (
                names(&["a"]),
                Some("pool=blue"),
                Err(ConfigError::NamesAndSelector),
            ),
            (vec![], None, Err(ConfigError::NoNodes)),
            (vec![], Some(" "), Err(ConfigError::Empty("--selector"))),
            (
                names(&["a", ""]),
                None,
                Err(ConfigError::Empty("a NODE name")),
            ),
        ];
        for (n, s, want) in cases {
            assert_eq!(
                node_choice(n.clone(), s.map(Into::into)),
                want,
                "{n:?} {s:?}"
            );
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(concurrency(0), Err(ConfigError::NoConcurrency));
        assert_eq!(parallel_nodes(0), Err(ConfigError::NoParallelNodes));
        assert_eq!(parallel_nodes(4).map(NonZeroUsize::get), Ok(4));
        assert_eq!(concurrency(3).map(NonZeroUsize::get), Ok(3));
        assert_eq!(retry_delay(Duration::ZERO), Err(ConfigError::NoRetryDelay));
        assert_eq!(
            retry_delay(Duration::from_millis(1)),
            Ok(Duration::from_millis(1))
        );
        assert_eq!(timeout(Duration::ZERO), None);
        assert_eq!(
            timeout(Duration::from_secs(90)),
            Some(Duration::from_secs(90))
        );
        assert!(
            ConfigError::NoConcurrency
                .to_string()
                .starts_with("--max-concurrent-evictions must be at least 1")
        );
    }
}
