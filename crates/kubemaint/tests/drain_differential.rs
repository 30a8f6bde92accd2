//! Differential tests: real `kubectl drain` (1.27) and `kubemaint drain` on identical fresh
//! setups in one real lab; the same pods must be evicted, deleted or left, the same pods must
//! be named in errors, the node must end in the same state and the exit status in the same class.
//!
//! Each scenario builds its fixture twice, once on `worker-1` (for kubectl) and once on
//! `worker-2` (for kubemaint), by making only that node schedulable while the fixture's pods are
//! created; `worker-3` and `worker-4` are spare capacity for rescheduled pods. Scenarios run one
//! after another because they cordon nodes lab-wide.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kubemaint_lab::Lab;
use kubemaint_lab::testing::{Kubectl, pod_ready, start_lab};

const SPARES: [&str; 2] = ["worker-3", "worker-4"];

struct Ctx {
    lab: Lab,
    kubectl: Kubectl,
}

impl Ctx {
    fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl.run(args)
    }
    fn kubectl_ok(&self, args: &[&str]) -> String {
        self.kubectl.ok(args)
    }
    fn json(&self, args: &[&str]) -> serde_json::Value {
        self.kubectl.json(args)
    }
    fn apply(&self, yaml: &str) {
        self.kubectl.apply(yaml)
    }
    fn set_schedulable(&self, node: &str, yes: bool) {
        self.kubectl_ok(&[if yes { "uncordon" } else { "cordon" }, node]);
    }
    fn kubemaint(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kubemaint"))
            .arg("--kubeconfig")
            .arg(self.lab.kubeconfig())
            .args(args)
            .output()
            .expect("run kubemaint")
    }
    /// Pods of namespace `ns` on `node`: fixture label -> (name, uid, terminating, phase).
    fn pods(&self, ns: &str) -> Vec<PodState> {
        let list = self.json(&["get", "pods", "-n", ns]);
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| PodState {
                fixture: p["metadata"]["labels"]["fixture"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
                name: p["metadata"]["name"].as_str().unwrap().to_string(),
                uid: p["metadata"]["uid"].as_str().unwrap().to_string(),
                node: p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                terminating: p["metadata"]["deletionTimestamp"].is_string(),
                ready: p["status"]["phase"] == "Succeeded" || pod_ready(p),
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
struct PodState {
    fixture: String,
    name: String,
    uid: String,
    node: String,
    terminating: bool,
    ready: bool,
}

/// The fixtures, as YAML in namespace `NS` (replaced), each pod labelled `fixture=<name>`.
fn fixture_yaml(kind: &str) -> String {
    let deploy = |name: &str, replicas: u32, extra: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: NS\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      fixture: {name}\n  template:\n    metadata:\n      labels:\n        fixture: {name}\n        group: g\n    spec:\n      terminationGracePeriodSeconds: 5\n      containers:\n      - name: c\n        image: registry.example/{name}:1\n{extra}---\n"
        )
    };
    let pdb = |name: &str, selector: &str, rule: &str| {
        format!(
            "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: {name}\n  namespace: NS\nspec:\n  {rule}\n  selector:\n    matchLabels:\n      {selector}\n---\n"
        )
    };
    let bare = |name: &str, extra: &str, meta: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: NS\n  labels:\n    fixture: {name}\n{meta}spec:\n  terminationGracePeriodSeconds: 5\n{extra}  containers:\n  - name: c\n    image: registry.example/{name}:1\n---\n"
        )
    };
    match kind {
        "deploy" => deploy("deploy", 2, ""),
        "deploy-pdb" => {
            deploy("deploy-pdb", 2, "")
                + &pdb("deploy-pdb", "fixture: deploy-pdb", "maxUnavailable: 1")
        }
        "sts" => "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: sts\n  namespace: NS\nspec:\n  serviceName: sts\n  replicas: 1\n  selector:\n    matchLabels:\n      fixture: sts\n  template:\n    metadata:\n      labels:\n        fixture: sts\n    spec:\n      terminationGracePeriodSeconds: 5\n      containers:\n      - name: c\n        image: registry.example/sts:1\n---\n"
            .to_string(),
        "bare" => bare("bare", "", ""),
        "emptydir" => deploy(
            "emptydir",
            1,
            "        volumeMounts:\n        - name: scratch\n          mountPath: /scratch\n      volumes:\n      - name: scratch\n        emptyDir: {}\n",
        ),
        "finished" => bare(
            "finished",
            "  restartPolicy: Never\n",
            "  annotations:\n    lab.kubemaint.io/exit-after-ms: \"300\"\n",
        ),
        "mirror" => bare(
            "mirror",
            "  nodeName: NODE\n",
            "  annotations:\n    kubernetes.io/config.mirror: \"0123456789abcdef\"\n    kubernetes.io/config.source: file\n",
        ),
        "two-pdbs" => {
            deploy("two-pdbs", 1, "")
                + &pdb("two-pdbs-a", "fixture: two-pdbs", "maxUnavailable: 1")
                + &pdb("two-pdbs-b", "group: g", "maxUnavailable: 5")
        }
        "pdb-never" => {
            deploy("pdb-never", 1, "") + &pdb("pdb-never", "fixture: pdb-never", "minAvailable: 1")
        }
        other => panic!("unknown fixture {other}"),
    }
}

