//! Table tests of the preflight verdicts.

use jiff::Timestamp;

use super::*;
use crate::upgrade::skew::Instance;
use crate::upgrade::version::{Minor, Version};

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

#[test]
fn nodes() {
    let checks = check_nodes(&[
        NodeFacts {
            name: "a".into(),
            ready: Some(true),
            cordoned: false,
        },
        NodeFacts {
            name: "b".into(),
            ready: Some(false),
            cordoned: true,
        },
        NodeFacts {
            name: "c".into(),
            ready: None,
            cordoned: false,
        },
    ]);
    assert_eq!(checks[0].status, Status::Fail);
    assert!(checks[0].message.contains("b, c"), "{}", checks[0].message);
    assert_eq!(checks[1].status, Status::Warn);
    assert!(checks[1].message.contains('b'));
    let ok = check_nodes(&[NodeFacts {
        name: "a".into(),
        ready: Some(true),
        cordoned: false,
    }]);
    assert_eq!(worst(&ok), Status::Pass);
}

#[test]
fn backups_by_age() {
    let now = ts("2026-12-04T12:00:00Z");
    let day = SignedDuration::from_hours(24);
    assert_eq!(check_backup(None, None, now, day).status, Status::Warn);
    assert_eq!(
        check_backup(Some("/b"), None, now, day).status,
        Status::Fail
    );
    let fresh = check_backup(
        Some("/b"),
        Some(("x.db".into(), ts("2026-12-04T11:00:00Z"))),
        now,
        day,
    );
    assert_eq!(fresh.status, Status::Pass);
    assert!(fresh.message.contains("60m"), "{}", fresh.message);
    let old = check_backup(
        Some("/b"),
        Some(("x.db".into(), ts("2026-12-01T12:00:00Z"))),
        now,
        day,
    );
    assert_eq!(old.status, Status::Warn);
    assert!(old.message.contains("3d"));
    // Exactly at the limit still passes.
    let edge = check_backup(
        Some("/b"),
        Some(("x.db".into(), ts("2026-12-03T12:00:00Z"))),
        now,
        day,
    );
    assert_eq!(edge.status, Status::Pass);
}

#[test]
fn certificates_by_expiry() {
    let now = ts("2026-12-04T12:00:00Z");
    let cert = |name: &str, not_after: &str, is_ca| CertFacts {
        name: name.into(),
        not_after: ts(not_after),
        is_ca,
    };
    assert_eq!(check_certificates(None, &[], now).status, Status::Warn);
    let ok = check_certificates(
        Some("/pki"),
        &[
            cert("apiserver.crt", "2027-06-01T00:00:00Z", false),
            cert("ca.crt", "2035-01-01T00:00:00Z", true),
        ],
        now,
    );
    assert_eq!(ok.status, Status::Pass);
    assert!(ok.message.contains("apiserver.crt expires first"));
    let soon = check_certificates(
        Some("/pki"),
        &[cert("apiserver.crt", "2026-12-20T00:00:00Z", false)],
        now,
    );
    assert_eq!(soon.status, Status::Warn);
    let ca_soon = check_certificates(
        Some("/pki"),
        &[cert("ca.crt", "2027-06-01T00:00:00Z", true)],
        now,
    );
    assert_eq!(ca_soon.status, Status::Warn);
    let expired = check_certificates(
        Some("/pki"),
        &[cert(
            "front-proxy-client.crt",
            "2026-12-01T00:00:00Z",
            false,
        )],
        now,
    );
    assert_eq!(expired.status, Status::Fail);
    assert!(expired.message.contains("front-proxy-client.crt"));
}

#[test]
fn etcd_checks() {
    let member = |name: &str, version: Option<&str>| EtcdMemberFacts {
        name: name.into(),
        endpoint: format!("https://{name}:2379"),
        version: version.map(str::to_string),
        error: version.is_none().then(|| "connection refused".to_string()),
    };
    assert_eq!(check_etcd(None, None, "3.4.13-0")[0].status, Status::Warn);
    let healthy = [member("a", Some("3.4.13"))];
    assert_eq!(
        worst(&check_etcd(Some(&healthy), None, "3.4.13-0")),
        Status::Pass
    );
    let one_down = [
        member("a", Some("3.4.13")),
        member("b", None),
        member("c", Some("3.4.13")),
    ];
    let checks = check_etcd(Some(&one_down), None, "3.4.13-0");
    assert_eq!(checks[0].status, Status::Fail);
    assert!(checks[0].message.contains("connection refused"));
    let even = [member("a", Some("3.4.13")), member("b", Some("3.4.13"))];
    assert_eq!(
        check_etcd(Some(&even), None, "3.4.13-0")[1].status,
        Status::Warn
    );
    // 3.5 → 3.6 needs 3.5.26.
    let old35 = [member("a", Some("3.5.24"))];
    let checks = check_etcd(Some(&old35), None, "3.6.5-0");
    assert_eq!(checks[2].status, Status::Fail);
    let new35 = [member("a", Some("3.5.26"))];
    assert_eq!(
        check_etcd(Some(&new35), None, "3.6.5-0")[2].status,
        Status::Pass
    );
    assert_eq!(
        check_etcd(Some(&old35), None, "3.5.24-0")[2].status,
        Status::Pass
    );
}

