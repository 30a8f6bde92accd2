//! The precedence rules: a flag, then `--pki-dir`/`--kubeadm`, then `ETCDCTL_*`, then etcdctl's default.

use std::path::{Path, PathBuf};

use kubemaint_core::secret::Secret;

use super::endpoint::{parse_endpoint, parse_go_bool};
use super::{
    ConfigError, ConnectionArgs, ConnectionConfig, DEFAULT_COMMAND_TIMEOUT, DEFAULT_DIAL_TIMEOUT,
    DEFAULT_ENDPOINT, Env, Source,
};
use crate::client::files::{FileProbe, TlsFiles};
use crate::client::kubeadm::{self, KubeadmEtcd};

/// A value with its origin.
struct Sourced<T> {
    value: T,
    source: Source,
}

/// Looks up a flag, then its `ETCDCTL_` variable; records a warning when a flag shadows a variable.
fn pick<T>(
    flag: Option<T>,
    env: &dyn Env,
    var: &str,
    parse: impl Fn(&str) -> Result<T, String>,
    warnings: &mut Vec<String>,
) -> Result<Option<Sourced<T>>, ConfigError> {
    let env_value = env.var(var).filter(|v| !v.is_empty());
    if let Some(value) = flag {
        if env_value.is_some() {
            warnings.push(format!(
                "${var} is set but the command-line flag wins (etcdctl would refuse to run)"
            ));
        }
        return Ok(Some(Sourced {
            value,
            source: Source::Flag,
        }));
    }
    match env_value {
        None => Ok(None),
        Some(raw) => parse(&raw)
            .map(|value| {
                Some(Sourced {
                    value,
                    source: Source::Env(var.to_string()),
                })
            })
            .map_err(|why| ConfigError::BadEnv {
                name: var.to_string(),
                value: raw,
                why,
            }),
    }
}

fn non_empty_path(p: Option<PathBuf>, flag: &'static str) -> Result<Option<PathBuf>, ConfigError> {
    match p {
        Some(p) if p.as_os_str().is_empty() => Err(ConfigError::EmptyFlag { flag }),
        other => Ok(other),
    }
}

/// Finds the CA and a client certificate in kubeadm's PKI layout under `dir`:
/// `etcd/ca.crt` with `etcd/healthcheck-client.{crt,key}` (what kubeadm itself uses), else
/// `apiserver-etcd-client.{crt,key}` (what the API server uses).
pub fn find_in_pki_dir(dir: &Path, files: &dyn FileProbe) -> Result<TlsFiles, ConfigError> {
    let ca = dir.join("etcd").join("ca.crt");
    if !files.is_file(&ca) {
        return Err(ConfigError::PkiDir(format!(
            "no etcd CA at {}: --pki-dir must be kubeadm's PKI directory (usually /etc/kubernetes/pki), \
             or pass --cacert/--cert/--key",
            ca.display()
        )));
    }
    let candidates = [
        (
            dir.join("etcd").join("healthcheck-client.crt"),
            dir.join("etcd").join("healthcheck-client.key"),
        ),
        (
            dir.join("apiserver-etcd-client.crt"),
            dir.join("apiserver-etcd-client.key"),
        ),
    ];
    for (crt, key) in candidates.iter() {
        if files.is_file(crt) && files.is_file(key) {
            return Ok(TlsFiles {
                cacert: Some(ca),
                client: Some((crt.clone(), key.clone())),
                insecure_skip_verify: false,
            });
        }
    }
    Err(ConfigError::PkiDir(format!(
        "no etcd client certificate under {}: looked for {} and {} (with their .key files); \
         pass --cert/--key",
        dir.display(),
        candidates[0].0.display(),
        candidates[1].0.display()
    )))
}

