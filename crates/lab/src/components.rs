//! Starting, stopping and re-flagging a lab's recorded components, and asking its etcd members
//! how they are — from the state file alone, so the `kubemaint-lab` commands and [`crate::Lab`]
//! share them.
//!
//! A component is named by its process name (`kube-apiserver-cp-2`, `etcd-cp-3`, `haproxy`; in a
//! single-node lab `kube-apiserver`, `etcd`, ...) or by a bare kind (`kube-apiserver`), which
//! means that kind on the first control-plane node ([`LabState::component`]).

use std::time::Duration;

use crate::binaries::{Binaries, EtcdVersion};
use crate::error::LabError;
use crate::pki::Pki;
use crate::process;
use crate::state::LabState;

fn unknown(state: &LabState, name: &str) -> LabError {
    let names: Vec<&str> = state.components.iter().map(|c| c.name.as_str()).collect();
    LabError::Invalid(format!(
        "the lab has no component {name:?}; it has {}",
        names.join(", ")
    ))
}

/// (Re)starts a component with its recorded flags.
pub fn start(state: &LabState, name: &str) -> Result<process::Managed, LabError> {
    let component = state.component(name).ok_or_else(|| unknown(state, name))?;
    Ok(process::spawn(
        &state.dir,
        &component.name,
        &component.program,
        &component.args,
    )?)
}

/// Stops a component (SIGTERM, then SIGKILL after 10 s); nothing if it is not running.
pub fn stop(state: &LabState, name: &str) {
    let Some(component) = state.component(name) else {
        return;
    };
    for p in process::recorded(&state.dir)
        .into_iter()
        .filter(|p| p.name == component.name)
    {
        process::stop(&state.dir, &p, Duration::from_secs(10));
    }
}

/// Replaces a component's flag `--key=...` and saves the state.
pub fn set_flag(state: &mut LabState, name: &str, key: &str, value: &str) -> Result<(), LabError> {
    if state.component(name).is_none() {
        return Err(unknown(state, name));
    }
    let component = state.component_mut(name).expect("checked above");
    let prefix = format!("--{key}=");
    component.args.retain(|a| !a.starts_with(&prefix));
    component.args.push(format!("{prefix}{value}"));
    Ok(state.save()?)
}

/// The lab's etcd release.
pub fn etcd_version(state: &LabState) -> EtcdVersion {
    if state.etcd_version == EtcdVersion::V3_5.as_str() {
        EtcdVersion::V3_5
    } else {
        EtcdVersion::V3_4
    }
}

/// The lab's own `etcdctl` (same version as its etcd) with every member's endpoint and the
/// `healthcheck-client` certificate preset.
pub fn etcdctl(state: &LabState) -> Result<std::process::Command, LabError> {
    etcdctl_at(state, &state.etcd_url)
}

/// [`etcdctl`] for the given endpoints only.
pub fn etcdctl_at(state: &LabState, endpoints: &str) -> Result<std::process::Command, LabError> {
    let binaries = Binaries::locate()?;
    let pki = Pki::at(state.dir.join("pki"));
    let (cert, key) = pki.etcd_healthcheck_client();
    let mut cmd = std::process::Command::new(binaries.etcdctl(etcd_version(state)));
    // etcdctl refuses a flag shadowing its ETCDCTL_* variable, which `eval "$(kubemaint-lab env)"`
    // sets in the operator's shell: the flags below say everything.
    process::strip_etcdctl_env(&mut cmd);
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg(format!("--cacert={}", pki.etcd_ca().display()))
        .arg(format!("--cert={}", cert.display()))
        .arg(format!("--key={}", key.display()));
    Ok(cmd)
}

/// One etcd member as `kubemaint-lab status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// The control-plane node it runs on (from the state file).
    pub node: Option<String>,
    /// Its client URL.
    pub endpoint: String,
    /// What it said: `leader`, `follower`, or why it did not answer.
    pub role: String,
    /// Its etcd version, when it answered.
    pub version: Option<String>,
}

/// Asks every member (`etcdctl endpoint status`, one endpoint at a time so a dead member does
/// not hide the others) whether it is the leader.
pub fn etcd_members(state: &LabState) -> Result<Vec<MemberStatus>, LabError> {
    let mut out = Vec::new();
    for endpoint in state.etcd_endpoints() {
        let node = state
            .components
            .iter()
            .filter(|c| c.kind() == "etcd")
            .find(|c| {
                crate::controlplane::flag(c, "advertise-client-urls").as_deref()
                    == Some(endpoint.as_str())
            })
            .and_then(|c| c.node.clone());
        let result = etcdctl_at(state, &endpoint)?
            .args(["endpoint", "status", "-w", "json", "--command-timeout=2s"])
            .output();
        let status = result.ok().and_then(|o| {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
            v.as_array()?.first()?.get("Status").cloned()
        });
        out.push(match status {
            Some(s) => {
                let id = s["header"]["member_id"].as_u64();
                let leader = s["leader"].as_u64();
                MemberStatus {
                    node,
                    endpoint,
                    role: if id.is_some() && id == leader {
                        "leader".into()
                    } else {
                        "follower".into()
                    },
                    version: s["version"].as_str().map(str::to_string),
                }
            }
            None => MemberStatus {
                node,
                endpoint,
                role: "unreachable".into(),
                version: None,
            },
        });
    }
    Ok(out)
}
