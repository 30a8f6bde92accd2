//! A kubeadm-shaped PKI, generated in the same file layout kubeadm uses under `/etc/kubernetes/pki`.
//!
//! Keys are ECDSA P-256 (kubeadm uses RSA by default; every component accepts both, and EC keys
//! generate in microseconds, which keeps a warm `up` fast).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

/// Errors while generating or writing the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Certificate generation failed.
    #[error("cannot generate certificate {name}")]
    Generate {
        /// Which certificate.
        name: String,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// Writing a file failed.
    #[error("cannot write {path}: check the lab directory is writable")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A certificate authority: its certificate and key, used to sign leaves.
struct Authority {
    cert: Certificate,
    key: KeyPair,
}

/// What a leaf certificate is for.
#[derive(Clone, Copy)]
enum Usage {
    Server,
    Client,
    ServerAndClient,
}

/// Paths of the PKI files, in kubeadm's layout relative to `DIR/pki`.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The `pki` directory.
    pub dir: PathBuf,
}

impl Pki {
    /// The PKI rooted at `dir` (usually `LAB/pki`).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    /// `pki/<rel>`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
    /// The etcd CA certificate (`pki/etcd/ca.crt`).
    pub fn etcd_ca(&self) -> PathBuf {
        self.path("etcd/ca.crt")
    }
    /// The etcd `healthcheck-client` certificate and key, as an operator on a kubeadm node would use.
    pub fn etcd_healthcheck_client(&self) -> (PathBuf, PathBuf) {
        (
            self.path("etcd/healthcheck-client.crt"),
            self.path("etcd/healthcheck-client.key"),
        )
    }

