//! The drain's output: kubectl's lines on stdout/stderr and progress, one line per node in
//! flight. On a terminal each node has a live bar (pods removed, what holds it up, elapsed);
//! otherwise a node held up prints a `progress:` line every 10 s (scripts and tests read them).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubemaint_cluster::drain::{DrainReport, NodeLive, NodeStatus, Reporter};
use kubemaint_core::drain::plan::{DrainPlan, NodeVerdict};
use kubemaint_core::drain::report::{Ended, summary_line};
use tokio::time::Instant;

/// One node in flight.
struct InFlight {
    bar: Option<indicatif::ProgressBar>,
    ticker: tokio::task::JoinHandle<()>,
}

/// Prints the engine's lines and progress for people (or, with `-o json|yaml`, keeps stdout
/// for the document and prints kubectl's stdout lines on stderr).
pub struct CliReporter {
    machine: bool,
    bars: Option<indicatif::MultiProgress>,
    nodes: Mutex<BTreeMap<String, InFlight>>,
}

impl CliReporter {
    /// A reporter; `machine` when stdout carries a JSON/YAML document.
    pub fn new(machine: bool) -> Self {
        let live = !machine && std::io::stderr().is_terminal();
        CliReporter {
            machine,
            bars: live.then(indicatif::MultiProgress::new),
            nodes: Mutex::default(),
        }
    }

    fn print(&self, f: impl FnOnce()) {
        match &self.bars {
            Some(m) => m.suspend(f),
            None => f(),
        }
    }

    /// Ends every progress view still shown.
    pub fn finish(&self) {
        for (_, n) in std::mem::take(&mut *self.nodes.lock().expect("nodes")) {
            n.ticker.abort();
            if let Some(bar) = n.bar {
                bar.finish_and_clear();
            }
        }
    }
}

