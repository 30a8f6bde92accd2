//! Printing a plan: a kubeadm-like table, JSON/YAML (kubeadm's `UpgradePlan` field names
//! where they mean the same), or a Markdown runbook with per-node commands for Debian/Ubuntu.
//!
//! kubeadm's `output.kubeadm.k8s.io/v1alpha3` `ComponentUpgradePlan` has `name`,
//! `currentVersion`, `newVersion` (and `nodeName` in newer kubeadm, which groups them under
//! `availableUpgrades[].components` with a `description`); we keep those names and add what
//! kubeadm does not have (`phase`, `reason`, `violations`, `preflight`, `unknown`).

use std::fmt::Write as _;

use kubemaint_core::upgrade::Version;
use kubemaint_core::upgrade::node_commands::{
    CommandStage, NodeCommandOptions, NodeRole, PKGS_K8S_IO_FIRST, node_commands,
};
use kubemaint_core::upgrade::plan::{Action, Phase, Step, UpgradePlan};
use kubemaint_core::upgrade::preflight::{Check, Status};
use kubemaint_core::upgrade::skew::Component;

use crate::output::OutputFormat;
use kubemaint_cluster::upgrade::versions::Interpreted;

mod document;

use document::{document, kubelets_by_version, summary_rows};

/// Everything printed.
pub struct Report<'a> {
    /// Discovery's result.
    pub found: &'a Interpreted,
    /// `/version`.
    pub server_version: Option<&'a str>,
    /// The plan.
    pub plan: &'a UpgradePlan,
    /// Preflight lines.
    pub checks: &'a [Check],
    /// Where it came from.
    pub index_source: &'a str,
}

fn step_description(plan: &UpgradePlan, i: usize) -> String {
    let from = if i == 0 {
        plan.current.to_string()
    } else {
        plan.steps[i - 1].version.to_string()
    };
    format!(
        "step {} of {}: {from} -> {}",
        i + 1,
        plan.steps.len(),
        plan.steps[i].version
    )
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
/// Columns padded to the widest cell, two spaces apart (like kubectl's tabwriter).
fn columns(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.chars().count();
            if widths.len() <= i {
                widths.push(w);
            } else {
                widths[i] = widths[i].max(w);
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Pass => "PASS",
        Status::Warn => "WARN",
        Status::Fail => "FAIL",
    }
}

/// The human table.
pub fn table(report: &Report<'_>) -> String {
    let mut out = String::new();
    let plan = report.plan;
    let _ = writeln!(
        out,
        "Control plane: {} (oldest kube-apiserver); /version: {}; kubeadm-config kubernetesVersion: {}",
        plan.current,
        report.server_version.unwrap_or("unknown"),
        report
            .found
            .kubeadm_kubernetes_version
            .as_deref()
            .unwrap_or("unknown (not a kubeadm cluster?)")
    );
    let hops: Vec<String> = plan.steps.iter().map(|s| s.version.to_string()).collect();
    let _ = writeln!(
        out,
        "Target: {} ({}; release index: {})",
        plan.target,
        if hops.is_empty() {
            "already there".to_string()
        } else {
            format!("{} step(s): {}", hops.len(), hops.join(" -> "))
        },
        report.index_source
    );
    out.push('\n');
    let mut rows = vec![vec![
        "COMPONENT".to_string(),
        "NODE".into(),
        "CURRENT".into(),
        "TARGET".into(),
    ]];
    for r in summary_rows(report) {
        rows.push(vec![
            r.name,
            r.node_name.unwrap_or_else(|| "-".into()),
            if r.current_version.is_empty() {
                "unknown".into()
            } else {
                r.current_version
            },
            r.new_version,
        ]);
    }
    out.push_str(&columns(&rows));
    out.push_str("\nKubelets by version:\n");
    for (version, nodes) in kubelets_by_version(report).iter().rev() {
        let _ = writeln!(out, "  {version}  {} x  {}", nodes.len(), nodes.join(", "));
    }
    out.push_str("\nSkew now: ");
    if plan.current_findings.is_empty() {
        out.push_str("every component is within the version skew policy\n");
    } else {
        out.push('\n');
        for f in &plan.current_findings {
            let _ = writeln!(out, "  - {f}");
        }
    }
    for (i, step) in plan.steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n{} (etcd {}, CoreDNS {})",
            capitalise(&step_description(plan, i)),
            step.etcd,
            step.coredns
        );
        let mut rows = vec![vec![
            "#".to_string(),
            "PHASE".into(),
            "COMPONENT".into(),
            "NODE".into(),
            "FROM".into(),
            "TO".into(),
            "WHY".into(),
        ]];
        for (n, a) in step.actions.iter().enumerate() {
            rows.push(vec![
                (n + 1).to_string(),
                a.phase.title().to_string(),
                a.component.name().to_string(),
                a.node.clone().unwrap_or_else(|| "-".into()),
                a.from.clone().unwrap_or_else(|| "unknown".into()),
                a.to.clone(),
                a.reason.clone().unwrap_or_default(),
            ]);
        }
        for line in columns(&rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
        if step.violations.is_empty() {
            out.push_str("  Predicted skew after every move: within policy\n");
        } else {
            out.push_str("  Predicted skew violations:\n");
            for f in &step.violations {
                let _ = writeln!(out, "    - {f}");
            }
        }
    }
    out.push_str("\nPreflight:\n");
    for c in report.checks {
        let _ = writeln!(
            out,
            "  {}  {:<16} {}",
            status_word(c.status),
            c.name,
            c.message
        );
        if let Some(action) = &c.action {
            let _ = writeln!(out, "        {:<16} -> {action}", "");
        }
    }
    if !report.found.unknown.is_empty() {
        out.push_str("\nUnknown (not discovered):\n");
        for u in &report.found.unknown {
            let _ = writeln!(out, "  - {u}");
        }
    }
    if let Some(first) = plan.steps.first() {
        let _ = writeln!(
            out,
            "\nNext: on the first control-plane node, after switching the package repository to v{} and installing kubeadm {}:\n  kubeadm upgrade apply {}\n(kubemaint upgrade plan -o markdown prints the whole runbook)",
            first.version.minor_of(),
            first.version,
            first.version
        );
    }
    out
}

