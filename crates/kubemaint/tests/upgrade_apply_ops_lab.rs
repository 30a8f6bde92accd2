//! What an operator meets running `kubemaint upgrade apply` on the lab (control plane at the real
//! v1.20.2, kubelets at v1.19.16 moved by `kubemaint-lab node upgrade --kubelet-version`):
//!
//! - drains refuse a pod with emptyDir data unless `--delete-emptydir-data` is given (naming the
//!   pod and the flag; `--resume` with the flag finishes), DaemonSet pods are ignored by default;
//! - `--dry-run` with the ssh executor shows the ssh destination (`--ssh-port`, `--ssh-config`)
//!   and the commands as they run for `--ssh-user` (sudo -n unless root);
//! - the health gate asks every etcd member of the 3-member HA lab, and what it saw matches the
//!   real `etcdctl endpoint status --cluster -w json`; unreachable etcd is reported unknown, not
//!   fatal.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

use kubemaint_lab::Lab;
use kubemaint_lab::testing::{Kubectl, wait_for};

mod common;
use common::upgrade::{lab_binary, start_lab};

const OLD: &str = "v1.19.16";
const NEW: &str = "v1.20.2";

/// One lab at a time: two at once would starve the 2 shared cores.
static ONE_LAB: Mutex<()> = Mutex::new(());

/// `upgrade apply` to NEW through the lab's kubelet upgrade, no snapshot, no ETCDCTL_* from
/// the test's environment, a JSON report.
fn apply(lab: &Lab, extra: &[&str]) -> (Output, serde_json::Value, String) {
    let template = format!(
        "{} node upgrade {{node}} --kubelet-version {{version}} --dir {}",
        lab_binary().display(),
        lab.dir().display()
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubemaint"));
    command
        .arg("--kubeconfig")
        .arg(lab.kubeconfig())
        .args(["-o", "json", "upgrade", "apply", "--target", NEW, "--yes"])
        .args([
            "--no-snapshot",
            "--executor",
            "command",
            "--command",
            &template,
        ])
        .arg("--log-file")
        .arg(lab.dir().join("run.log"))
        .args(extra);
    for var in [
        "ETCDCTL_ENDPOINTS",
        "ETCDCTL_CACERT",
        "ETCDCTL_CERT",
        "ETCDCTL_KEY",
    ] {
        command.env_remove(var);
    }
    let out = command.output().expect("run kubemaint");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "kubemaint {extra:?} -> {:?}\n{stdout}\n{stderr}",
        out.status.code()
    );
    let report = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (out, report, stderr)
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
    (out, stdout, stderr)
}

fn kubelets_at(kubectl: &Kubectl, version: &str) -> bool {
    let nodes = kubectl.json(&["get", "nodes"]);
    nodes["items"].as_array().is_some_and(|items| {
        items
            .iter()
            .all(|n| n["status"]["nodeInfo"]["kubeletVersion"] == version)
    })
}

