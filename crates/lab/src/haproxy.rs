//! The load balancer in front of an HA lab's API servers: Debian's `haproxy`, set up as kubeadm's
//! high-availability guide sets it up (kubernetes/kubeadm `docs/ha-considerations.md`, "haproxy
//! configuration"): a TCP frontend on the control-plane endpoint, round robin over every
//! kube-apiserver, each health-checked with `GET /healthz` expecting 200.
//!
//! One difference from the guide: its backend has `option httpchk` followed by
//! `option ssl-hello-chk`, and haproxy keeps only the last check option, so the guide's check is
//! a bare TLS hello. Here the HTTP check runs over TLS (`check-ssl`, verified with the lab's CA),
//! so an API server whose `/healthz` fails (its etcd member gone, say) really leaves the rotation.
//! Checks run every second and two failures take a server out, so tests see it quickly.
//!
//! `status` asks haproxy itself which servers it sees up, over its admin socket (`show stat`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::state::Component;

/// The process name of the load balancer.
pub const PROCESS: &str = "haproxy";

/// Errors about the load balancer.
#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    /// haproxy is not installed.
    #[error(
        "haproxy is missing (looked for {0}): an HA lab (--control-planes > 1) puts Debian's haproxy in front of its API servers; install it with `apt-get install haproxy` (scripts/install-deps.sh does)"
    )]
    Missing(PathBuf),
    /// The configuration was refused.
    #[error("haproxy refused the lab's configuration {path}:\n{output}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What `haproxy -c` said.
        output: String,
    },
    /// Writing the configuration or running haproxy failed.
    #[error("cannot write or check {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The admin socket did not answer.
    #[error(
        "cannot ask haproxy for its servers' states on {socket}: is it running (`kubemaint-lab status`)?"
    )]
    Socket {
        /// The socket.
        socket: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// One API server behind the load balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Its node (`cp-1`), haproxy's server name.
    pub node: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// The haproxy program: `haproxy` on `PATH`, else `/usr/sbin/haproxy` (Debian's place, not on
/// a normal user's `PATH`).
pub fn program() -> Result<PathBuf, HaproxyError> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("haproxy"))
            .find(|p| p.is_file())
    });
    let path = on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/haproxy"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(HaproxyError::Missing(path))
    }
}

/// `DIR/haproxy.cfg`.
pub fn config_path(dir: &Path) -> PathBuf {
    dir.join("haproxy.cfg")
}

/// `DIR/run/haproxy.sock`, the admin socket.
pub fn socket_path(dir: &Path) -> PathBuf {
    crate::process::run_dir(dir).join("haproxy.sock")
}

/// The configuration: frontend on `127.0.0.1:port`, every backend health-checked on `/healthz`.
pub fn render(dir: &Path, port: u16, backends: &[Backend]) -> String {
    let ca = dir.join("pki").join("ca.crt");
    let mut cfg = format!(
        "# kubemaint-lab: the control-plane endpoint of an HA lab (kubeadm docs/ha-considerations.md)
global
    stats socket {socket} mode 600 level admin
    maxconn 2000

defaults
    mode tcp
    option redispatch
    retries 1
    timeout connect 5s
    # API watches stay open for minutes: cut idle ones late (clients re-watch anyway).
    timeout client 10m
    timeout server 10m
    timeout check 2s

frontend apiserver
    bind 127.0.0.1:{port}
    default_backend apiserverbackend

backend apiserverbackend
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 1s fall 2 rise 2 check check-ssl verify required ca-file {ca}
",
        socket = socket_path(dir).display(),
        ca = ca.display(),
    );
    for b in backends {
        cfg.push_str(&format!("    server {} 127.0.0.1:{}\n", b.node, b.port));
    }
    cfg
}

