//! Reading the local etcd member's client URL and certificates from kubeadm's static pod manifest
//! (`/etc/kubernetes/manifests/etcd.yaml`, written by kubeadm's `phases/etcd/local.go`).
//!
//! Only the etcd command line is read (`--listen-client-urls`, `--advertise-client-urls`,
//! `--trusted-ca-file`, `--peer-cert-file`, `--cert-file`/`--key-file`); the manifest is parsed as
//! plain YAML so this crate stays free of Kubernetes types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::files::{FileProbe, TlsFiles};

/// Why the manifest cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KubeadmError {
    /// The file cannot be read.
    #[error(
        "cannot read kubeadm's etcd manifest {}: {error}; is this a kubeadm control-plane node? \
         Otherwise pass --endpoints and --pki-dir (or --cacert/--cert/--key)",
        path.display()
    )]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        error: String,
    },
    /// Not YAML, or not a pod.
    #[error("{} is not a valid pod manifest: {error}", path.display())]
    Parse {
        /// The manifest path.
        path: PathBuf,
        /// The parser's message.
        error: String,
    },
    /// No etcd container or a required flag is missing.
    #[error("{} does not look like kubeadm's etcd manifest: {what}", path.display())]
    NotEtcd {
        /// The manifest path.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
    /// No client certificate next to the CA.
    #[error(
        "no etcd client certificate found for {}: looked for {looked}; pass --cert/--key",
        path.display()
    )]
    NoClientCert {
        /// The manifest path.
        path: PathBuf,
        /// The candidates.
        looked: String,
    },
}

#[derive(Deserialize)]
struct Pod {
    spec: PodSpec,
}

#[derive(Deserialize)]
struct PodSpec {
    #[serde(default)]
    containers: Vec<Container>,
}

#[derive(Deserialize)]
struct Container {
    #[serde(default)]
    name: String,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
}

/// The etcd flags read from the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeadmEtcd {
    /// The manifest's path (for messages).
    pub manifest: PathBuf,
    /// `--flag=value` pairs from the etcd container's command and args.
    pub flags: BTreeMap<String, String>,
}

/// Parses the static pod and collects the etcd container's flags.
pub fn parse_manifest(text: &str, path: &Path) -> Result<KubeadmEtcd, KubeadmError> {
    let pod: Pod = serde_saphyr::from_str(text).map_err(|e| KubeadmError::Parse {
        path: path.to_path_buf(),
        error: e.to_string(),
    })?;
    let container = pod
        .spec
        .containers
        .iter()
        .find(|c| c.name == "etcd")
        .or_else(|| {
            pod.spec.containers.iter().find(|c| {
                c.command
                    .first()
                    .is_some_and(|cmd| cmd.rsplit('/').next() == Some("etcd"))
            })
        })
        .ok_or_else(|| KubeadmError::NotEtcd {
            path: path.to_path_buf(),
            what: "no container named etcd".into(),
        })?;
    let mut flags = BTreeMap::new();
    let mut words = container
        .command
        .iter()
        .chain(container.args.iter())
        .peekable();
    while let Some(word) = words.next() {
        let Some(flag) = word.strip_prefix("--") else {
            continue;
        };
        match flag.split_once('=') {
            Some((name, value)) => {
                flags.insert(name.to_string(), value.to_string());
            }
            None => {
                // `--flag value` form.
                if let Some(value) = words.next_if(|w| !w.starts_with("--")) {
                    flags.insert(flag.to_string(), value.clone());
                } else {
                    flags.insert(flag.to_string(), "true".into());
                }
            }
        }
    }
    Ok(KubeadmEtcd {
        manifest: path.to_path_buf(),
        flags,
    })
}

