//! `Lab`: bring a whole lab up and down.
//!
//! `up` generates the PKI, starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler
//! as background processes, writes `admin.conf`, starts the simulated kubelets, creates the objects
//! a kubeadm cluster has, and waits until every node is Ready.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::Api;

use crate::api::client_for;
use crate::binaries::{Binaries, EtcdVersion, KUBE_VERSION};
use crate::controlplane::Layout;
use crate::error::LabError;
use crate::etcd::EtcdServer;
use crate::haproxy::Backend;
use crate::pki::Pki;
use crate::process;
use crate::state::{Component, LabState, NodeSpec, SimSettings};

/// How to bring a lab up.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The lab directory (PKI, logs, pid files, data, kubeconfig).
    pub dir: PathBuf,
    /// Number of worker nodes.
    pub workers: u32,
    /// Number of control-plane nodes.
    pub control_planes: u32,
    /// The control plane's version: [`KUBE_VERSION`] (real) or a stand-in (that code relinked
    /// with another version stamp, built on demand; see [`crate::binaries::describe_version`]).
    pub kube_version: String,
    /// Control-plane nodes whose components run another version than `kube_version` (node name
    /// → version, e.g. `cp-1` → `v1.20.2` in a v1.19.16 lab: one node already upgraded).
    pub control_plane_versions: std::collections::BTreeMap<String, String>,
    /// The kubelet version every node reports at first.
    pub kubelet_version: String,
    /// Which etcd runs the cluster.
    pub etcd_version: EtcdVersion,
    /// Pod behaviour.
    pub sim: SimSettings,
    /// How the simulated kubelets run.
    pub kubelets: KubeletMode,
    /// Deploy the demo workload (`kubemaint-lab seed`).
    pub seed: bool,
}

impl UpOptions {
    /// One control-plane node and `workers` workers under `dir`, kubelets at v1.20.2, etcd 3.4.23.
    pub fn new(dir: impl Into<PathBuf>, workers: u32) -> Self {
        Self {
            dir: dir.into(),
            workers,
            control_planes: 1,
            kube_version: KUBE_VERSION.to_string(),
            control_plane_versions: Default::default(),
            kubelet_version: KUBE_VERSION.to_string(),
            etcd_version: EtcdVersion::V3_4,
            sim: SimSettings::default(),
            kubelets: KubeletMode::InProcess,
            seed: false,
        }
    }
}

/// Where the simulated kubelets run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeletMode {
    /// A background process running this program (`kubemaint-lab kubelet --dir DIR`); the lab
    /// outlives the command that started it.
    Process(PathBuf),
    /// A thread of the calling process (tests): the lab is torn down by a watchdog when the
    /// calling process exits.
    InProcess,
}

/// A running lab.
#[derive(Debug)]
pub struct Lab {
    /// Its state (ports, components, nodes).
    pub state: LabState,
    /// Stops the in-process kubelets when the lab is dropped.
    kubelet: Option<crate::kubelet::Handle>,
}

impl Lab {
    /// Brings a lab up and waits until every node is Ready.
    pub async fn up(opts: UpOptions) -> Result<Lab, LabError> {
        let started = Instant::now();
        if opts.control_planes == 0 {
            return Err(LabError::Invalid(
                "--control-planes must be at least 1 (the apiserver's node)".into(),
            ));
        }
        let binaries = Binaries::locate()?;
        binaries.ensure_kube(&opts.kube_version)?;
        let kube_version = opts.kube_version.clone();
        for (node, version) in &opts.control_plane_versions {
            let known = node
                .strip_prefix("cp-")
                .and_then(|i| i.parse::<u32>().ok())
                .is_some_and(|i| (1..=opts.control_planes).contains(&i));
            if !known {
                return Err(LabError::Invalid(format!(
                    "no control-plane node {node:?} to run {version}: the lab has cp-1..cp-{}",
                    opts.control_planes
                )));
            }
            binaries.ensure_kube(version)?;
        }
        let dir = absolute(&opts.dir)?;
        std::fs::create_dir_all(&dir).map_err(|source| LabError::Io {
            path: dir.clone(),
            source,
        })?;
        if process::recorded(&dir).iter().any(|p| p.alive()) {
            return Err(LabError::AlreadyRunning(dir.display().to_string()));
        }
        // A fresh lab each time: stale data from an earlier lab would confuse the new one.
        for sub in ["pki", "etcd-data", "logs", "run"] {
            let _ = std::fs::remove_dir_all(dir.join(sub));
        }
        let pki = Pki::at(dir.join("pki"));
        let creds = pki.generate()?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LabError::Io { path, source }
        };
        let mut layout = Layout::new(&dir, opts.control_planes, &kube_version).map_err(io(&dir))?;
        for node in &mut layout.nodes {
            if let Some(version) = opts.control_plane_versions.get(&node.name) {
                node.version = version.clone();
            }
        }
        let mut components = start_etcd(&binaries, &layout, opts.etcd_version)?;

