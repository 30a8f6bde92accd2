//! A drain's flags are checked before any request: a bad value is a usage error (exit 2) and
//! the cluster never hears from kubemaint. The "cluster" here is a TCP listener that counts the
//! connections it is offered; a valid command against it is the control (it does connect).

use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A listener that accepts and drops connections, counting them.
struct Listener {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Listener {
    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        let port = l.local_addr().expect("local addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                count.fetch_add(1, Ordering::SeqCst);
                drop(conn);
            }
        });
        Listener { port, accepted }
    }
}

fn kubemaint(dir: &std::path::Path, port: u16, args: &[&str]) -> Output {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        ),
    )
    .expect("write kubeconfig");
    Command::new(env!("CARGO_BIN_EXE_kubemaint"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(args)
        .output()
        .expect("run kubemaint")
}

#[test]
fn bad_drain_flags_are_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let listener = Listener::start();
    let cases: &[(&[&str], &str)] = &[
        (
            &["drain", "worker-1", "--max-concurrent-evictions", "0"],
            "--max-concurrent-evictions must be at least 1",
        ),
        (
            &["drain", "worker-1", "--eviction-retry-delay", "0s"],
            "--eviction-retry-delay must be more than 0",
        ),
        (
            &["drain", "worker-1", "-l", "pool=blue"],
            "cannot specify both a node name and a --selector option",
        ),
        (
            &["drain"],
            "give at least one NODE name or a --selector (-l) label selector",
        ),
        (&["cordon"], "give at least one NODE name or a --selector"),
    ];
    for (args, message) in cases {
        let out = kubemaint(dir.path(), listener.port, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert_eq!(
            listener.accepted.load(Ordering::SeqCst),
            0,
            "{args:?} connected to the cluster before refusing its flags"
        );
    }
    // Control: a valid drain does go to the cluster (and fails there: nothing answers TLS).
    let out = kubemaint(dir.path(), listener.port, &["drain", "worker-1"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(listener.accepted.load(Ordering::SeqCst) > 0);
}

#[test]
fn dry_run_takes_only_kubectls_values() {
    let dir = tempfile::tempdir().unwrap();
    let listener = Listener::start();
    let out = kubemaint(
        dir.path(),
        listener.port,
        &["drain", "worker-1", "--dry-run", "sometimes"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("[possible values: none, client, server]"),
        "{stderr}"
    );
    assert_eq!(listener.accepted.load(Ordering::SeqCst), 0);
}