const DAEMONSET: &str = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: ds\n  namespace: NS\nspec:\n  selector:\n    matchLabels:\n      fixture: ds\n  template:\n    metadata:\n      labels:\n        fixture: ds\n    spec:\n      terminationGracePeriodSeconds: 5\n      containers:\n      - name: c\n        image: registry.example/ds:1\n---\n";

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// fixture -> sorted outcomes of its pods that were on the node ("gone", "stayed", "terminating").
    pods: BTreeMap<String, Vec<String>>,
    /// Fixtures whose pods are named in the `Warning:` line.
    named_in_warnings: Vec<String>,
    /// Fixtures whose pods are named in errors.
    named_in_errors: Vec<String>,
    /// The node is unschedulable afterwards.
    cordoned: bool,
    /// Exit status class: success or not.
    success: bool,
}

/// Builds the fixture in namespace `ns` with only `node` schedulable (plus a DaemonSet if asked).
fn build(ctx: &Ctx, ns: &str, node: &str, fixtures: &[&str], daemonset: bool) -> Vec<PodState> {
    ctx.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
    ));
    let mut yaml = String::new();
    for f in fixtures {
        yaml += &fixture_yaml(f);
    }
    if daemonset {
        yaml += DAEMONSET;
    }
    // Mirror pods are posted by the kubelet, already bound to their node.
    ctx.apply(&yaml.replace("NS", ns).replace("NODE", node));
    let expected: usize = fixtures
        .iter()
        .map(|f| match *f {
            "deploy" | "deploy-pdb" => 2,
            _ => 1,
        })
        .sum::<usize>()
        + usize::from(daemonset);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods: Vec<PodState> = ctx
            .pods(ns)
            .into_iter()
            .filter(|p| p.node == node && p.ready && !p.terminating)
            .collect();
        if pods.len() >= expected {
            return pods;
        }
        assert!(
            Instant::now() < deadline,
            "fixture {fixtures:?} in {ns} not ready on {node}: {:?}",
            ctx.pods(ns)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn outcome(ctx: &Ctx, ns: &str, node: &str, before: &[PodState], out: &Output) -> Outcome {
    // Deletions the tool made finish (pods shut down in 300 ms, grace 5 s, on running nodes);
    // a pod still Terminating at the deadline is reported as such and the comparison shows it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = ctx.pods(ns);
    while Instant::now() < deadline
        && after
            .iter()
            .any(|a| a.terminating && before.iter().any(|b| b.uid == a.uid))
    {
        std::thread::sleep(Duration::from_millis(200));
        after = ctx.pods(ns);
    }
    let mut pods: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in before {
        let state = match after.iter().find(|a| a.uid == p.uid) {
            None => "gone",
            Some(a) if a.terminating => "terminating",
            Some(_) => "stayed",
        };
        pods.entry(p.fixture.clone())
            .or_default()
            .push(state.to_string());
    }
    pods.values_mut().for_each(|v| v.sort());
    // kubectl writes "evicting pod" progress to stderr and kubemaint to stdout, and retries of a
    // PDB-blocked eviction depend on timing; compare what matters: the pods named in kubectl's
    // "Warning:" line and the pods named in final errors.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let named = |keep: &dyn Fn(&str) -> bool| -> Vec<String> {
        let lines: Vec<&str> = stderr.lines().filter(|l| keep(l)).collect();
        let mut v: Vec<String> = before
            .iter()
            .filter(|p| lines.iter().any(|l| l.contains(&p.name)))
            .map(|p| p.fixture.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let named_in_warnings = named(&|l: &str| l.starts_with("Warning:"));
    let named_in_errors = named(&|l: &str| {
        let l = l.to_lowercase();
        (l.contains("error") || l.contains("cannot delete")) && !l.contains("will retry")
    });
    let node_json = ctx.json(&["get", "node", node]);
    Outcome {
        pods,
        named_in_warnings,
        named_in_errors,
        cordoned: node_json["spec"]["unschedulable"] == true,
        success: out.status.success(),
    }
}

fn reset_nodes(ctx: &Ctx) {
    for n in ["worker-1", "worker-2", "worker-3", "worker-4"] {
        ctx.set_schedulable(n, true);
    }
}

/// One scenario's runs: what each tool left behind and what it printed.
struct Run {
    kubectl: Outcome,
    kubemaint: Outcome,
    /// kubectl's printed lines missing from kubemaint's output, or kubemaint lines that are
    /// neither kubectl's nor one of kubemaint's own kinds (see [`compare_lines`]).
    lines: Result<(), String>,
}

/// Runs one scenario and returns (kubectl outcome, kubemaint outcome).
fn scenario(
    ctx: &Ctx,
    name: &str,
    fixtures: &[&str],
    daemonset: bool,
    flags: &[&str],
) -> (Outcome, Outcome) {
    let run = run_scenario(ctx, name, fixtures, daemonset, flags);
    (run.kubectl, run.kubemaint)
}

fn run_scenario(ctx: &Ctx, name: &str, fixtures: &[&str], daemonset: bool, flags: &[&str]) -> Run {
    let ns_a = format!("diff-{name}-kubectl");
    let ns_b = format!("diff-{name}-kubemaint");
    // Build A on worker-1 only, then B on worker-2 only.
    for s in SPARES {
        ctx.set_schedulable(s, false);
    }
    ctx.set_schedulable("worker-2", false);
    ctx.set_schedulable("worker-1", true);
    let before_a = build(ctx, &ns_a, "worker-1", fixtures, daemonset);
    ctx.set_schedulable("worker-1", false);
    ctx.set_schedulable("worker-2", true);
    let before_b = build(ctx, &ns_b, "worker-2", fixtures, daemonset);
    // Spares take rescheduled pods; the targets start uncordoned, as an operator finds them.
    reset_nodes(ctx);
    // Only the scenario's own pods are compared; kube-proxy is on every node alike.
    let selector_flags: Vec<&str> = flags.to_vec();
    let mut a_args = vec!["drain", "worker-1"];
    a_args.extend(&selector_flags);
    let out_a = ctx.kubectl(&a_args);
    let mut b_args = vec!["drain", "worker-2"];
    b_args.extend(&selector_flags);
    let out_b = ctx.kubemaint(&b_args);
    let a = outcome(ctx, &ns_a, "worker-1", &before_a, &out_a);
    let b = outcome(ctx, &ns_b, "worker-2", &before_b, &out_b);
    eprintln!(
        "scenario {name}: kubectl {:?}\n--- kubectl stdout:\n{}\n--- kubectl stderr:\n{}\n--- kubemaint stdout:\n{}\n--- kubemaint stderr:\n{}",
        out_a.status.code(),
        String::from_utf8_lossy(&out_a.stdout),
        String::from_utf8_lossy(&out_a.stderr),
        String::from_utf8_lossy(&out_b.stdout),
        String::from_utf8_lossy(&out_b.stderr)
    );
    let lines = compare_lines(
        (&out_a, &Names::new(&ns_a, &ns_b, "worker-1", &before_a)),
        (&out_b, &Names::new(&ns_b, &ns_a, "worker-2", &before_b)),
    );
    // Wait until both namespaces are gone: their Terminating pods would otherwise still be on
    // the nodes the next scenario drains.
    ctx.kubectl(&[
        "delete",
        "namespace",
        &ns_a,
        &ns_b,
        "--wait=true",
        "--timeout=120s",
    ]);
    reset_nodes(ctx);
    Run {
        kubectl: a,
        kubemaint: b,
        lines,
    }
}

/// What differs between the two runs of a scenario by construction: namespace, node and the
/// generated pod names (each pod is named by its fixture and its rank among that fixture's
/// pods by name, which is the order kubectl lists them in).
struct Names {
    replace: Vec<(String, String)>,
}

impl Names {
    fn new(ns: &str, other_ns: &str, node: &str, pods: &[PodState]) -> Self {
        let mut by_fixture: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for p in pods {
            by_fixture.entry(&p.fixture).or_default().push(&p.name);
        }
        let mut replace = Vec::new();
        for (fixture, mut names) in by_fixture {
            names.sort();
            for (i, n) in names.into_iter().enumerate() {
                replace.push((n.to_owned(), format!("<{fixture}#{i}>")));
            }
        }
        // Longest first: a pod name may contain another (`sts-0` in `sts-0x`).
        replace.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        replace.push((ns.to_owned(), "<ns>".to_owned()));
        replace.push((other_ns.to_owned(), "<other-ns>".to_owned()));
        replace.push((node.to_owned(), "<node>".to_owned()));
        Names { replace }
    }

    fn normalise(&self, line: &str) -> String {
        let mut l = line.to_owned();
        for (from, to) in &self.replace {
            l = l.replace(from, to);
        }
        // DaemonSet pods run on every node, including the other scenario's and kube-proxy:
        // their generated suffixes differ.
        for prefix in ["/ds-", "/kube-proxy-"] {
            l = mask_suffix(&l, prefix);
        }
        canonical_order(&l)
    }
}

/// Replaces the 5-character generated suffix after each `prefix` with `<hash>`.
fn mask_suffix(line: &str, prefix: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(prefix) {
        let after = &rest[i + prefix.len()..];
        let n = after
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .count();
        out.push_str(&rest[..i + prefix.len()]);
        if n == 5 {
            out.push_str("<hash>");
        } else {
            out.push_str(&after[..n]);
        }
        rest = &after[n..];
    }
    out.push_str(rest);
    out
}

/// `MESSAGE: ns/p1, ns/p2` with its pods sorted (the runs' namespaces sort differently).
fn sort_pods(item: &str) -> String {
    match item.split_once("): ") {
        Some((msg, pods)) => {
            let mut pods: Vec<&str> = pods.split(", ").collect();
            pods.sort();
            format!("{msg}): {}", pods.join(", "))
        }
        None => item.to_owned(),
    }
}

/// kubectl groups filter errors in a Go map, so their order changes from run to run: sort the
/// items of an aggregated `[cannot delete ..., cannot delete ...]` list (and the pods of each).
fn canonical_order(line: &str) -> String {
    if line.starts_with("cannot delete ") {
        return sort_pods(line);
    }
    let (Some(open), Some(close)) = (line.find("[cannot delete "), line.rfind(']')) else {
        return line.to_owned();
    };
    let mut items: Vec<String> = line[open + 1..close]
        .split(", cannot delete ")
        .map(|i| sort_pods(i.strip_prefix("cannot delete ").unwrap_or(i)))
        .collect();
    items.sort();
    let joined: Vec<String> = items.iter().map(|i| format!("cannot delete {i}")).collect();
    format!(
        "{}[{}]{}",
        &line[..open],
        joined.join(", "),
        &line[close + 1..]
    )
}

/// Lines kubemaint prints that kubectl does not: the preflight, the closing per-node summary
/// and the note on the cordon a failed drain leaves.
fn kubemaint_own_line(line: &str) -> bool {
    line.starts_with("preflight: ")
        || line.starts_with("summary: node/")
        || (line.starts_with("node/") && line.contains(" is left cordoned"))
}

/// Every line kubectl printed, normalised, appears in kubemaint's output on the same stream
/// and in the same order; kubemaint's other lines are only its own kinds. The closing error
/// lines (after `There are pending nodes to be drained:` and the node list), which kubectl
/// prints in Go map order, are compared as a sorted block.
fn compare_lines(kubectl: (&Output, &Names), kubemaint: (&Output, &Names)) -> Result<(), String> {
    let lines = |bytes: &[u8], names: &Names| -> Vec<String> {
        let mut out: Vec<String> = String::from_utf8_lossy(bytes)
            .lines()
            .map(|l| names.normalise(l))
            .collect();
        if let Some(i) = out
            .iter()
            .position(|l| l == "There are pending nodes to be drained:")
        {
            let tail_start = i
                + 1
                + out[i + 1..]
                    .iter()
                    .take_while(|l| l.starts_with(' '))
                    .count();
            out[tail_start..].sort();
        }
        out
    };
    let mut problems = Vec::new();
    for (stream, a, b) in [
        (
            "stdout",
            lines(&kubectl.0.stdout, kubectl.1),
            lines(&kubemaint.0.stdout, kubemaint.1),
        ),
        (
            "stderr",
            lines(&kubectl.0.stderr, kubectl.1),
            lines(&kubemaint.0.stderr, kubemaint.1),
        ),
    ] {
        let mut want = a.iter().peekable();
        for line in &b {
            if want.peek() == Some(&line) {
                want.next();
            } else if !kubemaint_own_line(line) {
                problems.push(format!("{stream}: kubemaint printed {line:?}"));
            }
        }
        for missing in want {
            problems.push(format!("{stream}: kubectl's line missing: {missing:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn line_comparison_finds_differences() {
    let out = |stdout: &str, stderr: &str| Output {
        status: std::process::ExitStatus::default(),
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
    };
    let names = |ns: &str, node: &str| Names::new(ns, "diff-t-other", node, &[]);
    // Namespaces written short in the texts below.
    let out_ns = |stdout: &str, stderr: &str| {
        let fix = |s: &str| {
            s.replace("NSA/", "diff-t-kubectl/")
                .replace("NSB/", "diff-t-kubemaint/")
        };
        out(&fix(stdout), &fix(stderr))
    };
    let kubectl = out_ns(
        "node/worker-1 cordoned\n",
        "error: unable to drain node \"worker-1\" due to error:[cannot delete B: NSA/x, NSA/y, cannot delete A: NSA/z], continuing command...\nThere are pending nodes to be drained:\n worker-1\ncannot delete B: NSA/x, NSA/y\ncannot delete A: NSA/z\n",
    );
    let same = out_ns(
        "node/worker-2 cordoned\n",
        "preflight: node/worker-2: refused\nerror: unable to drain node \"worker-2\" due to error:[cannot delete A: NSB/z, cannot delete B: NSB/x, NSB/y], continuing command...\nnode/worker-2 is left cordoned by kubemaint\nThere are pending nodes to be drained:\n worker-2\ncannot delete A: NSB/z\ncannot delete B: NSB/x, NSB/y\n",
    );
    assert_eq!(
        compare_lines(
            (&kubectl, &names("diff-t-kubectl", "worker-1")),
            (&same, &names("diff-t-kubemaint", "worker-2"))
        ),
        Ok(())
    );
    let spaced = out_ns(
        "node/worker-2 cordoned\n",
        "error: unable to drain node \"worker-2\" due to error: [cannot delete A: NSB/z, cannot delete B: NSB/x, NSB/y], continuing command...\nThere are pending nodes to be drained:\n worker-2\nerror: [cannot delete A: NSB/z, cannot delete B: NSB/x, NSB/y]\n",
    );
    let err = compare_lines(
        (&kubectl, &names("diff-t-kubectl", "worker-1")),
        (&spaced, &names("diff-t-kubemaint", "worker-2")),
    )
    .unwrap_err();
    assert!(
        err.contains(
            "kubemaint printed \"error: unable to drain node \\\"<node>\\\" due to error: ["
        ),
        "{err}"
    );
    assert!(
        err.contains("kubectl's line missing: \"cannot delete A: <ns>/z\""),
        "{err}"
    );
}

#[test]
fn refused_drain_prints_kubectls_lines() {
    let dir = tempfile::tempdir().unwrap();
    let lab = start_lab(dir.path(), 4, 300);
    let kubectl = Kubectl::new(&lab.kubeconfig());
    let ctx = Ctx { lab, kubectl };
    let cases: Vec<(&str, Vec<&str>, bool, Vec<&str>)> = vec![
        // A DaemonSet pod, an emptyDir pod and a bare pod, no flags: three filter errors.
        ("refused", vec!["deploy", "emptydir", "bare"], true, vec![]),
        // One filter error: no brackets, one closing line.
        (
            "refused-one",
            vec!["deploy", "bare"],
            false,
            vec!["--ignore-daemonsets"],
        ),
    ];
    let mut failures = Vec::new();
    for (name, fixtures, ds, flags) in cases {
        let run = run_scenario(&ctx, name, &fixtures, ds, &flags);
        if run.kubectl != run.kubemaint {
            failures.push(format!(
                "scenario {name}: outcomes differ:\n  kubectl:   {:?}\n  kubemaint: {:?}",
                run.kubectl, run.kubemaint
            ));
        }
        if let Err(e) = run.lines {
            failures.push(format!("scenario {name}: lines differ:\n{e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn kubemaint_drain_matches_kubectl_drain() {
    let dir = tempfile::tempdir().unwrap();
    let lab = start_lab(dir.path(), 4, 300);
    let kubectl = Kubectl::new(&lab.kubeconfig());
    let ctx = Ctx { lab, kubectl };

    let basics = [
        "deploy",
        "deploy-pdb",
        "sts",
        "bare",
        "emptydir",
        "finished",
    ];
    let cases: Vec<(&str, Vec<&str>, bool, Vec<&str>)> = vec![
        // Filter errors fail the node before any eviction: DaemonSet, unreplicated, emptyDir.
        ("no-flags", basics.to_vec(), true, vec!["--timeout=60s"]),
        (
            "all-flags",
            basics.to_vec(),
            true,
            vec![
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--force",
                "--timeout=60s",
            ],
        ),
        (
            "only-force",
            vec!["deploy", "bare", "emptydir"],
            false,
            vec!["--force", "--ignore-daemonsets", "--timeout=60s"],
        ),
        (
            "mirror-and-finished",
            vec!["mirror", "finished", "deploy"],
            true,
            vec!["--ignore-daemonsets", "--timeout=60s"],
        ),
        (
            "two-pdbs",
            vec!["two-pdbs"],
            false,
            vec!["--ignore-daemonsets", "--timeout=15s"],
        ),
        (
            "pdb-never",
            vec!["pdb-never", "deploy"],
            false,
            vec!["--ignore-daemonsets", "--timeout=12s"],
        ),
        (
            "disable-eviction",
            vec!["pdb-never", "deploy"],
            false,
            vec!["--ignore-daemonsets", "--disable-eviction", "--timeout=60s"],
        ),
        (
            "pod-selector",
            vec!["deploy", "deploy-pdb"],
            false,
            vec![
                "--ignore-daemonsets",
                "--pod-selector=fixture=deploy",
                "--timeout=60s",
            ],
        ),
        (
            "dry-run-client",
            basics.to_vec(),
            true,
            vec![
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--force",
                "--dry-run=client",
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (name, fixtures, ds, flags) in cases {
        let (kubectl, kubemaint) = scenario(&ctx, name, &fixtures, ds, &flags);
        if kubectl != kubemaint {
            failures.push(format!(
                "scenario {name} ({flags:?}):\n  kubectl:   {kubectl:?}\n  kubemaint: {kubemaint:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "kubemaint differs from kubectl drain:\n{}",
        failures.join("\n")
    );
}
