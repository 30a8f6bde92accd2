//! The pure parts of evicting a pod: choosing the Eviction API version from discovery (as
//! kubectl's `CheckEvictionSupport`), building the Eviction body, and classifying the answer
//! ([`response`]) and what follows it ([`retry`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;
use serde::Serialize;
use serde_json::{Value, json};

mod response;
mod retry;
#[cfg(test)]
mod tests;

pub use response::{
    ApiStatus, EvictionOutcome, Gone, StatusCause, StatusDetails, classify_eviction_response,
    pdb_name_from_cause,
};
pub use retry::{NextStep, RetrySettings, RetryWait, THROTTLE_PAUSE, blocking_budget, next_step};

/// Message of the API server's 500 for pods under several PDBs.
pub const MULTIPLE_PDB_MESSAGE: &str = "This pod has more than one PodDisruptionBudget";
/// `StatusCause.reason` the server puts on PDB refusals.
pub const DISRUPTION_BUDGET_CAUSE: &str = "DisruptionBudget";
/// `StatusCause.reason` for evictions in a terminating namespace.
pub const NAMESPACE_TERMINATING_CAUSE: &str = "NamespaceTerminating";

/// The group/version of the Eviction body to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum EvictionVersion {
    /// `policy/v1` (Kubernetes ≥ 1.22).
    #[serde(rename = "policy/v1")]
    V1,
    /// `policy/v1beta1` (any server with the eviction subresource).
    #[serde(rename = "policy/v1beta1")]
    V1beta1,
}

impl EvictionVersion {
    /// `apiVersion` string.
    pub fn api_version(self) -> &'static str {
        match self {
            EvictionVersion::V1 => "policy/v1",
            EvictionVersion::V1beta1 => "policy/v1beta1",
        }
    }
}

/// How pods leave the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "version", rename_all = "lowercase")]
pub enum RemovalMethod {
    /// POST `pods/{name}/eviction` with this body version (PDBs respected).
    Evict(EvictionVersion),
    /// Plain `DELETE` (`--disable-eviction`, or a server without the subresource): PDBs are
    /// not consulted.
    Delete,
}

/// kubectl's `CheckEvictionSupport` on the `GET /api/v1` resource list: the `pods/eviction`
/// entry with kind `Eviction` and a non-empty group and version. `policy/v1` is used as is;
/// any other advertised version falls back to `policy/v1beta1`, as kubectl does. `None` means
/// the server has no eviction subresource.
pub fn eviction_version_from_discovery(core_v1: &[APIResource]) -> Option<EvictionVersion> {
    core_v1.iter().find_map(|r| {
        let group = r.group.as_deref().unwrap_or_default();
        let version = r.version.as_deref().unwrap_or_default();
        (r.name == "pods/eviction"
            && r.kind == "Eviction"
            && !group.is_empty()
            && !version.is_empty())
        .then_some(if group == "policy" && version == "v1" {
            EvictionVersion::V1
        } else {
            EvictionVersion::V1beta1
        })
    })
}

/// kubectl's choice of removal method: `--disable-eviction` forces `DELETE`, otherwise the
/// discovered eviction version, else `DELETE`.
pub fn removal_method(
    disable_eviction: bool,
    discovered: Option<EvictionVersion>,
) -> RemovalMethod {
    match (disable_eviction, discovered) {
        (false, Some(v)) => RemovalMethod::Evict(v),
        _ => RemovalMethod::Delete,
    }
}

/// Options shared by evictions and deletes (kubectl's `makeDeleteOptions`, plus a UID
/// precondition which kubectl does not send).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// `--grace-period`; sent only when `>= 0`.
    pub grace_period_seconds: i64,
    /// UID precondition: evict/delete only this incarnation of the pod (409 otherwise).
    pub uid: Option<String>,
    /// `--dry-run=server`: `dryRun: ["All"]`.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// The `DeleteOptions` JSON object (no `kind`/`apiVersion`, as client-go sends it inside an
    /// Eviction and as the body of a DELETE).
    pub fn to_json(&self) -> Value {
        let mut o = serde_json::Map::new();
        if self.grace_period_seconds >= 0 {
            o.insert(
                "gracePeriodSeconds".into(),
                json!(self.grace_period_seconds),
            );
        }
        if let Some(uid) = self.uid.as_deref().filter(|u| !u.is_empty()) {
            o.insert("preconditions".into(), json!({ "uid": uid }));
        }
        if self.dry_run {
            o.insert("dryRun".into(), json!(["All"]));
        }
        Value::Object(o)
    }
}

/// The Eviction body for `POST /api/v1/namespaces/{ns}/pods/{name}/eviction`.
pub fn eviction_body(
    version: EvictionVersion,
    namespace: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Value {
    json!({
        "apiVersion": version.api_version(),
        "kind": "Eviction",
        "metadata": { "name": name, "namespace": namespace },
        "deleteOptions": opts.to_json(),
    })
}
