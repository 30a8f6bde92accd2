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
use crate::error::LabError;
use crate::etcd::{EtcdOptions, EtcdServer};
use crate::pki::Pki;
use crate::process;
use crate::state::{Component, LabState, NodeSpec, SimSettings};

/// Audit only the requests of people and tools (kubectl, kubemaint): one `Metadata` event per
/// request in `DIR/logs/audit.log`, with the user agent, so benchmarks can count API requests.
/// Control-plane components and the simulated kubelets are left out.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: None
  users: [lab-kubelet, system:kube-controller-manager, system:kube-scheduler, system:apiserver, system:kube-proxy]
- level: None
  userGroups: [system:serviceaccounts, system:nodes]
- level: Metadata
";

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

        let mut etcd_opts = EtcdOptions::new(opts.etcd_version, &dir);
        etcd_opts.name = "cp-1".to_string();
        let etcd = EtcdServer::start(&binaries, etcd_opts)?;
        let etcd_component = Component {
            name: "etcd".into(),
            program: binaries.etcd(opts.etcd_version),
            args: etcd.args.clone(),
            node: Some("cp-1".into()),
        };
        let etcd_url = etcd.client_url.clone();
        std::mem::forget(etcd); // the lab owns the process now; `down` stops it by pid file

        let ports = process::free_ports(3).map_err(|source| LabError::Io {
            path: dir.clone(),
            source,
        })?;
        let apiserver_url = format!("https://127.0.0.1:{}", ports[0]);
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
            "controller-manager.conf",
            "system:kube-controller-manager",
            &creds.controller_manager,
        )?;
        write_conf("scheduler.conf", "system:kube-scheduler", &creds.scheduler)?;
        write_conf("kubelet.conf", crate::pki::KUBELET_USER, &creds.kubelet)?;
        let audit_policy = dir.join("audit-policy.yaml");
        std::fs::write(&audit_policy, AUDIT_POLICY).map_err(|source| LabError::Io {
            path: audit_policy.clone(),
            source,
        })?;

        let p = |rel: &str| pki.path(rel).display().to_string();
        let apiserver = Component {
            name: "kube-apiserver".into(),
            program: binaries.kube_at(&kube_version, "kube-apiserver"),
            node: Some("cp-1".into()),
            args: vec![
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", ports[0]),
                "--insecure-port=0".into(),
                // Endpoints may not hold a loopback address; this documentation address is never dialled.
                "--advertise-address=192.0.2.10".into(),
                "--allow-privileged=true".into(),
                "--authorization-mode=Node,RBAC".into(),
                format!("--client-ca-file={}", p("ca.crt")),
                "--enable-admission-plugins=NodeRestriction".into(),
                "--enable-bootstrap-token-auth=true".into(),
                format!("--etcd-cafile={}", p("etcd/ca.crt")),
                format!("--etcd-certfile={}", p("apiserver-etcd-client.crt")),
                format!("--etcd-keyfile={}", p("apiserver-etcd-client.key")),
                format!("--etcd-servers={etcd_url}"),
                format!(
                    "--kubelet-client-certificate={}",
                    p("apiserver-kubelet-client.crt")
                ),
                format!("--kubelet-client-key={}", p("apiserver-kubelet-client.key")),
                format!("--proxy-client-cert-file={}", p("front-proxy-client.crt")),
                format!("--proxy-client-key-file={}", p("front-proxy-client.key")),
                "--requestheader-allowed-names=front-proxy-client".into(),
                format!("--requestheader-client-ca-file={}", p("front-proxy-ca.crt")),
                "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
                "--requestheader-group-headers=X-Remote-Group".into(),
                "--requestheader-username-headers=X-Remote-User".into(),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!("--service-account-key-file={}", p("sa.pub")),
                format!("--service-account-signing-key-file={}", p("sa.key")),
                "--service-cluster-ip-range=10.96.0.0/12".into(),
                format!("--tls-cert-file={}", p("apiserver.crt")),
                format!("--tls-private-key-file={}", p("apiserver.key")),
                format!("--audit-policy-file={}", audit_policy.display()),
                format!(
                    "--audit-log-path={}",
                    process::log_dir(&dir).join("audit.log").display()
                ),
                "--audit-log-maxsize=200".into(),
            ],
        };
        let conf = |f: &str| dir.join(f).display().to_string();
        let controller_manager = Component {
            name: "kube-controller-manager".into(),
            program: binaries.kube_at(&kube_version, "kube-controller-manager"),
            node: Some("cp-1".into()),
            args: vec![
                format!("--kubeconfig={}", conf("controller-manager.conf")),
                format!(
                    "--authentication-kubeconfig={}",
                    conf("controller-manager.conf")
                ),
                format!(
                    "--authorization-kubeconfig={}",
                    conf("controller-manager.conf")
                ),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", ports[1]),
                "--port=0".into(),
                format!("--client-ca-file={}", p("ca.crt")),
                "--cluster-name=kubernetes".into(),
                format!("--cluster-signing-cert-file={}", p("ca.crt")),
                format!("--cluster-signing-key-file={}", p("ca.key")),
                "--controllers=*,bootstrapsigner,tokencleaner".into(),
                "--leader-elect=true".into(),
                format!("--requestheader-client-ca-file={}", p("front-proxy-ca.crt")),
                format!("--root-ca-file={}", p("ca.crt")),
                format!("--service-account-private-key-file={}", p("sa.key")),
                "--use-service-account-credentials=true".into(),
                // Faster than the defaults (5 s / 40 s) so a stopped kubelet shows NotReady quickly.
                "--node-monitor-period=2s".into(),
                "--node-monitor-grace-period=16s".into(),
                "--kube-api-qps=100".into(),
                "--kube-api-burst=200".into(),
            ],
        };
        let scheduler = Component {
            name: "kube-scheduler".into(),
            program: binaries.kube_at(&kube_version, "kube-scheduler"),
            node: Some("cp-1".into()),
            args: vec![
                format!("--kubeconfig={}", conf("scheduler.conf")),
                format!("--authentication-kubeconfig={}", conf("scheduler.conf")),
                format!("--authorization-kubeconfig={}", conf("scheduler.conf")),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", ports[2]),
                "--port=0".into(),
                "--leader-elect=true".into(),
                "--kube-api-qps=100".into(),
                "--kube-api-burst=200".into(),
            ],
        };

        let mut nodes = Vec::new();
        for i in 1..=opts.control_planes {
            nodes.push(NodeSpec {
                name: format!("cp-{i}"),
                control_plane: true,
                kubelet_version: opts.kubelet_version.clone(),
                control_plane_version: Some(kube_version.clone()),
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
            etcd_url,
            etcd_version: opts.etcd_version.as_str().to_string(),
            kube_version,
            components: vec![etcd_component, apiserver, controller_manager, scheduler],
            nodes,
            sim: opts.sim.clone(),
        };
        state.save()?;

        let mut lab = Lab {
            state,
            kubelet: None,
        };
        for name in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            lab.start_component(name)?;
            if name == "kube-apiserver" {
                lab.wait_apiserver(Duration::from_secs(60)).await?;
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

    /// (Re)starts a component by name with its recorded flags.
    pub fn start_component(&self, name: &str) -> Result<process::Managed, LabError> {
        let component = self
            .state
            .components
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| LabError::Invalid(format!("no component {name:?}")))?;
        Ok(process::spawn(
            &self.state.dir,
            &component.name,
            &component.program,
            &component.args,
        )?)
    }

    /// Stops a component by name (SIGTERM, then SIGKILL).
    pub fn stop_component(&self, name: &str) {
        for p in process::recorded(&self.state.dir)
            .into_iter()
            .filter(|p| p.name == name)
        {
            process::stop(&self.state.dir, &p, Duration::from_secs(10));
        }
    }

    /// Replaces a component's flag `--key=...` (e.g. etcd's `--data-dir` after a restore) and saves the state.
    pub fn set_component_flag(
        &mut self,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), LabError> {
        let component = self
            .state
            .components
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| LabError::Invalid(format!("no component {name:?}")))?;
        let prefix = format!("--{key}=");
        component.args.retain(|a| !a.starts_with(&prefix));
        component.args.push(format!("{prefix}{value}"));
        Ok(self.state.save()?)
    }

    /// The lab's own `etcdctl` (same version as its etcd), with endpoint and client certs preset.
    pub fn etcdctl(&self) -> Result<std::process::Command, LabError> {
        let binaries = Binaries::locate()?;
        let version = if self.state.etcd_version == EtcdVersion::V3_5.as_str() {
            EtcdVersion::V3_5
        } else {
            EtcdVersion::V3_4
        };
        let pki = Pki::at(self.state.dir.join("pki"));
        let (cert, key) = pki.etcd_healthcheck_client();
        let mut cmd = std::process::Command::new(binaries.etcdctl(version));
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.state.etcd_url))
            .arg(format!("--cacert={}", pki.etcd_ca().display()))
            .arg(format!("--cert={}", cert.display()))
            .arg(format!("--key={}", key.display()));
        Ok(cmd)
    }

    /// Waits until `etcdctl endpoint health` succeeds (after restarting etcd, say).
    pub async fn wait_etcd(&self, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = process::recorded(&self.state.dir)
                .into_iter()
                .find(|p| p.name == "etcd")
            {
                p.ensure_alive()?;
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

    /// A flag of a component as recorded (`--key=value`), e.g. etcd's `data-dir`.
    pub fn component_flag(&self, name: &str, key: &str) -> Option<String> {
        let prefix = format!("--{key}=");
        self.state
            .components
            .iter()
            .find(|c| c.name == name)?
            .args
            .iter()
            .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
    }

    /// Waits until the API server answers `/readyz`.
    pub async fn wait_apiserver(&self, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        let client = self.client().await?;
        loop {
            if let Some(p) = process::recorded(&self.state.dir)
                .into_iter()
                .find(|p| p.name == "kube-apiserver")
            {
                p.ensure_alive()?;
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
        let pids: Vec<String> = process::recorded(&self.state.dir)
            .iter()
            .map(|p| p.pid.to_string())
            .collect();
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill {pids} 2>/dev/null; sleep 5; kill -9 {pids} 2>/dev/null; rm -f '{run}'/*.pid",
            pids = pids.join(" "),
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

fn absolute(path: &Path) -> Result<PathBuf, LabError> {
    std::path::absolute(path).map_err(|source| LabError::Io {
        path: path.to_path_buf(),
        source,
    })
}
