//! Background processes the lab starts: logs and pid files under the lab directory, and a stop
//! that kills exactly what was started (pid *and* start time must match, so a recycled pid is
//! never killed).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Errors while starting or stopping lab processes.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started.
    #[error("cannot start {name} ({program})")]
    Spawn {
        /// The lab's name for the process.
        name: String,
        /// The program path.
        program: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A lab file could not be written or read.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The process died right after starting.
    #[error("{name} exited during startup; last lines of {log}:\n{tail}")]
    Died {
        /// The lab's name for the process.
        name: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
}

/// A process started by the lab.
#[derive(Debug, Clone)]
pub struct Managed {
    /// The lab's name for it (`etcd`, `kube-apiserver`, ...); also its log and pid file name.
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// Its start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
    pub start_time: u64,
    /// Its log file.
    pub log: PathBuf,
}

/// The `run/` directory with pid files.
pub fn run_dir(lab: &Path) -> PathBuf {
    lab.join("run")
}

/// The `logs/` directory.
pub fn log_dir(lab: &Path) -> PathBuf {
    lab.join("logs")
}

/// Starts `program args` in its own process group (so a terminal's Ctrl-C does not reach it),
/// stdout/stderr to `LAB/logs/NAME.log`, and records `LAB/run/NAME.pid`.
pub fn spawn(
    lab: &Path,
    name: &str,
    program: &Path,
    args: &[String],
) -> Result<Managed, ProcessError> {
    use std::os::unix::process::CommandExt;
    let io = |path: PathBuf| {
        move |source| ProcessError::Io {
            path: path.clone(),
            source,
        }
    };
    std::fs::create_dir_all(log_dir(lab)).map_err(io(log_dir(lab)))?;
    std::fs::create_dir_all(run_dir(lab)).map_err(io(run_dir(lab)))?;
    let log = log_dir(lab).join(format!("{name}.log"));
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(io(log.clone()))?;
    let err = out.try_clone().map_err(io(log.clone()))?;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|source| ProcessError::Spawn {
            name: name.to_string(),
            program: program.to_path_buf(),
            source,
        })?;
    let pid = child.id();
    // The child is reaped by whoever outlives it (init, once `up` exits); dropping the handle
    // does not kill it.
    drop(child);
    let start_time = start_time(pid).unwrap_or(0);
    let pid_file = run_dir(lab).join(format!("{name}.pid"));
    std::fs::write(&pid_file, format!("{pid} {start_time}\n")).map_err(io(pid_file))?;
    Ok(Managed {
        name: name.to_string(),
        pid,
        start_time,
        log,
    })
}

impl Managed {
    /// True while the process runs (a zombie counts as gone).
    pub fn alive(&self) -> bool {
        alive(self.pid, self.start_time)
    }

    /// Fails with the log's tail if the process has exited.
    pub fn ensure_alive(&self) -> Result<(), ProcessError> {
        if self.alive() {
            Ok(())
        } else {
            Err(ProcessError::Died {
                name: self.name.clone(),
                log: self.log.clone(),
                tail: tail(&self.log, 15),
            })
        }
    }
}

