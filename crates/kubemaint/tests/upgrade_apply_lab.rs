//! `kubemaint upgrade apply` against the lab: three control-plane nodes behind haproxy at a
//! v1.19.16 stand-in and four workers whose kubelets report v1.19.16, upgraded to the real
//! v1.20.2 node by node (control planes one at a time, the first with `--first`) through the
//! `command` executor running `kubemaint-lab node upgrade`, while a watcher samples a Deployment
//! under a PodDisruptionBudget (minAvailable = replicas - 1) every 0.5 s with the real kubectl.
//! Then the failure paths: a failing node command stops the run with the node left cordoned; a
//! run SIGKILLed during a drain resumes with no node drained twice; a second apply is refused
//! while the Lease is held, and a stale Lease is taken over.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kubemaint_lab::state::SimSettings;
use kubemaint_lab::testing::{Kubectl, diagnosis, error_chain, wait_for};
use kubemaint_lab::{KubeletMode, Lab, UpOptions};

const OLD: &str = "v1.19.16";
const NEW: &str = "v1.20.2";
/// The control plane's version at the start of the whole-cluster test, and whether the node
/// command upgrades the whole node (control plane included) or only its kubelet.
const CONTROL_PLANE_FROM: &str = OLD;
const WHOLE_NODE: bool = true;

/// `target/debug/kubemaint-lab`, next to the kubemaint binary under test.
fn lab_binary() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_kubemaint")).with_file_name("kubemaint-lab");
    assert!(
        bin.is_file(),
        "{} is missing: build it first with `cargo build -p kubemaint-lab` (the node command of these tests)",
        bin.display()
    );
    bin
}

/// A test's lab and its directory. When the test fails (panics), dropping it prints
/// [`diagnosis`] (the run log's tail, the control-plane pods' Ready conditions and their
/// writers, NodeNotReady events, the simulated kubelets' log, ...) while the lab still runs,
/// and keeps the directory, naming it, for a look at every log.
struct TestLab {
    lab: Lab,
    tmp: Option<tempfile::TempDir>,
}

impl TestLab {
    fn up(control_planes: u32, workers: u32, control_plane: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let lab = start(tmp.path(), control_planes, workers, control_plane);
        Self {
            lab,
            tmp: Some(tmp),
        }
    }
}

impl std::ops::Deref for TestLab {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.lab
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let kubectl = Kubectl::new(&self.lab.kubeconfig());
        let run_log = self.lab.dir().join("run.log");
        eprintln!(
            "\n========== the test failed: the lab at that moment{}",
            diagnosis(self.lab.dir(), &kubectl, Some(&run_log))
        );
        if let Some(tmp) = self.tmp.take() {
            eprintln!(
                "========== kept the lab directory (every component's log in logs/): {}",
                tmp.keep().display()
            );
        }
    }
}

fn start(dir: &Path, control_planes: u32, workers: u32, control_plane: &str) -> Lab {
    let mut opts = UpOptions::new(dir, workers);
    opts.control_planes = control_planes;
    opts.kube_version = control_plane.into();
    opts.kubelet_version = OLD.into();
    opts.kubelets = KubeletMode::InProcess;
    opts.sim = SimSettings {
        ready_delay_ms: 300,
        shutdown_delay_ms: 300,
    };
    tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(Lab::up(opts))
        .unwrap_or_else(|e| panic!("lab up failed: {}", error_chain(&e)))
}

/// A Deployment of `replicas` under a policy/v1beta1 PDB with minAvailable = replicas - 1.
fn deploy_web(kubectl: &Kubectl, replicas: u32, shutdown_ms: u32) {
    kubectl.apply(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n      annotations:\n        lab.kubemaint.io/shutdown-delay-ms: \"{shutdown_ms}\"\n    spec:\n      containers:\n      - name: web\n        image: nginx\n---\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\n  namespace: default\nspec:\n  minAvailable: {}\n  selector:\n    matchLabels:\n      app: web\n",
        replicas - 1
    ));
    wait_for("web available", Duration::from_secs(120), || {
        kubectl
            .run(&[
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.status.availableReplicas}",
            ])
            .stdout
            == replicas.to_string().as_bytes()
    });
}

/// The lab's node command: the whole node (`--kubernetes-version`, `--first` on the first
/// control-plane node) or only its kubelet (`--kubelet-version`, the control plane being new).
fn command_template(lab: &Path, whole_node: bool, fail_on: Option<&str>) -> String {
    let upgrade = match whole_node {
        true => format!(
            "{} node upgrade {{node}} --kubernetes-version {{version}} --dir {} $([ {{first}} = true ] && echo --first)",
            lab_binary().display(),
            lab.display()
        ),
        false => format!(
            "{} node upgrade {{node}} --kubelet-version {{version}} --dir {}",
            lab_binary().display(),
            lab.display()
        ),
    };
    match fail_on {
        Some(node) => format!(
            "if [ {{node}} = {node} ]; then echo 'apt-get: simulated failure' >&2; exit 3; fi; {upgrade}"
        ),
        None => upgrade,
    }
}

fn kubemaint(kubeconfig: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubemaint"));
    command.arg("--kubeconfig").arg(kubeconfig).args(args);
    command
}

fn output(mut command: Command) -> (Output, String, String) {
    let out = command.output().expect("run kubemaint");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("kubemaint -> {:?}\n{stdout}\n{stderr}", out.status.code());
    (out, stdout, stderr)
}

fn etcd_env(command: &mut Command, lab: &Lab) {
    let pki = lab.dir().join("pki");
    command
        .env("ETCDCTL_ENDPOINTS", &lab.state.etcd_url)
        .env("ETCDCTL_CACERT", pki.join("etcd/ca.crt"))
        .env("ETCDCTL_CERT", pki.join("etcd/healthcheck-client.crt"))
        .env("ETCDCTL_KEY", pki.join("etcd/healthcheck-client.key"));
}

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

fn node_field(kubectl: &Kubectl, node: &str, path: &str) -> String {
    kubectl.ok(&["get", "node", node, "-o", &format!("jsonpath={path}")])
}

fn all_nodes(lab: &Lab) -> Vec<String> {
    lab.state.nodes.iter().map(|n| n.name.clone()).collect()
}

fn drained_lines(log: &str, node: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(&format!("node/{node} drained:")))
        .count()
}

#[test]
fn apply_upgrades_every_node_within_the_budget() {
    let lab = TestLab::up(3, 4, CONTROL_PLANE_FROM);
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

fn run_record(kubectl: &Kubectl) -> serde_json::Value {
    let out = kubectl.run(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "kubemaint-upgrade-apply",
        "-o",
        "jsonpath={.data.run\\.json}",
    ]);
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn kill(child: &mut Child) {
    // SIGKILL: no cleanup at all, as a crash.
    child.kill().expect("kill");
    let _ = child.wait();
}

#[test]
fn a_failed_node_stops_the_run_and_a_killed_run_resumes_under_its_lease() {
    let lab = TestLab::up(1, 3, NEW);
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
