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
