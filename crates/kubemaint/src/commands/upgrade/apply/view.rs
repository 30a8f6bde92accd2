//! What the operator sees: progress lines on stderr, the run log file (every action and every
//! line of every command's output, time-stamped), and the final report.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kubemaint_cluster::drain::Reporter;
use kubemaint_cluster::exec::{OutputSink, Stream};
use kubemaint_core::upgrade::apply::{Action, ApplyPlan, RunState};
use serde::Serialize;

/// The run log and the progress lines.
pub struct RunLog {
    file: Mutex<File>,
    path: PathBuf,
    started: Instant,
    /// Progress lines go to stderr (off with -o json/yaml? no: stderr is free for people).
    progress: bool,
}

impl RunLog {
    /// Opens (appends to) the log file.
    pub fn open(path: &Path, progress: bool) -> anyhow::Result<Arc<Self>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot open the run log {} ({e}); give a writable path with --log-file",
                    path.display()
                )
            })?;
        Ok(Arc::new(Self {
            file: Mutex::new(file),
            path: path.to_path_buf(),
            started: Instant::now(),
            progress,
        }))
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a line to the log.
    pub fn log(&self, line: &str) {
        let stamp = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "{stamp} {line}");
        }
    }

    /// Writes a line to the log and to stderr, prefixed with the elapsed time.
    pub fn say(&self, line: &str) {
        self.log(line);
        if self.progress {
            let secs = self.started.elapsed().as_secs();
            eprintln!("[{:02}:{:02}] {line}", secs / 60, secs % 60);
        }
    }
}

impl OutputSink for RunLog {
    fn command(&self, node: &str, command: &str) {
        self.say(&format!("{node}: running `{command}`"));
    }
    fn line(&self, node: &str, stream: Stream, line: &str) {
        let tag = match stream {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
        };
        self.log(&format!("{node} {tag}| {line}"));
    }
}

/// The drain engine's kubectl lines go to the log.
pub struct DrainLines(pub Arc<RunLog>);

impl Reporter for DrainLines {
    fn out(&self, line: &str) {
        self.0.log(&format!("drain| {line}"));
    }
    fn err(&self, line: &str) {
        self.0.log(&format!("drain err| {line}"));
    }
}

/// One line describing an action, for progress and dry-run.
pub fn describe(action: &Action, plan: &ApplyPlan, state: &RunState) -> String {
    let stage_title = |stage: usize| {
        plan.stages
            .get(stage)
            .map(|s| s.title())
            .unwrap_or_default()
    };
    let batch_stage = state.batch.as_ref().map(|b| b.stage).unwrap_or_default();
    let (done, total) = state.progress(plan);
    let prefix = format!("[{done}/{total}]");
    let list = |nodes: &[String]| nodes.join(", ");
    match action {
        Action::Snapshot { stage } => {
            format!("{prefix} etcd snapshot before {}", stage_title(*stage))
        }
        Action::Skip { stage, nodes } => format!(
            "{prefix} {}: {} already there, skipped",
            stage_title(*stage),
            list(nodes)
        ),
        Action::StartBatch { stage, nodes } => {
            format!("{prefix} {}: next {}", stage_title(*stage), list(nodes))
        }
        Action::Cordon { nodes } => format!("{prefix} cordon {}", list(nodes)),
        Action::Drain { nodes } => format!(
            "{prefix} drain {} ({})",
            list(nodes),
            stage_title(batch_stage)
        ),
        Action::RunCommands { jobs } => {
            let nodes: Vec<&str> = jobs.iter().map(|j| j.node.as_str()).collect();
            let (role, version) = jobs
                .first()
                .map(|j| (j.role_word(), j.version.to_string()))
                .unwrap_or_default();
            format!(
                "{prefix} upgrade {} ({role}) to {version}{}{}",
                nodes.join(", "),
                if jobs.len() > 1 { ", all at once" } else { "" },
                if jobs.iter().any(|j| j.first) {
                    " — first control-plane node: kubeadm upgrade apply"
                } else {
                    ""
                }
            )
        }
        Action::Wait {
            nodes,
            version,
            control_plane,
        } => format!(
            "{prefix} wait for {} Ready at {version}{}",
            list(nodes),
            if *control_plane {
                " (mirror pods at the target images, /version)"
            } else {
                ""
            }
        ),
        Action::Uncordon { nodes } => format!("{prefix} uncordon {}", list(nodes)),
        Action::HealthGate { .. } => format!(
            "{prefix} health gate: nodes Ready, control plane and etcd healthy, PDB-covered workloads back"
        ),
        Action::Done => format!("{prefix} done"),
        Action::Stop { reason } => format!("{prefix} stop: {reason}"),
    }
}

/// One step of the report.
#[derive(Debug, Serialize)]
pub struct StepReport {
    /// The action.
    #[serde(flatten)]
    pub action: Action,
    /// When it started (RFC 3339).
    pub started: String,
    /// Seconds it took.
    pub seconds: f64,
    /// `ok`, `stopped` or the error.
    pub outcome: String,
}

/// The final report (`-o json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `UpgradeApplyReport`.
    pub kind: &'static str,
    /// The target.
    pub target: String,
    /// `done`, `stopped` or `failed`.
    pub status: String,
    /// The node it stopped at (the first of `failed_nodes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_node: Option<String>,
    /// Every node it stopped at (a batch's nodes whose commands failed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_nodes: Vec<String>,
    /// The error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Who started the run.
    pub started_by: String,
    /// When.
    pub started_at: String,
    /// Seconds this invocation took.
    pub seconds: f64,
    /// Jobs done / total.
    pub jobs_done: usize,
    /// Total jobs.
    pub jobs_total: usize,
    /// Nodes left cordoned by kubemaint.
    pub left_cordoned: Vec<String>,
    /// The etcd snapshot taken, if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<String>,
    /// The etcd members as the last passed health gate saw them (`state`: `not-asked`,
    /// `unreachable` with a `reason`, or `asked` with every member's status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_members: Option<kubemaint_core::upgrade::apply::health::EtcdMembers>,
    /// The run log.
    pub log_file: String,
    /// The plan.
    pub plan: ApplyPlan,
    /// What this invocation did.
    pub steps: Vec<StepReport>,
}