impl KubeadmEtcd {
    fn flag(&self, name: &str) -> Result<&str, KubeadmError> {
        self.flags
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| KubeadmError::NotEtcd {
                path: self.manifest.clone(),
                what: format!("the etcd command has no --{name}"),
            })
    }

    /// The URL to reach the local member: a loopback URL from `--listen-client-urls` (kubeadm
    /// listens on `https://127.0.0.1:2379` and the node IP), else the first of
    /// `--advertise-client-urls`. A wildcard listen address is turned into loopback.
    pub fn local_client_url(&self) -> Result<String, KubeadmError> {
        let listen: Vec<&str> = self
            .flags
            .get("listen-client-urls")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let is_loopback = |u: &str| {
            let host = u
                .split_once("://")
                .map_or(u, |(_, r)| r)
                .rsplit_once(':')
                .map_or(u, |(h, _)| h);
            host == "127.0.0.1" || host == "localhost" || host == "[::1]"
        };
        if let Some(u) = listen.iter().find(|u| is_loopback(u)) {
            return Ok((*u).to_string());
        }
        for wildcard in ["0.0.0.0", "[::]"] {
            if let Some(u) = listen
                .iter()
                .find(|u| u.contains(&format!("://{wildcard}:")))
            {
                return Ok(u.replace(wildcard, "127.0.0.1"));
            }
        }
        let advertise = self.flag("advertise-client-urls")?;
        advertise
            .split(',')
            .map(str::trim)
            .find(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| KubeadmError::NotEtcd {
                path: self.manifest.clone(),
                what: "--advertise-client-urls is empty".into(),
            })
    }
}

