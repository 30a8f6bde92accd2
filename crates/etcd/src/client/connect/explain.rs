//! Turning a transport, TLS or gRPC error into a [`ClientError`] that names the fault.

use std::io;
use std::time::Duration;

use super::ClientError;
use super::tls::TlsNote;
use crate::client::config::Endpoint;
use crate::client::files::TlsFiles;

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
