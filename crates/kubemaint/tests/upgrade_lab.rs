//! `kubemaint upgrade plan` against the lab's real v1.20.2 control plane: versions read per
//! node, the old kubelet moved first, stored policy/v1beta1 PDBs named as 1.25 blockers, etcd
//! asked directly, certificates read, and the documented exit codes for bad input and an
//! unreachable server.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use kubemaint_lab::state::LabState;
use kubemaint_lab::testing::{Kubectl, start_lab, wait_for};

fn kubemaint(kubeconfig: &Path, env: &[(&str, &str)], args: &[&str]) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubemaint"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("ETCDCTL_CACERT")
        .env_remove("ETCDCTL_CERT")
        .env_remove("ETCDCTL_KEY")
        .output()
        .expect("run kubemaint");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "kubemaint {args:?} -> {:?}\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, stdout)
}

fn check<'a>(doc: &'a serde_json::Value, name: &str) -> Vec<&'a serde_json::Value> {
    doc["preflight"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .collect()
}

#[test]
fn plan_on_the_lab() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = start_lab(tmp.path(), 2, 200);
    let kubeconfig = lab.kubeconfig();
    let kubectl = Kubectl::new(&kubeconfig);

    // worker-2's kubelet reports v1.18.20: two minors behind, allowed by the skew policy but
    // not by kubeadm v1.21's own check.
    let mut state = LabState::load(tmp.path()).unwrap();
    let node = state.node_mut("worker-2").unwrap();
    node.kubelet_version = "v1.18.20".into();
    node.restarts += 1;
    state.save().unwrap();
    wait_for("worker-2 reports v1.18.20", Duration::from_secs(60), || {
        kubectl.ok(&[
            "get",
            "node",
            "worker-2",
            "-o",
            "jsonpath={.status.nodeInfo.kubeletVersion}",
        ]) == "v1.18.20"
    });
    wait_for("worker-2 Ready again", Duration::from_secs(60), || {
        kubectl.ok(&[
            "get",
            "node",
            "worker-2",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]) == "True"
    });
    // A PodDisruptionBudget written through policy/v1beta1 (the only version v1.20 serves).
    kubectl.apply(
        "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: web-pdb\n  namespace: default\nspec:\n  maxUnavailable: 1\n  selector:\n    matchLabels:\n      app: web\n",
    );

    let pki = tmp.path().join("pki");
    let pki = pki.to_str().unwrap();
    // The local kubectl is read from PATH: a real kubectl 1.27 there, seven minors from the
    // lab's v1.20 API server.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(
        "/usr/lib/google-cloud-sdk/bin/kubectl.1.27",
        bin.join("kubectl"),
    )
    .unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let etcd = [
        ("ETCDCTL_ENDPOINTS", state.etcd_url.as_str()),
        ("PATH", path.as_str()),
    ];
    let (out, stdout) = kubemaint(
        &kubeconfig,
        &etcd,
        &[
            "upgrade",
            "plan",
            "--target",
            "v1.21.14",
            "--pki-dir",
            pki,
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["currentVersion"], "v1.20.2");
    assert_eq!(doc["serverVersion"], "v1.20.2");
    assert_eq!(doc["kubeadmConfigVersion"], "v1.20.2");
    assert_eq!(
        doc["kubeletsByVersion"]["v1.18.20"],
        serde_json::json!(["worker-2"])
    );
    let steps = doc["availableUpgrades"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    let moves: Vec<String> = steps[0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {} {} {}",
                c["phase"].as_str().unwrap(),
                c["name"].as_str().unwrap(),
                c["nodeName"].as_str().unwrap_or("-"),
                c["newVersion"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            "catch-up kubelet worker-2 v1.20.2",
            "control-plane kube-apiserver cp-1 v1.21.14",
            "controllers kube-controller-manager cp-1 v1.21.14",
            "controllers kube-scheduler cp-1 v1.21.14",
            "add-ons kube-proxy - v1.21.14",
            "add-ons CoreDNS - v1.8.0",
            "kubelets kubelet cp-1 v1.21.14",
            "kubelets kubelet worker-1 v1.21.14",
            "kubelets kubelet worker-2 v1.21.14",
        ]
    );
    assert!(steps[0]["violations"].as_array().unwrap().is_empty());
    // Discovery read every component from the cluster.
    let sources: Vec<&str> = doc["discovered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source"].as_str().unwrap())
        .collect();
    assert!(
        sources
            .iter()
            .any(|s| s.contains("mirror pod kube-system/kube-apiserver-cp-1"))
    );
    assert!(
        sources
            .iter()
            .any(|s| s.contains("daemonset kube-system/kube-proxy"))
    );
    assert!(
        sources
            .iter()
            .any(|s| s.contains("deployment kube-system/coredns"))
    );
    // etcd asked directly, certificates read from the PKI dir.
    assert_eq!(check(&doc, "etcd-health")[0]["status"], "pass");
    assert!(
        check(&doc, "etcd-version")[0]["message"]
            .as_str()
            .unwrap()
            .contains("3.4.23")
    );
    assert_eq!(check(&doc, "certificates")[0]["status"], "pass");
    assert_eq!(check(&doc, "kubelets-behind")[0]["status"], "warn");
    // The drain's own preflight: no budget blocks, and each node's pods find room elsewhere.
    assert_eq!(check(&doc, "drain-pdb")[0]["status"], "pass");
    assert_eq!(
        check(&doc, "drain-capacity")[0]["status"],
        "pass",
        "{doc:#}"
    );
    // kubectl 1.27 from PATH: read, and out of the one-minor window now and after.
    let kubectl_row = doc["discovered"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "kubectl")
        .expect("a kubectl row");
    assert!(
        kubectl_row["currentVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1.27."),
        "{kubectl_row}"
    );
    let kubectl = &check(&doc, "kubectl")[0];
    assert_eq!(kubectl["status"], "warn");
    let message = kubectl["message"].as_str().unwrap();
    assert!(
        message
            .contains("vs kube-apiserver v1.20.2 on cp-1: kubectl is supported within one minor"),
        "{message}"
    );
    assert!(
        kubectl["action"]
            .as_str()
            .unwrap()
            .contains("kubectl 1.19–1.21"),
        "{kubectl}"
    );
    // Nothing fails: exit 0 (warnings allowed).

    // Towards 1.25 the stored policy/v1beta1 PDB is a blocker, named with how it was found:
    // the plan is printed, and the exit code says a check fails (3). No kubectl on PATH: the
    // kubectl line says so and warns.
    let no_kubectl = [("PATH", "/nonexistent")];
    let (out, stdout) = kubemaint(
        &kubeconfig,
        &no_kubectl,
        &["upgrade", "plan", "--to-minor", "1.25", "-o", "json"],
    );
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let versions: Vec<&str> = doc["availableUpgrades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["version"].as_str().unwrap())
        .collect();
    assert_eq!(
        versions,
        ["v1.21.14", "v1.22.17", "v1.23.17", "v1.24.17", "v1.25.16"]
    );
    let pdb = check(&doc, "removed-api")
        .into_iter()
        .find(|c| {
            c["message"]
                .as_str()
                .unwrap()
                .contains("PodDisruptionBudget")
        })
        .expect("a removed-api line for PDBs");
    assert_eq!(pdb["status"], "fail");
    let message = pdb["message"].as_str().unwrap();
    assert!(message.contains("default/web-pdb"), "{message}");
    assert!(
        message.contains("only policy/v1beta1 is served"),
        "{message}"
    );
    let kubectl = &check(&doc, "kubectl")[0];
    assert_eq!(kubectl["status"], "warn");
    assert!(
        kubectl["message"]
            .as_str()
            .unwrap()
            .contains("kubectl is not on PATH"),
        "{kubectl}"
    );

    // Table and runbook print the same plan.
    let (out, table) = kubemaint(
        &kubeconfig,
        &[],
        &["upgrade", "plan", "--target", "v1.21.14"],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(table.contains("kubeadm upgrade apply v1.21.14"));
    let (out, md) = kubemaint(
        &kubeconfig,
        &[],
        &["upgrade", "plan", "--target", "v1.25.16", "-o", "markdown"],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(md.contains("https://pkgs.k8s.io/core:/stable:/v1.25/deb/"));
    assert!(md.contains("sudo kubeadm upgrade apply v1.25.16"));
    assert!(md.contains("kubectl drain worker-1 --ignore-daemonsets"));

    // Bad input: exit 2, naming the fault.
    for (args, fault) in [
        (vec!["--target", "v1.99.0"], "not a known release"),
        (vec!["--target", "v1.19.16"], "downgrade"),
        (vec!["--target", "1.21"], "--target"),
        (vec!["--to-minor", "x"], "--to-minor"),
    ] {
        let mut full = vec!["upgrade", "plan"];
        full.extend(args);
        let (out, _) = kubemaint(&kubeconfig, &[], &full);
        assert_eq!(out.status.code(), Some(2), "{full:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(fault), "{full:?}: {stderr}");
    }
    let bad = tmp.path().join("releases.yaml");
    std::fs::write(&bad, "releases:\n  - version: v1.21\n").unwrap();
    let (out, _) = kubemaint(
        &kubeconfig,
        &[],
        &["upgrade", "plan", "--releases", bad.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a release index"));
    // A release file that adds a newer 1.21 patch makes it a valid target.
    let good = tmp.path().join("releases-ok.yaml");
    std::fs::write(
        &good,
        "releases:\n  - {version: v1.20.15, etcd: 3.4.13-0, coredns: 1.7.0}\n  - {version: v1.21.99, etcd: 3.4.13-0, coredns: v1.8.0}\n",
    )
    .unwrap();
    let (out, stdout) = kubemaint(
        &kubeconfig,
        &[],
        &[
            "upgrade",
            "plan",
            "--releases",
            good.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["targetVersion"], "v1.21.99");

    // Unreachable server: exit 1.
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    let dead = tmp.path().join("dead.conf");
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap()
        .to_string();
    std::fs::write(&dead, text.replace(&server, "https://127.0.0.1:9")).unwrap();
    let (out, _) = kubemaint(&dead, &[], &["upgrade", "plan"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the cluster's API server"));
    drop(lab);
}