        let (apiserver_url, lb) = if layout.is_ha() {
            let port = process::free_port().map_err(io(&dir))?;
            let backends: Vec<Backend> = layout
                .nodes
                .iter()
                .map(|n| Backend {
                    node: n.name.clone(),
                    port: n.ports.apiserver,
                })
                .collect();
            let lb = crate::haproxy::prepare(&dir, port, &backends)?;
            (format!("https://127.0.0.1:{port}"), Some(lb))
        } else {
            let port = layout.nodes[0].ports.apiserver;
            (format!("https://127.0.0.1:{port}"), None)
        };
        // admin.conf and the kubelets' kubeconfig point at the control-plane endpoint; each
        // node's controller-manager and scheduler at the node's own API server.
        let write_conf = |file: &str, user: &str, (cert, key): &(String, String)| {
            let path = dir.join(file);
            crate::kubeconfig::write(
                &path,
                &crate::kubeconfig::render(&apiserver_url, &creds.ca_pem, user, cert, key),
            )
            .map_err(|source| LabError::Io { path, source })
        };
        write_conf("admin.conf", "kubernetes-admin", &creds.admin)?;
        write_conf(
            crate::pki::SIM_KUBECONFIG,
            crate::pki::KUBELET_USER,
            &creds.kubelet,
        )?;
        // The first control-plane node's kubelet.conf, as kubeadm writes it: `kubeadm upgrade`
        // reads the node's name from its certificate (`system:node:cp-1`).
        write_conf(
            "kubelet.conf",
            &format!("system:node:{}", crate::pki::FIRST_NODE),
            &creds.first_node_kubelet,
        )?;
        for node in &layout.nodes {
            layout
                .write_node_files(node, &creds)
                .map_err(io(&layout.node_dir(node)))?;
        }
        components.extend(lb);
        for node in &layout.nodes {
            components.push(layout.apiserver(&binaries, node));
        }
        for node in &layout.nodes {
            components.push(layout.controller_manager(&binaries, node));
            components.push(layout.scheduler(&binaries, node));
        }

        let mut nodes = Vec::new();
        for i in 1..=opts.control_planes {
            nodes.push(NodeSpec {
                name: format!("cp-{i}"),
                control_plane: true,
                kubelet_version: opts.kubelet_version.clone(),
                control_plane_version: Some(
                    opts.control_plane_versions
                        .get(&format!("cp-{i}"))
                        .unwrap_or(&kube_version)
                        .clone(),
                ),
                running: true,
                restarts: 0,
                index: nodes.len() as u32,
            });
        }
        for i in 1..=opts.workers {
            nodes.push(NodeSpec {
                name: format!("worker-{i}"),
                control_plane: false,
                kubelet_version: opts.kubelet_version.clone(),
                control_plane_version: None,
                running: true,
                restarts: 0,
                index: nodes.len() as u32,
            });
        }
        let state = LabState {
            dir: dir.clone(),
            apiserver_url,
            etcd_url: layout.etcd_endpoints(),
            etcd_version: opts.etcd_version.as_str().to_string(),
            kube_version,
            components,
            nodes,
            sim: opts.sim.clone(),
        };
        state.save()?;

