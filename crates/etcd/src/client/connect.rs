//! Connecting to one etcd member over gRPC, with our own TCP/TLS dialer.
//!
//! We build the tonic channel ourselves (etcd-client's `raw-channel` feature) instead of letting
//! etcd-client balance over all endpoints, because: a snapshot must come from one chosen member;
//! a balanced channel waits forever when no endpoint is reachable; rustls through tonic cannot
//! skip server verification (`--insecure-skip-tls-verify`); and owning the dialer lets us turn TLS
//! failures into messages that say which file is wrong.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_client::Client;
use hyper_util::rt::TokioIo;
use kubemaint_core::duration::Go;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Endpoint as TonicEndpoint, Uri};

use super::config::{ConfigError, ConnectionConfig, Endpoint};
use super::files::TlsFiles;

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

/// Loaded TLS material, shared by all connections.
#[derive(Clone)]
pub struct TlsMaterial {
    config: Arc<rustls::ClientConfig>,
    files: TlsFiles,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("files", &self.files)
            .finish()
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::ReadFile {
        what,
        path: path.to_path_buf(),
        error: e.to_string(),
    })
}

fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsMaterial {
    /// Reads the CA, client certificate and key, and builds a rustls client configuration
    /// (ALPN `h2`, as gRPC over TLS needs).
    pub fn load(files: &TlsFiles) -> Result<Self, ClientError> {
        let provider = crypto_provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls {
                endpoint: "-".into(),
                detail: e.to_string(),
            })?;
        let builder = if files.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        } else {
            let Some(ca_path) = &files.cacert else {
                return Err(ClientError::BadPem {
                    what: "CA file",
                    path: PathBuf::from("(none)"),
                    why: "TLS needs --cacert (or --pki-dir), or --insecure-skip-tls-verify".into(),
                });
            };
            let pem = read("CA file", ca_path)?;
            let mut roots = rustls::RootCertStore::empty();
            let mut count = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| ClientError::BadPem {
                    what: "CA file",
                    path: ca_path.clone(),
                    why: e.to_string(),
                })?;
                roots.add(cert).map_err(|e| ClientError::BadPem {
                    what: "CA file",
                    path: ca_path.clone(),
                    why: e.to_string(),
                })?;
                count += 1;
            }
            if count == 0 {
                return Err(ClientError::BadPem {
                    what: "CA file",
                    path: ca_path.clone(),
                    why: "no PEM certificate in it".into(),
                });
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match &files.client {
            None => builder.with_no_client_auth(),
            Some((cert_path, key_path)) => {
                let pem = read("client certificate", cert_path)?;
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<_, _>>()
                    .map_err(|e| ClientError::BadPem {
                        what: "client certificate",
                        path: cert_path.clone(),
                        why: e.to_string(),
                    })?;
                if chain.is_empty() {
                    return Err(ClientError::BadPem {
                        what: "client certificate",
                        path: cert_path.clone(),
                        why: "no PEM certificate in it".into(),
                    });
                }
                let key_pem = read("client key", key_path)?;
                let key =
                    PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| ClientError::BadPem {
                        what: "client key",
                        path: key_path.clone(),
                        why: format!("no PEM private key in it ({e})"),
                    })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| ClientError::BadPem {
                        what: "client key",
                        path: key_path.clone(),
                        why: format!("does not match {} ({e})", cert_path.display()),
                    })?
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            files: files.clone(),
        })
    }
}

/// Accepts any server certificate (only for `--insecure-skip-tls-verify`), but still checks the
/// handshake signatures so the session is at least bound to the key the server presented.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The last TLS error seen on a connection's reads and writes. With TLS 1.3 the server rejects
/// a client certificate only after the handshake, so its alert surfaces in a later read that
/// hyper reports as a bare "connection closed"; keeping it lets us name the real fault.
#[derive(Debug, Clone, Default)]
pub struct TlsNote(Arc<std::sync::Mutex<Option<rustls::Error>>>);

impl TlsNote {
    fn record<T>(&self, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(e)) = &r
            && let Some(t) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
            && let Ok(mut slot) = self.0.lock()
        {
            slot.get_or_insert_with(|| t.clone());
        }
        r
    }

    /// The TLS error recorded, if any.
    pub fn get(&self) -> Option<rustls::Error> {
        self.0.lock().ok().and_then(|s| s.clone())
    }
}

