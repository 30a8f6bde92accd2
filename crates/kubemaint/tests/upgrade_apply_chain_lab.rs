//! `kubemaint upgrade apply` on the lab, the parts beyond one minor and one uninterrupted run:
//!
//! - SIGTERM while a node's command runs: the command finishes (it runs in its own process
//!   group and is held open by the test until after the signal), the run stops after it with
//!   the documented exit code 1, the run record says where it stopped, the Lease is released,
//!   the node stays cordoned and is named, and `--resume` finishes without running that node's
//!   command again or draining it twice.
//! - A multi-minor target with kubelets two minors behind: a v1.19.16 stand-in control plane,
//!   cp-1's and worker-2's kubelets at v1.18.20, target v1.21.14 through the real v1.20.2: the
//!   two old kubelets catch up to v1.19.16 first (`{role}` kubelet-only; the lab's
//!   `node upgrade --role kubelet-only` leaves cp-1's control plane as it is), then each hop
//!   in turn, no minor skipped on any node, every node at v1.21.14 at the end.

mod common;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use common::upgrade::{
    TestLab, all_nodes, deploy_web, drained_lines, kubemaint_at, lab_binary, lease_holder,
    node_field, output, run_record,
};
use kubemaint_core::upgrade::Version;
use kubemaint_lab::state::LabState;
use kubemaint_lab::testing::{Kubectl, wait_for};

/// Waits for `child` to exit within `timeout` (polling); kills it and fails past that.
fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for kubemaint") {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kubemaint did not exit within {timeout:?} after its node command finished");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn count_lines(text: &str, line: &str) -> usize {
    text.lines().filter(|l| *l == line).count()
}

