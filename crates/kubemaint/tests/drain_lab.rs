//! kubemaint's "better than kubectl" drain behaviours, on a real lab: cordon ownership
//! annotations, `--uncordon-on-failure` (and never undoing someone else's cordon), PDB
//! blockers named with their numbers, the preflight deadlock verdict in the JSON report, and a
//! server dry-run that ends (non-zero, naming the budget) instead of retrying forever.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kubemaint_lab::Lab;
use kubemaint_lab::state::LabState;
use kubemaint_lab::testing::{Kubectl, pod_ready, start_lab, wait_for};

struct Ctx {
    lab: Lab,
    kubectl: Kubectl,
}

impl Ctx {
    fn kubectl_ok(&self, args: &[&str]) -> String {
        self.kubectl.ok(args)
    }
    fn apply(&self, yaml: &str) {
        self.kubectl.apply(yaml)
    }
    /// Runs kubemaint; fails the test if it runs longer than `limit`.
    fn kubemaint(&self, args: &[&str], limit: Duration) -> (Output, String, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubemaint"))
            .arg("--kubeconfig")
            .arg(self.lab.kubeconfig())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubemaint");
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > limit {
                let _ = child.kill();
                panic!("kubemaint {args:?} still running after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = child.wait_with_output().unwrap();
        let so = String::from_utf8_lossy(&out.stdout).into_owned();
        let se = String::from_utf8_lossy(&out.stderr).into_owned();
        eprintln!("kubemaint {args:?} -> {:?}\n{so}\n{se}", out.status.code());
        (out, so, se)
    }
    fn node(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.kubectl_ok(&["get", "node", name, "-o", "json"])).unwrap()
    }
    fn wait_ready(&self, ns: &str, selector: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.kubectl_ok(&["get", "pods", "-n", ns, "-l", selector, "-o", "json"]);
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            let ready = v["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| {
                    p["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
                .count();
            if ready >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pods {selector} in {ns} not Ready"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn annotations(node: &serde_json::Value) -> serde_json::Value {
    node["metadata"]["annotations"].clone()
}

#[test]
fn drain_improvements_on_the_lab() {
    let dir = tempfile::tempdir().unwrap();
    let lab = start_lab(dir.path(), 3, 300);
    let kubectl = Kubectl::new(&lab.kubeconfig());
    let ctx = Ctx { lab, kubectl };
    let quick = Duration::from_secs(60);

    // 1. Cordon records ownership; uncordon removes it; no request when already cordoned.
    let (out, so, _) = ctx.kubemaint(&["cordon", "worker-1"], quick);
    assert!(out.status.success());
    assert_eq!(so.trim(), "node/worker-1 cordoned");
    let n = ctx.node("worker-1");
    assert_eq!(n["spec"]["unschedulable"], true);
    assert_eq!(
        annotations(&n)["kubemaint.io/cordoned-by"],
        "kubemaint/cordon"
    );
    assert!(annotations(&n)["kubemaint.io/cordoned-at"].is_string());
    let (_, so, _) = ctx.kubemaint(&["cordon", "worker-1"], quick);
    assert_eq!(so.trim(), "node/worker-1 already cordoned");
    let (_, so, _) = ctx.kubemaint(&["uncordon", "worker-1"], quick);
    assert_eq!(so.trim(), "node/worker-1 uncordoned");
    let n = ctx.node("worker-1");
    assert!(n["spec"]["unschedulable"].is_null());
    assert!(annotations(&n)["kubemaint.io/cordoned-by"].is_null());
    let (_, so, _) = ctx.kubemaint(&["uncordon", "worker-1", "--dry-run=client"], quick);
    assert_eq!(so.trim(), "node/worker-1 already uncordoned (dry run)");

    // 2. A failed drain: the cordon kubemaint made is undone with --uncordon-on-failure, kept
    //    (and said so) without it, and a cordon made by someone else is never undone.
    ctx.kubectl_ok(&["create", "namespace", "bare"]);
    ctx.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: lonely\n  namespace: bare\n  labels: {app: lonely}\nspec:\n  nodeName: worker-1\n  containers:\n  - name: c\n    image: registry.example/x:1\n",
    );
    ctx.wait_ready("bare", "app=lonely", 1);
    let (out, _, se) = ctx.kubemaint(
        &[
            "drain",
            "worker-1",
            "--ignore-daemonsets",
            "--uncordon-on-failure",
        ],
        quick,
    );
    assert!(!out.status.success());
    assert!(
        se.contains(
            "cannot delete Pods declare no controller (use --force to override): bare/lonely"
        ),
        "{se}"
    );
    assert!(
        ctx.node("worker-1")["spec"]["unschedulable"].is_null(),
        "cordon not undone"
    );
    let (out, _, se) = ctx.kubemaint(&["drain", "worker-1", "--ignore-daemonsets"], quick);
    assert!(!out.status.success());
    assert!(
        se.contains("node/worker-1 is left cordoned by kubemaint"),
        "{se}"
    );
    assert_eq!(ctx.node("worker-1")["spec"]["unschedulable"], true);
    ctx.kubemaint(&["uncordon", "worker-1"], quick);
    ctx.kubectl_ok(&["cordon", "worker-1"]);
    let (out, _, se) = ctx.kubemaint(
        &[
            "drain",
            "worker-1",
            "--ignore-daemonsets",
            "--uncordon-on-failure",
        ],
        quick,
    );
    assert!(!out.status.success());
    assert!(se.contains("was cordoned before kubemaint"), "{se}");
    assert_eq!(
        ctx.node("worker-1")["spec"]["unschedulable"],
        true,
        "someone else's cordon undone"
    );
    ctx.kubectl_ok(&["uncordon", "worker-1"]);
    // kubemaint's cordon undone by `kubectl uncordon` (which leaves the annotation) and made
    // again by `kubectl cordon`: the server's field owner says it is not kubemaint's any more.
    let (out, _, _) = ctx.kubemaint(&["cordon", "worker-1"], quick);
    assert!(out.status.success());
    ctx.kubectl_ok(&["uncordon", "worker-1"]);
    assert!(annotations(&ctx.node("worker-1"))["kubemaint.io/cordoned-by"].is_string());
    ctx.kubectl_ok(&["cordon", "worker-1"]);
    let (out, _, se) = ctx.kubemaint(
        &[
            "drain",
            "worker-1",
            "--ignore-daemonsets",
            "--uncordon-on-failure",
        ],
        quick,
    );
    assert!(!out.status.success());
    assert!(se.contains("was cordoned again by"), "{se}");
    assert_eq!(
        ctx.node("worker-1")["spec"]["unschedulable"],
        true,
        "a cordon made again by hand was undone"
    );
    ctx.kubectl_ok(&["uncordon", "worker-1"]);

    // 3. A PDB that can never allow an eviction: named with its numbers, the plan says
    //    deadlock, and --timeout ends it.
    ctx.kubectl_ok(&["create", "namespace", "never"]);
    ctx.apply(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: solo\n  namespace: never\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: solo}\n  template:\n    metadata:\n      labels: {app: solo}\n    spec:\n      nodeSelector: {kubernetes.io/hostname: worker-2}\n      containers:\n      - name: c\n        image: registry.example/solo:1\n---\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: solo\n  namespace: never\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels: {app: solo}\n",
    );
    ctx.wait_ready("never", "app=solo", 1);
    // The disruption controller has published the budget's status for the Ready pod.
    wait_for("the PDB never/solo status", quick, || {
        let pdb = ctx.kubectl.json(&["get", "pdb", "-n", "never", "solo"]);
        pdb["status"]["observedGeneration"] == pdb["metadata"]["generation"]
            && pdb["status"]["expectedPods"] == 1
            && pdb["status"]["currentHealthy"] == 1
    });
    let (out, so, se) = ctx.kubemaint(
        &[
            "drain",
            "worker-2",
            "--ignore-daemonsets",
            "--pod-selector=app=solo",
            "--timeout=6s",
            "-o",
            "json",
        ],
        quick,
    );
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_str(&so).expect("JSON report on stdout");
    assert_eq!(
        report["plan"]["nodes"][0]["verdict"], "pdb-deadlock",
        "{report}"
    );
    let blockers = report["plan"]["nodes"][0]["pdb_blockers"].to_string();
    assert!(
        blockers.contains("never/solo") && blockers.contains("never-allows"),
        "{blockers}"
    );
    assert!(
        se.contains("The disruption budget solo needs 1 healthy pods and has 1 currently"),
        "{se}"
    );
    assert!(se.contains("global timeout reached"), "{se}");
    let pod = &report["nodes"][0]["pods"][0];
    assert_eq!(pod["result"], "failed");
    assert!(
        pod["blocked_by"]
            .as_str()
            .unwrap()
            .starts_with("PDB never/solo"),
        "{pod}"
    );
    assert_eq!(report["pending"][0], "worker-2");

    // 4. Server dry-run evaluates the PDB and ends (kubectl would retry forever).
    let (out, _, se) = ctx.kubemaint(
        &[
            "drain",
            "worker-2",
            "--ignore-daemonsets",
            "--pod-selector=app=solo",
            "--dry-run=server",
        ],
        quick,
    );
    assert!(
        !out.status.success(),
        "a blocked server dry-run must not report success"
    );
    assert!(
        se.contains("server dry-run: evictions refused by a PodDisruptionBudget: never/solo"),
        "{se}"
    );
    assert_eq!(
        ctx.kubectl_ok(&[
            "get",
            "pods",
            "-n",
            "never",
            "-l",
            "app=solo",
            "--no-headers"
        ])
        .lines()
        .count(),
        1
    );

    // 5. Pods stuck Terminating on a node whose kubelet is gone: reported, and the node fails
    //    at --timeout naming them and the way out; --force-delete-after removes them.
    stuck_terminating_on_a_stopped_node(&ctx);
}

fn set_running(lab: &Lab, node: &str, running: bool) {
    let mut state = LabState::load(lab.dir()).unwrap();
    let n = state.node_mut(node).unwrap();
    n.running = running;
    if running {
        n.restarts += 1;
    }
    state.save().unwrap();
}

fn stuck_terminating_on_a_stopped_node(ctx: &Ctx) {
    let kc = Kubectl::new(&ctx.lab.kubeconfig());
    let quick = Duration::from_secs(90);
    kc.ok(&["create", "namespace", "stuck"]);
    kc.apply(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: stuckapp\n  namespace: stuck\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: stuckapp}\n  template:\n    metadata:\n      labels: {app: stuckapp}\n    spec:\n      terminationGracePeriodSeconds: 2\n      nodeSelector: {kubernetes.io/hostname: worker-3}\n      containers:\n      - name: c\n        image: registry.example/stuck:1\n",
    );
    let pods = || kc.json(&["get", "pods", "-n", "stuck", "-l", "app=stuckapp"]);
    wait_for("2 Ready pods on worker-3", Duration::from_secs(60), || {
        pods()["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| pod_ready(p))
            .count()
            == 2
    });
    let names: Vec<String> = pods()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    set_running(&ctx.lab, "worker-3", false);
    // The real node-lifecycle controller marks it Unknown after its 16 s grace.
    wait_for("worker-3 NotReady", Duration::from_secs(60), || {
        kc.json(&["get", "node", "worker-3"])["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] != "True")
    });

    // Without a policy: reported by name with the reason, the node fails at --timeout.
    let (out, so, se) = ctx.kubemaint(
        &[
            "drain",
            "worker-3",
            "--ignore-daemonsets",
            "--pod-selector=app=stuckapp",
            "--timeout=10s",
            "-o",
            "json",
        ],
        quick,
    );
    assert!(!out.status.success(), "a drain with stuck pods must fail");
    for name in &names {
        assert!(
            se.contains(&format!("warning: pod stuck/{name} is stuck Terminating")),
            "{se}"
        );
    }
    assert!(
        se.contains("node worker-3 is NotReady (Ready=Unknown: kubelet stopped posting node status); the pod cannot finish terminating"),
        "{se}"
    );
    assert!(
        se.contains("2 pods stuck Terminating because node worker-3 is NotReady")
            && se.contains("--force-delete-after DURATION"),
        "{se}"
    );
    let report: serde_json::Value = serde_json::from_str(&so).expect("JSON report on stdout");
    let node = &report["nodes"][0];
    assert_eq!(node["status"], "failed");
    for p in node["pods"].as_array().unwrap() {
        assert_eq!(p["result"], "failed", "{p}");
        assert_eq!(p["stuck"]["node"]["node"], "worker-3", "{p}");
        assert_eq!(p["stuck"]["grace_seconds"], 2, "{p}");
        assert!(p["stuck"]["stuck_seconds"].as_i64().unwrap() >= 1, "{p}");
    }
    // Still there: nothing was force-deleted without the policy.
    for name in &names {
        assert!(
            kc.run(&["get", "pod", "-n", "stuck", name])
                .status
                .success()
        );
    }

    // With --force-delete-after: force-deleted (and said so), the drain succeeds.
    let (out, so, se) = ctx.kubemaint(
        &[
            "drain",
            "worker-3",
            "--ignore-daemonsets",
            "--pod-selector=app=stuckapp",
            "--timeout=60s",
            "--force-delete-after=5s",
            "-o",
            "json",
        ],
        quick,
    );
    assert!(out.status.success(), "{se}");
    for name in &names {
        assert!(
            se.contains(&format!("pod/{name} force-deleted after")),
            "{se}"
        );
        assert!(
            !kc.run(&["get", "pod", "-n", "stuck", name])
                .status
                .success(),
            "{name} still exists"
        );
    }
    let report: serde_json::Value = serde_json::from_str(&so).expect("JSON report on stdout");
    for p in report["nodes"][0]["pods"].as_array().unwrap() {
        assert_eq!(p["result"], "force-deleted", "{p}");
        assert!(p["stuck"]["stuck_seconds"].as_i64().unwrap() >= 5, "{p}");
    }
    set_running(&ctx.lab, "worker-3", true);
}

/// The preflight verdict for the pod of namespace `ns` (named `name`, if given) on `node`, from
/// `drain --dry-run=client -o json`: asserts it fits nowhere and returns the reason.
fn no_fit_reason(ctx: &Ctx, node: &str, ns: &str, name: Option<&str>) -> String {
    let (_, so, _) = ctx.kubemaint(
        &[
            "drain",
            node,
            "--ignore-daemonsets",
            "--dry-run=client",
            "-o",
            "json",
        ],
        Duration::from_secs(60),
    );
    let report: serde_json::Value = serde_json::from_str(&so).expect("JSON report on stdout");
    let pod = report["plan"]["nodes"][0]["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pod"]["namespace"] == ns && name.is_none_or(|n| p["pod"]["name"] == n))
        .unwrap_or_else(|| panic!("no {ns} pod {name:?} in the plan of {node}: {report}"))
        .clone();
    assert_eq!(pod["placement"]["kind"], "no-fit", "{pod}");
    pod["placement"]["reason"].as_str().unwrap().to_owned()
}

/// Waits until the real scheduler leaves a pod of `ns`/`selector` Pending as unschedulable
/// with a message containing `why`.
fn wait_unschedulable(ctx: &Ctx, ns: &str, selector: &str, why: &str) {
    wait_for(
        &format!("a {selector} pod in {ns} unschedulable for {why}"),
        Duration::from_secs(60),
        || {
            let v: serde_json::Value = serde_json::from_str(
                &ctx.kubectl_ok(&["get", "pods", "-n", ns, "-l", selector, "-o", "json"]),
            )
            .unwrap();
            v["items"].as_array().unwrap().iter().any(|p| {
                p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c["type"] == "PodScheduled"
                            && c["reason"] == "Unschedulable"
                            && c["message"].as_str().is_some_and(|m| m.contains(why))
                    })
                })
            })
        },
    );
}

