//! `--online`: the official `https://dl.k8s.io/release/stable-1.N.txt` labels (one line, the
//! latest patch of the minor), read over HTTPS and merged into the release index by the core's
//! [`ReleaseIndex::with_labels`]. Never needed by tests; without network it is a clear error.

use std::time::Duration;

use kubemaint_core::upgrade::Minor;
use kubemaint_core::upgrade::releases::{OnlineUpdate, ReleaseIndex};

/// Where the labels live.
pub const LABELS_URL: &str = "https://dl.k8s.io/release";

/// Why the labels could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    /// The HTTP client could not be built.
    #[error("cannot build an HTTPS client")]
    Client(#[source] reqwest::Error),
    /// A label could not be fetched.
    #[error(
        "cannot read {url}; without network, run without --online (the built-in index, or --releases FILE)"
    )]
    Fetch {
        /// The label's URL.
        url: String,
        /// The client error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The label's URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// A label did not hold a release of its minor.
    #[error("the official labels do not fit the release index")]
    Label(#[source] kubemaint_core::upgrade::releases::ReleaseError),
}

/// Reads `stable-1.N.txt` for `from` up to one minor past the index's newest (to notice a
/// minor the index lacks; a 404 there means it is not released yet), and merges them.
pub async fn refresh(
    index: &ReleaseIndex,
    from: Minor,
) -> Result<(ReleaseIndex, OnlineUpdate), OnlineError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("kubemaint/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(OnlineError::Client)?;
    let last = index
        .newest()
        .map(|r| r.version.minor_of().next())
        .unwrap_or(from);
    let mut labels = Vec::new();
    let mut minor = from;
    while minor <= last {
        let url = format!("{LABELS_URL}/stable-{minor}.txt");
        let response = client
            .get(&url)
            .send()
            .await
            .map_err(|source| OnlineError::Fetch {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND && minor == last {
            break;
        }
        if !status.is_success() {
            return Err(OnlineError::Status {
                url,
                status: status.as_u16(),
            });
        }
        let body = response.text().await.map_err(|source| OnlineError::Fetch {
            url: url.clone(),
            source,
        })?;
        labels.push((minor, body));
        minor = minor.next();
    }
    index.with_labels(&labels).map_err(OnlineError::Label)
}

/// The index's source after a refresh, for the report (`built-in; patches from
/// https://dl.k8s.io/release: 1.33: v1.33.7 -> v1.33.9`).
pub fn describe(source: &str, update: &OnlineUpdate) -> String {
    let mut out = format!("{source}; latest patches from {LABELS_URL}/stable-1.N.txt");
    if update.updated.is_empty() {
        out.push_str(" (none newer)");
    } else {
        out.push_str(&format!(": {}", update.updated.join(", ")));
    }
    if !update.unpinned.is_empty() {
        out.push_str(&format!(
            "; released but without etcd/CoreDNS pins here, so not planned: {} (pass --releases FILE)",
            update.unpinned.join(", ")
        ));
    }
    out
}
