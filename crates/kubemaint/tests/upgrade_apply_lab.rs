//! `kubemaint upgrade apply` against the lab: three control-plane nodes behind haproxy at a
//! v1.19.16 stand-in and four workers whose kubelets report v1.19.16, upgraded to the real
//! v1.20.2 node by node (control planes one at a time, the first with `--first`) through the
//! `command` executor running `kubemaint-lab node upgrade`, while a watcher samples a Deployment
//! under a PodDisruptionBudget (minAvailable = replicas - 1) every 0.5 s with the real kubectl.
//! Then the failure paths: a failing node command stops the run with the node left cordoned; a
//! run SIGKILLed during a drain resumes with no node drained twice; a second apply is refused
//! while the Lease is held, and a stale Lease is taken over.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::upgrade::{
    TestLab, all_nodes, command_template, deploy_web, drained_lines, etcd_env,
    kubemaint_at as kubemaint, node_field, output, run_record,
};
use kubemaint_lab::testing::{Kubectl, wait_for};

const OLD: &str = "v1.19.16";
const NEW: &str = "v1.20.2";
/// The control plane's version at the start of the whole-cluster test, and whether the node
/// command upgrades the whole node (control plane included) or only its kubelet.
const CONTROL_PLANE_FROM: &str = OLD;
const WHOLE_NODE: bool = true;

/// Samples the Deployment every 0.5 s until stopped: the lowest availability seen and the
/// samples at which the API did not answer.
struct Watcher {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(i64, usize, usize)>,
}

impl Watcher {
    fn start(kubectl: &Kubectl) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let kubectl = kubectl.clone();
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut min, mut samples, mut failures) = (i64::MAX, 0, 0);
            let mut next = Instant::now();
            while !flag.load(Ordering::SeqCst) {
                let out = kubectl.run(&[
                    "get",
                    "deploy",
                    "web",
                    "--request-timeout=2s",
                    "-o",
                    "jsonpath={.status.availableReplicas}",
                ]);
                samples += 1;
                if out.status.success() {
                    let text = String::from_utf8_lossy(&out.stdout);
                    min = min.min(text.trim().parse().unwrap_or(0));
                } else {
                    failures += 1;
                }
                next += Duration::from_millis(500);
                // Pace the samples at 0.5 s (this is the watcher's period, not a wait for a
                // condition).
                if let Some(rest) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(rest);
                }
            }
            (min, samples, failures)
        });
        Self { stop, handle }
    }

    fn finish(self) -> (i64, usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("watcher")
    }
}