/// The capacity preflight sees what the real scheduler then does: with one replica per node
/// by required anti-affinity, one per zone by a DoNotSchedule spread constraint, or a pod on a
/// local volume, the pod of a drained node fits nowhere; kubemaint says so before evicting, and
/// the scheduler leaves the replacement Pending for the same reason.
#[test]
fn capacity_preflight_agrees_with_the_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let lab = start_lab(dir.path(), 3, 300);
    let kubectl = Kubectl::new(&lab.kubeconfig());
    let ctx = Ctx { lab, kubectl };
    let quick = Duration::from_secs(60);

    // One replica per node by required anti-affinity.
    ctx.kubectl_ok(&["create", "namespace", "spread"]);
    ctx.apply(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: db\n  namespace: spread\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: db}\n  template:\n    metadata:\n      labels: {app: db}\n    spec:\n      affinity:\n        podAntiAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n          - topologyKey: kubernetes.io/hostname\n            labelSelector:\n              matchLabels: {app: db}\n      containers:\n      - name: c\n        image: registry.example/db:1\n",
    );
    ctx.wait_ready("spread", "app=db", 3);
    let victim: Vec<String> = ctx
        .kubectl_ok(&[
            "get",
            "pods",
            "-n",
            "spread",
            "-l",
            "app=db",
            "--field-selector",
            "spec.nodeName=worker-3",
            "-o",
            "name",
        ])
        .lines()
        .map(|l| l.trim_start_matches("pod/").to_owned())
        .collect();
    assert_eq!(victim.len(), 1, "one replica per worker expected");
    let reason = no_fit_reason(&ctx, "worker-3", "spread", Some(&victim[0]));
    assert!(
        reason.contains("2 node(s) didn't match pod anti-affinity rules"),
        "{reason}"
    );
    // The real drain says it before evicting, and goes on (nothing forbids the eviction).
    let (out, _, se) = ctx.kubemaint(&["drain", "worker-3", "--ignore-daemonsets"], quick);
    assert!(out.status.success(), "{se}");
    assert!(
        se.contains(&format!("spread/{} will not be rescheduled", victim[0]))
            && se.contains("anti-affinity"),
        "{se}"
    );
    wait_unschedulable(&ctx, "spread", "app=db", "anti-affinity");

    // One replica per zone, maxSkew 1: the drained node's zone still counts, with zero.
    ctx.kubectl_ok(&["delete", "namespace", "spread", "--wait=true"]);
    ctx.kubectl_ok(&["uncordon", "worker-3"]);
    for (node, zone) in [("worker-1", "z1"), ("worker-2", "z2"), ("worker-3", "z3")] {
        ctx.kubectl_ok(&[
            "label",
            "node",
            node,
            &format!("topology.kubernetes.io/zone={zone}"),
        ]);
    }
    ctx.kubectl_ok(&["create", "namespace", "zoned"]);
    ctx.apply(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: zoned\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      topologySpreadConstraints:\n      - maxSkew: 1\n        topologyKey: topology.kubernetes.io/zone\n        whenUnsatisfiable: DoNotSchedule\n        labelSelector:\n          matchLabels: {app: web}\n      containers:\n      - name: c\n        image: registry.example/web:1\n",
    );
    ctx.wait_ready("zoned", "app=web", 3);
    let reason = no_fit_reason(&ctx, "worker-2", "zoned", None);
    assert!(
        reason.contains("didn't match pod topology spread constraints"),
        "{reason}"
    );
    let (out, _, se) = ctx.kubemaint(&["drain", "worker-2", "--ignore-daemonsets"], quick);
    assert!(out.status.success(), "{se}");
    wait_unschedulable(&ctx, "zoned", "app=web", "topology spread constraints");

    // A pod on a local volume pinned to worker-1 can only run there.
    ctx.kubectl_ok(&["create", "namespace", "vol"]);
    ctx.apply(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: local-w1\nspec:\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n  storageClassName: \"\"\n  local: {path: /mnt/disks/w1}\n  claimRef: {namespace: vol, name: data}\n  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchExpressions:\n        - {key: kubernetes.io/hostname, operator: In, values: [worker-1]}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n  namespace: vol\nspec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: \"\"\n  volumeName: local-w1\n  resources:\n    requests: {storage: 1Gi}\n",
    );
    wait_for(
        "the claim bound to the local volume",
        Duration::from_secs(60),
        || {
            ctx.kubectl_ok(&[
                "get",
                "pvc",
                "-n",
                "vol",
                "data",
                "-o",
                "jsonpath={.status.phase}",
            ]) == "Bound"
        },
    );
    ctx.apply(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: store\n  namespace: vol\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: store}\n  template:\n    metadata:\n      labels: {app: store}\n    spec:\n      volumes:\n      - name: data\n        persistentVolumeClaim: {claimName: data}\n      containers:\n      - name: c\n        image: registry.example/store:1\n",
    );
    ctx.wait_ready("vol", "app=store", 1);
    let reason = no_fit_reason(&ctx, "worker-1", "vol", None);
    assert!(reason.contains("volume node affinity conflict"), "{reason}");
    let (out, _, se) = ctx.kubemaint(&["drain", "worker-1", "--ignore-daemonsets"], quick);
    assert!(out.status.success(), "{se}");
    wait_unschedulable(&ctx, "vol", "app=store", "volume node affinity conflict");
}
