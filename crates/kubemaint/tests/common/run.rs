//! Running kubemaint (and other commands) from a test, and waiting on a condition.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The kubemaint binary under test.
pub const KUBEMAINT: &str = env!("CARGO_BIN_EXE_kubemaint");

/// Runs `cmd` and fails the test if it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// kubemaint with no ETCDCTL_* variables, no ~/.aws, and `env` set.
pub fn kubemaint_cmd(env: &[(&str, String)], args: &[&str]) -> Command {
    let mut cmd = Command::new(KUBEMAINT);
    cmd.args(args)
        .env_remove("ETCDCTL_ENDPOINTS")
        .env_remove("ETCDCTL_CACERT")
        .env_remove("ETCDCTL_CERT")
        .env_remove("ETCDCTL_KEY")
        .env("HOME", "/nonexistent-kubemaint-home");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs kubemaint (as [`kubemaint_cmd`]) and returns its output.
pub fn kubemaint(env: &[(&str, String)], args: &[&str]) -> Output {
    kubemaint_cmd(env, args).output().expect("run kubemaint")
}

/// Exit code, stdout and stderr, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Polls `check` every `every` until it returns `Some` or `timeout` passes (then panics with
/// `what` and the last state `describe` gives).
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!(
                "timed out after {timeout:?} waiting for {what}; state:\n{}",
                describe()
            );
        }
        std::thread::sleep(every);
    }
}

/// [`poll`] every 100 ms.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    check: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    poll(what, timeout, Duration::from_millis(100), check, describe)
}

/// Asserts that a kubemaint run failed with exit 1, that its stderr names every one of `needles`,
/// and that nothing was left at `file`.
pub fn assert_fails_with(out: &Output, needles: &[&str], file: &Path) {
    assert!(!out.status.success(), "should fail: {}", text(out));
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for n in needles {
        assert!(
            stderr.contains(n),
            "stderr should mention {n:?}: {}",
            text(out)
        );
    }
    assert!(!file.exists(), "nothing may be left at {}", file.display());
}
