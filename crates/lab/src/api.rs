//! Talking to a lab's API server: clients from the lab's kubeconfigs, idempotent creation of the
//! objects the lab sets up, and reading node readiness. Shared by the cluster bring-up, the kubeadm
//! objects, the seed workload and the simulated kubelets.

use std::path::Path;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::LabError;

/// An admin client from a kubeconfig path.
pub async fn client_for(kubeconfig: &Path) -> Result<kube::Client, LabError> {
    let err = |e: Box<dyn std::error::Error + Send + Sync>| {
        LabError::Kubeconfig(kubeconfig.to_path_buf(), e)
    };
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| err(Box::new(e)))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| err(Box::new(e)))?;
    kube::Client::try_from(config).map_err(|e| err(Box::new(e)))
}

/// A client with a kubeconfig's credentials for another server URL of the lab (one control-plane
/// node's own API server, rather than the endpoint the kubeconfig names).
pub async fn client_at(kubeconfig: &Path, url: &str) -> Result<kube::Client, LabError> {
    let err = |e: Box<dyn std::error::Error + Send + Sync>| {
        LabError::Kubeconfig(kubeconfig.to_path_buf(), e)
    };
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| err(Box::new(e)))?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| err(Box::new(e)))?;
    config.cluster_url = url.parse().map_err(|e| err(Box::new(e)))?;
    kube::Client::try_from(config).map_err(|e| err(Box::new(e)))
}

/// Creates an object given as JSON; one that already exists is left as it is.
pub(crate) async fn create<K>(api: &Api<K>, obj: Value) -> Result<(), LabError>
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let typed: K = serde_json::from_value(obj)
        .map_err(|e| LabError::Invalid(format!("bad lab object {name}: {e}")))?;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match api.create(&PostParams::default(), &typed).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
            // A pod in a namespace created a moment ago is refused until the controller
            // manager has made its `default` service account; busy servers shed load.
            Err(kube::Error::Api(s))
                if attempts < 60
                    && (matches!(s.code, 429 | 500 | 503 | 504)
                        || (s.code == 403 && s.message.contains("service account"))) =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(source) => {
                return Err(LabError::Kube {
                    context: format!("create {name}"),
                    source,
                });
            }
        }
    }
}

/// True if the node's Ready condition is True.
pub fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