#[test]
fn apply_upgrades_every_node_within_the_budget() {
    let lab = TestLab::up(3, 4, CONTROL_PLANE_FROM, OLD);
    let kubeconfig = lab.kubeconfig();
    let kubectl = Kubectl::new(&kubeconfig);
    deploy_web(&kubectl, 4, 500);
    // Cordoned by someone else before the run: stays cordoned.
    kubectl.ok(&["cordon", "worker-4"]);

    let log_file = lab.dir().join("run.log");
    let backups = lab.dir().join("backups");
    let template = command_template(lab.dir(), WHOLE_NODE, None);

    // The dry run prints every action and command and changes nothing.
    let (out, stdout, _) = output(kubemaint(
        &kubeconfig,
        &[
            "upgrade",
            "apply",
            "--target",
            NEW,
            "--dry-run",
            "--command",
            &template,
            "--max-unavailable",
            "2",
            "--no-snapshot",
        ],
    ));
    assert!(out.status.success());
    assert!(stdout.contains("node upgrade cp-1 --"), "{stdout}");
    assert!(stdout.contains("uncordon worker-2, worker-3"), "{stdout}");
    assert!(!stdout.contains("uncordon worker-4"), "{stdout}");
    assert_eq!(
        node_field(&kubectl, "worker-1", "{.spec.unschedulable}"),
        ""
    );
    assert!(
        kubectl
            .run(&[
                "get",
                "configmap",
                "-n",
                "kube-system",
                "kubemaint-upgrade-apply"
            ])
            .status
            .code()
            != Some(0),
        "the dry run wrote the run record"
    );

    let watcher = Watcher::start(&kubectl);
    let mut command = kubemaint(
        &kubeconfig,
        &[
            "upgrade",
            "apply",
            "--target",
            NEW,
            "--executor",
            "command",
            "--command",
            &template,
            "--max-unavailable",
            "2",
            "--yes",
            "-o",
            "json",
            "--backup-dir",
            backups.to_str().unwrap(),
            "--log-file",
            log_file.to_str().unwrap(),
        ],
    );
    etcd_env(&mut command, &lab);
    let (out, stdout, stderr) = output(command);
    let (min, samples, failures) = watcher.finish();
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON report");
    assert_eq!(report["status"], "done");
    assert_eq!(report["jobsDone"], report["jobsTotal"]);
    eprintln!("watcher: {samples} samples, lowest available {min}, {failures} without an answer");
    assert!(samples >= 4, "the run was too short to sample");
    assert!(min >= 3, "availability fell to {min}, below minAvailable 3");
    assert_eq!(failures, 0, "the API did not answer at {failures} samples");

    for node in all_nodes(&lab) {
        assert_eq!(
            node_field(&kubectl, &node, "{.status.nodeInfo.kubeletVersion}"),
            NEW,
            "{node}"
        );
        let ready = node_field(
            &kubectl,
            &node,
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        );
        assert_eq!(ready, "True", "{node}");
        let cordoned = node_field(&kubectl, &node, "{.spec.unschedulable}");
        assert_eq!(
            cordoned == "true",
            node == "worker-4",
            "{node}: unschedulable={cordoned}"
        );
    }
    // The control plane at the target: every mirror pod's image, the served /version.
    for cp in ["cp-1", "cp-2", "cp-3"] {
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
                &format!("{component}-{cp}"),
                "-o",
                "jsonpath={.spec.containers[0].image}",
            ]);
            assert!(
                image.ends_with(&format!(":{NEW}")),
                "{component} on {cp}: {image}"
            );
        }
    }
    let version: serde_json::Value =
        serde_json::from_str(&kubectl.ok(&["get", "--raw", "/version"])).unwrap();
    assert_eq!(version["gitVersion"], NEW);
    // Control-plane nodes one at a time, the first with kubeadm upgrade apply.
    let firsts: Vec<bool> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "run-commands" && s["jobs"][0]["role"] == "control-plane")
        .map(|s| s["jobs"][0]["first"].as_bool().unwrap())
        .collect();
    assert_eq!(firsts, [true, false, false]);
    // A verified snapshot before the control plane.
    let snapshot = report["snapshots"][0]
        .as_str()
        .expect("a snapshot in the report");
    assert!(Path::new(snapshot).is_file(), "{snapshot}");
    assert!(Path::new(&format!("{snapshot}.manifest.json")).is_file());
    // Every node drained once; every command's output in the log.
    let log = std::fs::read_to_string(&log_file).unwrap();
    for node in all_nodes(&lab) {
        assert_eq!(drained_lines(&log, &node), 1, "{node}\n{log}");
    }
    // The node command's own output, line by line.
    assert!(log.contains("cp-1 out| cp-1 upgraded to v1.20.2"), "{log}");
    // Batches of two workers: worker-4 (already out) goes first.
    let batches: Vec<&serde_json::Value> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "start-batch")
        .collect();
    assert!(
        batches
            .iter()
            .all(|b| b["nodes"].as_array().unwrap().len() <= 2)
    );
    let workers: Vec<&serde_json::Value> = batches
        .iter()
        .copied()
        .filter(|b| b["nodes"][0].as_str().unwrap().starts_with("worker"))
        .collect();
    assert_eq!(workers[0]["nodes"][0], "worker-4", "{batches:?}");
    assert!(
        batches
            .iter()
            .filter(|b| b["nodes"][0].as_str().unwrap().starts_with("cp"))
            .all(|b| b["nodes"].as_array().unwrap().len() == 1)
    );
    assert!(
        kubectl
            .ok(&[
                "get",
                "configmap",
                "-n",
                "kube-system",
                "kubemaint-upgrade-apply",
                "-o",
                "jsonpath={.data.run\\.json}"
            ])
            .contains("\"status\": \"done\"")
    );
}

fn kill(child: &mut Child) {
    // SIGKILL: no cleanup at all, as a crash.
    child.kill().expect("kill");
    let _ = child.wait();
}