/// Resolves command-line settings, the environment and kubeadm files into one configuration.
pub fn resolve(
    args: ConnectionArgs,
    env: &dyn Env,
    files: &dyn FileProbe,
) -> Result<ConnectionConfig, ConfigError> {
    let mut warnings = Vec::new();
    if args.pki_dir.is_some() && args.kubeadm_manifest.is_some() {
        return Err(ConfigError::PkiDirAndKubeadm);
    }
    let cacert_flag = non_empty_path(args.cacert, "cacert")?;
    let cert_flag = non_empty_path(args.cert, "cert")?;
    let key_flag = non_empty_path(args.key, "key")?;

    // Settings derived from kubeadm's files (between flags and environment).
    let mut derived_tls: Option<(TlsFiles, Source)> = None;
    let mut derived_endpoints: Option<Vec<String>> = None;
    if let Some(dir) = &args.pki_dir {
        derived_tls = Some((find_in_pki_dir(dir, files)?, Source::PkiDir));
    }
    if let Some(manifest) = &args.kubeadm_manifest {
        let text = files
            .read_to_string(manifest)
            .map_err(|e| kubeadm::KubeadmError::Read {
                path: manifest.clone(),
                error: e.to_string(),
            })?;
        let etcd: KubeadmEtcd = kubeadm::parse_manifest(&text, manifest)?;
        let tls = kubeadm::client_tls(&etcd, files, manifest)?;
        derived_endpoints = Some(vec![etcd.local_client_url()?]);
        derived_tls = Some((tls, Source::Kubeadm));
    }

    let str_value = |s: &str| Ok::<_, String>(s.to_string());
    let path_value = |s: &str| Ok::<_, String>(PathBuf::from(s));

    // TLS files: a flag wins; then --pki-dir/--kubeadm; then ETCDCTL_*.
    let cacert = pick(
        cacert_flag,
        env,
        "ETCDCTL_CACERT",
        path_value,
        &mut warnings,
    )?;
    let cert = pick(cert_flag, env, "ETCDCTL_CERT", path_value, &mut warnings)?;
    let key = pick(key_flag, env, "ETCDCTL_KEY", path_value, &mut warnings)?;
    let skip = pick(
        args.insecure_skip_tls_verify,
        env,
        "ETCDCTL_INSECURE_SKIP_TLS_VERIFY",
        parse_go_bool,
        &mut warnings,
    )?;

    // A flag wins; then --pki-dir/--kubeadm; then ETCDCTL_*.
    let (derived, derived_source) = match derived_tls {
        Some((files, source)) => (files, Some(source)),
        None => (TlsFiles::default(), None),
    };
    let choose = |given: Option<Sourced<PathBuf>>, derived: Option<PathBuf>| match (given, derived)
    {
        (Some(g), _) if g.source == Source::Flag => Some(g),
        (_, Some(d)) => Some(Sourced {
            value: d,
            source: derived_source.clone().unwrap_or(Source::Default),
        }),
        (g, None) => g,
    };
    let (derived_cert, derived_key) = derived
        .client
        .map_or((None, None), |(c, k)| (Some(c), Some(k)));
    let cacert = choose(cacert, derived.cacert);
    let cert = choose(cert, derived_cert);
    let key = choose(key, derived_key);

    let mut tls = TlsFiles::default();
    let rank = |s: &Source| match s {
        Source::Flag => 3,
        Source::PkiDir | Source::Kubeadm => 2,
        Source::Env(_) => 1,
        Source::Default => 0,
    };
    // The summary names the most specific source used.
    let mut tls_source: Option<Source> = None;
    let mut note = |s: &Source| {
        if tls_source.as_ref().is_none_or(|cur| rank(s) > rank(cur)) {
            tls_source = Some(s.clone());
        }
    };
    if let Some(c) = cacert {
        note(&c.source);
        tls.cacert = Some(c.value);
    }
    match (cert, key) {
        (Some(c), Some(k)) if c.source == k.source || rank(&c.source) == rank(&k.source) => {
            note(&c.source);
            tls.client = Some((c.value, k.value));
        }
        (Some(c), k) if k.as_ref().is_none_or(|k| rank(&c.source) > rank(&k.source)) => {
            return Err(ConfigError::HalfClientCert {
                given: format!("--cert ({})", c.source),
                missing: "--key".into(),
            });
        }
        (_, Some(k)) => {
            return Err(ConfigError::HalfClientCert {
                given: format!("--key ({})", k.source),
                missing: "--cert".into(),
            });
        }
        (_, None) => {}
    }
    if let Some(s) = skip {
        tls.insecure_skip_verify = s.value;
        if s.value {
            note(&s.source);
            warnings.push(
                "--insecure-skip-tls-verify: the server certificate is NOT verified".to_string(),
            );
        }
    }
    let tls_configured = tls.cacert.is_some() || tls.client.is_some() || tls.insecure_skip_verify;

    // Endpoints: flag, then kubeadm, then env, then etcdctl's default.
    let endpoints_flag = args.endpoints.filter(|e| !e.is_empty());
    let split = |s: &str| Ok::<_, String>(s.split(',').map(|p| p.trim().to_string()).collect());
    let (raw_endpoints, endpoints_source) = match pick(
        endpoints_flag,
        env,
        "ETCDCTL_ENDPOINTS",
        split,
        &mut warnings,
    )? {
        Some(s) if s.source == Source::Flag => (s.value, s.source),
        env_value => match derived_endpoints {
            Some(e) => (e, Source::Kubeadm),
            None => match env_value {
                Some(s) => (s.value, s.source),
                None => (vec![DEFAULT_ENDPOINT.to_string()], Source::Default),
            },
        },
    };
    let mut endpoints = Vec::new();
    for raw in raw_endpoints.iter().filter(|e| !e.trim().is_empty()) {
        let ep = parse_endpoint(raw, tls_configured)?;
        if !endpoints.contains(&ep) {
            endpoints.push(ep);
        }
    }
    if endpoints.is_empty() {
        return Err(ConfigError::NoEndpoints);
    }
    if tls_configured && endpoints.iter().any(|e| !e.tls) {
        warnings.push(
            "TLS settings are ignored for http:// endpoints; use https:// to connect securely"
                .to_string(),
        );
    }

    let parse_dur = |s: &str| kubemaint_core::duration::parse(s).map_err(|e| e.to_string());
    let dial = pick(
        args.dial_timeout,
        env,
        "ETCDCTL_DIAL_TIMEOUT",
        parse_dur,
        &mut warnings,
    )?;
    let command = pick(
        args.command_timeout,
        env,
        "ETCDCTL_COMMAND_TIMEOUT",
        parse_dur,
        &mut warnings,
    )?;

    let user = pick(args.user, env, "ETCDCTL_USER", str_value, &mut warnings)?;
    let password = pick(
        args.password.map(|p| p.expose().to_string()),
        env,
        "ETCDCTL_PASSWORD",
        str_value,
        &mut warnings,
    )?;
    let auth = match (user, password) {
        (None, None) => None,
        (None, Some(_)) => return Err(ConfigError::PasswordWithoutUser),
        (Some(u), Some(p)) => Some((u.value, Secret::new(p.value))),
        (Some(u), None) => match u.value.split_once(':') {
            Some((name, pass)) => Some((name.to_string(), Secret::new(pass))),
            None => return Err(ConfigError::NoPassword(u.value)),
        },
    };

    Ok(ConnectionConfig {
        endpoints,
        endpoints_source,
        tls,
        tls_source,
        dial_timeout: dial.map_or(DEFAULT_DIAL_TIMEOUT, |d| d.value),
        command_timeout: command
            .as_ref()
            .map_or(DEFAULT_COMMAND_TIMEOUT, |d| d.value),
        command_timeout_explicit: command.is_some(),
        auth,
        warnings,
    })
}
