//! The scheduler's Prometheus metrics, as a textfile for node_exporter's textfile collector
//! (`--collector.textfile.directory`): rendered in the text exposition format and replaced
//! atomically (a temporary file in the same directory, fsynced, renamed), so a scrape never
//! sees half a file.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

/// Why the metrics file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing the metrics file {} failed: {source}; check that its directory exists and is writable", path.display())]
pub struct MetricsError {
    /// The file (or its temporary sibling).
    pub path: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

/// What the scheduler has done so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// The destination (a label on every series).
    pub destination: String,
    /// Runs started.
    pub runs_total: u64,
    /// Runs that failed (nothing stored).
    pub failures_total: u64,
    /// Scheduled runs skipped (a run still in flight, or too late to start).
    pub missed_total: u64,
    /// When the last successful backup was taken.
    pub last_success: Option<Timestamp>,
    /// Its stored (compressed, encrypted) size.
    pub last_success_stored_bytes: Option<u64>,
    /// Its snapshot size.
    pub last_success_snapshot_bytes: Option<u64>,
    /// How long the last run took, success or not.
    pub last_duration_seconds: Option<f64>,
    /// When the last run failed.
    pub last_failure: Option<Timestamp>,
    /// When the next run is due.
    pub next_run: Option<Timestamp>,
}

fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn seconds(t: Timestamp) -> String {
    let ms = t.as_millisecond();
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

impl Metrics {
    /// The text exposition format (version 0.0.4). Series with no value yet are left out, so
    /// an alert on `time() - kubemaint_backup_last_success_timestamp_seconds` fires on absence too.
    pub fn render(&self) -> String {
        let label = format!("{{destination=\"{}\"}}", escape_label(&self.destination));
        let mut out = String::new();
        let mut series = |name: &str, kind: &str, help: &str, value: Option<String>| {
            if let Some(v) = value {
                out.push_str(&format!(
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{label} {v}\n"
                ));
            }
        };
        series(
            "kubemaint_backup_runs_total",
            "counter",
            "Backup runs started by the scheduler.",
            Some(self.runs_total.to_string()),
        );
        series(
            "kubemaint_backup_failures_total",
            "counter",
            "Backup runs that failed; nothing was stored and nothing deleted.",
            Some(self.failures_total.to_string()),
        );
        series(
            "kubemaint_backup_missed_runs_total",
            "counter",
            "Scheduled runs skipped because a run was in flight or it was too late to start.",
            Some(self.missed_total.to_string()),
        );
        series(
            "kubemaint_backup_last_success_timestamp_seconds",
            "gauge",
            "When the last successful backup was taken (Unix time).",
            self.last_success.map(seconds),
        );
        series(
            "kubemaint_backup_last_success_stored_bytes",
            "gauge",
            "Stored (compressed, encrypted) size of the last successful backup.",
            self.last_success_stored_bytes.map(|v| v.to_string()),
        );
        series(
            "kubemaint_backup_last_success_snapshot_bytes",
            "gauge",
            "Snapshot size of the last successful backup.",
            self.last_success_snapshot_bytes.map(|v| v.to_string()),
        );
        series(
            "kubemaint_backup_last_duration_seconds",
            "gauge",
            "How long the last run took.",
            self.last_duration_seconds.map(|v| format!("{v:.3}")),
        );
        series(
            "kubemaint_backup_last_failure_timestamp_seconds",
            "gauge",
            "When the last run failed (Unix time).",
            self.last_failure.map(seconds),
        );
        series(
            "kubemaint_backup_next_run_timestamp_seconds",
            "gauge",
            "When the next run is due (Unix time).",
            self.next_run.map(seconds),
        );
        out
    }

    /// Replaces `path` with the rendered metrics (mode 0644: no secrets, and the collector
    /// usually runs as another user).
    pub fn write(&self, path: &Path) -> Result<(), MetricsError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| MetricsError { path: p, source }
        };
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(&tmp)
                .map_err(err(&tmp))?;
            f.set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(err(&tmp))?;
            f.write_all(self.render().as_bytes()).map_err(err(&tmp))?;
            f.sync_all().map_err(err(&tmp))?;
            std::fs::rename(&tmp, path).map_err(err(path))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_exposition_format() {
        let mut m = Metrics {
            destination: "s3://b/p\"x".into(),
            ..Metrics::default()
        };
        let text = m.render();
        assert!(text.contains("kubemaint_backup_runs_total{destination=\"s3://b/p\\\"x\"} 0\n"));
        assert!(!text.contains("last_success"), "{text}");
        m.runs_total = 3;
        m.failures_total = 1;
        m.missed_total = 2;
        m.last_success = Some("2026-12-04T10:00:02.5Z".parse().unwrap());
        m.last_success_stored_bytes = Some(1234);
        m.last_duration_seconds = Some(1.25);
        let text = m.render();
        for want in [
            "# TYPE kubemaint_backup_runs_total counter\n",
            "kubemaint_backup_runs_total{destination=\"s3://b/p\\\"x\"} 3\n",
            "kubemaint_backup_failures_total{destination=\"s3://b/p\\\"x\"} 1\n",
            "kubemaint_backup_missed_runs_total{destination=\"s3://b/p\\\"x\"} 2\n",
            "# TYPE kubemaint_backup_last_success_timestamp_seconds gauge\n",
            "kubemaint_backup_last_success_timestamp_seconds{destination=\"s3://b/p\\\"x\"} 1796378402.500\n",
            "kubemaint_backup_last_success_stored_bytes{destination=\"s3://b/p\\\"x\"} 1234\n",
            "kubemaint_backup_last_duration_seconds{destination=\"s3://b/p\\\"x\"} 1.250\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        // Every sample line is `name{labels} value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap();
        }
    }

    #[test]
    fn written_atomically_and_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubemaint_backup.prom");
        let m = Metrics {
            destination: "/d".into(),
            runs_total: 1,
            ..Metrics::default()
        };
        m.write(&path).unwrap();
        m.write(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), m.render());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let bad = Metrics::default().write(&dir.path().join("missing/x.prom"));
        assert!(bad.unwrap_err().to_string().contains("missing"));
    }
}