/// The CA (`--trusted-ca-file`) and a client certificate: `healthcheck-client.{crt,key}` in the
/// directory of `--peer-cert-file` (kubeadm's `etcd/` dir), else next to the CA, else
/// `apiserver-etcd-client.{crt,key}` one level up, else the server's own `--cert-file`/`--key-file`
/// (kubeadm issues it with client-auth usage too).
pub fn client_tls(
    etcd: &KubeadmEtcd,
    files: &dyn FileProbe,
    manifest: &Path,
) -> Result<TlsFiles, KubeadmError> {
    let ca = PathBuf::from(etcd.flag("trusted-ca-file")?);
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(peer) = etcd.flags.get("peer-cert-file")
        && let Some(dir) = Path::new(peer).parent()
    {
        dirs.push(dir.to_path_buf());
    }
    if let Some(dir) = ca.parent()
        && !dirs.iter().any(|d| d == dir)
    {
        dirs.push(dir.to_path_buf());
    }
    let mut candidates: Vec<(PathBuf, PathBuf)> = dirs
        .iter()
        .map(|d| {
            (
                d.join("healthcheck-client.crt"),
                d.join("healthcheck-client.key"),
            )
        })
        .collect();
    if let Some(up) = ca.parent().and_then(Path::parent) {
        candidates.push((
            up.join("apiserver-etcd-client.crt"),
            up.join("apiserver-etcd-client.key"),
        ));
    }
    if let (Some(c), Some(k)) = (etcd.flags.get("cert-file"), etcd.flags.get("key-file")) {
        candidates.push((PathBuf::from(c), PathBuf::from(k)));
    }
    for (crt, key) in &candidates {
        if files.is_file(crt) && files.is_file(key) {
            return Ok(TlsFiles {
                cacert: Some(ca),
                client: Some((crt.clone(), key.clone())),
                insecure_skip_verify: false,
            });
        }
    }
    Err(KubeadmError::NoClientCert {
        path: manifest.to_path_buf(),
        looked: candidates
            .iter()
            .map(|(c, _)| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Shaped like kubeadm v1.20's `etcd.yaml`.
    const MANIFEST: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://10.0.0.5:2379
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.0.0.5:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --client-cert-auth=true
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=https://10.0.0.5:2380
    - --initial-cluster=cp-1=https://10.0.0.5:2380
    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.0.5:2379
    - --listen-metrics-urls=http://127.0.0.1:2381
    - --listen-peer-urls=https://10.0.0.5:2380
    - --name=cp-1
    - --peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt
    - --peer-client-cert-auth=true
    - --peer-key-file=/etc/kubernetes/pki/etcd/peer.key
    - --peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    - --snapshot-count=10000
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    image: k8s.gcr.io/etcd:3.4.13-0
    name: etcd
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
  hostNetwork: true
  volumes:
  - hostPath:
      path: /var/lib/etcd
      type: DirectoryOrCreate
    name: etcd-data
"#;

    struct Files(HashSet<PathBuf>);
    impl FileProbe for Files {
        fn is_file(&self, path: &Path) -> bool {
            self.0.contains(path)
        }
        fn read_to_string(&self, _: &Path) -> std::io::Result<String> {
            Err(std::io::ErrorKind::NotFound.into())
        }
    }
    fn files(paths: &[&str]) -> Files {
        Files(paths.iter().map(PathBuf::from).collect())
    }
    fn parsed() -> KubeadmEtcd {
        parse_manifest(MANIFEST, Path::new("/m/etcd.yaml")).unwrap()
    }

    #[test]
    fn reads_kubeadm_flags() {
        let etcd = parsed();
        assert_eq!(etcd.flags["name"], "cp-1");
        assert_eq!(
            etcd.flags["trusted-ca-file"],
            "/etc/kubernetes/pki/etcd/ca.crt"
        );
        assert_eq!(etcd.local_client_url().unwrap(), "https://127.0.0.1:2379");
    }

    #[test]
    fn healthcheck_client_in_the_peer_cert_dir() {
        let fs = files(&[
            "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
            "/etc/kubernetes/pki/etcd/healthcheck-client.key",
            "/etc/kubernetes/pki/apiserver-etcd-client.crt",
            "/etc/kubernetes/pki/apiserver-etcd-client.key",
        ]);
        let tls = client_tls(&parsed(), &fs, Path::new("/m")).unwrap();
        assert_eq!(
            tls.cacert.unwrap(),
            Path::new("/etc/kubernetes/pki/etcd/ca.crt")
        );
        assert_eq!(
            tls.client.unwrap().0,
            Path::new("/etc/kubernetes/pki/etcd/healthcheck-client.crt")
        );
    }

    #[test]
    fn falls_back_to_apiserver_client_then_server_cert() {
        let fs = files(&[
            "/etc/kubernetes/pki/apiserver-etcd-client.crt",
            "/etc/kubernetes/pki/apiserver-etcd-client.key",
        ]);
        let tls = client_tls(&parsed(), &fs, Path::new("/m")).unwrap();
        assert_eq!(
            tls.client.unwrap().0,
            Path::new("/etc/kubernetes/pki/apiserver-etcd-client.crt")
        );
        let fs = files(&[
            "/etc/kubernetes/pki/etcd/server.crt",
            "/etc/kubernetes/pki/etcd/server.key",
        ]);
        let tls = client_tls(&parsed(), &fs, Path::new("/m")).unwrap();
        assert_eq!(
            tls.client.unwrap().1,
            Path::new("/etc/kubernetes/pki/etcd/server.key")
        );
        let err = client_tls(&parsed(), &files(&[]), Path::new("/m")).unwrap_err();
        assert!(err.to_string().contains("healthcheck-client.crt"), "{err}");
    }

    #[test]
    fn wildcard_and_advertise_fallbacks() {
        let mut etcd = parsed();
        etcd.flags
            .insert("listen-client-urls".into(), "https://0.0.0.0:2379".into());
        assert_eq!(etcd.local_client_url().unwrap(), "https://127.0.0.1:2379");
        etcd.flags.remove("listen-client-urls");
        assert_eq!(etcd.local_client_url().unwrap(), "https://10.0.0.5:2379");
        etcd.flags.remove("advertise-client-urls");
        assert!(etcd.local_client_url().is_err());
    }

    #[test]
    fn separate_args_and_space_form() {
        let text = "spec:\n  containers:\n  - name: etcd\n    command: [etcd]\n    args: [--trusted-ca-file, /ca.crt, --listen-client-urls=https://127.0.0.1:1]\n";
        let etcd = parse_manifest(text, Path::new("/x")).unwrap();
        assert_eq!(etcd.flags["trusted-ca-file"], "/ca.crt");
        assert_eq!(etcd.local_client_url().unwrap(), "https://127.0.0.1:1");
    }

    #[test]
    fn not_a_manifest() {
        assert!(matches!(
            parse_manifest("spec: [", Path::new("/x")),
            Err(KubeadmError::Parse { .. })
        ));
        let err = parse_manifest(
            "spec:\n  containers:\n  - name: nginx\n    command: [nginx]\n",
            Path::new("/x"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no container named etcd"), "{err}");
    }
}