/// Writes `DIR/haproxy.cfg`, has haproxy check it (`-c`), and returns the component that runs it
/// in the foreground (`-db`), recorded like the other processes so `down` stops it.
pub fn prepare(dir: &Path, port: u16, backends: &[Backend]) -> Result<Component, HaproxyError> {
    let program = program()?;
    let path = config_path(dir);
    let io = |source| HaproxyError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(crate::process::run_dir(dir)).map_err(io)?;
    std::fs::write(&path, render(dir, port, backends)).map_err(io)?;
    let out = std::process::Command::new(&program)
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .map_err(io)?;
    if !out.status.success() {
        return Err(HaproxyError::Config {
            path,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(Component {
        name: PROCESS.into(),
        program,
        args: vec!["-db".into(), "-f".into(), path.display().to_string()],
        node: None,
        version: None,
    })
}

/// What haproxy says of one API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    /// haproxy's server name: the node.
    pub node: String,
    /// haproxy's status column: `UP`, `DOWN`, `UP 1/2` (going down), `DOWN 1/2` (coming up), ...
    pub status: String,
    /// The last health check's result as haproxy words it (`L7OK`, `L4CON`, `L7STS`, ...).
    pub check: String,
}

impl ServerState {
    /// True while haproxy sends it traffic.
    pub fn is_up(&self) -> bool {
        self.status.starts_with("UP")
    }
}

/// Asks haproxy (admin socket, `show stat`) for the state of every API server it balances.
pub fn server_states(dir: &Path) -> Result<Vec<ServerState>, HaproxyError> {
    let socket = socket_path(dir);
    let err = |source| HaproxyError::Socket {
        socket: socket.clone(),
        source,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).map_err(err)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(err)?;
    stream.write_all(b"show stat\n").map_err(err)?;
    let mut text = String::new();
    stream.read_to_string(&mut text).map_err(err)?;
    Ok(parse_stat(&text))
}

/// Parses `show stat` CSV: the backend's server rows (not the FRONTEND/BACKEND summary rows).
fn parse_stat(text: &str) -> Vec<ServerState> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let col = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(status), check) = (
        col("pxname"),
        col("svname"),
        col("status"),
        col("check_status"),
    ) else {
        return Vec::new();
    };
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.get(px) == Some(&"apiserverbackend"))
        .filter(|f| !matches!(f.get(sv), Some(&"BACKEND") | Some(&"FRONTEND") | None))
        .map(|f| ServerState {
            node: f[sv].to_string(),
            status: f.get(status).unwrap_or(&"").to_string(),
            check: check.and_then(|c| f.get(c)).unwrap_or(&"").to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_checks_every_apiserver_on_healthz_over_tls() {
        let backends = [
            Backend {
                node: "cp-1".into(),
                port: 7001,
            },
            Backend {
                node: "cp-2".into(),
                port: 7002,
            },
        ];
        let cfg = render(Path::new("/lab"), 6443, &backends);
        assert!(cfg.contains("bind 127.0.0.1:6443"));
        assert!(cfg.contains("option httpchk GET /healthz"));
        assert!(cfg.contains("http-check expect status 200"));
        assert!(cfg.contains("check check-ssl verify required ca-file /lab/pki/ca.crt"));
        assert!(
            !cfg.contains("ssl-hello-chk"),
            "it would replace the HTTP check"
        );
        assert!(cfg.contains("server cp-1 127.0.0.1:7001\n"));
        assert!(cfg.contains("server cp-2 127.0.0.1:7002\n"));
        assert!(cfg.contains("stats socket /lab/run/haproxy.sock"));
    }

    #[test]
    fn show_stat_rows_of_the_servers_only() {
        let text = "# pxname,svname,qcur,status,weight,check_status,\n\
            apiserver,FRONTEND,,OPEN,,,\n\
            apiserverbackend,cp-1,0,UP,1,L7OK,\n\
            apiserverbackend,cp-2,0,DOWN,1,L4CON,\n\
            apiserverbackend,cp-3,0,UP 1/2,1,L7STS,\n\
            apiserverbackend,BACKEND,0,UP,2,,\n\n";
        let got = parse_stat(text);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].node, "cp-1");
        assert!(got[0].is_up());
        assert_eq!(got[1].check, "L4CON");
        assert!(!got[1].is_up());
        assert!(got[2].is_up(), "UP 1/2 still takes traffic");
    }
}
