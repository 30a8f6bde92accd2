//! The run record: everything a `--resume` needs, in a ConfigMap written with optimistic
//! concurrency (every write carries the `resourceVersion` last read; a 409 means someone else
//! wrote it, and the run stops rather than overwrite).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use kubemaint_core::upgrade::apply::{Action, ApplyPlan, Options, RunState};
use serde::{Deserialize, Serialize};

use super::{ApplyError, NAME, NAMESPACE, is_conflict, is_not_found};

/// The ConfigMap key holding the record.
pub const KEY: &str = "run.json";

/// How a run stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum RunStatus {
    /// Running (or killed while running: the Lease tells).
    Running,
    /// Stopped on request (Ctrl-C, SIGTERM) after the action in flight.
    Stopped,
    /// Stopped by a failure.
    Failed {
        /// The node it stopped at, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
        /// What failed.
        error: String,
    },
    /// Every job done.
    Done,
}

/// The run's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The plan, fixed when the run started (a resume never re-plans).
    pub plan: ApplyPlan,
    /// The options the run started with.
    pub options: Options,
    /// The state machine's state.
    pub state: RunState,
    /// `user@host/pid` of the process that started the run.
    pub started_by: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// `user@host/pid` of the last writer.
    pub updated_by: String,
    /// Last write (RFC 3339).
    pub updated_at: String,
    /// How it stands (`status`, and `node`, `error` for a failure).
    #[serde(flatten)]
    pub status: RunStatus,
    /// The action in flight or last done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action: Option<Action>,
    /// Healthy pods per PodDisruptionBudget (`namespace/name`) when the run started: the
    /// health gate waits for each to be back there.
    #[serde(default)]
    pub budgets_before: BTreeMap<String, i32>,
}

/// Reads and writes the record, remembering the `resourceVersion`.
pub struct RunStore {
    api: Api<ConfigMap>,
    resource_version: Option<String>,
    exists: bool,
}

impl RunStore {
    /// A store on `client`.
    pub fn new(client: kube::Client) -> Self {
        Self {
            api: Api::namespaced(client, NAMESPACE),
            resource_version: None,
            exists: false,
        }
    }

    /// Reads the record, if any.
    pub async fn load(&mut self) -> Result<Option<RunRecord>, ApplyError> {
        let found = match self.api.get(NAME).await {
            Ok(cm) => cm,
            Err(e) if is_not_found(&e) => {
                self.exists = false;
                self.resource_version = None;
                return Ok(None);
            }
            Err(e) => {
                return Err(ApplyError::request(format!(
                    "read the run record ConfigMap {NAMESPACE}/{NAME}"
                ))(e));
            }
        };
        self.exists = true;
        self.resource_version = found.metadata.resource_version.clone();
        let Some(text) = found.data.as_ref().and_then(|d| d.get(KEY)) else {
            return Err(ApplyError::Record(serde::de::Error::custom(format!(
                "no key {KEY}"
            ))));
        };
        serde_json::from_str(text)
            .map(Some)
            .map_err(ApplyError::Record)
    }

    /// Writes the record: creates the ConfigMap the first time, else replaces it at the
    /// `resourceVersion` last read or written.
    pub async fn save(&mut self, record: &RunRecord) -> Result<(), ApplyError> {
        let text = serde_json::to_string_pretty(record).map_err(ApplyError::Record)?;
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(NAME.into()),
                namespace: Some(NAMESPACE.into()),
                resource_version: self.resource_version.clone(),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_string(),
                        "kubemaint".to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            data: Some([(KEY.to_string(), text)].into()),
            ..Default::default()
        };
        let pp = PostParams {
            field_manager: Some("kubemaint".into()),
            ..Default::default()
        };
        let written = if self.exists {
            self.api.replace(NAME, &pp, &cm).await
        } else {
            self.api.create(&pp, &cm).await
        };
        match written {
            Ok(cm) => {
                self.exists = true;
                self.resource_version = cm.metadata.resource_version;
                Ok(())
            }
            Err(e) if is_conflict(&e) => Err(ApplyError::Conflict),
            Err(e) => Err(ApplyError::request(format!(
                "write the run record ConfigMap {NAMESPACE}/{NAME}"
            ))(e)),
        }
    }
}
