//! Connecting to one etcd member over gRPC, with our own TCP/TLS dialer.
//!
//! We build the tonic channel ourselves (etcd-client's `raw-channel` feature) instead of letting
//! etcd-client balance over all endpoints, because: a snapshot must come from one chosen member;
//! a balanced channel waits forever when no endpoint is reachable; rustls through tonic cannot
//! skip server verification (`--insecure-skip-tls-verify`); and owning the dialer lets us turn TLS
//! failures into messages that say which file is wrong.
//!
//! The client and its errors are here; `tls.rs` loads the TLS material, `stream.rs` dials TCP/TLS,
//! `explain.rs` turns failures into [`ClientError`]s.

use std::path::PathBuf;
use std::time::Duration;

use etcd_client::Client;
use kubemaint_core::duration::Go;
use tonic::transport::{Endpoint as TonicEndpoint, Uri};

use super::config::{ConfigError, ConnectionConfig, Endpoint};
use super::files::TlsFiles;

mod explain;
mod stream;
#[cfg(test)]
mod tests;
mod tls;

pub use explain::explain_error;
use stream::dial;
pub use tls::{TlsMaterial, TlsNote};

/// What went wrong talking to etcd; every message names the endpoint or file and a next step.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The settings are inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A certificate or key file cannot be read.
    #[error("cannot read {what} {}: {error}; check the path and its permissions", path.display())]
    ReadFile {
        /// CA file, client certificate or client key.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        error: String,
    },
    /// A PEM file holds nothing usable.
    #[error("{what} {} is not usable: {why}", path.display())]
    BadPem {
        /// CA file, client certificate or client key.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// TCP connection failed.
    #[error(
        "cannot connect to etcd at {endpoint}: {detail}; is etcd running and listening there? Check --endpoints"
    )]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// The cause.
        detail: String,
    },
    /// The server's certificate is not signed by our CA.
    #[error(
        "the server certificate of {endpoint} is not trusted: {detail}; --cacert ({ca}) must be the CA that signed etcd's server certificate (kubeadm: /etc/kubernetes/pki/etcd/ca.crt)"
    )]
    ServerCertUntrusted {
        /// The endpoint.
        endpoint: String,
        /// The CA file used.
        ca: String,
        /// rustls' finding.
        detail: String,
    },
    /// The server's certificate is not issued for the host we dialled.
    #[error(
        "the server certificate of {endpoint} is not valid for host {host}: {detail}; connect by a name or IP the certificate lists (kubeadm: 127.0.0.1 or the node IP)"
    )]
    ServerNameMismatch {
        /// The endpoint.
        endpoint: String,
        /// The host we dialled.
        host: String,
        /// rustls' finding.
        detail: String,
    },
    /// The server refused our client certificate.
    #[error(
        "etcd at {endpoint} rejected our client certificate {cert} ({detail}); use a certificate signed by etcd's CA, e.g. --pki-dir /etc/kubernetes/pki or --cert/--key /etc/kubernetes/pki/etcd/healthcheck-client.{{crt,key}}"
    )]
    ClientCertRejected {
        /// The endpoint.
        endpoint: String,
        /// The certificate file (or "none").
        cert: String,
        /// The TLS alert.
        detail: String,
    },
    /// The server wants a client certificate and we have none.
    #[error(
        "etcd at {endpoint} requires a client certificate ({detail}); pass --cert and --key, or --pki-dir /etc/kubernetes/pki"
    )]
    ClientCertRequired {
        /// The endpoint.
        endpoint: String,
        /// The TLS alert.
        detail: String,
    },
    /// Other TLS failures (e.g. a plain-HTTP server).
    #[error(
        "TLS with etcd at {endpoint} failed: {detail}; check the https:// scheme and the certificates"
    )]
    Tls {
        /// The endpoint.
        endpoint: String,
        /// The cause.
        detail: String,
    },
    /// Nothing came back in time.
    #[error("{what} on {endpoint} got no answer within {}; is the endpoint right and etcd healthy? (raise {flag} if the link is slow)", Go(*after))]
    Timeout {
        /// The endpoint.
        endpoint: String,
        /// The operation.
        what: String,
        /// The limit.
        after: Duration,
        /// The flag that sets the limit.
        flag: &'static str,
    },
    /// An RPC failed.
    #[error("{what} on {endpoint} failed: {detail}")]
    Rpc {
        /// The endpoint.
        endpoint: String,
        /// The operation.
        what: String,
        /// The cause.
        detail: String,
    },
}