#[test]
fn drains_keep_emptydir_data_unless_asked_and_dry_run_shows_the_ssh_commands() {
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let lab = start_lab(tmp.path(), 1, 2, NEW, OLD);
    let kubectl = Kubectl::new(&lab.kubeconfig());
    // Two replicas with emptyDir scratch data, one per worker (the control plane is tainted),
    // and a DaemonSet on every worker.
    kubectl.apply(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: scratch\n  namespace: default\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: scratch\n  template:\n    metadata:\n      labels:\n        app: scratch\n    spec:\n      affinity:\n        podAntiAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n          - labelSelector:\n              matchLabels:\n                app: scratch\n            topologyKey: kubernetes.io/hostname\n      containers:\n      - name: app\n        image: nginx\n      volumes:\n      - name: cache\n        emptyDir: {}\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\n  namespace: default\nspec:\n  selector:\n    matchLabels:\n      app: agent\n  template:\n    metadata:\n      labels:\n        app: agent\n    spec:\n      containers:\n      - name: agent\n        image: agent\n",
    );
    wait_for("scratch available", Duration::from_secs(120), || {
        kubectl
            .run(&[
                "get",
                "deploy",
                "scratch",
                "-o",
                "jsonpath={.status.availableReplicas}",
            ])
            .stdout
            == b"2"
    });

    // --dry-run with the ssh executor: the destination with the port and config file, and the
    // commands as they run: sudo -n for a non-root login, none for root.
    let config = tmp.path().join("ssh_config");
    std::fs::write(&config, "Host *\n  ConnectTimeout 5\n").unwrap();
    let config_arg = config.display().to_string();
    let dry = |user: &str| {
        kubemaint(
            &lab.kubeconfig(),
            &[
                "upgrade",
                "apply",
                "--target",
                NEW,
                "--dry-run",
                "--no-snapshot",
                "--executor",
                "ssh",
                "--ssh-user",
                user,
                "--ssh-port",
                "2222",
                "--ssh-config",
                &config_arg,
            ],
        )
    };
    let (out, stdout, stderr) = dry("admin");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let via = format!("on the node through `ssh -F {config_arg} -p 2222 admin@");
    assert!(stdout.contains(&via), "{via:?} not in {stdout}");
    assert!(
        stdout.contains("$ sudo -n kubeadm upgrade node"),
        "{stdout}"
    );
    assert!(
        stdout.contains("$ sudo -n systemctl restart kubelet"),
        "{stdout}"
    );
    let (out, stdout, stderr) = dry("root");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("$ systemctl restart kubelet"), "{stdout}");
    assert!(!stdout.contains("sudo"), "{stdout}");
    // A missing --ssh-config file is bad input: exit 2 before anything.
    let (out, _, stderr) = kubemaint(
        &lab.kubeconfig(),
        &[
            "upgrade",
            "apply",
            "--target",
            NEW,
            "--dry-run",
            "--executor",
            "ssh",
            "--ssh-config",
            "/nonexistent/ssh_config",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--ssh-config /nonexistent/ssh_config"),
        "{stderr}"
    );

    // Without --delete-emptydir-data the first worker's drain stops the run, naming the pod on
    // it and the flag; the node stays cordoned. The DaemonSet pods are ignored by default.
    let (out, report, stderr) = apply(&lab, &[]);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let node = report["failedNode"]
        .as_str()
        .unwrap_or_else(|| panic!("no failedNode in {report}"))
        .to_string();
    assert!(node.starts_with("worker-"), "{report}");
    let pods = kubectl.json(&["get", "pods", "-l", "app=scratch"]);
    let on_node: Vec<String> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["spec"]["nodeName"] == node.as_str())
        .map(|p| format!("default/{}", p["metadata"]["name"].as_str().unwrap()))
        .collect();
    assert_eq!(on_node.len(), 1, "{pods}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("use --delete-emptydir-data to override") && error.contains(&on_node[0]),
        "{error}"
    );
    assert!(!error.contains("DaemonSet"), "{error}");
    assert_eq!(report["leftCordoned"], serde_json::json!([node]));
    let still = kubectl.json(&["get", "pods", "-l", "app=scratch"]);
    assert!(
        still["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| format!("default/{}", p["metadata"]["name"].as_str().unwrap()) == on_node[0]),
        "the emptyDir pod was not evicted: {still}"
    );

    // With the flag, --resume finishes. The etcd connection points at a closed port: the
    // members are unknown, which the report says, and the run still succeeds.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("https://{}", closed.local_addr().unwrap());
    drop(closed);
    let pki = lab.dir().join("pki").display().to_string();
    let (out, report, stderr) = apply(
        &lab,
        &[
            "--resume",
            "--delete-emptydir-data",
            "--pki-dir",
            &pki,
            "--endpoints",
            &dead,
            "--dial-timeout",
            "1s",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(report["status"], "done", "{report}");
    assert_eq!(report["etcdMembers"]["state"], "unreachable", "{report}");
    let log = std::fs::read_to_string(lab.dir().join("run.log")).unwrap();
    assert!(
        log.contains("etcd members: unknown (cannot reach etcd from here"),
        "{log}"
    );
    assert!(kubelets_at(&kubectl, NEW));
    let evicted = kubectl.json(&["get", "pods", "-l", "app=scratch"]);
    assert!(
        !evicted["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| format!("default/{}", p["metadata"]["name"].as_str().unwrap()) == on_node[0]),
        "the emptyDir pod is gone once allowed: {evicted}"
    );
}

#[test]
fn the_health_gate_asks_every_etcd_member_as_etcdctl_sees_them() {
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let lab = start_lab(tmp.path(), 3, 1, NEW, OLD);
    let kubectl = Kubectl::new(&lab.kubeconfig());
    let pki = lab.dir().join("pki").display().to_string();
    let etcd = [
        "--pki-dir",
        pki.as_str(),
        "--endpoints",
        lab.state.etcd_url.as_str(),
    ];

    // Every gate asks the three members (the verdicts, a member down included, are the
    // core's table and property tests).
    let (out, report, stderr) = apply(&lab, &etcd);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(kubelets_at(&kubectl, NEW));
    assert_eq!(report["etcdMembers"]["state"], "asked", "{report}");
    let ours = report["etcdMembers"]["members"].as_array().unwrap().clone();
    assert_eq!(ours.len(), 3, "{report}");

    // The real etcdctl's view right after: same members, endpoints and leader; our raft
    // indexes (asked earlier) not ahead of its.
    let out = lab
        .etcdctl()
        .unwrap()
        .args(["endpoint", "status", "--cluster", "-w", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let theirs = theirs.as_array().unwrap();
    assert_eq!(theirs.len(), 3, "{theirs:?}");
    for member in &ours {
        let answer = &member["answer"]["Ok"];
        let id = answer["member_id"].as_u64().unwrap();
        let same = theirs
            .iter()
            .find(|t| t["Status"]["header"]["member_id"].as_u64() == Some(id))
            .unwrap_or_else(|| panic!("member {id:x} not in etcdctl's {theirs:?}"));
        assert_eq!(same["Endpoint"], member["endpoint"], "{member} vs {same}");
        assert_eq!(
            same["Status"]["leader"].as_u64(),
            answer["leader"].as_u64(),
            "{member} vs {same}"
        );
        assert!(
            answer["raft_index"].as_u64().unwrap() <= same["Status"]["raftIndex"].as_u64().unwrap(),
            "{member} vs {same}"
        );
        assert_eq!(answer["is_learner"], false);
    }
    let log = std::fs::read_to_string(lab.dir().join("run.log")).unwrap();
    assert!(log.contains("etcd members: 3 healthy, leader cp-"), "{log}");
}