        let mut lab = Lab {
            state,
            kubelet: None,
        };
        if layout.is_ha() {
            lab.start_component(crate::haproxy::PROCESS)?;
        }
        for node in &layout.nodes {
            lab.start_component(&layout.process_name("kube-apiserver", node))?;
        }
        lab.wait_apiserver(Duration::from_secs(60)).await?;
        if layout.is_ha() {
            lab.wait_balanced(Duration::from_secs(60)).await?;
        }
        for kind in ["kube-controller-manager", "kube-scheduler"] {
            for node in &layout.nodes {
                lab.start_component(&layout.process_name(kind, node))?;
            }
        }
        if opts.kubelets == KubeletMode::InProcess {
            lab.spawn_watchdog()?;
        }
        let client = lab.client().await?;
        lab.wait_controllers(&client, Duration::from_secs(60))
            .await?;
        crate::kubeadm::create_objects(&client, &lab.state).await?;
        match &opts.kubelets {
            KubeletMode::Process(program) => {
                let args = vec!["kubelet".to_string(), format!("--dir={}", dir.display())];
                process::spawn(&dir, "kubelet-sim", program, &args)?;
            }
            KubeletMode::InProcess => {
                lab.kubelet = Some(crate::kubelet::Handle::spawn(dir.clone()));
            }
        }
        lab.wait_nodes_ready(&client, Duration::from_secs(60))
            .await?;
        if opts.seed {
            crate::seed::apply(&client).await?;
            crate::seed::wait_ready(&client, Duration::from_secs(120)).await?;
        }
        tracing::info!("lab up in {:.1} s", started.elapsed().as_secs_f64());
        Ok(lab)
    }

    /// A running lab started by someone else (another process, `kubemaint-lab up`), from its
    /// state file: to control its components. Dropping it stops nothing.
    pub fn open(dir: &Path) -> Result<Lab, LabError> {
        Ok(Lab {
            state: LabState::load(dir)?,
            kubelet: None,
        })
    }

    /// The lab directory.
    pub fn dir(&self) -> &Path {
        &self.state.dir
    }

    /// `DIR/admin.conf`.
    pub fn kubeconfig(&self) -> PathBuf {
        self.state.kubeconfig()
    }

    /// An admin client for the lab.
    pub async fn client(&self) -> Result<kube::Client, LabError> {
        client_for(&self.kubeconfig()).await
    }

    /// (Re)starts a component with its recorded flags. `name` is a process name
    /// (`kube-apiserver-cp-2`, `etcd-cp-3`, `haproxy`) or a bare kind (`kube-apiserver`), which
    /// means that kind on the first control-plane node (see [`LabState::component`]).
    pub fn start_component(&self, name: &str) -> Result<process::Managed, LabError> {
        crate::components::start(&self.state, name)
    }

    /// Stops a component (SIGTERM, then SIGKILL); `name` as for [`Lab::start_component`].
    pub fn stop_component(&self, name: &str) {
        crate::components::stop(&self.state, name)
    }

    /// Replaces a component's flag `--key=...` (e.g. etcd's `--data-dir` after a restore) and
    /// saves the state; `name` as for [`Lab::start_component`].
    pub fn set_component_flag(
        &mut self,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), LabError> {
        crate::components::set_flag(&mut self.state, name, key, value)
    }

    /// The lab's own `etcdctl` (same version as its etcd), with every member's endpoint and
    /// client certs preset.
    pub fn etcdctl(&self) -> Result<std::process::Command, LabError> {
        crate::components::etcdctl(&self.state)
    }

    /// Waits until `etcdctl endpoint health` succeeds for every member (after restarting etcd, say).
    pub async fn wait_etcd(&self, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            for p in process::recorded(&self.state.dir) {
                if p.name.starts_with("etcd") {
                    p.ensure_alive()?;
                }
            }
            let healthy = self
                .etcdctl()?
                .args(["endpoint", "health", "--command-timeout=2s"])
                .output()
                .is_ok_and(|o| o.status.success());
            if healthy {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.timeout("etcd endpoint health", timeout));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A flag of a component as recorded (`--key=value`), e.g. etcd's `data-dir`; `name` as for
    /// [`Lab::start_component`].
    pub fn component_flag(&self, name: &str, key: &str) -> Option<String> {
        crate::controlplane::flag(self.state.component(name)?, key)
    }

    /// Waits until the API server (with several control-plane nodes: the load balancer) answers
    /// `/readyz`.
    pub async fn wait_apiserver(&self, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        let client = self.client().await?;
        loop {
            for p in process::recorded(&self.state.dir) {
                if p.name.starts_with("kube-apiserver") || p.name == crate::haproxy::PROCESS {
                    p.ensure_alive()?;
                }
            }
            let req = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("static request");
            if client
                .request_text(req)
                .await
                .is_ok_and(|body| body.trim() == "ok")
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.timeout("kube-apiserver /readyz", timeout));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the load balancer sees every running API server healthy (HA labs).
    pub async fn wait_balanced(&self, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        let running: Vec<String> = process::recorded(&self.state.dir)
            .into_iter()
            .filter(|p| p.alive())
            .filter_map(|p| {
                let c = self.state.component(&p.name)?;
                (c.kind() == "kube-apiserver").then(|| c.node.clone())?
            })
            .collect();
        loop {
            let states = crate::haproxy::server_states(&self.state.dir);
            if let Ok(states) = &states
                && running
                    .iter()
                    .all(|n| states.iter().any(|s| &s.node == n && s.is_up()))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(match states {
                    Err(e) => e.into(),
                    Ok(_) => self.timeout("haproxy to see every API server UP", timeout),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_controllers(
        &self,
        client: &kube::Client,
        timeout: Duration,
    ) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        loop {
            for p in process::recorded(&self.state.dir) {
                if p.name.starts_with("kube-") {
                    p.ensure_alive()?;
                }
            }
            let kcm = leases
                .get_opt("kube-controller-manager")
                .await
                .ok()
                .flatten()
                .is_some();
            let sched = leases
                .get_opt("kube-scheduler")
                .await
                .ok()
                .flatten()
                .is_some();
            let sa = sas.get_opt("default").await.ok().flatten().is_some();
            if kcm && sched && sa {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.timeout(
                    "kube-controller-manager and kube-scheduler leader leases",
                    timeout,
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every running node of the lab is Ready at its configured version.
    pub async fn wait_nodes_ready(
        &self,
        client: &kube::Client,
        timeout: Duration,
    ) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        let nodes: Api<Node> = Api::all(client.clone());
        loop {
            let state = LabState::load(&self.state.dir)?;
            let list = nodes
                .list(&Default::default())
                .await
                .map_err(|source| LabError::Kube {
                    context: "list nodes".into(),
                    source,
                })?;
            let ready = state.nodes.iter().filter(|n| n.running).all(|spec| {
                list.items.iter().any(|node| {
                    node.metadata.name.as_deref() == Some(spec.name.as_str())
                        && crate::api::node_is_ready(node)
                        && node
                            .status
                            .as_ref()
                            .and_then(|s| s.node_info.as_ref())
                            .map(|i| i.kubelet_version.as_str())
                            == Some(spec.kubelet_version.as_str())
                })
            });
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.timeout("all nodes Ready", timeout));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Spawns a shell watchdog that stops the lab's processes when this process exits, so a
    /// test binary never leaves a control plane behind.
    fn spawn_watchdog(&self) -> Result<(), LabError> {
        let me = std::process::id();
        // The pid files are read when this process is gone, not now: a component restarted in
        // between (`kubemaint-lab node upgrade`) has a new pid. `$$` is the watchdog itself.
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; cd '{run}' || exit 0; pids=$(cat ./*.pid 2>/dev/null | while read -r pid _; do [ \"$pid\" = $$ ] || echo \"$pid\"; done); [ -n \"$pids\" ] || exit 0; kill $pids 2>/dev/null; sleep 5; kill -9 $pids 2>/dev/null; rm -f ./*.pid",
            run = process::run_dir(&self.state.dir).display()
        );
        // Recorded like the other processes, so `down` stops the watchdog too.
        process::spawn(
            &self.state.dir,
            "watchdog",
            Path::new("/bin/sh"),
            &["-c".to_string(), script],
        )?;
        Ok(())
    }

    fn timeout(&self, what: &str, timeout: Duration) -> LabError {
        LabError::Timeout {
            what: what.to_string(),
            secs: timeout.as_secs(),
            logs: process::log_dir(&self.state.dir),
        }
    }

    /// Stops the kubelets (in-process ones too) and every process of the lab.
    pub fn down(mut self) -> Vec<String> {
        if let Some(k) = self.kubelet.take() {
            k.stop();
        }
        process::stop_all(&self.state.dir)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(k) = self.kubelet.take() {
            k.stop();
            process::stop_all(&self.state.dir);
        }
    }
}

/// Stops every process recorded in `dir` (for `kubemaint-lab down`).
pub fn down_dir(dir: &Path) -> Vec<String> {
    process::stop_all(dir)
}

/// Starts one etcd member per control-plane node (stacked, as kubeadm does) and waits until
/// each is healthy; the members of a new cluster only answer once a quorum runs, so all are
/// spawned first.
fn start_etcd(
    binaries: &Binaries,
    layout: &Layout,
    version: EtcdVersion,
) -> Result<Vec<Component>, LabError> {
    let mut servers = Vec::new();
    for node in &layout.nodes {
        servers.push(EtcdServer::spawn(
            binaries,
            layout.etcd_options(version, node),
        )?);
    }
    let mut components = Vec::new();
    for (server, node) in servers.into_iter().zip(&layout.nodes) {
        let healthy = server.wait_healthy(Duration::from_secs(30));
        components.push(Component {
            name: layout.process_name("etcd", node),
            program: binaries.etcd(version),
            args: server.args.clone(),
            node: Some(node.name.clone()),
            version: None,
        });
        // The lab owns the process now; `down` stops it by pid file (an error stops all).
        std::mem::forget(server);
        healthy?;
    }
    Ok(components)
}

fn absolute(path: &Path) -> Result<PathBuf, LabError> {
    std::path::absolute(path).map_err(|source| LabError::Io {
        path: path.to_path_buf(),
        source,
    })
}