    /// Generates every certificate and key kubeadm would, plus the client certificates the lab's
    /// components and the admin kubeconfig use (returned as PEM, since kubeadm embeds those in
    /// kubeconfig files rather than keeping them under `pki/`).
    pub fn generate(&self) -> Result<ClientCredentials, PkiError> {
        let loopback = [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1)),
        ];
        let ca = self.authority("ca", "kubernetes")?;
        self.leaf(
            &ca,
            "apiserver",
            "kube-apiserver",
            &[],
            &[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            &loopback,
            Usage::Server,
        )?;
        self.leaf(
            &ca,
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            &["system:masters"],
            &[],
            &[],
            Usage::Client,
        )?;
        let front = self.authority("front-proxy-ca", "front-proxy-ca")?;
        self.leaf(
            &front,
            "front-proxy-client",
            "front-proxy-client",
            &[],
            &[],
            &[],
            Usage::Client,
        )?;

        let etcd_ca = self.authority("etcd/ca", "etcd-ca")?;
        let lo = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
        self.leaf(
            &etcd_ca,
            "etcd/server",
            "lab-etcd",
            &[],
            &["localhost"],
            &lo,
            Usage::ServerAndClient,
        )?;
        self.leaf(
            &etcd_ca,
            "etcd/peer",
            "lab-etcd",
            &[],
            &["localhost"],
            &lo,
            Usage::ServerAndClient,
        )?;
        self.leaf(
            &etcd_ca,
            "etcd/healthcheck-client",
            "kube-etcd-healthcheck-client",
            &[],
            &[],
            &[],
            Usage::Client,
        )?;
        self.leaf(
            &etcd_ca,
            "apiserver-etcd-client",
            "kube-apiserver-etcd-client",
            &[],
            &[],
            &[],
            Usage::Client,
        )?;

        // The service-account signing key pair (kubeadm: sa.key / sa.pub).
        let sa = KeyPair::generate().map_err(|source| PkiError::Generate {
            name: "sa".into(),
            source,
        })?;
        self.write("sa.key", &sa.serialize_pem(), true)?;
        self.write("sa.pub", &sa.public_key_pem(), false)?;

        let client = |cn: &str, org: &[&str]| -> Result<(String, String), PkiError> {
            let (cert, key) = self.sign(&ca, cn, org, &[], &[], Usage::Client)?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        Ok(ClientCredentials {
            ca_pem: ca.cert.pem(),
            admin: client("kubernetes-admin", &["system:masters"])?,
            controller_manager: client("system:kube-controller-manager", &[])?,
            scheduler: client("system:kube-scheduler", &[])?,
            kubelet: client(KUBELET_USER, &["system:masters"])?,
            first_node_kubelet: client(&format!("system:node:{FIRST_NODE}"), &["system:nodes"])?,
        })
    }

    fn authority(&self, base: &str, cn: &str) -> Result<Authority, PkiError> {
        let gen_err = |source| PkiError::Generate {
            name: base.to_string(),
            source,
        };
        let key = KeyPair::generate().map_err(gen_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
        params.distinguished_name = dn(cn, &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        let cert = params.self_signed(&key).map_err(gen_err)?;
        self.write(&format!("{base}.crt"), &cert.pem(), false)?;
        self.write(&format!("{base}.key"), &key.serialize_pem(), true)?;
        Ok(Authority { cert, key })
    }

    #[allow(clippy::too_many_arguments)]
    fn leaf(
        &self,
        ca: &Authority,
        base: &str,
        cn: &str,
        org: &[&str],
        dns: &[&str],
        ips: &[IpAddr],
        usage: Usage,
    ) -> Result<(), PkiError> {
        let (cert, key) = self.sign(ca, cn, org, dns, ips, usage)?;
        self.write(&format!("{base}.crt"), &cert.pem(), false)?;
        self.write(&format!("{base}.key"), &key.serialize_pem(), true)
    }

    fn sign(
        &self,
        ca: &Authority,
        cn: &str,
        org: &[&str],
        dns: &[&str],
        ips: &[IpAddr],
        usage: Usage,
    ) -> Result<(Certificate, KeyPair), PkiError> {
        let gen_err = |source| PkiError::Generate {
            name: cn.to_string(),
            source,
        };
        let key = KeyPair::generate().map_err(gen_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
        params.distinguished_name = dn(cn, org);
        for name in dns {
            params
                .subject_alt_names
                .push(SanType::DnsName((*name).try_into().map_err(gen_err)?));
        }
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = match usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        let cert = params.signed_by(&key, &ca.cert, &ca.key).map_err(gen_err)?;
        Ok((cert, key))
    }

    fn write(&self, rel: &str, contents: &str, secret: bool) -> Result<(), PkiError> {
        let path = self.path(rel);
        write_file(&path, contents.as_bytes(), secret)
            .map_err(|source| PkiError::Write { path, source })
    }
}

/// Client certificates (PEM cert, PEM key) that kubeadm embeds in kubeconfig files.
///
/// Its `Debug` names the identities only: no certificate or key body reaches a log.
#[derive(Clone)]
pub struct ClientCredentials {
    /// The cluster CA certificate.
    pub ca_pem: String,
    /// `kubernetes-admin` in `system:masters` (admin.conf).
    pub admin: (String, String),
    /// `system:kube-controller-manager` (controller-manager.conf).
    pub controller_manager: (String, String),
    /// `system:kube-scheduler` (scheduler.conf).
    pub scheduler: (String, String),
    /// The simulated kubelets' own identity ([`SIM_KUBECONFIG`]), kept apart from the admin's so
    /// the audit log can leave their traffic out.
    pub kubelet: (String, String),
    /// The first control-plane node's kubelet identity (`system:node:cp-1` in `system:nodes`),
    /// in `DIR/kubelet.conf` as kubeadm writes it: kubeadm reads the node's name from it.
    pub first_node_kubelet: (String, String),
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pair = "(<certificate>, <private key>)";
        f.debug_struct("ClientCredentials")
            .field("ca_pem", &"<certificate>")
            .field("admin", &pair)
            .field("controller_manager", &pair)
            .field("scheduler", &pair)
            .field("kubelet", &pair)
            .field("first_node_kubelet", &pair)
            .finish()
    }
}

/// The user the simulated kubelets authenticate as.
pub const KUBELET_USER: &str = "lab-kubelet";

/// The simulated kubelets' kubeconfig in the lab directory (`DIR/kubelet.conf` is the first
/// control-plane node's own, as kubeadm lays out `/etc/kubernetes`).
pub const SIM_KUBECONFIG: &str = "lab-kubelet.conf";

/// The first control-plane node's name (the lab directory is its `/etc/kubernetes`).
pub const FIRST_NODE: &str = "cp-1";

fn dn(cn: &str, org: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for o in org {
        dn.push(DnType::OrganizationName, *o);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

/// Writes a file, creating parent directories; secrets get mode 0600.
pub(crate) fn write_file(path: &Path, contents: &[u8], secret: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mode = if secret { 0o600 } else { 0o644 };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    file.write_all(contents)
}

#[cfg(test)]
mod tests {
    use super::Pki;

    /// Generated credentials print no certificate or key body through `Debug`.
    #[test]
    fn credentials_debug_shows_no_pem() {
        let dir = tempfile::tempdir().unwrap();
        let creds = Pki::at(dir.path().join("pki")).generate().unwrap();
        assert!(creds.admin.1.contains("PRIVATE KEY"));
        let text = format!("{creds:?} {creds:#?}");
        assert!(!text.contains("-----BEGIN"), "{text}");
        for body in [
            &creds.ca_pem,
            &creds.admin.0,
            &creds.admin.1,
            &creds.kubelet.1,
        ] {
            let line = body.lines().nth(1).unwrap();
            assert!(!text.contains(line), "{text}");
        }
    }
}
