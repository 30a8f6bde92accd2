//! etcdctl-style connection flags shared by the live etcd commands.

use clap::Args;

/// How to reach etcd (same flags and `ETCDCTL_*` variables as etcdctl).
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Comma-separated client URLs.
    #[arg(
        long,
        env = "ETCDCTL_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
}
