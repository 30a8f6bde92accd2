//! `kubemaint-lab`: bring up a real local Kubernetes control plane with simulated nodes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use kubemaint_lab::binaries::{Binaries, describe_version, is_stand_in};
use kubemaint_lab::state::{LabState, SimSettings};
use kubemaint_lab::{EtcdVersion, KubeletMode, Lab, UpOptions, process};

/// A real Kubernetes v1.20.2 control plane (built from Debian sources) and real etcd, with
/// simulated kubelets, on this machine — the lab kubemaint is proven against.
#[derive(Debug, Parser)]
#[command(
    name = "kubemaint-lab",
    version,
    after_help = "First time:  kubemaint-lab prepare        (builds and caches the binaries, ~5 min)\nThen:        kubemaint-lab up --seed     (a cluster in ~20 s)\n             export KUBECONFIG=$(kubemaint-lab env --kubeconfig)\n             kubemaint-lab down"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, clap::Args)]
struct DirArg {
    /// The lab directory (PKI, logs, pid files, etcd data, admin.conf).
    #[arg(long, env = "KUBEMAINT_LAB_DIR", default_value = "/tmp/kubemaint-lab")]
    dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Fetch etcd 3.4.23 and 3.5.1 and build the v1.20.2 control plane into the cache (idempotent).
    Prepare {
        /// Also prepare a stand-in control plane at this version (v1.20.2's code relinked with
        /// another version stamp; ~30 s). Repeatable.
        #[arg(long = "kubernetes-version", value_name = "VERSION")]
        kubernetes_versions: Vec<String>,
    },
    /// Start a lab: PKI, etcd (TLS), apiserver, controller-manager, scheduler, simulated kubelets.
    Up {
        #[command(flatten)]
        dir: DirArg,
        /// Worker nodes.
        #[arg(long, default_value_t = 3)]
        workers: u32,
        /// Control-plane nodes. Each runs its own etcd member, kube-apiserver, controller-manager and
        /// scheduler (leader-elected); with more than one, haproxy balances the API servers at the
        /// endpoint admin.conf points at.
        #[arg(long, default_value_t = 1)]
        control_planes: u32,
        /// The control plane's version. v1.20.2 is the real one; any other (e.g. v1.19.16) is a
        /// stand-in: v1.20.2's code relinked with that version stamp (built on first use), so
        /// /version, image tags, kubeadm-config, kube-proxy and CoreDNS all say that version.
        #[arg(long, default_value = kubemaint_lab::binaries::KUBE_VERSION)]
        kubernetes_version: String,
        /// One control-plane node's components at another version than --kubernetes-version, as
        /// NODE=VERSION (e.g. cp-1=v1.20.2: that node already upgraded); repeatable.
        #[arg(long = "control-plane-version", value_name = "NODE=VERSION", value_parser = parse_node_version)]
        control_plane_versions: Vec<(String, String)>,
        /// The kubelet version the nodes report (default: the control plane's version).
        #[arg(long)]
        kubelet_version: Option<String>,
        /// Which etcd runs the cluster: 3.4 (Debian 3.4.23, default) or 3.5 (3.5.1).
        #[arg(long, default_value = "3.4", value_parser = ["3.4", "3.5"])]
        etcd: String,
        /// Milliseconds from pod start to Ready.
        #[arg(long, default_value_t = SimSettings::default().ready_delay_ms)]
        ready_delay_ms: u64,
        /// Milliseconds a pod takes to shut down after deletion (bounded by its grace period).
        #[arg(long, default_value_t = SimSettings::default().shutdown_delay_ms)]
        shutdown_delay_ms: u64,
        /// Also deploy the demo workload (namespace `demo`).
        #[arg(long)]
        seed: bool,
    },
    /// Stop every process this lab started (by pid file) and leave nothing running.
    Down {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Show the lab's processes and nodes.
    Status {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Print shell variables to use the lab (`eval "$(kubemaint-lab env)"`).
    Env {
        #[command(flatten)]
        dir: DirArg,
        /// Print only the kubeconfig path.
        #[arg(long)]
        kubeconfig: bool,
    },
    /// Deploy the demo workload into a running lab.
    Seed {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Operate a simulated node's kubelet.
    Node {
        #[command(subcommand)]
        action: NodeCmd,
    },
    /// Run the simulated kubelets in the foreground (started by `up`).
    #[command(hide = true)]
    Kubelet {
        #[command(flatten)]
        dir: DirArg,
    },
}

#[derive(Debug, Subcommand)]
enum NodeCmd {
    /// Stop the node's kubelet: the controller marks the node NotReady; its pods stay put.
    Stop {
        /// The node.
        node: String,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Start the node's kubelet again.
    Start {
        /// The node.
        node: String,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Upgrade a node: only its kubelet (`--kubelet-version`), or the whole node to a Kubernetes
    /// version (`--kubernetes-version`) as kubeadm and the packages would: on a control-plane node
    /// its binaries, static pod manifests and mirror pods component by component (etcd,
    /// kube-apiserver, kube-controller-manager, kube-scheduler; each restarted and waited for),
    /// with `--first` also kubeadm-config, kubelet-config-1.N, kube-proxy and CoreDNS; then the
    /// kubelet, waiting until the node is Ready at the version. Exit 1 with the reason on failure
    /// (`KUBEMAINT_LAB_FAIL_UPGRADE=NODE[,NODE]` makes it fail on purpose, for tests).
    #[command(group(clap::ArgGroup::new("target").required(true).args(["kubelet_version", "kubernetes_version"])))]
    Upgrade {
        /// The node.
        node: String,
        /// Only the kubelet, to this version (e.g. v1.21.14); it restarts, briefly NotReady.
        #[arg(long)]
        kubelet_version: Option<String>,
        /// The whole node to this Kubernetes version (v1.20.2 real, another a stand-in).
        #[arg(long)]
        kubernetes_version: Option<String>,
        /// The first control-plane node (`kubeadm upgrade apply`): also the cluster-level objects.
        #[arg(long, requires = "kubernetes_version")]
        first: bool,
        /// What the upgrade covers, as `kubemaint upgrade apply`'s `{role}` says: `control-plane`
        /// or `worker` (checked against the node), or `kubelet-only` (a catch-up: only the
        /// kubelet moves to --kubernetes-version, a control plane stays as it is).
        #[arg(long, requires = "kubernetes_version", value_parser = ["control-plane", "worker", "kubelet-only"])]
        role: Option<String>,
        /// How long each restarted component, and then the node, may take to be healthy (seconds).
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
        #[command(flatten)]
        dir: DirArg,
    },
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "kubemaint_lab=info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(err) = rt.block_on(run(cli.command)) {
        eprintln!("error: {err}");
        for cause in err.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        std::process::exit(1);
    }
}

async fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Prepare {
            kubernetes_versions,
        } => {
            let started = Instant::now();
            for v in &kubernetes_versions {
                kubemaint_lab::binaries::check_kube_version(v)?;
            }
            let bins = Binaries::prepare(&Binaries::cache_dir())?;
            for v in &kubernetes_versions {
                bins.ensure_kube(v)?;
                println!(
                    "control plane {} ready in {}",
                    describe_version(v),
                    bins.kube_at(v, "").display()
                );
            }
            println!(
                "lab binaries ready in {} ({:.1} s)",
                bins.cache.display(),
                started.elapsed().as_secs_f64()
            );
        }
        Cmd::Up {
            dir,
            workers,
            control_planes,
            kubernetes_version,
            control_plane_versions,
            kubelet_version,
            etcd,
            ready_delay_ms,
            shutdown_delay_ms,
            seed,
        } => {
            let started = Instant::now();
            let mut opts = UpOptions::new(dir.dir, workers);
            opts.control_planes = control_planes;
            kubemaint_lab::binaries::check_kube_version(&kubernetes_version)?;
            opts.kubelet_version = kubelet_version.unwrap_or_else(|| kubernetes_version.clone());
            opts.kube_version = kubernetes_version;
            for (node, version) in control_plane_versions {
                kubemaint_lab::binaries::check_kube_version(&version)?;
                opts.control_plane_versions.insert(node, version);
            }
            opts.etcd_version = if etcd == "3.5" {
                EtcdVersion::V3_5
            } else {
                EtcdVersion::V3_4
            };
            opts.sim = SimSettings {
                ready_delay_ms,
                shutdown_delay_ms,
            };
            opts.kubelets = KubeletMode::Process(
                std::env::current_exe().context("cannot find this program's path")?,
            );
            opts.seed = seed;
            let lab = match Lab::up(opts.clone()).await {
                Ok(lab) => lab,
                Err(e) => {
                    // Leave nothing half-started behind.
                    let stopped =
                        kubemaint_lab::cluster::down_dir(&std::path::absolute(&opts.dir)?);
                    return Err(anyhow::Error::new(e).context(format!(
                        "lab failed to start; stopped {}",
                        stopped.join(", ")
                    )));
                }
            };
            println!(
                "lab up in {:.1} s: {} node(s), Kubernetes {}, etcd {}",
                started.elapsed().as_secs_f64(),
                lab.state.nodes.len(),
                describe_version(&lab.state.kube_version),
                lab.state.etcd_version
            );
            if lab.state.is_ha() {
                println!(
                    "{} control-plane nodes (etcd members, API servers, controller-managers, schedulers) behind haproxy at {}",
                    control_planes, lab.state.apiserver_url
                );
            }
            for node in lab.state.nodes.iter().filter(|n| n.control_plane) {
                let version = lab.state.control_plane_version(node);
                if version != lab.state.kube_version {
                    println!(
                        "{}: control plane at {}",
                        node.name,
                        describe_version(version)
                    );
                }
            }
            print_env(&lab.state);
            println!(
                "# stop it with: kubemaint-lab down --dir {}",
                lab.dir().display()
            );
            // The processes outlive this command; forget the handle so nothing is stopped on exit.
            std::mem::forget(lab);
        }
        Cmd::Down { dir } => {
            let stopped = kubemaint_lab::cluster::down_dir(&dir.dir);
            let left: Vec<String> = process::recorded(&dir.dir)
                .iter()
                .filter(|p| p.alive())
                .map(|p| p.name.clone())
                .collect();
            if !left.is_empty() {
                anyhow::bail!("still running after down: {}", left.join(", "));
            }
            if stopped.is_empty() {
                println!("nothing was running in {}", dir.dir.display());
            } else {
                println!("stopped {}", stopped.join(", "));
            }
        }
        Cmd::Status { dir } => {
            let state = LabState::load(&dir.dir)?;
            // What the control-plane nodes run now (an upgrade moves them off the version the
            // lab came up with), each named a stand-in unless it is the real v1.20.2.
            let mut versions: Vec<&str> = state
                .nodes
                .iter()
                .filter(|n| n.control_plane)
                .map(|n| state.control_plane_version(n))
                .collect();
            versions.sort_unstable();
            versions.dedup();
            if versions.is_empty() {
                versions.push(&state.kube_version);
            }
            let kube = versions
                .iter()
                .map(|v| describe_version(v))
                .collect::<Vec<_>>()
                .join("; ");
            println!(
                "lab {} — Kubernetes {}, etcd {} at {}",
                state.dir.display(),
                kube,
                state.etcd_version,
                state.etcd_url
            );
            println!("{:<30} {:>8}  STATE", "PROCESS", "PID");
            for p in process::recorded(&dir.dir) {
                println!(
                    "{:<30} {:>8}  {}",
                    p.name,
                    p.pid,
                    if p.alive() { "running" } else { "dead" }
                );
            }
            print_control_plane(&state);
            let client = kubemaint_lab::api::client_for(&state.kubeconfig()).await?;
            let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
            let list = nodes
                .list(&Default::default())
                .await
                .context("cannot list nodes: is the apiserver running?")?;
            println!(
                "{:<14} {:<10} {:<9} {:<10} {:<10} CONTROL PLANE",
                "NODE", "ROLE", "STATUS", "SIM", "KUBELET"
            );
            let mut stand_ins = false;
            for spec in &state.nodes {
                let node = list
                    .items
                    .iter()
                    .find(|n| n.metadata.name.as_deref() == Some(spec.name.as_str()));
                let ready = node.map(kubemaint_lab::api::node_is_ready);
                let status = match ready {
                    Some(true) => "Ready",
                    Some(false) => "NotReady",
                    None => "absent",
                };
                let version = node
                    .and_then(|n| n.status.as_ref()?.node_info.as_ref())
                    .map(|i| i.kubelet_version.clone())
                    .unwrap_or_default();
                let control_plane = if spec.control_plane {
                    let v = state.control_plane_version(spec);
                    stand_ins |= is_stand_in(v);
                    format!("{v}{}", if is_stand_in(v) { " *" } else { "" })
                } else {
                    String::new()
                };
                let line = format!(
                    "{:<14} {:<10} {:<9} {:<10} {:<10} {}",
                    spec.name,
                    if spec.control_plane {
                        "control"
                    } else {
                        "worker"
                    },
                    status,
                    if spec.running { "running" } else { "stopped" },
                    version,
                    control_plane
                );
                println!("{}", line.trim_end());
            }
            if stand_ins {
                println!(
                    "* stand-in: {} code relinked with another version stamp",
                    kubemaint_lab::binaries::KUBE_VERSION
                );
            }
        }
        Cmd::Env { dir, kubeconfig } => {
            let state = LabState::load(&dir.dir)?;
            if kubeconfig {
                println!("{}", state.kubeconfig().display());
            } else {
                print_env(&state);
            }
        }
        Cmd::Seed { dir } => {
            let state = LabState::load(&dir.dir)?;
            let client = kubemaint_lab::api::client_for(&state.kubeconfig()).await?;
            kubemaint_lab::seed::apply(&client).await?;
            kubemaint_lab::seed::wait_ready(&client, Duration::from_secs(120)).await?;
            println!(
                "seed workload ready in namespace {}",
                kubemaint_lab::seed::NAMESPACE
            );
        }
        Cmd::Node {
            action:
                NodeCmd::Upgrade {
                    node,
                    kubernetes_version: Some(version),
                    first,
                    role,
                    timeout_secs,
                    dir,
                    ..
                },
        } => {
            let dir = std::path::absolute(&dir.dir)?;
            let started = Instant::now();
            let req = kubemaint_lab::upgrade::NodeUpgrade {
                node: node.clone(),
                version: version.clone(),
                first,
                timeout: Duration::from_secs(timeout_secs),
                role: role
                    .as_deref()
                    .and_then(kubemaint_lab::upgrade::UpgradeRole::parse),
            };
            let lines = kubemaint_lab::upgrade::upgrade_node(&dir, &req)
                .await
                .with_context(|| format!("upgrade of {node} to {version} failed"))?;
            for line in lines {
                println!("{node}: {line}");
            }
            println!(
                "{node} upgraded to {} in {:.1} s",
                describe_version(&version),
                started.elapsed().as_secs_f64()
            );
        }
        Cmd::Node { action } => node(action)?,
        Cmd::Kubelet { dir } => kubemaint_lab::kubelet::run(std::path::absolute(&dir.dir)?).await?,
    }
    Ok(())
}

fn node(action: NodeCmd) -> anyhow::Result<()> {
    let (dir, name) = match &action {
        NodeCmd::Stop { node, dir }
        | NodeCmd::Start { node, dir }
        | NodeCmd::Upgrade { node, dir, .. } => (dir.dir.clone(), node.clone()),
    };
    let msg = LabState::update(&dir, |state| -> anyhow::Result<String> {
        let spec = state.node_mut(&name)?;
        node_change(spec, &name, action)
    })?;
    println!("{msg}");
    Ok(())
}

fn node_change(
    spec: &mut kubemaint_lab::state::NodeSpec,
    name: &str,
    action: NodeCmd,
) -> anyhow::Result<String> {
    let msg = match action {
        NodeCmd::Stop { .. } => {
            spec.running = false;
            format!("kubelet on {name} stopped; the node goes NotReady within ~20 s")
        }
        NodeCmd::Start { .. } => {
            spec.running = true;
            spec.restarts += 1;
            format!("kubelet on {name} started")
        }
        NodeCmd::Upgrade {
            kubelet_version, ..
        } => {
            let Some(kubelet_version) = kubelet_version else {
                anyhow::bail!("--kubelet-version or --kubernetes-version is required");
            };
            if !kubelet_version.starts_with('v') || kubelet_version[1..].split('.').count() != 3 {
                anyhow::bail!(
                    "--kubelet-version {kubelet_version:?} is not a version like v1.21.14"
                );
            }
            let old = std::mem::replace(&mut spec.kubelet_version, kubelet_version.clone());
            spec.restarts += 1;
            spec.running = true;
            format!("kubelet on {name} upgraded {old} -> {kubelet_version} and restarting")
        }
    };
    Ok(msg)
}

/// Every etcd member (leader or follower as it says itself) and, in an HA lab, which API
/// servers the load balancer sees healthy.
fn print_control_plane(state: &LabState) {
    match kubemaint_lab::components::etcd_members(state) {
        Ok(members) => {
            println!("{:<8} {:<26} {:<12} VERSION", "MEMBER", "ENDPOINT", "ROLE");
            for m in members {
                println!(
                    "{:<8} {:<26} {:<12} {}",
                    m.node.as_deref().unwrap_or("?"),
                    m.endpoint,
                    m.role,
                    m.version.as_deref().unwrap_or("-")
                );
            }
        }
        Err(e) => println!("etcd members: cannot ask ({e})"),
    }
    if !state.is_ha() {
        return;
    }
    println!(
        "load balancer {} (haproxy, GET /healthz every 1 s):",
        state.apiserver_url
    );
    match kubemaint_lab::haproxy::server_states(&state.dir) {
        Ok(servers) => {
            for s in servers {
                let component = state.component_on("kube-apiserver", &s.node);
                let port = component
                    .and_then(|c| kubemaint_lab::controlplane::flag(c, "secure-port"))
                    .unwrap_or_default();
                let version = state
                    .node(&s.node)
                    .map(|n| state.control_plane_version(n).to_string())
                    .unwrap_or_default();
                println!(
                    "  kube-apiserver-{:<6} 127.0.0.1:{:<6} {:<10} {:<10} last check {}",
                    s.node,
                    port,
                    version,
                    if s.is_up() { "healthy" } else { "unhealthy" },
                    s.check
                );
            }
        }
        Err(e) => println!("  {e}"),
    }
}

/// `NODE=VERSION` of `--control-plane-version`.
fn parse_node_version(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((node, version)) if !node.is_empty() && !version.is_empty() => {
            Ok((node.to_string(), version.to_string()))
        }
        _ => Err(format!("{s:?} is not NODE=VERSION, e.g. cp-1=v1.20.2")),
    }
}

fn print_env(state: &LabState) {
    let pki = state.dir.join("pki");
    println!("export KUBECONFIG={}", state.kubeconfig().display());
    println!("export ETCDCTL_API=3");
    println!("export ETCDCTL_ENDPOINTS={}", state.etcd_url);
    println!(
        "export ETCDCTL_CACERT={}",
        pki.join("etcd/ca.crt").display()
    );
    println!(
        "export ETCDCTL_CERT={}",
        pki.join("etcd/healthcheck-client.crt").display()
    );
    println!(
        "export ETCDCTL_KEY={}",
        pki.join("etcd/healthcheck-client.key").display()
    );
    println!(
        "# kubeadm layout: --pki-dir {}  (etcd manifest: {})",
        pki.display(),
        state.dir.join("manifests/etcd.yaml").display()
    );
}
