//! kubectl drain's pod-handling flags as one clap group, shared by `kubemaint drain` and the
//! drains of `kubemaint upgrade apply` (both run `kubemaint_cluster::drain`), so the two
//! commands spell and read them alike. Boolean flags take an optional `=true|false` as
//! kubectl's (Go pflag) do: `--force`, `--force=true`, `--ignore-daemonsets=false`.

use clap::Args;
use kubemaint_core::drain::filters::FilterOptions;

/// Go's `strconv.ParseBool`, which kubectl's boolean flags use.
fn go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!("{other:?} is not a boolean (true or false)")),
    }
}

/// How the pods of a drained node are treated: kubectl drain's flags, names and meanings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Pods on drained nodes (kubectl drain's flags)")]
pub struct PodArgs {
    /// Continue even if there are pods that do not declare a controller (and orphaned
    /// DaemonSet pods): such pods are deleted and not recreated [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = go_bool)]
    pub force: Option<bool>,
    /// Ignore DaemonSet-managed pods (they are never evicted; without it a node running one
    /// is refused) [default: false for `drain`, as kubectl; true for `upgrade apply`, as
    /// kubeadm's upgrade guide drains].
    #[arg(long = "ignore-daemonsets", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub ignore_daemonsets: Option<bool>,
    /// Continue even if there are pods using emptyDir (local data that will be deleted)
    /// [default: false].
    #[arg(long = "delete-emptydir-data", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub delete_emptydir_data: Option<bool>,
    /// Delete pods instead of evicting them: bypasses PodDisruptionBudgets [default: false].
    #[arg(long = "disable-eviction", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub disable_eviction: Option<bool>,
    /// Seconds given to each pod to terminate; negative uses the pod's own value.
    #[arg(long = "grace-period", default_value_t = -1, allow_hyphen_values = true)]
    pub grace_period: i64,
    /// Only consider pods matching this label selector.
    #[arg(long = "pod-selector")]
    pub pod_selector: Option<String>,
    /// Skip (and stop waiting for) pods whose DeletionTimestamp is older than N seconds.
    #[arg(long = "skip-wait-for-delete-timeout", default_value_t = 0)]
    pub skip_wait_for_delete_timeout: i64,
}

/// The defaults that differ between the commands sharing [`PodArgs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodDefaults {
    /// `--ignore-daemonsets` when not given.
    pub ignore_daemonsets: bool,
}

/// `kubemaint drain`: kubectl's defaults (every flag off).
pub const DRAIN_DEFAULTS: PodDefaults = PodDefaults {
    ignore_daemonsets: false,
};

/// `kubemaint upgrade apply`: DaemonSet pods ignored (every kubeadm node runs kube-proxy's,
/// and they are not evicted either way); the flags that lose data or bypass budgets stay off.
pub const UPGRADE_DEFAULTS: PodDefaults = PodDefaults {
    ignore_daemonsets: true,
};

/// What [`PodArgs`] resolve to: the part of a `DrainConfig` they set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodHandling {
    /// kubectl's filter flags.
    pub filters: FilterOptions,
    /// `--disable-eviction`.
    pub disable_eviction: bool,
    /// `--grace-period`.
    pub grace_period_seconds: i64,
    /// `--pod-selector`, if not empty.
    pub pod_selector: Option<String>,
}

impl PodArgs {
    /// The flags with `defaults` for those not given.
    pub fn resolve(self, defaults: PodDefaults) -> PodHandling {
        PodHandling {
            filters: FilterOptions {
                force: self.force.unwrap_or(false),
                ignore_daemonsets: self.ignore_daemonsets.unwrap_or(defaults.ignore_daemonsets),
                delete_emptydir_data: self.delete_emptydir_data.unwrap_or(false),
                skip_wait_for_delete_timeout_seconds: self.skip_wait_for_delete_timeout,
            },
            disable_eviction: self.disable_eviction.unwrap_or(false),
            grace_period_seconds: self.grace_period,
            pod_selector: self.pod_selector.filter(|s| !s.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[arg(value_name = "NODE")]
        nodes: Vec<String>,
        #[command(flatten)]
        pods: PodArgs,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
    }

    #[test]
    fn flags_read_as_kubectl_reads_them() {
        /// args, defaults, then force, ignore_daemonsets, delete_emptydir_data, disable_eviction.
        type Case<'a> = (&'a [&'a str], PodDefaults, bool, bool, bool, bool);
        let cases: &[Case] = &[
            (&[], DRAIN_DEFAULTS, false, false, false, false),
            (&[], UPGRADE_DEFAULTS, false, true, false, false),
            (
                &["--force", "--ignore-daemonsets", "--delete-emptydir-data"],
                DRAIN_DEFAULTS,
                true,
                true,
                true,
                false,
            ),
            (
                &["--ignore-daemonsets=false", "--disable-eviction=true"],
                UPGRADE_DEFAULTS,
                false,
                false,
                false,
                true,
            ),
            (
                &["--force=t", "--delete-emptydir-data=0"],
                DRAIN_DEFAULTS,
                true,
                false,
                false,
                false,
            ),
        ];
        for (args, defaults, force, ds, emptydir, disable) in cases {
            let got = parse(args).unwrap().pods.resolve(*defaults);
            assert_eq!(
                (
                    got.filters.force,
                    got.filters.ignore_daemonsets,
                    got.filters.delete_emptydir_data,
                    got.disable_eviction
                ),
                (*force, *ds, *emptydir, *disable),
                "{args:?}"
            );
        }
    }

    #[test]
    fn a_bare_flag_never_takes_the_next_word() {
        let cli = parse(&["--force", "worker-1", "--grace-period", "-1"]).unwrap();
        assert_eq!(cli.nodes, ["worker-1"]);
        assert_eq!(cli.pods.force, Some(true));
        assert_eq!(cli.pods.grace_period, -1);
        let err = parse(&["--force=maybe"]).unwrap_err().to_string();
        assert!(err.contains("not a boolean"), "{err}");
        let empty = parse(&["--pod-selector", ""]).unwrap();
        assert_eq!(empty.pods.resolve(DRAIN_DEFAULTS).pod_selector, None);
    }
}