#[test]
fn sigterm_during_a_node_command_stops_after_it_and_resume_finishes() {
    const OLD: &str = "v1.19.16";
    const NEW: &str = "v1.20.2";
    let lab = TestLab::up(1, 2, NEW, OLD);
    let kubeconfig = lab.kubeconfig();
    let kubectl = Kubectl::new(&kubeconfig);
    deploy_web(&kubectl, 2, 300);
    let log_file = lab.dir().join("run.log");
    let calls = lab.dir().join("calls");
    let release = lab.dir().join("release-worker-1");
    // worker-1's command starts, then waits until the test creates the marker file (after its
    // SIGTERM reached kubemaint): the signal arrives while the command is in flight, however
    // slow the machine. Every start and end is recorded, to count the commands run.
    let template = format!(
        "echo \"start {{node}}\" >> {calls}; \
         if [ {{node}} = worker-1 ]; then while [ ! -e {release} ]; do sleep 0.1; done; fi; \
         {lab} node upgrade {{node}} --kubelet-version {{version}} --dir {dir} && echo \"end {{node}}\" >> {calls}",
        calls = calls.display(),
        release = release.display(),
        lab = lab_binary().display(),
        dir = lab.dir().display(),
    );
    let args = [
        "upgrade",
        "apply",
        "--target",
        NEW,
        "--command",
        &template,
        "--yes",
        "--no-snapshot",
        "-o",
        "json",
        "--log-file",
        log_file.to_str().unwrap(),
    ];
    let stdout_file = lab.dir().join("stdout");
    let stderr_file = lab.dir().join("stderr");
    let mut run = kubemaint_at(&kubeconfig, &args)
        .stdout(std::fs::File::create(&stdout_file).unwrap())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .spawn()
        .expect("start kubemaint");
    wait_for(
        "worker-1's command to start",
        Duration::from_secs(180),
        || read(&calls).contains("start worker-1"),
    );
    let record = run_record(&kubectl);
    assert_eq!(record["last_action"]["action"], "run-commands", "{record}");
    assert_eq!(
        record["last_action"]["jobs"],
        serde_json::json!([{"node": "worker-1", "role": "worker", "version": NEW, "first": false, "kubelet_only": false}]),
        "{record}"
    );

    // SIGTERM to kubemaint only (its command runs in a process group of its own).
    let kill = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("kill -TERM {}", run.id()))
        .status()
        .expect("run kill");
    assert!(kill.success());
    wait_for(
        "kubemaint to acknowledge the stop request",
        Duration::from_secs(30),
        || read(&log_file).contains("stop requested"),
    );
    assert!(
        run.try_wait().unwrap().is_none(),
        "kubemaint exited before its node command finished:\n{}",
        read(&stderr_file)
    );
    assert!(
        !read(&calls).contains("end worker-1"),
        "the command ended before it was released"
    );
    std::fs::write(&release, "").unwrap();
    let status = wait_exit(&mut run, Duration::from_secs(180));
    let (stdout, stderr) = (read(&stdout_file), read(&stderr_file));
    eprintln!("stopped run -> {status}\n{stdout}\n{stderr}");

    // The command in flight finished; nothing after it started.
    let after_stop = read(&calls);
    assert_eq!(count_lines(&after_stop, "end worker-1"), 1, "{after_stop}");
    assert!(!after_stop.contains("worker-2"), "{after_stop}");
    // Documented: exit 1 for a stopped run, resumable; the report and stderr say so and name
    // the node left cordoned.
    assert_eq!(status.code(), Some(1), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON report");
    assert_eq!(report["status"], "stopped");
    assert_eq!(report["leftCordoned"], serde_json::json!(["worker-1"]));
    assert!(
        stderr.contains("left cordoned by kubemaint: worker-1"),
        "{stderr}"
    );
    assert!(stderr.contains("--resume"), "{stderr}");
    // The run record: stopped, in worker-1's batch, its command done, waiting next.
    let record = run_record(&kubectl);
    assert_eq!(record["status"], "stopped", "{record}");
    let batch = &record["state"]["batch"];
    assert_eq!(batch["nodes"], serde_json::json!(["worker-1"]), "{record}");
    assert_eq!(
        batch["upgraded"],
        serde_json::json!(["worker-1"]),
        "{record}"
    );
    assert_eq!(batch["phase"], "wait", "{record}");
    assert_eq!(
        record["state"]["cordoned"],
        serde_json::json!(["worker-1"]),
        "{record}"
    );
    // The Lease is released: the resume starts at once, not after the Lease duration.
    assert_eq!(lease_holder(&kubectl), "");
    // The node as documented: cordoned by kubemaint, upgraded by its finished command.
    assert_eq!(
        node_field(&kubectl, "worker-1", "{.spec.unschedulable}"),
        "true"
    );

    // --resume: finishes without running worker-1's command again or draining it twice.
    let mut resume_args = args.to_vec();
    resume_args.push("--resume");
    let (out, stdout, stderr) = output(kubemaint_at(&kubeconfig, &resume_args));
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("took over"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON report");
    assert_eq!(report["status"], "done");
    let calls = read(&calls);
    for node in all_nodes(&lab) {
        assert_eq!(
            count_lines(&calls, &format!("start {node}")),
            1,
            "{node} ran its command once\n{calls}"
        );
    }
    let log = read(&log_file);
    for node in all_nodes(&lab) {
        assert_eq!(drained_lines(&log, &node), 1, "{node} drained once\n{log}");
        assert_eq!(
            node_field(&kubectl, &node, "{.status.nodeInfo.kubeletVersion}"),
            NEW,
            "{node}"
        );
        assert_eq!(
            node_field(&kubectl, &node, "{.spec.unschedulable}"),
            "",
            "{node}"
        );
    }
    assert_eq!(run_record(&kubectl)["status"], "done");
    assert_eq!(lease_holder(&kubectl), "");
}

#[test]
fn a_multi_minor_target_catches_old_kubelets_up_then_runs_the_chain() {
    const CONTROL_PLANE: &str = "v1.19.16";
    const BEHIND: &str = "v1.18.20";
    const TARGET: &str = "v1.21.14";
    let lab = TestLab::up(1, 3, CONTROL_PLANE, CONTROL_PLANE);
    let kubeconfig = lab.kubeconfig();
    let kubectl = Kubectl::new(&kubeconfig);
    // Two kubelets two minors behind the v1.20 hop (kubeadm < 1.29 allows one): a control-plane
    // node's and a worker's.
    for node in ["cp-1", "worker-2"] {
        LabState::update(
            lab.dir(),
            |s| -> Result<(), kubemaint_lab::state::StateError> {
                let spec = s.node_mut(node)?;
                spec.kubelet_version = BEHIND.into();
                spec.restarts += 1;
                Ok(())
            },
        )
        .unwrap();
    }
    for node in ["cp-1", "worker-2"] {
        wait_for(
            &format!("{node}'s kubelet to report {BEHIND}"),
            Duration::from_secs(60),
            || {
                node_field(&kubectl, node, "{.status.nodeInfo.kubeletVersion}") == BEHIND
                    && node_field(
                        &kubectl,
                        node,
                        "{.status.conditions[?(@.type==\"Ready\")].status}",
                    ) == "True"
            },
        );
    }
    deploy_web(&kubectl, 3, 300);
    // The chain through the real v1.20.2 (the built-in index would take the v1.20.15 stand-in).
    let releases = lab.dir().join("releases.yaml");
    std::fs::write(
        &releases,
        "releases:\n  - {version: v1.19.16, etcd: 3.4.13-0, coredns: 1.7.0}\n  - {version: v1.20.2, etcd: 3.4.13-0, coredns: 1.7.0}\n  - {version: v1.21.14, etcd: 3.4.13-0, coredns: v1.8.0}\n",
    )
    .unwrap();
    let calls = lab.dir().join("calls");
    let template = format!(
        "echo \"{{node}} {{version}} {{role}} {{first}}\" >> {calls}; \
         {lab} node upgrade {{node}} --kubernetes-version {{version}} --role {{role}} --dir {dir} $([ {{first}} = true ] && echo --first)",
        calls = calls.display(),
        lab = lab_binary().display(),
        dir = lab.dir().display(),
    );
    let log_file = lab.dir().join("run.log");
    let apiserver_pid = pid_of(lab.dir(), "cp-1", "kube-apiserver");
    let (out, stdout, stderr) = output(kubemaint_at(
        &kubeconfig,
        &[
            "upgrade",
            "apply",
            "--target",
            TARGET,
            "--releases",
            releases.to_str().unwrap(),
            "--command",
            &template,
            "--yes",
            "--no-snapshot",
            "-o",
            "json",
            "--log-file",
            log_file.to_str().unwrap(),
        ],
    ));
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON report");
    assert_eq!(report["status"], "done");
    assert_eq!(report["jobsDone"], report["jobsTotal"]);

    // The node jobs in the order they ran.
    let jobs: Vec<(String, String, bool, bool)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "run-commands")
        .map(|s| {
            // One node per batch (--max-unavailable 1): one job per command step.
            assert_eq!(s["jobs"].as_array().map(Vec::len), Some(1), "{s}");
            let job = &s["jobs"][0];
            (
                job["node"].as_str().unwrap().to_string(),
                job["version"].as_str().unwrap().to_string(),
                job["kubelet_only"].as_bool().unwrap_or(false),
                job["first"].as_bool().unwrap(),
            )
        })
        .collect();
    eprintln!("node jobs: {jobs:?}");
    let shown: Vec<String> = jobs
        .iter()
        .map(|(node, version, kubelet_only, first)| {
            format!(
                "{node} {version}{}{}",
                if *kubelet_only { " kubelet-only" } else { "" },
                if *first { " first" } else { "" }
            )
        })
        .collect();
    // The two old kubelets first (kubelet only, to the control plane's version), then per hop
    // the control plane, then the workers (in the plan's order).
    assert_eq!(
        shown[..3],
        [
            "cp-1 v1.19.16 kubelet-only",
            "worker-2 v1.19.16 kubelet-only",
            "cp-1 v1.20.2 first"
        ],
        "{shown:#?}"
    );
    assert_eq!(shown[6], "cp-1 v1.21.14 first", "{shown:#?}");
    assert_eq!(shown.len(), 10, "{shown:#?}");
    for (range, version) in [(3..6, "v1.20.2"), (7..10, "v1.21.14")] {
        let hop = &jobs[range];
        assert!(
            hop.iter().all(|j| j.1 == version && !j.2 && !j.3),
            "{shown:#?}"
        );
        let mut workers: Vec<&str> = hop.iter().map(|j| j.0.as_str()).collect();
        workers.sort();
        assert_eq!(workers, ["worker-1", "worker-2", "worker-3"], "{version}");
    }
    // No minor skipped on any node: each node's versions go up one minor at a time, from
    // where its kubelet was to the target.
    for node in all_nodes(&lab) {
        let start = if node == "cp-1" || node == "worker-2" {
            BEHIND
        } else {
            CONTROL_PLANE
        };
        let mut at = Version::parse(start).unwrap();
        for (_, version, _, _) in jobs.iter().filter(|j| j.0 == node) {
            let next = Version::parse(version).unwrap();
            assert_eq!(
                next.minors_above(&at),
                1,
                "{node}: {at} -> {next} is not the next minor\n{shown:#?}"
            );
            at = next;
        }
        assert_eq!(at.to_string(), TARGET, "{node}");
        assert_eq!(
            node_field(&kubectl, &node, "{.status.nodeInfo.kubeletVersion}"),
            TARGET,
            "{node}"
        );
        assert_eq!(
            node_field(&kubectl, &node, "{.spec.unschedulable}"),
            "",
            "{node}"
        );
    }
    // The command got {role} kubelet-only for the catch-ups, and the lab left cp-1's control
    // plane alone then: its API server was first restarted by the v1.20.2 hop.
    let calls = read(&calls);
    assert!(
        calls.starts_with(
            "cp-1 v1.19.16 kubelet-only false\nworker-2 v1.19.16 kubelet-only false\ncp-1 v1.20.2 control-plane true\n"
        ),
        "{calls}"
    );
    let log = read(&log_file);
    assert!(
        log.contains("cp-1: control plane: not touched (kubelet only; it runs v1.19.16)"),
        "{log}"
    );
    let first_restart = log
        .lines()
        .find(|l| l.contains("kube-apiserver: ") && l.contains("restarted (pid"))
        .unwrap_or_else(|| panic!("no API server restart in the run log\n{log}"));
    assert!(
        first_restart.contains("-> v1.20.2")
            && first_restart.contains(&format!("restarted (pid {apiserver_pid} ->")),
        "the API server was restarted before the v1.20.2 hop: {first_restart}"
    );
    // The control plane at the target: /version and every mirror pod.
    let version: serde_json::Value =
        serde_json::from_str(&kubectl.ok(&["get", "--raw", "/version"])).unwrap();
    assert_eq!(version["gitVersion"], TARGET);
    for component in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        let image = kubectl.ok(&[
            "get",
            "pod",
            "-n",
            "kube-system",
            &format!("{component}-cp-1"),
            "-o",
            "jsonpath={.spec.containers[0].image}",
        ]);
        assert!(
            image.ends_with(&format!(":{TARGET}")),
            "{component}: {image}"
        );
    }
    // One drain per node job: the catch-up, then each hop.
    for node in all_nodes(&lab) {
        let runs = jobs.iter().filter(|j| j.0 == node).count();
        assert_eq!(drained_lines(&log, &node), runs, "{node}\n{log}");
    }
}

/// The pid of `node`'s `kind` process (e.g. its kube-apiserver), as the lab recorded it.
fn pid_of(dir: &Path, node: &str, kind: &str) -> u32 {
    let state = LabState::load(dir).expect("the lab's state");
    let name = state
        .components_of(node)
        .find(|c| c.kind() == kind)
        .map(|c| c.name.clone())
        .unwrap_or_else(|| panic!("the lab runs no {kind} on {node}"));
    kubemaint_lab::process::recorded(dir)
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| p.pid)
        .unwrap_or_else(|| panic!("the lab recorded no process {name}"))
}
