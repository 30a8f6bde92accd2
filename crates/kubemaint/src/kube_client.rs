//! Building kube clients from kubectl-style flags.

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::global::GlobalArgs;

/// `kubemaint/<version>`, sent as the User-Agent of every request.
pub const USER_AGENT: &str = concat!("kubemaint/", env!("CARGO_PKG_VERSION"));

/// Whether the client may retry HTTP 429/503/504 by itself.
///
/// kube retries 429 by default; an eviction refused by a PodDisruptionBudget answers 429, and our
/// drain loop must see that at once to name the blocker, so eviction clients use [`Retry::Off`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// kube's default server-retry policy.
    Default,
    /// No automatic retry.
    Off,
}

/// Resolves the kubeconfig and context into a kube config, as kubectl does: the one file given
/// by `--kubeconfig`; else the files listed in `$KUBECONFIG`, merged (the first to set a value
/// wins); else `~/.kube/config`.
///
/// kube's errors name the file and the cause, so the messages added here say only what to do.
pub async fn config(global: &GlobalArgs, retry: Retry) -> anyhow::Result<kube::Config> {
    let options = KubeConfigOptions {
        context: global.context.clone(),
        ..Default::default()
    };
    let mut config = match &global.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .context("cannot load the kubeconfig given by --kubeconfig: check the path")?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .context("the kubeconfig given by --kubeconfig is not usable")?
        }
        // kube's own lookup: $KUBECONFIG as a list of files merged, else ~/.kube/config.
        None => kube::Config::from_kubeconfig(&options).await.context(
            "no usable kubeconfig ($KUBECONFIG, else ~/.kube/config): fix it, or pass --kubeconfig PATH",
        )?,
    };
    if retry == Retry::Off {
        config.default_retry = false;
    }
    // kube sends no User-Agent of its own; name ourselves so the API server's audit log (and
    // the lab's request counting) can tell kubemaint's requests from kubectl's.
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    Ok(config)
}

/// A client for the cluster chosen by the global flags.
pub async fn client(global: &GlobalArgs, retry: Retry) -> anyhow::Result<kube::Client> {
    let config = config(global, retry).await?;
    kube::Client::try_from(config).context("cannot build a Kubernetes client from the kubeconfig")
}
