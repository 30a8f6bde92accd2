//! The TLS material a connection uses (rustls with the `ring` provider), the verifier behind
//! `--insecure-skip-tls-verify`, and the note that keeps a TLS error hyper would hide.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::Poll;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::ClientError;
use crate::client::files::TlsFiles;

/// Loaded TLS material, shared by all connections.
#[derive(Clone)]
pub struct TlsMaterial {
    pub(super) config: Arc<rustls::ClientConfig>,
    pub(super) files: TlsFiles,
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
    pub(super) fn record<T>(&self, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
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