/// A plain or TLS TCP stream.
enum Stream {
    Plain(TcpStream),
    /// The stream, the error note, and server bytes read ahead during the dial (not yet consumed).
    Tls(Box<TlsStream<TcpStream>>, TlsNote, Vec<u8>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s, n, ahead) => {
                if !ahead.is_empty() {
                    let k = ahead.len().min(buf.remaining());
                    buf.put_slice(&ahead[..k]);
                    ahead.drain(..k);
                    return Poll::Ready(Ok(()));
                }
                n.record(Pin::new(s.as_mut()).poll_read(cx, buf))
            }
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s, n, _) => n.record(Pin::new(s.as_mut()).poll_write(cx, buf)),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s, n, _) => n.record(Pin::new(s.as_mut()).poll_flush(cx)),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s, _, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s, n, _) => n.record(Pin::new(s.as_mut()).poll_write_vectored(cx, bufs)),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s, _, _) => s.is_write_vectored(),
        }
    }
}

/// Dials TCP (and TLS) to one endpoint.
async fn dial(
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    note: TlsNote,
    first_bytes_wait: Duration,
) -> io::Result<TokioIo<Stream>> {
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    let _ = tcp.set_nodelay(true);
    let Some(config) = tls else {
        return Ok(TokioIo::new(Stream::Plain(tcp)));
    };
    let name = ServerName::try_from(host.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut stream = TlsConnector::from(config).connect(name, tcp).await?;
    // With TLS 1.3 the server checks our client certificate after our side of the handshake has
    // finished, and its alert races with our first write (which then fails with a bare broken
    // pipe). gRPC servers speak first (HTTP/2 SETTINGS), so wait briefly for their first bytes:
    // an alert then surfaces here, as a TLS error at dial time; the bytes are replayed to HTTP/2.
    let mut ahead = vec![0u8; 16 * 1024];
    let ahead = match tokio::time::timeout(first_bytes_wait, stream.read(&mut ahead)).await {
        Ok(Ok(0)) => {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection right after the TLS handshake",
            ));
        }
        Ok(Ok(n)) => {
            ahead.truncate(n);
            ahead
        }
        Ok(Err(e)) => return Err(e),
        // A silent server: carry on, HTTP/2 will tell.
        Err(_) => Vec::new(),
    };
    Ok(TokioIo::new(Stream::Tls(Box::new(stream), note, ahead)))
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

/// Walks an error's source chain for a rustls or I/O cause.
fn find_cause(
    err: &(dyn std::error::Error + 'static),
) -> (Option<rustls::Error>, Option<io::ErrorKind>, String) {
    let mut tls = None;
    let mut io_kind = None;
    let mut messages: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let text = e.to_string();
        if !messages.iter().any(|m| m.contains(&text)) {
            messages.push(text);
        }
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            tls.get_or_insert_with(|| r.clone());
        }
        if let Some(ioe) = e.downcast_ref::<io::Error>() {
            io_kind.get_or_insert(ioe.kind());
            if let Some(r) = ioe
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
            {
                tls.get_or_insert_with(|| r.clone());
            }
        }
        if let Some(status) = e.downcast_ref::<tonic::Status>()
            && let Some(src) = std::error::Error::source(status)
        {
            cur = Some(src);
            continue;
        }
        cur = e.source();
    }
    (tls, io_kind, messages.last().cloned().unwrap_or_default())
}

