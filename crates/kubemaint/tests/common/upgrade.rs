//! Helpers shared by the `upgrade apply` lab tests: a lab with kubelets at chosen versions,
//! the lab's node command as an `--executor command` template, kubemaint against the lab, and
//! reads of nodes and of the run record with the real kubectl.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use kubemaint_lab::state::SimSettings;
use kubemaint_lab::testing::{Kubectl, diagnosis, error_chain, wait_for};
use kubemaint_lab::{KubeletMode, Lab, UpOptions};

/// `target/debug/kubemaint-lab`, next to the kubemaint binary under test.
pub fn lab_binary() -> PathBuf {
    let bin = Path::new(super::KUBEMAINT).with_file_name("kubemaint-lab");
    assert!(
        bin.is_file(),
        "{} is missing: build it first with `cargo build -p kubemaint-lab` (the node command of these tests)",
        bin.display()
    );
    bin
}

/// A lab under `dir`: `control_planes` control-plane nodes running `control_plane` (v1.20.2 real,
/// another version a stand-in), `workers` workers, every kubelet at `kubelets`, in-process
/// simulated kubelets with 300 ms ready and shutdown delays.
pub fn start_lab(
    dir: &Path,
    control_planes: u32,
    workers: u32,
    control_plane: &str,
    kubelets: &str,
) -> Lab {
    let mut opts = UpOptions::new(dir, workers);
    opts.control_planes = control_planes;
    opts.kube_version = control_plane.into();
    opts.kubelet_version = kubelets.into();
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

/// A test's lab and its directory. When the test fails (panics), dropping it prints
/// [`diagnosis`] (the run log's tail, the control-plane pods' Ready conditions and their
/// writers, NodeNotReady events, the simulated kubelets' log, ...) while the lab still runs,
/// and keeps the directory, naming it, for a look at every log. The run log is expected at
/// `DIR/run.log`.
pub struct TestLab {
    lab: Lab,
    tmp: Option<tempfile::TempDir>,
}

impl TestLab {
    /// [`start_lab`] in a new temporary directory.
    pub fn up(control_planes: u32, workers: u32, control_plane: &str, kubelets: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let lab = start_lab(tmp.path(), control_planes, workers, control_plane, kubelets);
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

/// A Deployment of `replicas` under a policy/v1beta1 PDB with minAvailable = replicas - 1.
pub fn deploy_web(kubectl: &Kubectl, replicas: u32, shutdown_ms: u32) {
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

/// The lab's node command as a template: the whole node (`--kubernetes-version`, `--first` on
/// the first control-plane node) or only its kubelet (`--kubelet-version`, the control plane
/// being new); `fail_on` makes that node's command fail first, as a broken apt would.
pub fn command_template(lab: &Path, whole_node: bool, fail_on: Option<&str>) -> String {
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

/// kubemaint against the lab's kubeconfig.
pub fn kubemaint_at(kubeconfig: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(super::KUBEMAINT);
    command.arg("--kubeconfig").arg(kubeconfig).args(args);
    command
}

/// Runs `command`; its output (printed for the test log), stdout and stderr.
pub fn output(mut command: Command) -> (Output, String, String) {
    let out = command.output().expect("run kubemaint");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("kubemaint -> {:?}\n{stdout}\n{stderr}", out.status.code());
    (out, stdout, stderr)
}

/// The etcd connection of `etcd snapshot save` for the lab, in `ETCDCTL_*` variables.
pub fn etcd_env(command: &mut Command, lab: &Lab) {
    let pki = lab.dir().join("pki");
    command
        .env("ETCDCTL_ENDPOINTS", &lab.state.etcd_url)
        .env("ETCDCTL_CACERT", pki.join("etcd/ca.crt"))
        .env("ETCDCTL_CERT", pki.join("etcd/healthcheck-client.crt"))
        .env("ETCDCTL_KEY", pki.join("etcd/healthcheck-client.key"));
}

/// One field of a node, by jsonpath.
pub fn node_field(kubectl: &Kubectl, node: &str, path: &str) -> String {
    kubectl.ok(&["get", "node", node, "-o", &format!("jsonpath={path}")])
}

/// Every node of the lab.
pub fn all_nodes(lab: &Lab) -> Vec<String> {
    lab.state.nodes.iter().map(|n| n.name.clone()).collect()
}

/// How often the run log says `node` was drained.
pub fn drained_lines(log: &str, node: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(&format!("node/{node} drained:")))
        .count()
}

/// The run record (`kube-system/kubemaint-upgrade-apply`, key `run.json`), or null.
pub fn run_record(kubectl: &Kubectl) -> serde_json::Value {
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

/// The Lease's `holderIdentity` (empty when released).
pub fn lease_holder(kubectl: &Kubectl) -> String {
    kubectl.ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kubemaint-upgrade-apply",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])
}
