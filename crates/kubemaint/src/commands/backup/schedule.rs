//! `kubemaint backup schedule --cron EXPR --to DEST`: a foreground scheduler for systemd or a
//! Deployment. One run at a time; what to do when is `kubemaint_core::schedule::decide`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use jiff::{SignedDuration, Timestamp};
use kubemaint_backup::metrics::Metrics;
use kubemaint_core::schedule::{self, CronSchedule, Missed};
use tokio::sync::watch;

use super::run::{BackupFlags, Prepared, TakeError, Taken, cancelled, take};
use crate::exit::{CodedError, SUCCESS};
use crate::global::GlobalArgs;

/// Arguments of `backup schedule`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kubemaint backup schedule --cron '0 */6 * * *' --kubeadm --to s3://backups/etcd/prod \\
      --recipient age1... --keep-last 4 --keep-daily 7 --remote-keep-monthly 12 \\
      --metrics-file /var/lib/node_exporter/textfile/kubemaint_backup.prom
  kubemaint backup schedule --cron '*/30 * * * * *' ...     # 6 fields: seconds first

Runs in the foreground and logs one line per event to stderr. Cron times are UTC. One run at a
time: occurrences that fall while a run is in flight (or while the machine slept), or that are
older than --starting-deadline when noticed, are skipped and reported as missed. A failed run
deletes nothing and the schedule goes on. SIGTERM or Ctrl-C stops it: a run in flight is
abandoned cleanly (multipart upload aborted, no .part file left, nothing listed as a backup),
the metrics file is written a last time, and it exits 0.")]
pub struct ScheduleArgs {
    /// When to run: 5 cron fields (minute hour day-of-month month day-of-week), or 6 with
    /// seconds first; @hourly, @daily, @weekly too. UTC.
    #[arg(long, value_name = "EXPR")]
    pub cron: String,
    /// How late a run may still start (Go duration); later ones are skipped as missed.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = kubemaint_core::duration::parse)]
    pub starting_deadline: Duration,
    /// Write Prometheus metrics to this file after every run (atomically; for node_exporter's
    /// textfile collector).
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    #[command(flatten)]
    pub backup: BackupFlags,
}

fn log(line: impl AsRef<str>) {
    eprintln!(
        "{} {}",
        Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
        line.as_ref()
    );
}

