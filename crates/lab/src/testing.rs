//! Helpers for tests that drive a lab with the real `kubectl` as an independent client.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// kubectl 1.27 from the machine image's `kubectl` package: the closest to the lab's v1.20.
pub const KUBECTL_1_27: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27";

/// The real kubectl, bound to one kubeconfig.
#[derive(Debug, Clone)]
pub struct Kubectl {
    /// The kubectl binary.
    pub program: PathBuf,
    /// The kubeconfig passed with `--kubeconfig`.
    pub kubeconfig: PathBuf,
}

impl Kubectl {
    /// kubectl 1.27 for `kubeconfig`; panics naming the missing binary (tests fail, never skip).
    pub fn new(kubeconfig: &Path) -> Self {
        assert!(
            Path::new(KUBECTL_1_27).is_file(),
            "{KUBECTL_1_27} is missing: the machine image's kubectl package provides it"
        );
        Self {
            program: KUBECTL_1_27.into(),
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    /// Runs kubectl with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.program)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// Runs kubectl and returns stdout; panics with stderr on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs kubectl with `-o json` and parses the result.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("kubectl JSON")
    }

    /// `kubectl apply -f -` with `yaml` on stdin; panics on failure.
    pub fn apply(&self, yaml: &str) {
        let out = self.stdin(&["apply", "-f", "-"], yaml);
        assert!(
            out.status.success(),
            "kubectl apply failed: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs kubectl with `input` on stdin.
    pub fn stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = Command::new(&self.program)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("kubectl output")
    }
}

/// Polls `check` every 250 ms; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// True if a pod (as kubectl JSON) has condition Ready=True.
pub fn pod_ready(pod: &serde_json::Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// An error with its chain of causes, for test failures (`lab up failed: ...: ...`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Starts a lab for a test (one control plane, `workers` workers, in-process kubelets, pods
/// Ready and shut down after `delay_ms`), blocking until every node is Ready; panics with the
/// cause if it cannot. The lab is torn down when it is dropped or the test process exits.
pub fn start_lab(dir: &Path, workers: u32, delay_ms: u64) -> crate::Lab {
    let mut opts = crate::UpOptions::new(dir, workers);
    opts.kubelets = crate::KubeletMode::InProcess;
    opts.sim = crate::state::SimSettings {
        ready_delay_ms: delay_ms,
        shutdown_delay_ms: delay_ms,
    };
    tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(crate::Lab::up(opts))
        .unwrap_or_else(|e| panic!("lab up failed: {}", error_chain(&e)))
}

/// What a failed lab test prints so that the failure explains itself: the tail of `run_log`
/// (a tool's `--log-file`), the kube-system pods and nodes, each control-plane pod's Ready
/// condition with the clients that last wrote it (`managedFields`), the NodeNotReady and
/// leader-election events, the simulated kubelets' log, the controller-managers' lines about
/// readiness and leadership, and which API servers haproxy sees up. Best effort: a part that
/// cannot be read says why.
pub fn diagnosis(lab_dir: &Path, kubectl: &Kubectl, run_log: Option<&Path>) -> String {
    let mut out = String::new();
    let mut section = |title: &str, body: String| {
        out.push_str(&format!("\n===== {title}\n{}\n", body.trim_end()));
    };
    let tail = |path: &Path, lines: usize, keep: &dyn Fn(&str) -> bool| {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let kept: Vec<&str> = text.lines().filter(|l| keep(l)).collect();
                kept[kept.len().saturating_sub(lines)..].join("\n")
            }
            Err(e) => format!("cannot read {}: {e}", path.display()),
        }
    };
    let kubectl_text = |args: &[&str]| {
        let out = kubectl.run(args);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    if let Some(log) = run_log {
        section(
            &format!("last 40 lines of {}", log.display()),
            tail(log, 40, &|_| true),
        );
    }
    section(
        "kubectl get nodes -o wide",
        kubectl_text(&["get", "nodes", "-o", "wide", "--request-timeout=10s"]),
    );
    section(
        "kubectl get pods -n kube-system -o wide",
        kubectl_text(&[
            "get",
            "pods",
            "-n",
            "kube-system",
            "-o",
            "wide",
            "--request-timeout=10s",
        ]),
    );
    let pods = kubectl.run(&[
        "get",
        "pods",
        "-n",
        "kube-system",
        "-l",
        "tier=control-plane",
        "-o",
        "json",
        "--show-managed-fields",
        "--request-timeout=10s",
    ]);
    let body = match serde_json::from_slice::<serde_json::Value>(&pods.stdout) {
        Ok(list) => control_plane_pods(&list),
        Err(e) => format!(
            "cannot read the pods ({e}): {}",
            String::from_utf8_lossy(&pods.stderr)
        ),
    };
    section(
        "control-plane pods: image, Ready condition, who wrote them (managedFields)",
        body,
    );
    for reason in ["NodeNotReady", "LeaderElection"] {
        section(
            &format!("events with reason {reason}"),
            kubectl_text(&[
                "get",
                "events",
                "-A",
                "--field-selector",
                &format!("reason={reason}"),
                "--sort-by=.lastTimestamp",
                "--request-timeout=10s",
            ]),
        );
    }
    let logs = crate::process::log_dir(lab_dir);
    section(
        &format!(
            "last 80 lines of the simulated kubelets' log {}",
            logs.join("kubelet-sim.log").display()
        ),
        tail(&logs.join("kubelet-sim.log"), 80, &|_| true),
    );
    let mut managers: Vec<PathBuf> = std::fs::read_dir(&logs)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("kube-controller-manager"))
                })
                .collect()
        })
        .unwrap_or_default();
    managers.sort();
    for log in managers {
        section(
            &format!(
                "{}: last 15 lines about readiness or leadership",
                log.display()
            ),
            tail(&log, 15, &|l: &str| {
                let l = l.to_ascii_lowercase();
                [
                    "notready",
                    "not ready",
                    "nodestatusunknown",
                    "leader",
                    "ready status",
                ]
                .iter()
                .any(|k| l.contains(k))
            }),
        );
    }
    section(
        "haproxy: API servers",
        match crate::haproxy::server_states(lab_dir) {
            Ok(states) => states
                .iter()
                .map(|s| format!("{} {} {}", s.node, s.status, s.check))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => e.to_string(),
        },
    );
    out
}

/// One line per control-plane pod: name, UID, image, Ready (status, reason, since), and each
/// `managedFields` entry (manager, operation, time).
fn control_plane_pods(list: &serde_json::Value) -> String {
    let mut lines = Vec::new();
    for pod in list["items"].as_array().into_iter().flatten() {
        let ready = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready");
        let ready = ready.map_or_else(
            || "Ready: none".to_string(),
            |c| {
                format!(
                    "Ready={} {} since {}",
                    c["status"].as_str().unwrap_or("?"),
                    c["reason"].as_str().unwrap_or(""),
                    c["lastTransitionTime"].as_str().unwrap_or("?")
                )
            },
        );
        let writers: Vec<String> = pod["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                format!(
                    "{} {} {}",
                    m["manager"].as_str().unwrap_or("?"),
                    m["operation"].as_str().unwrap_or("?"),
                    m["time"].as_str().unwrap_or("?")
                )
            })
            .collect();
        lines.push(format!(
            "{} uid={} image={} {ready}; written by: {}",
            pod["metadata"]["name"].as_str().unwrap_or("?"),
            pod["metadata"]["uid"].as_str().unwrap_or("?"),
            pod["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or("?"),
            writers.join(", ")
        ));
    }
    lines.join("\n")
}