#[test]
fn removed_api_checks() {
    use crate::upgrade::removed::removed_between;
    let from = Minor::new(1, 19);
    let to = Minor::new(1, 25);
    let removals: Vec<_> = removed_between(from, to).collect();
    let found = [RemovedApiUse {
        api_version: "policy/v1beta1".into(),
        kind: "PodDisruptionBudget".into(),
        object: "default/web".into(),
        detected_by: "only policy/v1beta1 is served".into(),
    }];
    let checks = check_removed_apis(from, to, &removals, &found, &[]);
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].status, Status::Fail);
    assert!(checks[0].message.contains("default/web"));
    assert!(checks[0].action.as_deref().unwrap().contains("policy/v1"));
    let clean = check_removed_apis(from, to, &removals, &[], &["batch/v1beta1 cronjobs".into()]);
    assert_eq!(clean[0].status, Status::Pass);
    assert_eq!(clean[1].status, Status::Warn);
    let none = check_removed_apis(from, Minor::new(1, 21), &[], &[], &[]);
    assert!(none[0].message.contains("no API version is removed"));
}

#[test]
fn skew_and_kubelets() {
    assert_eq!(check_current_skew(&[]).status, Status::Pass);
    let behind = check_kubelets_behind(
        &Version::new(1, 19, 16),
        &[
            ("w2".into(), Version::new(1, 18, 20)),
            ("w1".into(), Version::new(1, 19, 16)),
        ],
    );
    assert_eq!(behind.status, Status::Warn);
    assert!(behind.message.contains("w2 (v1.18.20)"));
}

#[test]
fn kubectl_within_one_minor_now_and_after() {
    let api = |v: Version| vec![Instance::on("cp-1", v)];
    let target = Version::new(1, 21, 14);
    // Within one minor of v1.20 now and of v1.21 after: pass.
    for kubectl in [Version::new(1, 20, 0), Version::new(1, 21, 3)] {
        let check = check_kubectl(Ok(&kubectl), &api(Version::new(1, 20, 2)), &target);
        assert_eq!(check.status, Status::Pass, "{kubectl}: {}", check.message);
    }
    // v1.19 fits now, but is two minors behind the target.
    let check = check_kubectl(
        Ok(&Version::new(1, 19, 16)),
        &api(Version::new(1, 20, 2)),
        &target,
    );
    assert_eq!(check.status, Status::Warn);
    assert!(
        check
            .message
            .starts_with("after the upgrade: kubectl v1.19.16 vs kube-apiserver v1.21.14"),
        "{}",
        check.message
    );
    // The host's kubectl 1.32 against a v1.20 control plane: out now and after, naming
    // both versions, the node and the rule; the action names the minors that fit.
    let check = check_kubectl(
        Ok(&Version::new(1, 32, 4)),
        &api(Version::new(1, 20, 2)),
        &target,
    );
    assert_eq!(check.status, Status::Warn);
    assert!(
        check
            .message
            .contains("now: kubectl v1.32.4 vs kube-apiserver v1.20.2 on cp-1: kubectl is supported within one minor"),
        "{}",
        check.message
    );
    assert!(
        check.message.contains("after the upgrade"),
        "{}",
        check.message
    );
    assert!(
        check
            .action
            .as_deref()
            .unwrap()
            .contains("kubectl 1.19–1.21"),
        "{:?}",
        check.action
    );
    // HA at v1.20 and v1.21: only kubectl 1.20 and 1.21... within one of both: 1.20–1.21.
    let ha = vec![
        Instance::on("cp-1", Version::new(1, 20, 2)),
        Instance::on("cp-2", Version::new(1, 21, 14)),
    ];
    let check = check_kubectl(Ok(&Version::new(1, 22, 0)), &ha, &target);
    assert_eq!(check.status, Status::Warn);
    assert!(check.message.contains("cp-1"), "{}", check.message);
    assert!(check.action.as_deref().unwrap().contains("1.20–1.21"));
    // Unknown kubectl: a warning saying why.
    let check = check_kubectl(Err("kubectl is not on PATH"), &ha, &target);
    assert_eq!(check.status, Status::Warn);
    assert!(check.message.contains("not on PATH"));
}
