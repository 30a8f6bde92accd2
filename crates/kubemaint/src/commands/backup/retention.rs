//! Retention flags: one set for a local directory, one (`--remote-*`) for an S3 store.

use clap::Args;
use jiff::SignedDuration;
use kubemaint_backup::store::StoreKind;
use kubemaint_core::retention::{Decision, Policy, Verdict};

fn duration(s: &str) -> Result<SignedDuration, String> {
    let d = kubemaint_core::duration::parse(s)
        .map_err(|e| format!("{e} (Go durations, e.g. 36h, 720h)"))?;
    SignedDuration::try_from(d).map_err(|e| e.to_string())
}

/// Retention flags.
#[derive(Debug, Clone, Args)]
#[command(
    next_help_heading = "Retention (local directory; --remote-* for s3:// stores, which otherwise use the same values)"
)]
pub struct RetentionArgs {
    /// Keep the N most recent backups.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the last N hours that have one.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// ... of each of the last N days.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// ... of each of the last N ISO weeks.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// ... of each of the last N months.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Delete backups older than this (Go duration, e.g. 720h for 30 days), whatever the counts say.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub max_age: Option<SignedDuration>,
    /// --keep-last for an s3:// destination.
    #[arg(long, value_name = "N")]
    pub remote_keep_last: Option<u32>,
    /// --keep-hourly for an s3:// destination.
    #[arg(long, value_name = "N")]
    pub remote_keep_hourly: Option<u32>,
    /// --keep-daily for an s3:// destination.
    #[arg(long, value_name = "N")]
    pub remote_keep_daily: Option<u32>,
    /// --keep-weekly for an s3:// destination.
    #[arg(long, value_name = "N")]
    pub remote_keep_weekly: Option<u32>,
    /// --keep-monthly for an s3:// destination.
    #[arg(long, value_name = "N")]
    pub remote_keep_monthly: Option<u32>,
    /// --max-age for an s3:// destination.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub remote_max_age: Option<SignedDuration>,
}

impl RetentionArgs {
    fn local(&self) -> Policy {
        Policy {
            keep_last: self.keep_last.unwrap_or(0),
            hourly: self.keep_hourly.unwrap_or(0),
            daily: self.keep_daily.unwrap_or(0),
            weekly: self.keep_weekly.unwrap_or(0),
            monthly: self.keep_monthly.unwrap_or(0),
            max_age: self.max_age,
        }
    }

    fn any_remote(&self) -> bool {
        self.remote_keep_last.is_some()
            || self.remote_keep_hourly.is_some()
            || self.remote_keep_daily.is_some()
            || self.remote_keep_weekly.is_some()
            || self.remote_keep_monthly.is_some()
            || self.remote_max_age.is_some()
    }

    /// The policy for a store of this kind.
    pub fn policy(&self, kind: StoreKind) -> Policy {
        match kind {
            StoreKind::Local => self.local(),
            StoreKind::Remote if !self.any_remote() => self.local(),
            StoreKind::Remote => Policy {
                keep_last: self.remote_keep_last.unwrap_or(0),
                hourly: self.remote_keep_hourly.unwrap_or(0),
                daily: self.remote_keep_daily.unwrap_or(0),
                weekly: self.remote_keep_weekly.unwrap_or(0),
                monthly: self.remote_keep_monthly.unwrap_or(0),
                max_age: self.remote_max_age,
            },
        }
    }
}

/// Prints one line per decision: `keep ID  reasons` / `delete ID  reason`.
pub fn print_decisions(decisions: &[Decision], dry_run: bool) {
    for d in decisions {
        match &d.verdict {
            Verdict::Keep { reasons } => println!(
                "  keep    {}  {}",
                d.id,
                reasons
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Verdict::Delete { reason } => println!(
                "  {} {}  {}",
                if dry_run { "would delete" } else { "delete  " },
                d.id,
                reason
            ),
        }
    }
}