#[test]
fn a_failed_node_stops_the_run_and_a_killed_run_resumes_under_its_lease() {
    let lab = TestLab::up(1, 3, NEW, OLD);
    let kubeconfig = lab.kubeconfig();
    let kubectl = Kubectl::new(&kubeconfig);
    // Slow shutdowns keep each drain busy long enough to be killed in the middle.
    deploy_web(&kubectl, 3, 4000);
    let log_file = lab.dir().join("run.log");
    let log_arg = log_file.to_str().unwrap().to_string();

    // 1. worker-2's command fails: the run stops there, worker-2 left cordoned and named.
    let failing = command_template(lab.dir(), false, Some("worker-2"));
    let (out, stdout, stderr) = output(kubemaint(
        &kubeconfig,
        &[
            "upgrade",
            "apply",
            "--target",
            NEW,
            "--command",
            &failing,
            "--yes",
            "--no-snapshot",
            "--log-file",
            &log_arg,
            "--lease-duration",
            "6s",
        ],
    ));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("stopped at node worker-2"), "{stderr}");
    assert!(
        stderr.contains("left cordoned by kubemaint: worker-2"),
        "{stderr}"
    );
    assert!(stderr.contains("apt-get: simulated failure"), "{stderr}");
    assert_eq!(
        node_field(&kubectl, "worker-2", "{.spec.unschedulable}"),
        "true"
    );
    assert_eq!(
        node_field(&kubectl, "worker-2", "{.status.nodeInfo.kubeletVersion}"),
        OLD
    );
    assert_eq!(
        node_field(&kubectl, "worker-1", "{.status.nodeInfo.kubeletVersion}"),
        NEW
    );
    // A new run without --resume is refused while that run is recorded.
    let good = command_template(lab.dir(), false, None);
    let (out, _, stderr) = output(kubemaint(
        &kubeconfig,
        &[
            "upgrade",
            "apply",
            "--target",
            NEW,
            "--command",
            &good,
            "--yes",
            "--no-snapshot",
        ],
    ));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("--resume"), "{stderr}");

    // 2. Resume; worker-3 is drained next: SIGKILL the run in the middle of that drain, while
    //    a second apply is refused because the Lease is held.
    let resume_args = [
        "upgrade",
        "apply",
        "--target",
        NEW,
        "--command",
        &good,
        "--yes",
        "--no-snapshot",
        "--resume",
        "--log-file",
        &log_arg,
        "--lease-duration",
        "6s",
    ];
    let mut first = kubemaint(&kubeconfig, &resume_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kubemaint");
    wait_for(
        "the resumed run drains worker-3",
        Duration::from_secs(120),
        || {
            let record = run_record(&kubectl);
            record["last_action"]["action"] == "drain"
                && record["state"]["batch"]["phase"] == "drain"
                && record["state"]["batch"]["nodes"][0] == "worker-3"
        },
    );
    let (out, _, stderr) = output(kubemaint(&kubeconfig, &resume_args));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is held by"), "{stderr}");
    kill(&mut first);
    assert_eq!(
        node_field(&kubectl, "worker-3", "{.spec.unschedulable}"),
        "true"
    );

    // 3. The holder is gone: once its Lease is stale (not renewed for its 6 s), --resume
    //    takes it over, says so, and finishes; no node is drained twice.
    wait_for(
        "the killed run's Lease to go stale",
        Duration::from_secs(60),
        || {
            let renewed = kubectl.ok(&[
                "get",
                "lease",
                "-n",
                "kube-system",
                "kubemaint-upgrade-apply",
                "-o",
                "jsonpath={.spec.renewTime}",
            ]);
            renewed.parse::<jiff::Timestamp>().is_ok_and(|t| {
                jiff::Timestamp::now().duration_since(t) > jiff::SignedDuration::from_secs(7)
            })
        },
    );
    let (out, _, stderr) = output(kubemaint(&kubeconfig, &resume_args));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("took over the stale Lease"), "{stderr}");
    let log = std::fs::read_to_string(&log_file).unwrap();
    for node in all_nodes(&lab) {
        assert_eq!(
            drained_lines(&log, &node),
            1,
            "{node} drained more than once or never\n{log}"
        );
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
}
