//! The ssh executor against real OpenSSH servers (Debian `openssh-server`), one per node, each
//! in a network namespace this test creates and reaches over a veth pair it creates (addresses
//! in 198.18.0.0/15, the benchmarking range; nothing else receives traffic).
//!
//! On every node the session's PATH starts with harmless stand-ins of `apt-get`, `apt-mark`,
//! `kubeadm` and `systemctl` that append their arguments to the node's record file (sshd's
//! `SetEnv`); the generated commands run through `SshExecutor`, and the recorded sequence per
//! node (first control plane, other control plane, worker) is asserted. Also: a failing
//! stand-in stops the node with an error naming node, command, exit status and its stderr; an
//! unknown host key is refused, saying how to add it; a second port (2222) is reached through an
//! ssh config file's Host alias (`--ssh-config`) and through the port option (`--ssh-port`). The namespaces, veths and sshds go away
//! at the end and on panic (a guard). Needs root (network namespaces); fails naming what is
//! missing when `sshd`, `ssh`, `ssh-keygen` or `ip` is not installed.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use kubemaint_cluster::exec::ssh::{SshError, SshExecutor, SshOptions};
use kubemaint_cluster::exec::{ExecContext, ExecError, ExecOutcome, Executor, NodeTarget};
use kubemaint_cluster::exec::{OutputSink, Stream};
use kubemaint_core::upgrade::Version;
use kubemaint_core::upgrade::apply::{NodeJob, Role};
use kubemaint_core::upgrade::node_commands::NodeCommandOptions;

const NODES: [(&str, Role, bool); 3] = [
    ("cp-1", Role::ControlPlane, true),
    ("cp-2", Role::ControlPlane, false),
    ("worker-1", Role::Worker, false),
];

/// The second port every sshd listens on, reached only through `--ssh-config` / `--ssh-port`.
const ALT_PORT: u16 = 2222;