/// Classifies an error from dialling or calling `endpoint`.
pub fn explain_error(
    endpoint: &Endpoint,
    tls: &TlsFiles,
    note: Option<&TlsNote>,
    what: &str,
    err: &(dyn std::error::Error + 'static),
) -> ClientError {
    use rustls::{AlertDescription as A, CertificateError as C};
    let ep = endpoint.to_string();
    let (tls_err, io_kind, innermost) = find_cause(err);
    let tls_err = tls_err.or_else(|| note.and_then(TlsNote::get));
    let ca = tls
        .cacert
        .as_ref()
        .map_or_else(|| "none".to_string(), |p| p.display().to_string());
    let cert = tls
        .client
        .as_ref()
        .map_or_else(|| "(none)".to_string(), |(c, _)| c.display().to_string());
    if let Some(t) = tls_err {
        let detail = t.to_string();
        return match t {
            rustls::Error::InvalidCertificate(C::NotValidForName)
            | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => {
                ClientError::ServerNameMismatch {
                    endpoint: ep,
                    host: endpoint.host.clone(),
                    detail,
                }
            }
            rustls::Error::InvalidCertificate(_) => ClientError::ServerCertUntrusted {
                endpoint: ep,
                ca,
                detail,
            },
            rustls::Error::AlertReceived(A::CertificateRequired) => {
                ClientError::ClientCertRequired {
                    endpoint: ep,
                    detail,
                }
            }
            // The server refused our certificate, or our lack of one.
            rustls::Error::AlertReceived(
                A::BadCertificate
                | A::UnknownCA
                | A::CertificateUnknown
                | A::UnsupportedCertificate
                | A::CertificateExpired
                | A::CertificateRevoked
                | A::AccessDenied,
            ) => {
                if tls.client.is_none() {
                    ClientError::ClientCertRequired {
                        endpoint: ep,
                        detail,
                    }
                } else {
                    ClientError::ClientCertRejected {
                        endpoint: ep,
                        cert,
                        detail,
                    }
                }
            }
            _ => ClientError::Tls {
                endpoint: ep,
                detail,
            },
        };
    }
    match io_kind {
        // The server hung up during the handshake: typically a plain-HTTP etcd.
        Some(io::ErrorKind::UnexpectedEof) if endpoint.tls && innermost.contains("handshake") => {
            ClientError::Tls {
                endpoint: ep,
                detail: format!(
                    "{innermost}: the server closed the connection during the TLS handshake; if it serves plain HTTP use http://{}:{}",
                    endpoint.host, endpoint.port
                ),
            }
        }
        Some(io::ErrorKind::ConnectionRefused) => ClientError::Unreachable {
            endpoint: ep,
            detail: "connection refused".into(),
        },
        Some(io::ErrorKind::TimedOut) => ClientError::Timeout {
            endpoint: ep,
            what: what.to_string(),
            after: Duration::ZERO,
            flag: "--dial-timeout",
        },
        Some(
            io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::AddrNotAvailable,
        ) => ClientError::Unreachable {
            endpoint: ep,
            detail: innermost,
        },
        _ if innermost.contains("failed to lookup address") => ClientError::Unreachable {
            endpoint: ep,
            detail: innermost,
        },
        _ => ClientError::Rpc {
            endpoint: ep,
            what: what.to_string(),
            detail: innermost,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{AlertDescription, CertificateError};

    fn ep() -> Endpoint {
        Endpoint {
            original: "https://10.0.0.1:2379".into(),
            host: "10.0.0.1".into(),
            port: 2379,
            tls: true,
        }
    }
    fn tls(client: bool) -> TlsFiles {
        TlsFiles {
            cacert: Some("/pki/etcd/ca.crt".into()),
            client: client.then(|| ("/pki/c.crt".into(), "/pki/c.key".into())),
            insecure_skip_verify: false,
        }
    }
    /// A rustls error as tokio-rustls reports it: inside an `io::Error`.
    fn wrapped(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn untrusted_server_names_the_ca_file() {
        let e = wrapped(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        let err = explain_error(&ep(), &tls(true), None, "connecting", &e);
        assert!(
            matches!(err, ClientError::ServerCertUntrusted { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("/pki/etcd/ca.crt"), "{err}");
    }

    #[test]
    fn wrong_host_is_a_name_mismatch() {
        let e = wrapped(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ));
        let err = explain_error(&ep(), &tls(true), None, "connecting", &e);
        assert!(
            matches!(err, ClientError::ServerNameMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn alerts_blame_the_client_certificate_or_its_absence() {
        let e = wrapped(rustls::Error::AlertReceived(
            AlertDescription::BadCertificate,
        ));
        let err = explain_error(&ep(), &tls(true), None, "status", &e);
        assert!(
            err.to_string()
                .contains("rejected our client certificate /pki/c.crt"),
            "{err}"
        );
        let err = explain_error(&ep(), &tls(false), None, "status", &e);
        assert!(
            matches!(err, ClientError::ClientCertRequired { .. }),
            "{err}"
        );
    }

    #[test]
    fn an_alert_seen_only_by_the_stream_is_used() {
        // TLS 1.3: hyper reports a bare "connection closed"; the note has the alert.
        let note = TlsNote::default();
        let _ = note.record::<()>(Poll::Ready(Err(wrapped(rustls::Error::AlertReceived(
            AlertDescription::UnknownCA,
        )))));
        let e = io::Error::other("connection closed");
        let err = explain_error(&ep(), &tls(true), Some(&note), "status", &e);
        assert!(
            matches!(err, ClientError::ClientCertRejected { .. }),
            "{err}"
        );
    }

    #[test]
    fn refused_and_plain_http() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        let err = explain_error(&ep(), &tls(true), None, "connecting", &e);
        assert!(err.to_string().contains("connection refused"), "{err}");
        let e = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        let err = explain_error(&ep(), &tls(true), None, "connecting", &e);
        assert!(
            err.to_string().contains("use http://10.0.0.1:2379"),
            "{err}"
        );
    }

    #[test]
    fn unusable_ca_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, "not pem").unwrap();
        let err = TlsMaterial::load(&TlsFiles {
            cacert: Some(ca.clone()),
            client: None,
            insecure_skip_verify: false,
        })
        .unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        let err = TlsMaterial::load(&TlsFiles {
            cacert: Some(dir.path().join("missing.crt")),
            client: None,
            insecure_skip_verify: false,
        })
        .unwrap_err();
        assert!(err.to_string().contains("cannot read CA file"), "{err}");
    }
}