/// The built-in node commands of one stage (`kubemaint_core::upgrade::node_commands`, the
/// ones `upgrade apply` runs), one `sudo` line each; the repository switch gets its purpose as
/// a comment above it.
fn node_stage(out: &mut String, role: NodeRole, to: &Version, stage: CommandStage) {
    if stage == CommandStage::Kubeadm && to.minor_of() < PKGS_K8S_IO_FIRST {
        let _ = writeln!(
            out,
            "# v{} predates pkgs.k8s.io (it starts at v{PKGS_K8S_IO_FIRST}): its packages are in the legacy\n\
             # apt.kubernetes.io repository (frozen on 2023-09-13), one for every minor: nothing to switch",
            to.minor_of()
        );
    }
    match node_commands(role, to, &NodeCommandOptions::default()) {
        Ok(commands) => {
            for c in commands.iter().filter(|c| c.stage == stage) {
                if c.program() == "sh" {
                    let _ = writeln!(out, "# {}", c.purpose);
                }
                let _ = writeln!(out, "sudo {c}");
            }
        }
        Err(e) => {
            let _ = writeln!(out, "# no built-in commands: {e}");
        }
    }
}

fn kubelet_procedure(out: &mut String, node: &str, to: &Version, role: NodeRole) {
    let _ = writeln!(out, "```sh");
    let _ = writeln!(out, "# on node {node}:");
    if role == NodeRole::ControlPlane {
        // Its kubeadm step (package, `kubeadm upgrade apply|node`, which includes the
        // kubelet-config phase) ran in the control-plane section: only the kubelet is left.
        let _ = writeln!(
            out,
            "# (kubeadm {to} and its `kubeadm upgrade` ran in the control-plane section above)"
        );
    } else {
        node_stage(out, role, to, CommandStage::Kubeadm);
    }
    let _ = writeln!(out, "# from an admin machine:");
    let _ = writeln!(out, "kubectl drain {node} --ignore-daemonsets");
    let _ = writeln!(out, "# on node {node}:");
    node_stage(out, role, to, CommandStage::Kubelet);
    let _ = writeln!(
        out,
        "# from an admin machine, once `kubectl get node {node}` shows Ready and {to}:"
    );
    let _ = writeln!(out, "kubectl uncordon {node}");
    let _ = writeln!(out, "```");
}

