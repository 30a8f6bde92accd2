//! A 3-control-plane lab, checked with real clients (etcdctl, kubectl 1.27) and haproxy's own
//! view of its servers: three started etcd members, the API through the load balancer, an API
//! server stopped and taken out of rotation by the `/healthz` check, the controller-manager and
//! scheduler still leading, and etcd keeping a leader with a member down.
//!
//! One test on purpose: twelve control-plane processes are the expensive part; every step builds
//! on the one before.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kubemaint_lab::binaries::KUBE_VERSION;
use kubemaint_lab::haproxy;
use kubemaint_lab::state::SimSettings;
use kubemaint_lab::testing::{Kubectl, wait_for};
use kubemaint_lab::{KubeletMode, Lab, UpOptions, process};

const OLD: &str = "v1.19.16";

fn up() -> (Lab, tempfile::TempDir) {
    haproxy::program().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = UpOptions::new(dir.path(), 1);
    opts.control_planes = 3;
    // One node already upgraded: cp-1 at the real v1.20.2, the others at a v1.19.16 stand-in.
    opts.kube_version = OLD.into();
    opts.kubelet_version = OLD.into();
    opts.control_plane_versions = [("cp-1".to_string(), KUBE_VERSION.to_string())].into();
    opts.sim = SimSettings {
        ready_delay_ms: 200,
        shutdown_delay_ms: 200,
    };
    opts.kubelets = KubeletMode::InProcess;
    let lab = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(Lab::up(opts))
        .unwrap_or_else(|e| panic!("lab up failed: {}", kubemaint_lab::testing::error_chain(&e)));
    (lab, dir)
}

/// The nodes whose component `kind`'s log says it acquired the leader lease at some point.
fn lease_winners(lab: &Lab, kind: &str) -> BTreeSet<String> {
    ["cp-1", "cp-2", "cp-3"]
        .into_iter()
        .filter(|node| {
            let log = process::log_dir(lab.dir()).join(format!("{kind}-{node}.log"));
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .contains(&format!("successfully acquired lease kube-system/{kind}"))
        })
        .map(str::to_string)
        .collect()
}