fn require(path: &str, package: &str) {
    let found = if path.starts_with('/') {
        Path::new(path).exists()
    } else {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {path}"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(
        found,
        "{path} is missing: install the Debian package {package} (scripts/install-deps.sh installs it)"
    );
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Everything the test starts; dropped (also on panic) it stops and removes it all.
struct Nodes {
    namespaces: Vec<String>,
    host_veths: Vec<String>,
    sshds: Vec<Child>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.sshds {
            let _ = child.kill();
            let _ = child.wait();
        }
        for veth in &self.host_veths {
            let _ = Command::new("ip").args(["link", "del", veth]).status();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl OutputSink for Log {
    fn command(&self, node: &str, command: &str) {
        self.0.lock().unwrap().push(format!("{node}$ {command}"));
    }
    fn line(&self, node: &str, stream: Stream, line: &str) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{node} {stream:?}: {line}"));
    }
}

const STAND_IN: &str = r#"#!/bin/sh
# Harmless stand-in: records its arguments, prints a line on each stream, changes nothing.
name=$(basename "$0")
echo "$name $*" >> "$KM_NODE_DIR/record"
echo "stand-in $name $*"
if [ -e "$KM_NODE_DIR/fail-$name" ]; then
  echo "E: stand-in $name failed as the test asked" >&2
  exit 1
fi
echo "stand-in $name done" >&2
"#;

fn write_exec(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn keygen(path: &Path) -> String {
    run(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "kubemaint-test",
            "-f",
        ])
        .arg(path));
    fs::read_to_string(path.with_extension("pub")).unwrap()
}

/// Starts one sshd per node in its own network namespace.
fn start_nodes(dir: &Path, host_pub: &str, client_pub: &str) -> (Nodes, Vec<String>) {
    let pid = std::process::id();
    let net = pid % 250;
    let mut nodes = Nodes {
        namespaces: Vec::new(),
        host_veths: Vec::new(),
        sshds: Vec::new(),
    };
    let mut addresses = Vec::new();
    fs::write(dir.join("authorized_keys"), client_pub).unwrap();
    // sshd's privilege separation directory, as Debian's package creates it at boot.
    fs::create_dir_all("/run/sshd").unwrap();
    let mut known_hosts = String::new();
    for (i, (node, _, _)) in NODES.iter().enumerate() {
        let ns = format!("kmssh-{pid}-{i}");
        run(Command::new("ip").args(["netns", "add", &ns]));
        nodes.namespaces.push(ns.clone());
        let host_veth = format!("kms{}h{i}", pid % 100_000);
        let peer = format!("kms{}n{i}", pid % 100_000);
        run(Command::new("ip").args([
            "link", "add", &host_veth, "type", "veth", "peer", "name", &peer, "netns", &ns,
        ]));
        nodes.host_veths.push(host_veth.clone());
        let host_ip = format!("198.18.{net}.{}", 4 * i + 1);
        let node_ip = format!("198.18.{net}.{}", 4 * i + 2);
        run(Command::new("ip").args(["addr", "add", &format!("{host_ip}/30"), "dev", &host_veth]));
        run(Command::new("ip").args(["link", "set", &host_veth, "up"]));
        run(Command::new("ip").args([
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{node_ip}/30"),
            "dev",
            &peer,
        ]));
        run(Command::new("ip").args(["-n", &ns, "link", "set", &peer, "up"]));
        run(Command::new("ip").args(["-n", &ns, "link", "set", "lo", "up"]));

        let node_dir = dir.join(node);
        fs::create_dir_all(&node_dir).unwrap();
        let config = dir.join(format!("sshd_config-{node}"));
        fs::write(
            &config,
            format!(
                "ListenAddress {node_ip}:22\n\
                 ListenAddress {node_ip}:{ALT_PORT}\n\
                 HostKey {host_key}\n\
                 PidFile {pidfile}\n\
                 UsePAM no\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 AuthorizedKeysFile {keys}\n\
                 PermitRootLogin prohibit-password\n\
                 StrictModes no\n\
                 SetEnv PATH={bin}:/usr/sbin:/usr/bin:/sbin:/bin KM_NODE_DIR={node_dir}\n",
                host_key = dir.join("host_key").display(),
                pidfile = dir.join(format!("sshd-{node}.pid")).display(),
                keys = dir.join("authorized_keys").display(),
                bin = dir.join("bin").display(),
                node_dir = node_dir.display(),
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.join(format!("sshd-{node}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        nodes.sshds.push(child);
        known_hosts.push_str(&format!("{node_ip} {host_pub}"));
        addresses.push(node_ip);
    }
    fs::write(dir.join("known_hosts"), known_hosts).unwrap();
    // Ready when each sshd accepts a TCP connection on both ports (polled with a deadline).
    for (i, addr) in addresses
        .iter()
        .enumerate()
        .flat_map(|(i, a)| [(i, format!("{a}:22")), (i, format!("{a}:{ALT_PORT}"))])
    {
        let addr: SocketAddr = addr.parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = nodes.sshds[i].try_wait() {
                panic!(
                    "sshd for {} exited ({status}): {}",
                    NODES[i].0,
                    fs::read_to_string(dir.join(format!("sshd-{}.log", NODES[i].0)))
                        .unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "sshd at {addr} did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    (nodes, addresses)
}

fn record(dir: &Path, node: &str) -> Vec<String> {
    fs::read_to_string(dir.join(node).join("record"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn job(i: usize) -> NodeJob {
    let (node, role, first) = NODES[i];
    NodeJob {
        node: node.into(),
        role,
        version: Version::parse("v1.29.3").unwrap(),
        first,
        kubelet_only: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_executor_runs_the_generated_commands_on_real_sshd_in_network_namespaces() {
    require("/usr/sbin/sshd", "openssh-server");
    require("ssh", "openssh-client");
    require("ssh-keygen", "openssh-client");
    require("ip", "iproute2");
    // SAFETY-free check of root: network namespaces need it.
    let uid = Command::new("id").arg("-u").output().expect("id");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "this test creates network namespaces: run it as root"
    );

    let tmp = tempfile::Builder::new()
        .prefix("kmssh")
        .tempdir_in("/tmp")
        .unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    fs::create_dir_all(dir.join("bin")).unwrap();
    for tool in ["apt-get", "apt-mark", "kubeadm", "systemctl"] {
        write_exec(&dir.join("bin").join(tool), STAND_IN);
    }
    let host_pub = keygen(&dir.join("host_key"));
    let client_pub = keygen(&dir.join("client_key"));
    let apt_source = dir.join("kubernetes.list");
    let line = "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.28/deb/ /\n";
    fs::write(&apt_source, line).unwrap();
    fs::write(dir.join("ssh_config"), "").unwrap();
    fs::create_dir_all(dir.join("ctl")).unwrap();

    let (guard, addresses) = start_nodes(&dir, &host_pub, &client_pub);

    let options = |known_hosts: PathBuf| SshOptions {
        user: Some("root".into()),
        port: None,
        config_file: Some(dir.join("ssh_config")),
        identity: Some(dir.join("client_key")),
        known_hosts: Some(known_hosts),
        control_dir: Some(dir.join("ctl")),
        connect_timeout: Some(Duration::from_secs(10)),
        commands: NodeCommandOptions {
            apt_source: apt_source.display().to_string(),
        },
        script: None,
        // worker-1 is reached through the address map (its target has no InternalIP below).
        addresses: [("worker-1".to_string(), addresses[2].clone())].into(),
    };
    let executor = SshExecutor::new(options(dir.join("known_hosts")));
    let log = Log::default();
    let stop = AtomicBool::new(false);
    let cx = ExecContext {
        log: &log,
        stop: &stop,
    };

    let kubeadm_install = [
        "apt-mark unhold kubeadm",
        "apt-get update",
        "apt-get install -y kubeadm=1.29.3-*",
        "apt-mark hold kubeadm",
    ];
    let kubelet = [
        "apt-mark unhold kubelet kubectl",
        "apt-get update",
        "apt-get install -y kubelet=1.29.3-* kubectl=1.29.3-*",
        "apt-mark hold kubelet kubectl",
        "systemctl daemon-reload",
        "systemctl restart kubelet",
    ];
    let upgrade: [&[&str]; 3] = [
        &[
            "kubeadm upgrade plan v1.29.3",
            "kubeadm upgrade apply v1.29.3 --yes",
        ],
        &["kubeadm upgrade node"],
        &["kubeadm upgrade node"],
    ];
    for i in 0..NODES.len() {
        let target = NodeTarget {
            job: job(i),
            address: (i != 2).then(|| addresses[i].clone()),
        };
        let outcome = executor.run(&target, cx).await;
        assert!(
            matches!(outcome, Ok(ExecOutcome::Completed)),
            "{}: {outcome:?}; sshd log: {}",
            NODES[i].0,
            fs::read_to_string(dir.join(format!("sshd-{}.log", NODES[i].0))).unwrap_or_default()
        );
        let want: Vec<String> = kubeadm_install
            .iter()
            .chain(upgrade[i])
            .chain(kubelet.iter())
            .map(|s| s.to_string())
            .collect();
        assert_eq!(record(&dir, NODES[i].0), want, "{}", NODES[i].0);
    }
    // The repository line moved to the target minor, the rest of it kept.
    assert_eq!(
        fs::read_to_string(&apt_source).unwrap(),
        line.replace("v1.28", "v1.29")
    );
    // Every command and every output line reached the run log, per node; root needs no sudo.
    let lines = log.0.lock().unwrap().clone();
    for want in [
        "cp-1$ kubeadm upgrade apply v1.29.3 --yes",
        "cp-1 Stdout: stand-in kubeadm upgrade apply v1.29.3 --yes",
        "cp-1 Stderr: stand-in kubeadm done",
        "cp-2$ kubeadm upgrade node",
        "worker-1$ systemctl restart kubelet",
        "worker-1 Stdout: stand-in systemctl restart kubelet",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "{want:?} not in the log: {lines:#?}"
        );
    }
    assert!(!lines.iter().any(|l| l.contains("sudo")), "{lines:#?}");

    // A failing stand-in stops the node at that command, named with its status and stderr.
    fs::remove_file(dir.join("worker-1").join("record")).unwrap();
    fs::write(dir.join("worker-1").join("fail-apt-get"), "").unwrap();
    let target = NodeTarget {
        job: job(2),
        address: Some(addresses[2].clone()),
    };
    let err = executor.run(&target, cx).await.expect_err("apt-get fails");
    match &err {
        ExecError::Failed {
            node,
            command,
            status,
            tail,
        } => {
            assert_eq!(node, "worker-1");
            assert_eq!(command, "apt-get update");
            assert_eq!(status, "exit status 1");
            assert!(
                tail.iter()
                    .any(|l| l == "E: stand-in apt-get failed as the test asked"),
                "{tail:?}"
            );
        }
        other => panic!("expected a failed command, got {other:?}"),
    }
    let message = err.to_string();
    for part in [
        "`apt-get update` failed on worker-1",
        "exit status 1",
        "E: stand-in apt-get failed",
    ] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
    assert_eq!(
        record(&dir, "worker-1"),
        ["apt-mark unhold kubeadm", "apt-get update"],
        "nothing runs after the failure"
    );

    // An unknown host key is refused before anything runs, saying how to add it.
    fs::write(dir.join("empty_known_hosts"), "").unwrap();
    fs::remove_file(dir.join("cp-1").join("record")).unwrap();
    let strict = SshExecutor::new(options(dir.join("empty_known_hosts")));
    let target = NodeTarget {
        job: job(0),
        address: Some(addresses[0].clone()),
    };
    let err = strict.run(&target, cx).await.expect_err("unknown host key");
    let ExecError::Connect { node, source, .. } = &err else {
        panic!("expected a connect error, got {err:?}");
    };
    assert_eq!(node, "cp-1");
    let ssh = source
        .downcast_ref::<SshError>()
        .unwrap_or_else(|| panic!("source is not an SshError: {source:?}"));
    assert!(matches!(ssh, SshError::UnknownHostKey { .. }), "{ssh:?}");
    let text = ssh.to_string();
    assert!(
        text.contains(&format!("ssh-keyscan {}", addresses[0])),
        "{text}"
    );
    assert!(text.contains("Host key verification failed"), "{text}");
    assert!(
        record(&dir, "cp-1").is_empty(),
        "nothing ran on an unknown host"
    );

    // No InternalIP and not in the address map: refused, naming the node.
    let target = NodeTarget {
        job: job(1),
        address: None,
    };
    let err = executor.run(&target, cx).await.expect_err("no address");
    assert!(
        matches!(&err, ExecError::NoAddress { node } if node == "cp-2"),
        "{err:?}"
    );

    // A non-default port through an ssh config file (`--ssh-config`, ssh -F): the address map
    // names a Host alias whose block gives HostName and Port. The known_hosts file has the
    // host key only for [address]:2222, so a connection to port 22 would be refused: the
    // commands running proves port 2222 was used.
    fs::remove_file(dir.join("worker-1").join("fail-apt-get")).unwrap();
    fs::remove_file(dir.join("worker-1").join("record")).unwrap();
    fs::write(
        dir.join("ssh_config_alt"),
        format!(
            "Host w1-alt\n  HostName {}\n  Port {ALT_PORT}\n",
            addresses[2]
        ),
    )
    .unwrap();
    fs::write(
        dir.join("known_hosts_alt"),
        format!("[{}]:{ALT_PORT} {host_pub}", addresses[2]),
    )
    .unwrap();
    let worker_all: Vec<String> = kubeadm_install
        .iter()
        .chain(upgrade[2])
        .chain(kubelet.iter())
        .map(|s| s.to_string())
        .collect();
    let via_config = SshExecutor::new(SshOptions {
        config_file: Some(dir.join("ssh_config_alt")),
        addresses: [("worker-1".to_string(), "w1-alt".to_string())].into(),
        ..options(dir.join("known_hosts_alt"))
    });
    let target = NodeTarget {
        job: job(2),
        address: Some(addresses[2].clone()),
    };
    assert_eq!(
        via_config.via(&target).unwrap(),
        format!(
            "ssh -F {} -i {} root@w1-alt",
            dir.join("ssh_config_alt").display(),
            dir.join("client_key").display()
        )
    );
    let outcome = via_config.run(&target, cx).await;
    assert!(
        matches!(outcome, Ok(ExecOutcome::Completed)),
        "through the ssh config's port {ALT_PORT}: {outcome:?}"
    );
    assert_eq!(record(&dir, "worker-1"), worker_all);
    // The same port as a flag (`--ssh-port`, ssh -p), the config file empty.
    fs::remove_file(dir.join("worker-1").join("record")).unwrap();
    let via_flag = SshExecutor::new(SshOptions {
        port: Some(ALT_PORT),
        ..options(dir.join("known_hosts_alt"))
    });
    let outcome = via_flag.run(&target, cx).await;
    assert!(
        matches!(outcome, Ok(ExecOutcome::Completed)),
        "through --ssh-port {ALT_PORT}: {outcome:?}"
    );
    assert_eq!(record(&dir, "worker-1"), worker_all);
    // Control: the default port with that known_hosts file is refused (the key is only known
    // for port 2222), and nothing runs.
    fs::remove_file(dir.join("worker-1").join("record")).unwrap();
    let default_port = SshExecutor::new(options(dir.join("known_hosts_alt")));
    let err = default_port
        .run(&target, cx)
        .await
        .expect_err("port 22's key is not known");
    assert!(
        matches!(&err, ExecError::Connect { source, .. }
            if matches!(source.downcast_ref::<SshError>(), Some(SshError::UnknownHostKey { .. }))),
        "{err:?}"
    );
    assert!(record(&dir, "worker-1").is_empty());

    drop(guard);
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&left.stdout).contains(&format!("kmssh-{}-", std::process::id())),
        "network namespaces left behind"
    );
}