fn at(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn describe_missed(m: &Missed) -> String {
    let range = match (m.first, m.last) {
        (Some(a), Some(b)) if a != b => format!("scheduled from {} to {}", at(a), at(b)),
        (Some(a), _) => format!("scheduled at {}", at(a)),
        _ => String::new(),
    };
    format!(
        "missed {}{} run(s) {range}: a run was still in flight, or they were noticed more than --starting-deadline late",
        if m.capped { "at least " } else { "" },
        m.count
    )
}

/// The error report on one log line.
fn one_line(e: anyhow::Error) -> String {
    crate::exit::render(&e)
        .trim_start_matches("error: ")
        .trim_end()
        .replace("\n  caused by: ", "; caused by: ")
}

struct Scheduler {
    prepared: Prepared,
    cron: CronSchedule,
    deadline: SignedDuration,
    metrics: Metrics,
    metrics_file: Option<PathBuf>,
}

impl Scheduler {
    fn write_metrics(&self) {
        if let Some(path) = &self.metrics_file
            && let Err(e) = self.metrics.write(path)
        {
            log(format!("warning: {e}"));
        }
    }

    async fn one_run(&mut self, due: Timestamp, cancel: watch::Receiver<bool>) -> bool {
        self.metrics.runs_total += 1;
        log(format!(
            "run for {} started: backing up to {}",
            at(due),
            self.prepared.store.location()
        ));
        let clock = Instant::now();
        let result = take(&self.prepared, cancel).await;
        self.metrics.last_duration_seconds = Some(clock.elapsed().as_secs_f64());
        match result {
            Ok(Taken {
                manifest, deleted, ..
            }) => {
                self.record_success(&manifest);
                log(format!(
                    "backup {} stored: snapshot {} bytes, stored {} bytes, took {:.2}s; retention deleted {}",
                    manifest.id,
                    manifest.file_size,
                    manifest.stored_size,
                    manifest.duration_seconds,
                    if deleted.is_empty() {
                        "nothing".to_string()
                    } else {
                        deleted.join(", ")
                    }
                ));
                true
            }
            Err(TakeError::Cancelled) => {
                log("the run in flight was abandoned: nothing was stored, nothing deleted");
                false
            }
            Err(e) => {
                // A failed run deleted nothing; after a retention failure the backup exists
                // and retention is tried again after the next run. Either way: go on.
                self.metrics.failures_total += 1;
                self.metrics.last_failure = Some(Timestamp::now());
                log(format!("run FAILED: {}", one_line(anyhow::Error::new(e))));
                true
            }
        }
    }

    fn record_success(&mut self, m: &kubemaint_backup::BackupManifest) {
        self.metrics.last_success = m.created_at();
        self.metrics.last_success_stored_bytes = Some(m.stored_size);
        self.metrics.last_success_snapshot_bytes = Some(m.file_size);
    }

    async fn main_loop(&mut self, cancel: watch::Receiver<bool>) {
        let mut cursor = Timestamp::now();
        loop {
            if *cancel.borrow() {
                return;
            }
            let tick = schedule::decide(&self.cron, cursor, Timestamp::now(), self.deadline);
            cursor = tick.cursor;
            if !tick.missed.is_empty() {
                self.metrics.missed_total += tick.missed.count;
                log(describe_missed(&tick.missed));
            }
            if let Some(due) = tick.run {
                self.metrics.next_run = None;
                if !self.one_run(due, cancel.clone()).await {
                    self.write_metrics();
                    return;
                }
                self.metrics.next_run = self.cron_next(cursor);
                self.write_metrics();
                continue;
            }
            self.metrics.next_run = tick.next;
            self.write_metrics();
            let Some(next) = tick.next else {
                log("the cron expression has no further occurrence; stopping");
                return;
            };
            let wait = next.duration_since(Timestamp::now());
            let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancelled(cancel.clone()) => return,
            }
        }
    }

    fn cron_next(&self, after: Timestamp) -> Option<Timestamp> {
        use kubemaint_core::schedule::Occurrences;
        self.cron.next_after(after.max(Timestamp::now()))
    }
}

/// Runs `backup schedule` until SIGTERM or Ctrl-C.
pub async fn run(args: ScheduleArgs, _global: &GlobalArgs) -> anyhow::Result<i32> {
    let cron = CronSchedule::parse(&args.cron).map_err(|e| CodedError::usage(e.to_string()))?;
    let deadline = SignedDuration::try_from(args.starting_deadline)
        .map_err(|e| CodedError::usage(format!("--starting-deadline: {e}")))?;
    let prepared = args.backup.prepare()?;
    let mut scheduler = Scheduler {
        metrics: Metrics {
            destination: prepared.store.location(),
            ..Metrics::default()
        },
        prepared,
        cron,
        deadline,
        metrics_file: args.metrics_file,
    };
    if let Some(path) = &scheduler.metrics_file {
        // A metrics file that cannot be written is bad input: say so before the first run.
        scheduler
            .metrics
            .write(path)
            .map_err(|e| CodedError::usage(e.to_string()))?;
    }
    let first = scheduler.cron_next(Timestamp::now());
    log(format!(
        "scheduling backups to {}: cron {:?} (UTC), next run at {}; SIGTERM or Ctrl-C stops",
        scheduler.prepared.store.location(),
        scheduler.cron.expr(),
        first.map_or("never".to_string(), at)
    ));
    let (tx, rx) = watch::channel(false);
    let signals = tokio::spawn(async move {
        crate::commands::shutdown_signal().await;
        log("stop requested (SIGTERM/SIGINT): abandoning any run in flight and exiting");
        let _ = tx.send(true);
    });
    scheduler.main_loop(rx).await;
    signals.abort();
    scheduler.metrics.next_run = None;
    scheduler.write_metrics();
    log(format!(
        "stopped: {} run(s), {} failed, {} missed",
        scheduler.metrics.runs_total,
        scheduler.metrics.failures_total,
        scheduler.metrics.missed_total
    ));
    Ok(SUCCESS)
}
