//! The lab, checked with the real `kubectl` (1.27, the closest to the lab's 1.20) as an
//! independent client. One lab per test binary; tests use their own nodes and namespaces.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kubemaint_lab::state::{LabState, SimSettings};
use kubemaint_lab::testing::{KUBECTL_1_27 as KUBECTL, Kubectl, pod_ready, wait_for};
use kubemaint_lab::{KubeletMode, Lab, UpOptions};

struct Shared {
    lab: Lab,
    _dir: tempfile::TempDir,
}

fn lab() -> &'static Lab {
    static LAB: OnceLock<Shared> = OnceLock::new();
    &LAB.get_or_init(|| {
        assert!(
            PathBuf::from(KUBECTL).is_file(),
            "{KUBECTL} is missing: the machine image's kubectl package provides it"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = UpOptions::new(dir.path(), 5);
        opts.sim = SimSettings {
            ready_delay_ms: 300,
            shutdown_delay_ms: 300,
        };
        opts.kubelets = KubeletMode::InProcess;
        let lab = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(Lab::up(opts))
                .unwrap_or_else(|e| {
                    panic!("lab up failed: {}", kubemaint_lab::testing::error_chain(&e))
                })
        })
        .join()
        .expect("lab thread");
        Shared { lab, _dir: dir }
    })
    .lab
}

fn kc() -> Kubectl {
    Kubectl::new(&lab().kubeconfig())
}

fn kubectl(args: &[&str]) -> Output {
    kc().run(args)
}

fn kubectl_ok(args: &[&str]) -> String {
    kc().ok(args)
}

fn kubectl_json(args: &[&str]) -> serde_json::Value {
    kc().json(args)
}

fn node_ready(name: &str) -> Option<bool> {
    let node = kubectl_json(&["get", "node", name]);
    node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"] == "True")
}

fn set_node(name: &str, f: impl FnOnce(&mut kubemaint_lab::state::NodeSpec)) {
    // Tests run in parallel on one lab: without this, two read-modify-write cycles of `lab.json`
    // could interleave and one test's change to its node would be lost.
    static STATE_FILE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = STATE_FILE.lock().unwrap_or_else(|e| e.into_inner());
    let mut state = LabState::load(lab().dir()).unwrap();
    f(state.node_mut(name).unwrap());
    state.save().unwrap();
}

fn apply(yaml: &str) {
    kc().apply(yaml)
}

fn deployment(ns: &str, name: &str, replicas: u32, node_selector: Option<&str>) -> String {
    let selector = node_selector
        .map(|n| format!("      nodeSelector:\n        kubernetes.io/hostname: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n{selector}      containers:\n      - name: app\n        image: registry.example/{name}:1\n"
    )
}

fn running_pods(ns: &str) -> Vec<(String, String)> {
    let pods = kubectl_json(&["get", "pods", "-n", ns]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
        })
        .filter(|p| pod_ready(p))
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn all_nodes_ready_at_requested_version_with_kubeadm_shape() {
    let nodes = kubectl_json(&["get", "nodes"]);
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 6, "1 control plane + 5 workers");
    for n in items {
        let name = n["metadata"]["name"].as_str().unwrap();
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], name);
        if name.starts_with("cp-") {
            assert_eq!(
                n["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
                ""
            );
            assert_eq!(
                n["metadata"]["labels"]["node-role.kubernetes.io/master"],
                ""
            );
            assert_eq!(n["spec"]["taints"][0]["effect"], "NoSchedule");
        }
        let info = &n["status"]["nodeInfo"];
        // The upgrade test changes worker-5; every other node reports the requested version.
        if name != "worker-5" {
            assert_eq!(info["kubeletVersion"], "v1.20.2", "{name}");
        }
        assert!(n["status"]["allocatable"]["cpu"].is_string());
    }
    for name in ["cp-1", "worker-1", "worker-2"] {
        assert_eq!(node_ready(name), Some(true), "{name} Ready");
    }
    // The real server is v1.20.2.
    let version = kubectl_json(&["version"]);
    assert_eq!(version["serverVersion"]["gitVersion"], "v1.20.2");
    // kubeadm objects and mirror pods.
    let cm = kubectl_json(&["get", "configmap", "kubeadm-config", "-n", "kube-system"]);
    assert!(
        cm["data"]["ClusterConfiguration"]
            .as_str()
            .unwrap()
            .contains("kubernetesVersion: v1.20.2")
    );
    wait_for("mirror pods on cp-1", Duration::from_secs(30), || {
        let pod = kubectl(&[
            "get",
            "pod",
            "-n",
            "kube-system",
            "kube-apiserver-cp-1",
            "-o",
            "json",
        ]);
        pod.status.success() && {
            let p: serde_json::Value = serde_json::from_slice(&pod.stdout).unwrap();
            p["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string()
                && p["metadata"]["labels"]["tier"] == "control-plane"
        }
    });
    kubectl_ok(&["get", "daemonset", "kube-proxy", "-n", "kube-system"]);
    kubectl_ok(&["get", "deployment", "coredns", "-n", "kube-system"]);
    assert!(lab().dir().join("manifests/etcd.yaml").is_file());
}

