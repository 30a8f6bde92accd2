//! The binary as a user meets it, without a cluster: flag parsing (durations as kubectl reads
//! them, compared with the real kubectl 1.27), usage errors before any client is built,
//! error reports that say each thing once, exit codes, shell completion and the kubectl plugin.

use std::path::Path;
use std::process::{Command, Output};

use kubemaint_lab::testing::KUBECTL_1_27;

/// Runs kubemaint with a clean environment (no `$KUBECONFIG`, no `ETCDCTL_*`) plus `env`.
fn kubemaint(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubemaint"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    if let Some(home) = std::env::var_os("HOME") {
        cmd.env("HOME", home);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run kubemaint");
    eprintln!(
        "kubemaint {args:?} -> {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn kubectl_1_27() -> &'static str {
    assert!(
        Path::new(KUBECTL_1_27).exists(),
        "{KUBECTL_1_27} is missing: the machine image's kubectl package provides it"
    );
    KUBECTL_1_27
}

/// Whether a drain `--timeout` value gets past flag parsing (the next fault is the missing
/// kubeconfig) or is refused as a bad flag value.
fn kubemaint_takes_timeout(value: &str) -> bool {
    let out = kubemaint(
        &["drain", "node-1", &format!("--timeout={value}")],
        &[("KUBECONFIG", "/nonexistent/kubeconfig")],
    );
    let text = stderr(&out);
    let refused = text.contains("--timeout");
    assert!(
        refused || text.contains("kubeconfig"),
        "neither a flag error nor the kubeconfig: {text}"
    );
    !refused
}

fn kubectl_takes_timeout(value: &str) -> bool {
    let out = Command::new(kubectl_1_27())
        .args(["drain", "node-1", &format!("--timeout={value}")])
        .args(["--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .expect("run kubectl");
    let text = String::from_utf8_lossy(&out.stderr);
    !text.contains("invalid argument")
}

/// drain's duration flags read what kubectl 1.27 reads (Go's time.ParseDuration) — the same
/// values taken and refused — except negative ones, which make no sense and are refused.
#[test]
fn drain_durations_as_kubectl() {
    let values = [
        "1.5m",
        "1h30m",
        "500ms",
        "300us",
        "300\u{b5}s",
        "300\u{3bc}s",
        ".5s",
        "5.s",
        "0",
        "-0",
        "+5s",
        "0s",
        "1h0m0s",
        "0.3333333333333333333h",
        "5",
        "1d",
        "5 s",
        "2sec",
        "1m 30s",
        "90",
        "",
    ];
    for value in values {
        assert_eq!(
            kubemaint_takes_timeout(value),
            kubectl_takes_timeout(value),
            "--timeout={value:?}: kubemaint and kubectl disagree"
        );
    }
    for flag in [
        "--timeout",
        "--eviction-retry-delay",
        "--force-delete-after",
    ] {
        let out = kubemaint(&["drain", "node-1", &format!("{flag}=-5s")], &[]);
        assert_eq!(out.status.code(), Some(2), "{flag}=-5s is bad usage");
        assert!(stderr(&out).contains("negative"), "{}", stderr(&out));
        let out = kubemaint(
            &["drain", "node-1", &format!("{flag}=1.5m")],
            &[("KUBECONFIG", "/nonexistent/kubeconfig")],
        );
        assert!(
            !stderr(&out).contains(flag),
            "{flag}=1.5m: {}",
            stderr(&out)
        );
    }
}

/// A limit is printed back in Go's form (`1.5s`, as etcdctl would), not `1.500s` or `1s 500ms`.
#[test]
fn etcd_timeouts_print_in_go_form() {
    // An endpoint that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("s.db");
    let out = kubemaint(
        &[
            "etcd",
            "snapshot",
            "save",
            out_file.to_str().unwrap(),
            &format!("--endpoints=http://127.0.0.1:{port}"),
            "--dial-timeout=1.5s",
            "--command-timeout=1.5s",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("no answer within 1.5s"), "{text}");
    // The same parser reads etcdctl's environment variables.
    let out = kubemaint(
        &["etcd", "snapshot", "save", out_file.to_str().unwrap()],
        &[("ETCDCTL_DIAL_TIMEOUT", "2sec")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown unit \"sec\""),
        "{}",
        stderr(&out)
    );
    drop(silent);
}
