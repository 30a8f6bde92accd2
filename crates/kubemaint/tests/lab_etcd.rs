//! etcd backup and restore of a real Kubernetes control plane (the lab), end to end, through the
//! `kubemaint` binary: a snapshot of the lab's etcd shows plausible per-resource counts, and a
//! restore brings back a deleted namespace with its objects.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use kubemaint_lab::testing::{Kubectl, wait_for};
use kubemaint_lab::{KubeletMode, Lab, UpOptions};

fn kubemaint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubemaint"))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubemaint")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn kubectl(lab: &Lab, args: &[&str]) -> Output {
    Kubectl::new(&lab.kubeconfig()).run(args)
}

fn up(dir: &Path) -> Lab {
    let mut opts = UpOptions::new(dir, 2);
    opts.kubelets = KubeletMode::InProcess;
    opts.seed = true;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(Lab::up(opts))
        .unwrap_or_else(|e| panic!("lab up failed: {}", kubemaint_lab::testing::error_chain(&e)))
}

fn resource_keys(status: &serde_json::Value, resource: &str) -> u64 {
    status["resources"]
        .as_array()
        .expect("resources in status -o json")
        .iter()
        .find(|r| r["resource"] == resource)
        .and_then(|r| r["keys"].as_u64())
        .unwrap_or(0)
}

#[test]
fn lab_snapshot_shows_per_resource_counts_and_restore_brings_a_deleted_namespace_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut lab = up(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pki = lab.dir().join("pki");
    let snap = dir.path().join("backup.db");

    // Save through the kubeadm etcd manifest the lab writes, as on a control-plane node.
    let manifest = format!(
        "--kubeadm={}",
        lab.dir().join("manifests/etcd.yaml").display()
    );
    ok(
        kubemaint(&[
            "etcd",
            "snapshot",
            "save",
            snap.to_str().unwrap(),
            &manifest,
        ]),
        "snapshot save --kubeadm",
    );
    let status: serde_json::Value = serde_json::from_str(&ok(
        kubemaint(&[
            "etcd",
            "snapshot",
            "status",
            snap.to_str().unwrap(),
            "-o",
            "json",
        ]),
        "snapshot status",
    ))
    .unwrap();
    // 1 control plane + 2 workers; the seed workload and kube-system pods; kubeadm's ConfigMaps.
    assert_eq!(
        resource_keys(&status, "minions"),
        3,
        "nodes are stored under /registry/minions: {status}"
    );
    assert!(resource_keys(&status, "pods") >= 15, "pods: {status}");
    assert!(
        resource_keys(&status, "configmaps") >= 4,
        "configmaps: {status}"
    );
    assert!(
        resource_keys(&status, "poddisruptionbudgets") == 2,
        "the seed's two PDBs: {status}"
    );
    ok(
        kubemaint(&["etcd", "snapshot", "verify", snap.to_str().unwrap()]),
        "snapshot verify",
    );

    // Disaster: the demo namespace is deleted.
    let before = ok(
        kubectl(
            &lab,
            &["get", "deploy,sts,ds,pdb", "-n", "demo", "-o", "name"],
        ),
        "kubectl get demo",
    );
    ok(
        kubectl(
            &lab,
            &[
                "delete",
                "namespace",
                "demo",
                "--wait=true",
                "--timeout=120s",
            ],
        ),
        "delete namespace",
    );
    assert!(
        !kubectl(&lab, &["get", "namespace", "demo"])
            .status
            .success()
    );

    // Restore, as an operator does on a kubeadm node: stop the control plane, restore etcd's data
    // dir beside the old one, point etcd at it, start everything again.
    for c in [
        "kube-scheduler",
        "kube-controller-manager",
        "kube-apiserver",
        "etcd",
    ] {
        lab.stop_component(c);
    }
    let name = lab.component_flag("etcd", "name").unwrap();
    let peer = lab
        .component_flag("etcd", "initial-advertise-peer-urls")
        .unwrap();
    let restored = lab.dir().join("etcd-restored");
    let initial_cluster = format!("--initial-cluster={name}={peer}");
    ok(
        kubemaint(&[
            "etcd",
            "snapshot",
            "restore",
            snap.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
            "--name",
            &name,
            &initial_cluster,
            "--initial-advertise-peer-urls",
            &peer,
        ]),
        "snapshot restore",
    );
    lab.set_component_flag("etcd", "data-dir", restored.to_str().unwrap())
        .unwrap();
    lab.start_component("etcd").unwrap();
    rt.block_on(lab.wait_etcd(Duration::from_secs(30))).unwrap();
    lab.start_component("kube-apiserver").unwrap();
    rt.block_on(lab.wait_apiserver(Duration::from_secs(60)))
        .unwrap();
    lab.start_component("kube-controller-manager").unwrap();
    lab.start_component("kube-scheduler").unwrap();

    // Everything is back, and the nodes Ready.
    ok(
        kubectl(&lab, &["get", "namespace", "demo"]),
        "namespace demo after restore",
    );
    let after = ok(
        kubectl(
            &lab,
            &["get", "deploy,sts,ds,pdb", "-n", "demo", "-o", "name"],
        ),
        "kubectl get demo after restore",
    );
    assert_eq!(before, after);
    let client = rt.block_on(lab.client()).unwrap();
    rt.block_on(lab.wait_nodes_ready(&client, Duration::from_secs(60)))
        .unwrap();
    wait_for(
        "the web Deployment available again",
        Duration::from_secs(90),
        || {
            let out = kubectl(
                &lab,
                &[
                    "get",
                    "deploy",
                    "web",
                    "-n",
                    "demo",
                    "-o",
                    "jsonpath={.status.availableReplicas}",
                ],
            );
            String::from_utf8_lossy(&out.stdout) == "6"
        },
    );
    // The restore bumped the revision and marked it compacted (Kubernetes default), so clients
    // watching from before the snapshot relist instead of seeing stale data.
    let rev = |out: Output| -> i64 {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["header"]["revision"].as_i64().unwrap()
    };
    let now = rev(lab
        .etcdctl()
        .unwrap()
        .args(["get", "/registry/namespaces/demo", "-w", "json"])
        .output()
        .unwrap());
    assert!(
        now > status["revision"].as_i64().unwrap(),
        "revision moved forward after restore"
    );
    drop(pki);
}
