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

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// A file that is not a snapshot: 2 bytes.
fn two_byte_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("two-bytes.db");
    std::fs::write(&path, b"ab").unwrap();
    path
}

/// A file with a SHA-256 trailer's length (4096 + 32 bytes) whose trailer does not match.
fn bad_trailer_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("bad-trailer.db");
    std::fs::write(&path, vec![7u8; 4096 + 32]).unwrap();
    path
}

/// `status` on a 2-byte file names the fault once (it was printed in the message and again as
/// its cause).
#[test]
fn status_error_says_each_thing_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = two_byte_file(dir.path());
    let out = kubemaint(&["etcd", "snapshot", "status", file.to_str().unwrap()], &[]);
    let text = stderr(&out);
    assert_eq!(count(&text, "file is 2 bytes"), 1, "{text}");
    assert_eq!(count(&text, file.to_str().unwrap()), 1, "{text}");
}

/// A missing kubeconfig: its path and the OS error once each (they were printed three and two
/// times).
#[test]
fn missing_kubeconfig_says_each_thing_once() {
    for (args, env) in [
        (
            vec![
                "cordon",
                "node-1",
                "--kubeconfig",
                "/nonexistent/kubeconfig",
            ],
            vec![],
        ),
        (
            vec!["cordon", "node-1"],
            vec![("KUBECONFIG", "/nonexistent/kubeconfig")],
        ),
    ] {
        let out = kubemaint(&args, &env);
        assert_eq!(out.status.code(), Some(1));
        let text = stderr(&out);
        assert_eq!(count(&text, "/nonexistent/kubeconfig"), 1, "{text}");
        assert_eq!(count(&text, "No such file or directory"), 1, "{text}");
    }
}

/// One rule for `verify`, `status` and `restore`: a damaged snapshot (readable, but not a valid
/// snapshot) exits 1; a path that cannot be read as a file exits 2 (bad input), as documented in
/// each command's `--help`.
#[test]
fn snapshot_exit_codes_are_one_rule() {
    let dir = tempfile::tempdir().unwrap();
    let damaged = [two_byte_file(dir.path()), bad_trailer_file(dir.path())];
    let missing = dir.path().join("missing.db");
    for command in ["verify", "status", "restore"] {
        let target = dir.path().join(format!("restored-{command}"));
        let run = |file: &Path| {
            let mut args = vec!["etcd", "snapshot", command, file.to_str().unwrap()];
            if command == "restore" {
                args.extend(["--data-dir", target.to_str().unwrap()]);
            }
            kubemaint(&args, &[])
        };
        for file in &damaged {
            let out = run(file);
            assert_eq!(out.status.code(), Some(1), "{command} {}", file.display());
        }
        let out = run(&missing);
        assert_eq!(out.status.code(), Some(2), "{command} on a missing file");
        assert!(!target.exists(), "restore left {}", target.display());
        let help = kubemaint(&["etcd", "snapshot", command, "--help"], &[]);
        let help = String::from_utf8_lossy(&help.stdout).into_owned();
        assert!(
            help.contains("1 the snapshot is damaged") && help.contains("2 bad usage"),
            "{command} --help documents the exit codes: {help}"
        );
    }
}

