//! `kubemaint backup manifests` against the lab's real kube-apiserver v1.20.2: the printed
//! objects pass `kubectl apply --dry-run=server` (kubectl 1.27), which runs the server's own
//! validation and defaulting, in both modes; a `batch/v1` CronJob (what a 1.21+ cluster gets)
//! is refused by this 1.20 server, so the version choice is load-bearing; a typo in the
//! backup flags fails before any YAML is printed.
//!
//! Needs `kubemaint-lab prepare` (the test fails, naming what is missing, if it was not run).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use kubemaint_lab::testing::{Kubectl, start_lab};

fn manifests(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubemaint"))
        .args(["backup", "manifests"])
        .args(args)
        .output()
        .expect("run kubemaint")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn dry_run(kubeconfig: &Path, yaml: &[u8]) -> Output {
    let kubectl = Kubectl::new(kubeconfig);
    let mut child = Command::new(&kubectl.program)
        .arg("--kubeconfig")
        .arg(&kubectl.kubeconfig)
        .args(["apply", "--dry-run=server", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child.stdin.take().unwrap().write_all(yaml).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn manifests_pass_the_real_apiservers_dry_run() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = start_lab(tmp.path(), 0, 200);
    let kubeconfig = lab.kubeconfig();
    let recipient = age::x25519::Identity::generate().to_public().to_string();

    // CronJob to S3, age recipient, PSP RBAC, retention passed through.
    let out = manifests(&[
        "--image",
        "registry.example.net/kubemaint:0.1.0",
        "--to",
        "s3://backups/etcd/prod",
        "--recipient",
        &recipient,
        "--kubernetes-version",
        "v1.20.2",
        "--pod-security-policy",
        "privileged",
        "--",
        "--keep-last",
        "3",
        "--keep-daily",
        "7",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let applied = dry_run(&kubeconfig, &out.stdout);
    let report = text(&applied);
    assert!(applied.status.success(), "{report}");
    for want in [
        "serviceaccount/kubemaint-etcd-backup created (server dry run)",
        "role.rbac.authorization.k8s.io/kubemaint-etcd-backup created (server dry run)",
        "rolebinding.rbac.authorization.k8s.io/kubemaint-etcd-backup created (server dry run)",
        "secret/kubemaint-etcd-backup created (server dry run)",
        "cronjob.batch/kubemaint-etcd-backup created (server dry run)",
    ] {
        assert!(report.contains(want), "{want}\n{report}");
    }

    // Deployment running `schedule` on a seconds cron, into a host directory, passphrase.
    let out = manifests(&[
        "--image",
        "registry.example.net/kubemaint:0.1.0",
        "--to",
        "/var/backups/etcd",
        "--passphrase",
        "--mode",
        "deployment",
        "--cron",
        "*/30 * * * * *",
        "--namespace",
        "default",
        "--kubernetes-version",
        "v1.20.2",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let applied = dry_run(&kubeconfig, &out.stdout);
    let report = text(&applied);
    assert!(applied.status.success(), "{report}");
    assert!(
        report.contains("deployment.apps/kubemaint-etcd-backup created (server dry run)"),
        "{report}"
    );

    // What a 1.21+ cluster gets is refused by this 1.20 server.
    let out = manifests(&[
        "--image",
        "img:1",
        "--to",
        "s3://b/p",
        "--recipient",
        &recipient,
        "--kubernetes-version",
        "v1.21.0",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let applied = dry_run(&kubeconfig, &out.stdout);
    assert!(!applied.status.success(), "{}", text(&applied));
    assert!(text(&applied).contains("batch/v1"), "{}", text(&applied));

    // A typo in the backup flags, and a seconds cron for a CronJob: usage errors, no YAML.
    for bad in [
        &["--image", "i", "--to", "s3://b/p", "--", "--keep-lats", "3"][..],
        &[
            "--image",
            "i",
            "--to",
            "s3://b/p",
            "--cron",
            "*/30 * * * * *",
        ][..],
    ] {
        let out = manifests(bad);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(out.stdout.is_empty(), "{}", text(&out));
    }
}