#[test]
fn custom_resources_work_with_the_patched_reflect2() {
    apply(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.lab.kubemaint.io\nspec:\n  group: lab.kubemaint.io\n  names:\n    kind: Widget\n    plural: widgets\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n",
    );
    wait_for(
        "the Widget CRD established",
        Duration::from_secs(30),
        || {
            kubectl_json(&["get", "crd", "widgets.lab.kubemaint.io"])["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                })
        },
    );
    // With reflect2 v1.0.1 the apiserver panics encoding this unstructured object.
    let mut created = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !created && Instant::now() < deadline {
        let out = kc().stdin(
            &["create", "-f", "-"],
            "apiVersion: lab.kubemaint.io/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: default\nspec:\n  size: 3\n  colors: [red, blue]\n",
        );
        created =
            out.status.success() || String::from_utf8_lossy(&out.stderr).contains("AlreadyExists");
        if !created {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert!(created, "creating a custom resource failed");
    let w = kubectl_json(&["get", "widget", "w1", "-n", "default"]);
    assert_eq!(w["spec"]["size"], 3);
    assert_eq!(w["spec"]["colors"][1], "blue");
}

#[test]
fn deployment_pods_run_and_are_spread_by_the_real_scheduler() {
    apply(&deployment("spread", "web", 8, None));
    wait_for("8 Ready pods", Duration::from_secs(60), || {
        running_pods("spread").len() == 8
    });
    let nodes: std::collections::BTreeSet<String> =
        running_pods("spread").into_iter().map(|(_, n)| n).collect();
    assert!(
        nodes.len() >= 3,
        "the scheduler spreads 8 replicas over the workers, got {nodes:?}"
    );
    assert!(
        !nodes.contains("cp-1"),
        "the control-plane taint keeps workload pods off cp-1"
    );
    let pod = &kubectl_json(&["get", "pods", "-n", "spread"])["items"][0];
    assert!(
        pod["status"]["podIP"]
            .as_str()
            .unwrap()
            .starts_with("10.244.")
    );
    assert_eq!(pod["status"]["containerStatuses"][0]["ready"], true);
}

#[test]
fn kubectl_drain_of_a_worker_completes_and_pods_move() {
    apply(&deployment("drainme", "app", 4, None));
    wait_for("4 Ready pods", Duration::from_secs(60), || {
        running_pods("drainme").len() == 4
    });
    // Pin the test to the worker holding the most pods.
    let pods = running_pods("drainme");
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (_, n) in &pods {
        *counts.entry(n.clone()).or_default() += 1;
    }
    let node = counts
        .iter()
        .filter(|(n, _)| ["worker-1", "worker-2", "worker-3"].contains(&n.as_str()))
        .max_by_key(|(_, c)| **c)
        .map(|(n, _)| n.clone());
    let node = node.expect("a drainme pod on worker-1..3");
    let before: Vec<String> = pods
        .iter()
        .filter(|(_, n)| *n == node)
        .map(|(p, _)| p.clone())
        .collect();
    let out = kubectl(&[
        "drain",
        &node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--pod-selector=app=app",
        "--timeout=90s",
    ]);
    assert!(
        out.status.success(),
        "kubectl drain failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("node/{node} drained")), "{stdout}");
    wait_for(
        "4 Ready pods again, none on the drained node",
        Duration::from_secs(60),
        || {
            let now = running_pods("drainme");
            now.len() == 4 && now.iter().all(|(_, n)| *n != node)
        },
    );
    let after: Vec<String> = running_pods("drainme")
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert!(
        before.iter().all(|p| !after.contains(p)),
        "evicted pods are gone"
    );
    kubectl_ok(&["uncordon", &node]);
}

fn probe_ready(ns: &str, pod: &str) -> bool {
    pod_ready(&kubectl_json(&["get", "pod", "-n", ns, pod]))
}

#[test]
fn node_stop_makes_the_node_not_ready_and_start_recovers() {
    assert_eq!(node_ready("worker-4"), Some(true));
    // A pod on worker-4: when the node's heartbeats stop for the grace period, the real
    // node-lifecycle controller sets its Ready condition False (MarkPodsNotReady); a kubelet
    // coming back reports it Ready again. The simulated kubelets used to remember the status
    // they had posted and never posted it again, so such a pod stayed NotReady for good (what
    // left an upgraded control-plane node's mirror pods NotReady in `upgrade_apply_lab`).
    apply(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: stopped\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: probe\n  namespace: stopped\nspec:\n  nodeName: worker-4\n  containers:\n  - name: app\n    image: registry.example/app:1\n",
    );
    wait_for(
        "the probe pod Ready on worker-4",
        Duration::from_secs(60),
        || probe_ready("stopped", "probe"),
    );
    set_node("worker-4", |n| n.running = false);
    // The real node-lifecycle controller: grace 16 s, checked every 2 s.
    wait_for("worker-4 NotReady", Duration::from_secs(60), || {
        node_ready("worker-4") != Some(true)
    });
    let node = kubectl_json(&["get", "node", "worker-4"]);
    let ready = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(
        ready["reason"], "NodeStatusUnknown",
        "set by the controller, not by the kubelet: {ready}"
    );
    assert!(
        node["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/unreachable")
    );
    wait_for(
        "the node-lifecycle controller to mark the probe pod NotReady",
        Duration::from_secs(30),
        || !probe_ready("stopped", "probe"),
    );
    set_node("worker-4", |n| {
        n.running = true;
        n.restarts += 1;
    });
    wait_for("worker-4 Ready again", Duration::from_secs(60), || {
        node_ready("worker-4") == Some(true)
    });
    wait_for(
        "the probe pod Ready again once its node is back",
        Duration::from_secs(30),
        || probe_ready("stopped", "probe"),
    );
}

#[test]
fn node_upgrade_restarts_the_kubelet_at_the_new_version() {
    // Through the CLI, as an operator (or the upgrade orchestration) would.
    let out = Command::new(env!("CARGO_BIN_EXE_kubemaint-lab"))
        .args([
            "node",
            "upgrade",
            "worker-5",
            "--kubelet-version",
            "v1.21.14",
            "--dir",
        ])
        .arg(lab().dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("v1.20.2 -> v1.21.14"));
    let mut saw_not_ready = false;
    wait_for(
        "worker-5 Ready at v1.21.14",
        Duration::from_secs(30),
        || {
            let node = kubectl_json(&["get", "node", "worker-5"]);
            let ready = node["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            saw_not_ready |= !ready;
            ready && node["status"]["nodeInfo"]["kubeletVersion"] == "v1.21.14"
        },
    );
    assert!(saw_not_ready, "a restarting kubelet is briefly NotReady");
    let table = kubectl_ok(&["get", "node", "worker-5"]);
    assert!(table.contains("v1.21.14"), "{table}");
    let status = Command::new(env!("CARGO_BIN_EXE_kubemaint-lab"))
        .args(["status", "--dir"])
        .arg(lab().dir())
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("worker-5") && l.contains("Ready") && l.ends_with("v1.21.14")),
        "{status}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_kubemaint-lab"))
        .args([
            "node",
            "upgrade",
            "worker-9",
            "--kubelet-version",
            "v1.21.14",
            "--dir",
        ])
        .arg(lab().dir())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no node \"worker-9\""),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn pods_on_a_stopped_node_stay_terminating_when_deleted() {
    apply(&deployment("stuck", "app", 1, Some("worker-3")));
    wait_for("1 Ready pod on worker-3", Duration::from_secs(60), || {
        running_pods("stuck").len() == 1
    });
    let (pod, _) = running_pods("stuck").remove(0);
    set_node("worker-3", |n| n.running = false);
    // A witness pod on a running node, deleted after ours: once the simulated kubelets have
    // finished its deletion they have had every chance to finish ours too.
    apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: witness\n  namespace: stuck\nspec:\n  nodeName: cp-1\n  containers:\n  - name: app\n    image: registry.example/app:1\n",
    );
    wait_for(
        "the witness pod Ready on cp-1",
        Duration::from_secs(60),
        || pod_ready(&kubectl_json(&["get", "pod", "-n", "stuck", "witness"])),
    );
    kubectl_ok(&["delete", "pod", "-n", "stuck", &pod, "--wait=false"]);
    kubectl_ok(&["delete", "pod", "-n", "stuck", "witness", "--wait=false"]);
    wait_for(
        "the witness pod to be gone",
        Duration::from_secs(40),
        || {
            !kubectl(&["get", "pod", "-n", "stuck", "witness"])
                .status
                .success()
        },
    );
    let p = kubectl_json(&["get", "pod", "-n", "stuck", &pod]);
    assert!(
        p["metadata"]["deletionTimestamp"].is_string(),
        "still there, Terminating"
    );
    set_node("worker-3", |n| {
        n.running = true;
        n.restarts += 1;
    });
    // Back up, the kubelet finishes the deletion (shutdown delay bounded by the grace period).
    wait_for("the pod to be gone", Duration::from_secs(40), || {
        !kubectl(&["get", "pod", "-n", "stuck", &pod])
            .status
            .success()
    });
}

#[test]
fn down_leaves_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = UpOptions::new(dir.path(), 1);
    opts.kubelets = KubeletMode::InProcess;
    let small = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(Lab::up(opts))
            .expect("second lab up")
    })
    .join()
    .unwrap();
    let pids: Vec<u32> = kubemaint_lab::process::recorded(small.dir())
        .iter()
        .map(|p| p.pid)
        .collect();
    assert_eq!(
        pids.len(),
        5,
        "etcd, apiserver, controller-manager, scheduler, watchdog"
    );
    let stopped = small.down();
    assert_eq!(stopped.len(), 5, "{stopped:?}");
    for pid in pids {
        assert!(
            !kubemaint_lab::process::alive(pid, 0),
            "pid {pid} still running"
        );
    }
    // Nothing anywhere still refers to that lab's directory.
    let needle = dir.path().to_string_lossy().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let pid: u32 = entry.file_name().to_string_lossy().parse().unwrap_or(0);
            if cmd.contains(&needle) && kubemaint_lab::process::alive(pid, 0) {
                panic!("process {pid} still refers to the lab: {cmd}");
            }
        }
    }
}