/// `KUBECONFIG=a:b` is merged as kubectl merges it: the current context in one file, its
/// cluster and user in the other. The cluster is a listener here; the request it receives shows
/// the merged configuration was used (the cluster's URL and the user's token).
#[test]
fn kubeconfig_list_is_merged() {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yaml");
    std::fs::write(
        &a,
        "apiVersion: v1\nkind: Config\ncurrent-context: merged\ncontexts:\n- name: merged\n  context: {cluster: far, user: someone}\n",
    )
    .unwrap();
    std::fs::write(
        &b,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: other\nclusters:\n- name: far\n  cluster: {{server: 'http://127.0.0.1:{port}'}}\nusers:\n- name: someone\n  user: {{token: merged-token}}\n"
        ),
    )
    .unwrap();
    let list = format!("{}:{}", a.display(), b.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubemaint"))
        .args(["uncordon", "node-1"])
        .env_clear()
        .env("KUBECONFIG", &list)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubemaint");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Wait for whichever comes first: kubemaint's connection, or kubemaint giving up.
    let mut conn = loop {
        match listener.accept() {
            Ok((conn, _)) => break conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept: {e}"),
        }
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "kubemaint never reached the merged cluster:\n{}",
                stderr(&out)
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no connection in 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).expect("read the request");
        assert!(n > 0, "connection closed before a request");
        request.extend_from_slice(&buf[..n]);
    }
    drop(conn);
    let _ = child.kill();
    let _ = child.wait();
    let request = String::from_utf8_lossy(&request).to_lowercase();
    assert!(request.contains("/api/v1/nodes/node-1"), "{request}");
    assert!(
        request.contains("authorization: bearer merged-token"),
        "{request}"
    );
}

/// The etcd password never reaches the log, even at -vvv, from the flag or `ETCDCTL_PASSWORD`.
#[test]
fn etcd_password_is_not_logged() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.db");
    let endpoint = format!("--endpoints=http://127.0.0.1:{port}");
    type Run<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let runs: [Run; 2] = [
        (vec!["--user=root:pw-from-flag-1234"], vec![]),
        (
            vec!["--user=root"],
            vec![("ETCDCTL_PASSWORD", "pw-from-env-5678")],
        ),
    ];
    for (extra, env) in runs {
        let mut args = vec![
            "-vvv",
            "etcd",
            "snapshot",
            "save",
            file.to_str().unwrap(),
            &endpoint,
            "--dial-timeout=500ms",
            "--command-timeout=500ms",
        ];
        args.extend(extra);
        let out = kubemaint(&args, &env);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all.contains("root"), "the run logged its settings: {all}");
        assert!(
            !all.contains("pw-from-flag-1234") && !all.contains("pw-from-env-5678"),
            "password in the output: {all}"
        );
    }
    drop(silent);
}

/// `kubemaint completion bash` prints a script bash accepts, which completes `kubemaint`.
#[test]
fn bash_completion_loads() {
    for shell in ["bash", "zsh", "fish"] {
        let out = kubemaint(&["completion", shell], &[]);
        assert_eq!(out.status.code(), Some(0), "completion {shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("kubemaint"), "{shell}: {script}");
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_kubemaint")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args([
            "-c",
            "source <(kubemaint completion bash) && complete -p kubemaint",
        ])
        .env("PATH", path)
        .output()
        .expect("run bash");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("complete ")
            && text.contains(" -F _kubemaint ")
            && text.trim_end().ends_with(" kubemaint"),
        "{text}"
    );
}

/// `kubectl maint ...` runs kubemaint through kubectl's plugin mechanism (kubectl 1.27 finds
/// `kubectl-maint` on PATH), and the help speaks of `kubectl maint`.
#[test]
fn kubectl_plugin() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_kubemaint")).parent().unwrap();
    assert!(
        bin_dir.join("kubectl-maint").exists(),
        "kubectl-maint is built beside kubemaint"
    );
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(kubectl_1_27())
        .args(["maint", "--help"])
        .env("PATH", &path)
        .output()
        .expect("run kubectl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Usage: kubectl maint"), "{text}");
    assert!(text.contains("drain"), "{text}");
    let out = Command::new(kubectl_1_27())
        .args([
            "maint",
            "etcd",
            "snapshot",
            "verify",
            "/nonexistent/snapshot.db",
        ])
        .env("PATH", &path)
        .output()
        .expect("run kubectl");
    assert_eq!(
        out.status.code(),
        Some(2),
        "kubectl passes the exit code on"
    );
    let out = Command::new(kubectl_1_27())
        .args(["plugin", "list"])
        .env("PATH", &path)
        .output()
        .expect("run kubectl");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kubectl-maint"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