impl Reporter for CliReporter {
    fn out(&self, line: &str) {
        self.print(|| {
            if self.machine {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        });
    }

    fn err(&self, line: &str) {
        self.print(|| eprintln!("{line}"));
    }

    fn preflight(&self, plan: &DrainPlan, warnings: &[String]) {
        for w in warnings {
            eprintln!("{w}");
        }
        if !self.machine {
            print_preflight(plan);
        }
    }

    fn node_started(&self, node: &str, pods: usize, live: Arc<NodeLive>) {
        let bar = self.bars.as_ref().map(|m| {
            let bar = m.add(indicatif::ProgressBar::new(pods as u64));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} node/{prefix} {pos}/{len} removed [{bar:20}] {elapsed} {wide_msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(node.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let ticker = {
            let bar = bar.clone();
            let node = node.to_owned();
            tokio::spawn(async move {
                let start = Instant::now();
                if let Some(bar) = bar {
                    let mut tick = tokio::time::interval(Duration::from_millis(250));
                    loop {
                        tick.tick().await;
                        bar.set_message(live_blocker(&live));
                    }
                }
                let mut tick = tokio::time::interval(Duration::from_secs(10));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    progress_lines(&node, pods, start, &live);
                }
            })
        };
        self.nodes
            .lock()
            .expect("nodes")
            .insert(node.to_owned(), InFlight { bar, ticker });
    }

    fn pod_finished(&self, node: &str) {
        if let Some(bar) = self
            .nodes
            .lock()
            .expect("nodes")
            .get(node)
            .and_then(|n| n.bar.as_ref())
        {
            bar.inc(1);
        }
    }

    fn node_finished(&self, node: &str) {
        if let Some(n) = self.nodes.lock().expect("nodes").remove(node) {
            n.ticker.abort();
            if let Some(bar) = n.bar {
                bar.finish_and_clear();
            }
        }
    }
}

/// The plain progress lines of a node held up (blocked by a budget or stuck pods).
fn progress_lines(node: &str, total: usize, start: Instant, live: &NodeLive) {
    let b = live.blocked.lock().expect("progress map").clone();
    if let Some((pod, bl)) = b.iter().next() {
        eprintln!(
            "progress: node/{node}: {} of {total} pods blocked after {}s; {pod} waiting {}s on {}",
            b.len(),
            start.elapsed().as_secs(),
            bl.since.elapsed().as_secs(),
            bl.what
        );
    }
    let s = live.stuck.lock().expect("stuck map").clone();
    if let Some((_, first)) = s.iter().next() {
        let names: Vec<String> = s.keys().map(ToString::to_string).collect();
        eprintln!(
            "progress: node/{node}: {} of {total} pods stuck Terminating after {}s ({}): {}",
            s.len(),
            start.elapsed().as_secs(),
            names.join(", "),
            first.node.describe()
        );
    }
}

/// The live view's message: what holds the drain up right now.
fn live_blocker(live: &NodeLive) -> String {
    let s = live.stuck.lock().expect("stuck map");
    if let Some((pod, st)) = s.iter().next() {
        return format!(
            "{} stuck Terminating ({pod} {}s): {}",
            s.len(),
            st.stuck_seconds,
            st.node.describe()
        );
    }
    let b = live.blocked.lock().expect("progress map");
    match b.iter().next() {
        Some((pod, bl)) => {
            // Short enough for one terminal line: the budget's name and its numbers.
            let (who, msg) = bl.what.split_once(": ").unwrap_or(("", bl.what.as_str()));
            let numbers = msg.find("needs ").map_or(msg, |i| &msg[i..]);
            format!(
                "{} waiting on {who}: {numbers} (longest: {pod}, {}s)",
                b.len(),
                bl.since.elapsed().as_secs()
            )
        }
        None => String::new(),
    }
}

fn print_preflight(plan: &DrainPlan) {
    for n in &plan.nodes {
        if n.verdict == NodeVerdict::Ready {
            continue;
        }
        let verdict = match n.verdict {
            NodeVerdict::FilterErrors => {
                "kubectl's pod filters refuse this node (see the errors below)"
            }
            NodeVerdict::PdbDeadlock => {
                "the drain cannot finish: a PodDisruptionBudget will never allow the remaining evictions (use --timeout, or fix the budget/capacity first)"
            }
            NodeVerdict::WaitsOnPdb => "evictions will wait for PodDisruptionBudgets",
            NodeVerdict::InsufficientCapacity => {
                "some evicted pods fit on no remaining node and will stay Pending"
            }
            NodeVerdict::Ready => "",
        };
        eprintln!("preflight: node/{}: {verdict}", n.node);
        if n.verdict == NodeVerdict::FilterErrors {
            continue;
        }
        for b in &n.pdb_blockers {
            // Paced budgets are normal operation, not a problem worth a line.
            if b.kind == kubemaint_core::drain::pdb::BlockerKind::Paced {
                tracing::info!("node/{}: {}", n.node, b.explanation);
                continue;
            }
            let pods: Vec<String> = b.pods.iter().map(ToString::to_string).collect();
            eprintln!(
                "preflight: node/{}: {:?} [{}]: {}",
                n.node,
                b.kind,
                pods.join(", "),
                b.explanation
            );
        }
        for p in &n.pods {
            if let Some(kubemaint_core::drain::capacity::Placement::NoFit { reason }) = &p.placement
            {
                eprintln!(
                    "preflight: node/{}: {} will not be rescheduled: {reason}",
                    n.node, p.pod
                );
            }
        }
    }
}

/// The closing summary, one `summary:` line per node on stderr: when its pod removal started
/// and ended (seconds after the cordons) and what held it up.
pub fn print_summary(report: &DrainReport) {
    for n in &report.nodes {
        let ended = match n.status {
            NodeStatus::Failed => Ended::Failed,
            NodeStatus::Drained => Ended::Drained,
            // Client dry-run: nothing was removed, nothing to say.
            NodeStatus::Planned => continue,
        };
        eprintln!(
            "summary: {}",
            summary_line(
                &n.node,
                ended,
                n.started_after_seconds,
                n.finished_after_seconds,
                &n.held_up
            )
        );
    }
}
