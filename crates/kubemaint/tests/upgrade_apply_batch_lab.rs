//! `kubemaint upgrade apply --max-unavailable 2` on the lab: a batch's node commands run at
//! once, and when one of them fails the batch's other node still comes back (waited for,
//! uncordoned) while the failed one stays cordoned; `--resume` runs only the failed node's
//! commands again.
//!
//! Concurrency is proven without timing: each worker's command creates a marker file and then
//! waits (polling, 30 s deadline) for its batch partner's marker. Run one after the other, the
//! first command would time out and fail the run.

use std::path::Path;
use std::process::{Command, Output};

use kubemaint_lab::testing::Kubectl;

mod common;
use common::upgrade::{lab_binary, start_lab};

const OLD: &str = "v1.19.16";
const NEW: &str = "v1.20.2";

/// The node command: mark this node started, wait for the batch partner's mark (worker-1 with
/// worker-2, worker-3 with worker-4; others wait for nobody), fail on `fail_on`, else upgrade
/// the kubelet through the lab.
fn command(lab: &Path, marks: &Path, fail_on: Option<&str>) -> String {
    let fail = match fail_on {
        Some(node) => format!(
            "if [ {{node}} = {node} ]; then echo 'apt-get: simulated failure' >&2; exit 3; fi; "
        ),
        None => String::new(),
    };
    format!(
        "touch {m}/{{node}}; \
         case {{node}} in worker-1) p=worker-2;; worker-2) p=worker-1;; worker-3) p=worker-4;; worker-4) p=worker-3;; *) p={{node}};; esac; \
         i=0; until [ -e {m}/$p ]; do i=$((i+1)); if [ $i -gt 300 ]; then echo \"$p never started while {{node}} ran: the batch's commands did not run at once\" >&2; exit 9; fi; sleep 0.1; done; \
         {fail}{bin} node upgrade {{node}} --kubelet-version {{version}} --dir {dir}",
        m = marks.display(),
        bin = lab_binary().display(),
        dir = lab.display()
    )
}

fn kubemaint(kubeconfig: &Path, args: &[&str]) -> (Output, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubemaint"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("run kubemaint");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("kubemaint -> {:?}\n{stdout}\n{stderr}", out.status.code());
    (out, stdout, stderr)
}

fn node_field(kubectl: &Kubectl, node: &str, path: &str) -> String {
    kubectl.ok(&["get", "node", node, "-o", &format!("jsonpath={path}")])
}

fn runs_of(log: &str, node: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(&format!("{node}: running `")))
        .count()
}

#[test]
fn a_batch_runs_its_commands_at_once_and_a_failed_node_stays_out_while_the_other_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    // One control-plane node at the target and four workers whose kubelets are one minor behind.
    let lab = start_lab(&tmp.path().join("lab"), 1, 4, NEW, OLD);
    let kubeconfig = lab.kubeconfig();
    let kubectl = Kubectl::new(&kubeconfig);
    let log_file = tmp.path().join("run.log");
    let log_arg = log_file.to_str().unwrap().to_string();
    let marks = tmp.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    let base = |template: &str| -> Vec<String> {
        [
            "upgrade",
            "apply",
            "--target",
            NEW,
            "--command",
            template,
            "--max-unavailable",
            "2",
            "--yes",
            "--no-snapshot",
            "--log-file",
            &log_arg,
            "-o",
            "json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    // 1. worker-1 and worker-2 run at once; worker-2 fails.
    let failing = command(lab.dir(), &marks, Some("worker-2"));
    let args = base(&failing);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, stdout, stderr) = kubemaint(&kubeconfig, &args);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stopped at node worker-2"), "{stderr}");
    assert!(stderr.contains("apt-get: simulated failure"), "{stderr}");
    assert!(
        stderr.contains("left cordoned by kubemaint: worker-2 "),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON report");
    assert_eq!(report["failedNodes"], serde_json::json!(["worker-2"]));
    assert_eq!(report["leftCordoned"], serde_json::json!(["worker-2"]));
    // The failed node is out, at the old version; its partner is upgraded and back.
    assert_eq!(
        node_field(&kubectl, "worker-2", "{.spec.unschedulable}"),
        "true"
    );
    assert_eq!(
        node_field(&kubectl, "worker-2", "{.status.nodeInfo.kubeletVersion}"),
        OLD
    );
    assert_eq!(
        node_field(&kubectl, "worker-1", "{.spec.unschedulable}"),
        ""
    );
    assert_eq!(
        node_field(&kubectl, "worker-1", "{.status.nodeInfo.kubeletVersion}"),
        NEW
    );
    // The run stopped at that batch: the next one was not touched.
    for node in ["worker-3", "worker-4"] {
        assert_eq!(
            node_field(&kubectl, node, "{.spec.unschedulable}"),
            "",
            "{node}"
        );
        assert_eq!(
            node_field(&kubectl, node, "{.status.nodeInfo.kubeletVersion}"),
            OLD,
            "{node}"
        );
    }
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(
        log.contains("worker-2 err| apt-get: simulated failure"),
        "each output line under its node\n{log}"
    );

    // 2. --resume: only worker-2's commands run again; worker-3 and worker-4 at once.
    let good = command(lab.dir(), &marks, None);
    let mut args = base(&good);
    args.push("--resume".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, _, stderr) = kubemaint(&kubeconfig, &args);
    assert!(out.status.success(), "{stderr}");
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert_eq!(runs_of(&log, "worker-1"), 1, "{log}");
    assert_eq!(runs_of(&log, "worker-2"), 2, "{log}");
    assert_eq!(runs_of(&log, "worker-3"), 1, "{log}");
    for node in ["cp-1", "worker-1", "worker-2", "worker-3", "worker-4"] {
        assert_eq!(
            node_field(&kubectl, node, "{.spec.unschedulable}"),
            "",
            "{node}"
        );
        assert_eq!(
            node_field(&kubectl, node, "{.status.nodeInfo.kubeletVersion}"),
            NEW,
            "{node}"
        );
    }
}
