//! How transport and TLS failures are explained, and what `TlsMaterial::load` refuses.

use std::io;
use std::task::Poll;

use rustls::{AlertDescription, CertificateError};

use super::*;

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