fn markdown_step(out: &mut String, plan: &UpgradePlan, i: usize, step: &Step) {
    let v = &step.version;
    let _ = writeln!(out, "\n## {}\n", capitalise(&step_description(plan, i)));
    let _ = writeln!(
        out,
        "kubeadm {v} deploys etcd {} and CoreDNS {}.\n",
        step.etcd, step.coredns
    );
    if !step.violations.is_empty() {
        out.push_str("**Predicted skew violations in this step — resolve them first:**\n\n");
        for f in &step.violations {
            let _ = writeln!(out, "- {f}");
        }
        out.push('\n');
    }
    let catch_up: Vec<&Action> = step
        .actions
        .iter()
        .filter(|a| a.phase == Phase::CatchUp)
        .collect();
    if !catch_up.is_empty() {
        out.push_str("### Before any API server moves\n\n");
        for a in &catch_up {
            let node = a.node.as_deref().unwrap_or("-");
            let _ = writeln!(
                out,
                "- {} on `{node}`: {} → {} — {}",
                a.component,
                a.from.as_deref().unwrap_or("unknown"),
                a.to,
                a.reason.as_deref().unwrap_or("")
            );
        }
        out.push('\n');
        for a in catch_up
            .iter()
            .filter(|a| a.component == Component::Kubelet)
        {
            if let (Some(node), Ok(to)) = (a.node.as_deref(), Version::parse(&a.to)) {
                let _ = writeln!(out, "Kubelet of `{node}` to {to}:\n");
                kubelet_procedure(out, node, &to, NodeRole::KubeletOnly);
                out.push('\n');
            }
        }
    }
    // Control-plane nodes in the plan's order; the first with an API server to move runs
    // `apply`, the others `node`.
    let mut cp_nodes: Vec<String> = Vec::new();
    for a in &step.actions {
        if a.phase == Phase::ControlPlane
            && let Some(n) = &a.node
            && !cp_nodes.contains(n)
        {
            cp_nodes.push(n.clone());
        }
    }
    if !cp_nodes.is_empty() {
        out.push_str("### Control plane, one node at a time\n\n");
        for (n, node) in cp_nodes.iter().enumerate() {
            let moves: Vec<String> = step
                .actions
                .iter()
                .filter(|a| {
                    a.node.as_deref() == Some(node.as_str()) && a.phase == Phase::ControlPlane
                })
                .map(|a| {
                    format!(
                        "{} {} → {}",
                        a.component,
                        a.from.as_deref().unwrap_or("?"),
                        a.to
                    )
                })
                .collect();
            let _ = writeln!(out, "{}. `{node}` ({}):\n", n + 1, moves.join(", "));
            out.push_str("```sh\n");
            let role = if n == 0 {
                NodeRole::FirstControlPlane
            } else {
                NodeRole::ControlPlane
            };
            node_stage(out, role, v, CommandStage::Kubeadm);
            out.push_str("```\n\n");
        }
        out.push_str(
            "kubeadm replaces each node's kube-controller-manager and kube-scheduler together with its \
             kube-apiserver; the skew policy wants them after every API server (the plan's `controllers` \
             phase). With leader election only one instance acts at a time; upgrade the nodes back to back.\n\
             kubeadm (≥ 1.28) upgrades kube-proxy and CoreDNS from the last control-plane node, once every \
             API server is new. Upgrade the CNI plugin if its provider requires it.\n\n",
        );
    }
    let kubelets: Vec<&Action> = step
        .actions
        .iter()
        .filter(|a| a.phase == Phase::Kubelets)
        .collect();
    if !kubelets.is_empty() {
        out.push_str("### Kubelets, node by node (drain first: in-place minor kubelet upgrades are not supported)\n\n");
        for a in kubelets {
            let Some(node) = a.node.as_deref() else {
                continue;
            };
            let is_cp = cp_nodes.iter().any(|n| n == node);
            let _ = writeln!(
                out,
                "#### `{node}` ({}: kubelet {} → {v})\n",
                if is_cp { "control plane" } else { "worker" },
                a.from.as_deref().unwrap_or("?")
            );
            let role = if is_cp {
                NodeRole::ControlPlane
            } else {
                NodeRole::Worker
            };
            kubelet_procedure(out, node, v, role);
            out.push('\n');
        }
    }
}

/// The Markdown runbook.
pub fn markdown(report: &Report<'_>) -> String {
    let plan = report.plan;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Upgrade runbook: {} → {}\n",
        plan.current, plan.target
    );
    let _ = writeln!(
        out,
        "Generated by `kubemaint upgrade plan` for a kubeadm cluster on Debian/Ubuntu nodes. \
         Minors are never skipped; each step is one minor. Re-run the plan between steps: it \
         re-reads the cluster.\n"
    );
    out.push_str("## Now\n\n| Component | Node | Current | Target |\n|---|---|---|---|\n");
    for r in summary_rows(report) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            r.name,
            r.node_name.as_deref().unwrap_or("-"),
            if r.current_version.is_empty() {
                "unknown"
            } else {
                &r.current_version
            },
            r.new_version
        );
    }
    out.push_str("\n## Preflight\n\n");
    for c in report.checks {
        let _ = write!(
            out,
            "- **{}** `{}`: {}",
            status_word(c.status),
            c.name,
            c.message
        );
        if let Some(a) = &c.action {
            let _ = write!(out, " — *{a}*");
        }
        out.push('\n');
    }
    if !plan.current_findings.is_empty() {
        out.push_str("\nSkew violations now:\n\n");
        for f in &plan.current_findings {
            let _ = writeln!(out, "- {f}");
        }
    }
    out.push_str("\nBefore starting: take an etcd snapshot (`kubemaint etcd snapshot save FILE --pki-dir /etc/kubernetes/pki`).\n");
    for (i, step) in plan.steps.iter().enumerate() {
        markdown_step(&mut out, plan, i, step);
    }
    if plan.steps.is_empty() {
        out.push_str("\nNothing to do: every component is at the target.\n");
    }
    out.push_str("\n## Verify\n\n```sh\nkubectl get nodes   # every node Ready at the target version\nkubemaint upgrade plan --target ");
    let _ = writeln!(out, "{}\n```", plan.target);
    out
}

/// Prints the report in the chosen format.
pub fn print(report: &Report<'_>, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Table => print!("{}", table(report)),
        OutputFormat::Markdown => print!("{}", markdown(report)),
        OutputFormat::Json | OutputFormat::Yaml => {
            crate::output::print_machine(format, &document(report))?;
        }
    }
    Ok(())
}