/// A gRPC connection to one member.
pub struct MemberClient {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The etcd-client over our channel.
    pub client: Client,
    command_timeout: Duration,
    tls_files: TlsFiles,
    note: TlsNote,
}

impl std::fmt::Debug for MemberClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// HTTP/2 windows large enough that a snapshot stream is not throttled by flow control on
/// fast links; memory stays bounded by them.
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 8 << 20;

impl MemberClient {
    /// Connects to `endpoint` (TCP, TLS, HTTP/2) within the dial timeout; authenticates if a user
    /// is configured.
    pub async fn connect(
        config: &ConnectionConfig,
        tls: Option<&TlsMaterial>,
        endpoint: &Endpoint,
    ) -> Result<Self, ClientError> {
        let tls_config = if endpoint.tls {
            match tls {
                Some(t) => Some(t.config.clone()),
                None => Some(TlsMaterial::load(&config.tls)?.config),
            }
        } else {
            None
        };
        let tls_files = tls.map_or_else(|| config.tls.clone(), |t| t.files.clone());
        // We do TLS in our own connector; tonic must see http:// or it insists on its own TLS.
        let plain = Endpoint {
            tls: false,
            ..endpoint.clone()
        };
        let uri: Uri =
            plain
                .url()
                .parse()
                .map_err(|e: http::uri::InvalidUri| ConfigError::BadEndpoint {
                    endpoint: endpoint.original.clone(),
                    why: e.to_string(),
                })?;
        let host = endpoint.host.clone();
        let port = endpoint.port;
        let note = TlsNote::default();
        let dial_note = note.clone();
        let first_bytes_wait = config.dial_timeout / 2;
        let connector = tower::service_fn(move |_: Uri| {
            dial(
                host.clone(),
                port,
                tls_config.clone(),
                dial_note.clone(),
                first_bytes_wait,
            )
        });
        let channel_builder = TonicEndpoint::from(uri)
            .connect_timeout(config.dial_timeout)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(20));
        let channel = match tokio::time::timeout(
            config.dial_timeout,
            channel_builder.connect_with_connector(connector),
        )
        .await
        {
            Err(_) => {
                return Err(ClientError::Timeout {
                    endpoint: endpoint.to_string(),
                    what: "connecting".into(),
                    after: config.dial_timeout,
                    flag: "--dial-timeout",
                });
            }
            Ok(Err(e)) => {
                return Err(
                    match explain_error(endpoint, &tls_files, Some(&note), "connecting", &e) {
                        // tonic's own connect timeout fired (TCP accepted, no TLS answer yet).
                        ClientError::Timeout { endpoint, what, .. } => ClientError::Timeout {
                            endpoint,
                            what,
                            after: config.dial_timeout,
                            flag: "--dial-timeout",
                        },
                        other => other,
                    },
                );
            }
            Ok(Ok(c)) => c,
        };
        let options = config
            .auth
            .as_ref()
            .map(|(u, p)| etcd_client::ConnectOptions::new().with_user(u.clone(), p.expose()));
        let client = tokio::time::timeout(
            config.dial_timeout + config.command_timeout,
            Client::from_channel(etcd_client::Channel::Tonic(channel), options),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            endpoint: endpoint.to_string(),
            what: "authenticating".into(),
            after: config.dial_timeout + config.command_timeout,
            flag: "--command-timeout",
        })?
        .map_err(|e| explain_error(endpoint, &tls_files, Some(&note), "authenticating", &e))?;
        Ok(MemberClient {
            endpoint: endpoint.clone(),
            client,
            command_timeout: config.command_timeout,
            tls_files,
            note,
        })
    }

    /// Runs a short call with the command timeout, explaining failures.
    pub async fn call<T, F, Fut>(&mut self, what: &str, f: F) -> Result<T, ClientError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let client = self.client.clone();
        match tokio::time::timeout(self.command_timeout, f(client)).await {
            Err(_) => Err(ClientError::Timeout {
                endpoint: self.endpoint.to_string(),
                what: what.to_string(),
                after: self.command_timeout,
                flag: "--command-timeout",
            }),
            Ok(Err(e)) => Err(self.explain(what, &e)),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// The TLS files this connection uses (for error messages).
    pub fn tls_files(&self) -> &TlsFiles {
        &self.tls_files
    }

    /// TLS errors seen on this connection (for error messages).
    pub fn tls_note(&self) -> &TlsNote {
        &self.note
    }

    /// Turns a transport or gRPC error into a message that names the fault.
    pub fn explain(&self, what: &str, err: &(dyn std::error::Error + 'static)) -> ClientError {
        explain_error(&self.endpoint, &self.tls_files, Some(&self.note), what, err)
    }
}