/// Reads the pid files under `LAB/run`.
pub fn recorded(lab: &Path) -> Vec<Managed> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(run_dir(lab)) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("pid") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut parts = text.split_whitespace();
        let (Some(Ok(pid)), Some(Ok(start))) =
            (parts.next().map(str::parse), parts.next().map(str::parse))
        else {
            continue;
        };
        out.push(Managed {
            log: log_dir(lab).join(format!("{name}.log")),
            name,
            pid,
            start_time: start,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Stops one recorded process: SIGTERM, then SIGKILL after `grace`; removes its pid file.
/// Returns `false` if it needed the SIGKILL.
pub fn stop(lab: &Path, process: &Managed, grace: Duration) -> bool {
    let mut graceful = true;
    if process.alive() {
        let _ = kill(Pid::from_raw(process.pid as i32), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while process.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if process.alive() {
            graceful = false;
            let _ = kill(Pid::from_raw(process.pid as i32), Signal::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(5);
            while process.alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let _ = std::fs::remove_file(run_dir(lab).join(format!("{}.pid", process.name)));
    graceful
}

/// Stops every recorded process of the lab, in reverse dependency order, and returns their names.
pub fn stop_all(lab: &Path) -> Vec<String> {
    // Kubelets and clients first, etcd last, as a real node would shut down.
    // Names may carry a node (`kube-apiserver-cp-2`); the load balancer goes with the API servers.
    let rank = |name: &str| match name {
        "watchdog" => 0,
        n if n.starts_with("kubelet") => 0,
        n if n.starts_with("kube-scheduler") || n.starts_with("kube-controller-manager") => 1,
        n if n.starts_with("kube-apiserver") || n == "haproxy" => 2,
        _ => 3,
    };
    let mut procs = recorded(lab);
    procs.sort_by_key(|p| rank(&p.name));
    let mut stopped = Vec::new();
    for p in procs {
        if p.alive() {
            stopped.push(p.name.clone());
        }
        stop(lab, &p, Duration::from_secs(10));
    }
    stopped
}

/// True if `pid` runs and started at `start_time` (0 = unknown start time: pid only).
pub fn alive(pid: u32, start_time: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name (field 2) may contain spaces; fields after the closing paren are fixed.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return false;
    }
    start_time == 0 || fields.get(19).and_then(|s| s.parse::<u64>().ok()) == Some(start_time)
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The last `n` lines of a log file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A free TCP port on 127.0.0.1, never one this process handed out before, and outside the
/// kernel's ephemeral range.
///
/// A port is bound and released, and its user binds it a moment later (a controller-manager:
/// tens of seconds later, once the API servers are up); remembering every port given out keeps
/// two allocations in one process (two labs in one test binary, or a peer and a client port
/// asked for separately) from ever getting the same number. The kernel's own pick (`bind` to
/// port 0) comes from the ephemeral range, which every outgoing connection on the machine draws
/// its local port from too; one taking the port in between made the component fail with
/// "bind: address already in use" (seen under load). So ports come from [`listen_range`], from
/// a start that differs per process and call, each checked by binding it.
pub fn free_port() -> std::io::Result<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let (low, high) = listen_range(ephemeral_range());
    let span = u32::from(high - low) + 1;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default()
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for step in 0..span {
        let port = low + ((seed.wrapping_add(step)) % span) as u16;
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no free port on 127.0.0.1 between {low} and {high}"),
    ))
}

/// The kernel's ephemeral port range (`/proc/sys/net/ipv4/ip_local_port_range`; Linux's default
/// 32768-60999 when it cannot be read).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(|p| p.parse::<u16>());
            match (parts.next(), parts.next()) {
                (Some(Ok(low)), Some(Ok(high))) if low <= high => Some((low, high)),
                _ => None,
            }
        })
        .unwrap_or((32768, 60999))
}

/// Where the lab's listening ports are picked, given the ephemeral range: below it from 10000
/// (at least 1000 ports), else above it, else (a range covering nearly everything) 10000-65535
/// as the lesser evil.
fn listen_range((low, high): (u16, u16)) -> (u16, u16) {
    if low >= 11_000 {
        (10_000, low - 1)
    } else if high <= 64_535 {
        (high + 1, 65_535)
    } else {
        (10_000, 65_535)
    }
}

/// `n` distinct free ports (see [`free_port`]).
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    (0..n).map(|_| free_port()).collect()
}

/// Removes the `ETCDCTL_*` variables of the caller's environment from `cmd`: etcdctl exits with
/// "conflicting environment variable ... is shadowed by corresponding command-line flag" when a
/// flag it is given is also set in its environment.
pub fn strip_etcdctl_env(cmd: &mut std::process::Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ETCDCTL_") {
            cmd.env_remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_ports_stay_out_of_the_ephemeral_range() {
        // (ephemeral range, where listening ports are picked)
        for (ephemeral, listen) in [
            ((32768, 60999), (10_000, 32767)),
            ((49152, 65535), (10_000, 49151)),
            ((1024, 40000), (40001, 65535)),
            ((1024, 65535), (10_000, 65535)),
        ] {
            assert_eq!(listen_range(ephemeral), listen, "{ephemeral:?}");
        }
        let (low, high) = ephemeral_range();
        let ports = free_ports(50).unwrap();
        for port in &ports {
            assert!(
                *port < low || *port > high,
                "{port} is in the ephemeral range {low}-{high}"
            );
        }
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "a port handed out twice");
    }
}