#[test]
fn init_containers_finished_pods_and_readiness_delays_are_simulated() {
    apply(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: lifecycle\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: with-init\n  namespace: lifecycle\n  annotations:\n    lab.kubemaint.io/ready-delay-ms: \"2500\"\nspec:\n  initContainers:\n  - name: setup\n    image: registry.example/setup:1\n  containers:\n  - name: app\n    image: registry.example/app:1\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: fails\n  namespace: lifecycle\n  annotations:\n    lab.kubemaint.io/exit-after-ms: \"500\"\n    lab.kubemaint.io/exit-code: \"3\"\nspec:\n  restartPolicy: Never\n  containers:\n  - name: task\n    image: registry.example/task:1\n",
    );
    // Running but not yet Ready during the readiness delay.
    let mut saw_running_unready = false;
    wait_for("with-init Ready", Duration::from_secs(30), || {
        let p = kubectl_json(&["get", "pod", "-n", "lifecycle", "with-init"]);
        let ready = pod_ready(&p);
        saw_running_unready |= p["status"]["phase"] == "Running" && !ready;
        ready
    });
    assert!(
        saw_running_unready,
        "the readiness delay shows as Running, not Ready"
    );
    let p = kubectl_json(&["get", "pod", "-n", "lifecycle", "with-init"]);
    assert_eq!(
        p["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
    assert!(p["status"]["containerStatuses"][0]["state"]["running"].is_object());
    wait_for("fails Failed", Duration::from_secs(30), || {
        kubectl_json(&["get", "pod", "-n", "lifecycle", "fails"])["status"]["phase"] == "Failed"
    });
    let p = kubectl_json(&["get", "pod", "-n", "lifecycle", "fails"]);
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        3
    );
}
