//! The lab at another Kubernetes version: a stand-in control plane (v1.20.2's code relinked with
//! another version stamp), checked with the real kubectl 1.27 as an independent client. One lab,
//! started through the `kubemaint-lab` CLI as an operator would, stopped by `down` on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use kubemaint_lab::testing::{Kubectl, wait_for};

const LAB: &str = env!("CARGO_BIN_EXE_kubemaint-lab");

/// Runs `kubemaint-lab down` when the test ends, passed or failed.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new(LAB)
            .arg("down")
            .arg("--dir")
            .arg(&self.0)
            .output();
    }
}

fn lab(args: &[&str], dir: &Path) -> Output {
    Command::new(LAB)
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("run kubemaint-lab")
}

fn lab_ok(args: &[&str], dir: &Path) -> String {
    let out = lab(args, dir);
    assert!(
        out.status.success(),
        "kubemaint-lab {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn image(kc: &Kubectl, args: &[&str]) -> String {
    let obj = kc.json(args);
    let spec = if obj["kind"] == "Pod" {
        &obj["spec"]
    } else {
        &obj["spec"]["template"]["spec"]
    };
    spec["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn server_version(kc: &Kubectl) -> serde_json::Value {
    serde_json::from_str(&kc.ok(&["get", "--raw", "/version"])).expect("/version JSON")
}

const CONTROL_PLANE: [&str; 3] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

fn mirror_images_at(kc: &Kubectl, version: &str) -> bool {
    CONTROL_PLANE.iter().all(|c| {
        let pod = kc.run(&[
            "get",
            "pod",
            "-n",
            "kube-system",
            &format!("{c}-cp-1"),
            "-o",
            "json",
        ]);
        pod.status.success()
            && serde_json::from_slice::<serde_json::Value>(&pod.stdout)
                .ok()
                .and_then(|p| {
                    p["spec"]["containers"][0]["image"]
                        .as_str()
                        .map(str::to_string)
                })
                == Some(format!("k8s.gcr.io/{c}:{version}"))
    })
}

#[test]
fn stand_in_control_plane_says_its_version_everywhere_then_upgrades_node_by_node() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("lab");
    let _down = Down(dir.clone());
    let up = lab_ok(
        &[
            "up",
            "--workers",
            "1",
            "--kubernetes-version",
            "v1.19.16",
            "--ready-delay-ms",
            "200",
        ],
        &dir,
    );
    assert!(
        up.contains(
            "Kubernetes v1.19.16 (stand-in: v1.20.2 code relinked with another version stamp)"
        ),
        "{up}"
    );
    let kc = Kubectl::new(&dir.join("admin.conf"));

    // The server's own answer, from the stamp linked into the binary.
    let version = server_version(&kc);
    assert_eq!(version["gitVersion"], "v1.19.16", "{version}");
    assert_eq!(version["minor"], "19", "{version}");

    wait_for("cp-1's mirror pods", Duration::from_secs(60), || {
        mirror_images_at(&kc, "v1.19.16")
    });
    assert_eq!(
        image(&kc, &["get", "pod", "-n", "kube-system", "etcd-cp-1"]),
        "k8s.gcr.io/etcd:3.4.13-0",
        "kubeadm 1.19 pins etcd 3.4.13-0"
    );
    let manifest = std::fs::read_to_string(dir.join("manifests/kube-apiserver.yaml")).unwrap();
    assert!(
        manifest.contains("k8s.gcr.io/kube-apiserver:v1.19.16"),
        "{manifest}"
    );

    let config = kc.json(&["get", "configmap", "-n", "kube-system", "kubeadm-config"]);
    let cluster = config["data"]["ClusterConfiguration"].as_str().unwrap();
    assert!(cluster.contains("kubernetesVersion: v1.19.16"), "{cluster}");
    kc.ok(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "kubelet-config-1.19",
    ]);
    assert_eq!(
        image(
            &kc,
            &["get", "daemonset", "-n", "kube-system", "kube-proxy"]
        ),
        "k8s.gcr.io/kube-proxy:v1.19.16"
    );
    assert_eq!(
        image(&kc, &["get", "deployment", "-n", "kube-system", "coredns"]),
        "k8s.gcr.io/coredns:1.7.0",
        "kubeadm 1.19 pins CoreDNS 1.7.0"
    );
    let nodes = kc.json(&["get", "nodes"]);
    for n in nodes["items"].as_array().unwrap() {
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.19.16", "{n}");
    }

    let status = lab_ok(&["status"], &dir);
    assert!(
        status.contains("Kubernetes v1.19.16 (stand-in: v1.20.2 code relinked"),
        "{status}"
    );
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("cp-1") && l.contains("control") && l.ends_with("v1.19.16 *")),
        "{status}"
    );
    assert!(
        status.contains("* stand-in: v1.20.2 code relinked"),
        "{status}"
    );

    // The real kubeadm v1.20.2 as an oracle: it sees a v1.19.16 cluster (how: kubemaint_lab::kubeadm).
    let state = kubemaint_lab::state::LabState::load(&dir).unwrap();
    let config = tmp.path().join("kubeadm.yaml");
    std::fs::write(&config, kubemaint_lab::kubeadm::oracle_config(&state)).unwrap();
    let kubeadm = kubemaint_lab::Binaries::locate().unwrap().kubeadm();
    let script = format!(
        "mount -t tmpfs none /etc && mkdir /etc/kubernetes && mount --bind '{}' /etc/kubernetes && exec '{}' upgrade plan v1.20.2 --kubeconfig /etc/kubernetes/admin.conf --config '{}'",
        dir.display(),
        kubeadm.display(),
        config.display()
    );
    let plan = Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux) runs kubeadm in a private mount namespace");
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.status.success(),
        "kubeadm upgrade plan failed:\n{text}\n{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(text.contains("Cluster version: v1.19.16"), "{text}");
    for c in CONTROL_PLANE.iter().chain(&["kube-proxy"]) {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [*c, "v1.19.16", "v1.20.2"]),
            "kubeadm reads {c} at v1.19.16:\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["etcd", "3.4.13-0", "3.4.13-0"]),
        "{text}"
    );
    assert!(text.contains("kubeadm upgrade apply v1.20.2"), "{text}");

    // Refusals change nothing: a skipped minor, --first on a worker, a deliberate failure.
    let skip = lab(
        &[
            "node",
            "upgrade",
            "cp-1",
            "--kubernetes-version",
            "v1.21.14",
        ],
        &dir,
    );
    assert!(!skip.status.success());
    assert!(
        String::from_utf8_lossy(&skip.stderr).contains("skips a minor"),
        "{}",
        String::from_utf8_lossy(&skip.stderr)
    );
    let first = lab(
        &[
            "node",
            "upgrade",
            "worker-1",
            "--kubernetes-version",
            "v1.20.2",
            "--first",
        ],
        &dir,
    );
    assert!(!first.status.success());
    assert!(String::from_utf8_lossy(&first.stderr).contains("worker-1 is a worker"));
    let failed = Command::new(LAB)
        .args([
            "node",
            "upgrade",
            "worker-1",
            "--kubernetes-version",
            "v1.20.2",
            "--dir",
        ])
        .arg(&dir)
        .env(kubemaint_lab::upgrade::FAIL_ENV, "cp-9,worker-1")
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("upgrade of worker-1 failed on purpose"),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    let worker = kc.json(&["get", "node", "worker-1"]);
    assert_eq!(worker["status"]["nodeInfo"]["kubeletVersion"], "v1.19.16");

    // The first control-plane node to the real v1.20.2, as `kubeadm upgrade apply` would.
    let pid = |name: &str| {
        kubemaint_lab::process::recorded(&dir)
            .into_iter()
            .find(|p| p.name == name)
            .map(|p| p.pid)
            .unwrap_or_else(|| panic!("no pid file for {name}"))
    };
    let before: Vec<u32> = CONTROL_PLANE.iter().map(|c| pid(c)).collect();
    let etcd_before = pid("etcd");
    let out = lab_ok(
        &[
            "node",
            "upgrade",
            "cp-1",
            "--kubernetes-version",
            "v1.20.2",
            "--first",
        ],
        &dir,
    );
    assert!(out.contains("cp-1 upgraded to v1.20.2 in"), "{out}");
    let after: Vec<u32> = CONTROL_PLANE.iter().map(|c| pid(c)).collect();
    for ((c, b), a) in CONTROL_PLANE.iter().zip(&before).zip(&after) {
        assert_ne!(b, a, "{c} was restarted for real\n{out}");
        let line = format!("{c}: v1.19.16 -> v1.20.2, restarted (pid {b} -> {a})");
        assert!(out.contains(&line), "{out}");
    }
    assert_eq!(
        pid("etcd"),
        etcd_before,
        "1.19 and 1.20 pin the same etcd: kept"
    );
    let version = server_version(&kc);
    assert_eq!(version["gitVersion"], "v1.20.2", "{version}");
    assert!(
        mirror_images_at(&kc, "v1.20.2"),
        "mirror pods at v1.20.2 when the command returns"
    );
    let manifest = std::fs::read_to_string(dir.join("manifests/kube-scheduler.yaml")).unwrap();
    assert!(
        manifest.contains("k8s.gcr.io/kube-scheduler:v1.20.2"),
        "{manifest}"
    );
    let config = kc.json(&["get", "configmap", "-n", "kube-system", "kubeadm-config"]);
    let cluster = config["data"]["ClusterConfiguration"].as_str().unwrap();
    assert!(cluster.contains("kubernetesVersion: v1.20.2"), "{cluster}");
    kc.ok(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "kubelet-config-1.20",
    ]);
    assert_eq!(
        image(
            &kc,
            &["get", "daemonset", "-n", "kube-system", "kube-proxy"]
        ),
        "k8s.gcr.io/kube-proxy:v1.20.2"
    );
    let cp = kc.json(&["get", "node", "cp-1"]);
    assert_eq!(cp["status"]["nodeInfo"]["kubeletVersion"], "v1.20.2");

    // A worker: only its kubelet moves.
    let out = lab_ok(
        &[
            "node",
            "upgrade",
            "worker-1",
            "--kubernetes-version",
            "v1.20.2",
        ],
        &dir,
    );
    assert!(
        out.contains("worker-1: kubelet: v1.19.16 -> v1.20.2"),
        "{out}"
    );
    let status = lab_ok(&["status"], &dir);
    let cp_line = status
        .lines()
        .find(|l| l.starts_with("cp-1") && l.contains("control"))
        .unwrap();
    let words: Vec<&str> = cp_line.split_whitespace().collect();
    assert_eq!(words[words.len() - 2..], ["v1.20.2", "v1.20.2"], "{status}");
    assert!(!status.contains("stand-in"), "no stand-in left: {status}");
}

#[test]
fn unknown_or_malformed_versions_are_refused_before_anything_starts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (version, says) in [
        ("v1.12.3", "release index"),
        ("1.19.16", "like v1.19.16"),
        ("v1.19", "MAJOR.MINOR.PATCH"),
    ] {
        let out = lab(&["up", "--kubernetes-version", version], tmp.path());
        assert!(!out.status.success(), "{version} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(version) && err.contains(says),
            "{version}: {err}"
        );
        assert!(
            !tmp.path().join("lab.json").exists(),
            "nothing started for {version}"
        );
    }
}