fn up_servers(lab: &Lab) -> BTreeSet<String> {
    haproxy::server_states(lab.dir())
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter(|s| s.is_up())
        .map(|s| s.node)
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn three_control_planes_survive_an_apiserver_and_an_etcd_member_down() {
    let (lab, _dir) = up();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kc = Kubectl::new(&lab.kubeconfig());

    // etcd: three started members named after their nodes (etcdctl itself says so).
    let out = lab
        .etcdctl()
        .unwrap()
        .args(["member", "list", "-w", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members: BTreeSet<String> = list["members"]
        .as_array()
        .unwrap()
        .iter()
        // etcdctl's table says `started` for a member with a name (one that has joined).
        .filter(|m| m["name"].as_str().is_some_and(|n| !n.is_empty()))
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(members, set(&["cp-1", "cp-2", "cp-3"]), "{list}");

    // admin.conf points at haproxy, which sees three healthy API servers and serves the API.
    let conf = std::fs::read_to_string(lab.kubeconfig()).unwrap();
    assert!(conf.contains(&format!("server: {}", lab.state.apiserver_url)));
    let lb_port = lab.state.apiserver_url.rsplit(':').next().unwrap();
    for node in ["cp-1", "cp-2", "cp-3"] {
        let port = lab
            .component_flag(&format!("kube-apiserver-{node}"), "secure-port")
            .unwrap();
        assert_ne!(port, lb_port, "the endpoint is not one API server");
    }
    assert_eq!(up_servers(&lab), set(&["cp-1", "cp-2", "cp-3"]));
    assert_eq!(kc.ok(&["get", "--raw", "/readyz"]).trim(), "ok");
    // Each API server says its own node's version; through the balancer both are seen.
    for (node, want) in [("cp-1", KUBE_VERSION), ("cp-2", OLD), ("cp-3", OLD)] {
        let port = lab
            .component_flag(&format!("kube-apiserver-{node}"), "secure-port")
            .unwrap();
        let server = format!("--server=https://127.0.0.1:{port}");
        let version: serde_json::Value =
            serde_json::from_str(&kc.ok(&[&server, "get", "--raw", "/version"])).unwrap();
        assert_eq!(version["gitVersion"], want, "{node}");
    }
    // Round robin (shared with the simulated kubelets' requests): both versions show up.
    let mut seen = BTreeSet::new();
    wait_for(
        "both versions through the balancer",
        Duration::from_secs(30),
        || {
            let v: serde_json::Value =
                serde_json::from_str(&kc.ok(&["get", "--raw", "/version"])).unwrap();
            seen.insert(v["gitVersion"].as_str().unwrap().to_string());
            seen == set(&[KUBE_VERSION, OLD])
        },
    );
    // Mirror pods per control-plane node, one per component, at the node's version.
    wait_for(
        "12 control-plane mirror pods",
        Duration::from_secs(30),
        || {
            let pods = kc.json(&[
                "get",
                "pods",
                "-n",
                "kube-system",
                "-l",
                "tier=control-plane",
            ]);
            let names: BTreeSet<String> = pods["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
                .collect();
            let want: BTreeSet<String> = ["cp-1", "cp-2", "cp-3"]
                .iter()
                .flat_map(|n| {
                    kubemaint_lab::controlplane::KINDS
                        .iter()
                        .map(move |k| format!("{k}-{n}"))
                })
                .collect();
            let cp1_apiserver = pods["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["metadata"]["name"] == "kube-apiserver-cp-1");
            names == want
                && cp1_apiserver.is_some_and(|p| {
                    p["spec"]["containers"][0]["image"]
                        == format!("k8s.gcr.io/kube-apiserver:{KUBE_VERSION}").as_str()
                })
        },
    );

    // cp-1's API server goes: haproxy's health check takes it out; the API still answers.
    let kcm_before = lease_winners(&lab, "kube-controller-manager");
    let sched_before = lease_winners(&lab, "kube-scheduler");
    let stopped_at = k8s_openapi::jiff::Timestamp::now();
    lab.stop_component("kube-apiserver-cp-1");
    wait_for("haproxy to take cp-1 out", Duration::from_secs(30), || {
        up_servers(&lab) == set(&["cp-2", "cp-3"])
    });
    for _ in 0..6 {
        // Round robin over the servers left: every request lands on a live one.
        assert_eq!(kc.ok(&["get", "--raw", "/readyz"]).trim(), "ok");
    }

    // Controller-manager and scheduler: a leader renews its lease after the stop (a new one if
    // cp-1's held it: its API server is gone, so it cannot renew) and both do their work.
    let client = rt.block_on(lab.client()).unwrap();
    let leases: kube::Api<Lease> = kube::Api::namespaced(client, "kube-system");
    for kind in ["kube-controller-manager", "kube-scheduler"] {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let lease = rt.block_on(leases.get(kind)).unwrap();
            let renewed = lease
                .spec
                .as_ref()
                .and_then(|s| s.renew_time.as_ref())
                .is_some_and(|t| t.0 > stopped_at + Duration::from_secs(1));
            let before = if kind == "kube-scheduler" {
                &sched_before
            } else {
                &kcm_before
            };
            let moved =
                before != &set(&["cp-1"]) || lease_winners(&lab, kind).iter().any(|n| n != "cp-1");
            if renewed && moved {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{kind}: no leader renewing its lease 90 s after cp-1's API server stopped (winners before {before:?}, now {:?})",
                lease_winners(&lab, kind)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    kc.ok(&["create", "namespace", "ha"]);
    kc.ok(&["-n", "ha", "create", "deployment", "web", "--image=nginx"]);
    wait_for(
        "the new Deployment's pod Running on worker-1",
        Duration::from_secs(60),
        || {
            let pods = kc.json(&["-n", "ha", "get", "pods"]);
            pods["items"].as_array().is_some_and(|items| {
                items.iter().any(|p| {
                    p["spec"]["nodeName"] == "worker-1" && p["status"]["phase"] == "Running"
                })
            })
        },
    );

    // cp-1's API server back; then cp-1's etcd member goes. Its API server still runs but its
    // /healthz fails (no etcd): haproxy takes it out (an HTTP check, not a TCP one); the two
    // members left keep (or elect) a leader and writes go through.
    lab.start_component("kube-apiserver-cp-1").unwrap();
    wait_for("haproxy to put cp-1 back", Duration::from_secs(60), || {
        up_servers(&lab) == set(&["cp-1", "cp-2", "cp-3"])
    });
    lab.stop_component("etcd-cp-1");
    let api_cp1 = process::recorded(lab.dir())
        .into_iter()
        .find(|p| p.name == "kube-apiserver-cp-1")
        .unwrap();
    wait_for(
        "haproxy to take cp-1 out again",
        Duration::from_secs(60),
        || up_servers(&lab) == set(&["cp-2", "cp-3"]),
    );
    assert!(
        api_cp1.alive(),
        "cp-1's API server runs; only its /healthz fails"
    );
    let others = lab.state.etcd_endpoints()[1..].join(",");
    let leader = |out: &std::process::Output| -> Option<u64> {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let leaders: BTreeSet<u64> = v
            .as_array()?
            .iter()
            .filter_map(|e| e["Status"]["leader"].as_u64())
            .collect();
        let ids: BTreeSet<u64> = v
            .as_array()?
            .iter()
            .filter_map(|e| e["Status"]["header"]["member_id"].as_u64())
            .collect();
        // Both members agree on one leader, and it is one of them.
        (leaders.len() == 1 && ids.len() == 2)
            .then(|| *leaders.first().unwrap())
            .filter(|l| ids.contains(l))
    };
    wait_for(
        "a leader among cp-2 and cp-3",
        Duration::from_secs(30),
        || {
            let out = kubemaint_lab::components::etcdctl_at(&lab.state, &others)
                .unwrap()
                .args(["endpoint", "status", "-w", "json", "--command-timeout=2s"])
                .output()
                .unwrap();
            leader(&out).is_some()
        },
    );
    kc.ok(&[
        "-n",
        "ha",
        "create",
        "configmap",
        "written",
        "--from-literal=k=v",
    ]);
    assert_eq!(
        kc.ok(&[
            "-n",
            "ha",
            "get",
            "configmap",
            "written",
            "-o",
            "jsonpath={.data.k}"
        ]),
        "v"
    );

    // down stops everything, haproxy included.
    let dir = lab.dir().to_path_buf();
    let stopped = lab.down();
    assert!(stopped.contains(&"haproxy".to_string()), "{stopped:?}");
    let left: Vec<String> = process::recorded(&dir)
        .into_iter()
        .filter(|p| p.alive())
        .map(|p| p.name)
        .collect();
    assert!(left.is_empty(), "still running after down: {left:?}");
}
