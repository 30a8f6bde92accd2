//! Resolving etcdctl-style connection settings into one [`ConnectionConfig`].
//!
//! The rules follow etcdctl (release-3.4/3.5 `etcdctl/ctlv3/ctl.go`, `command/global.go`,
//! `pkg/flags/flag.go`): defaults `127.0.0.1:2379`, dial timeout 2s, command timeout 5s; every
//! flag can come from `ETCDCTL_<FLAG>` (dashes to underscores, upper case; an empty variable counts
//! as unset); a flag given on the command line wins over its variable. Two deliberate differences:
//! etcdctl aborts when a flag shadows a set variable, we warn instead; and `--pki-dir`/`--kubeadm`
//! (ours) sit between explicit flags and the environment, because asking for them on the command
//! line is more specific than a variable exported in a shell profile.
//!
//! Everything here is pure: the environment and the file system come in through [`Env`] and
//! [`FileProbe`] so the precedence rules are unit-tested.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kubemaint_core::secret::{Secret, redact_user};

use super::files::{FileProbe, TlsFiles};
use super::kubeadm::{self, KubeadmEtcd};

/// etcdctl's default endpoint.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:2379";
/// etcdctl's default `--dial-timeout`.
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// etcdctl's default `--command-timeout`.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// kubeadm's static pod manifest for the local etcd member.
pub const DEFAULT_KUBEADM_MANIFEST: &str = "/etc/kubernetes/manifests/etcd.yaml";

/// Connection settings as given on the command line; `None` means "not given".
///
/// Its `Debug` shows no password (neither `--password` nor the one in `--user NAME:PASSWORD`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnectionArgs {
    /// `--endpoints` (already split at commas).
    pub endpoints: Option<Vec<String>>,
    /// `--cacert`.
    pub cacert: Option<PathBuf>,
    /// `--cert`.
    pub cert: Option<PathBuf>,
    /// `--key`.
    pub key: Option<PathBuf>,
    /// `--insecure-skip-tls-verify` (only `Some(true)` when the flag is present).
    pub insecure_skip_tls_verify: Option<bool>,
    /// `--dial-timeout`.
    pub dial_timeout: Option<Duration>,
    /// `--command-timeout`.
    pub command_timeout: Option<Duration>,
    /// `--user` (`name` or `name:password`).
    pub user: Option<String>,
    /// `--password`.
    pub password: Option<Secret>,
    /// `--pki-dir DIR`: kubeadm's PKI directory (e.g. `/etc/kubernetes/pki`).
    pub pki_dir: Option<PathBuf>,
    /// `--kubeadm [MANIFEST]`: read endpoint and certificates from kubeadm's etcd static pod.
    pub kubeadm_manifest: Option<PathBuf>,
}

impl std::fmt::Debug for ConnectionArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionArgs")
            .field("endpoints", &self.endpoints)
            .field("cacert", &self.cacert)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("dial_timeout", &self.dial_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("user", &self.user.as_deref().map(redact_user))
            .field("password", &self.password)
            .field("pki_dir", &self.pki_dir)
            .field("kubeadm_manifest", &self.kubeadm_manifest)
            .finish()
    }
}

/// Read-only access to environment variables.
pub trait Env {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Where a resolved value came from (printed with `-v` and in errors).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// etcdctl's default.
    Default,
    /// A command-line flag.
    Flag,
    /// An `ETCDCTL_*` environment variable (named).
    Env(String),
    /// Found under `--pki-dir`.
    PkiDir,
    /// Read from the kubeadm static pod manifest.
    Kubeadm,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Flag => f.write_str("flag"),
            Source::Env(name) => write!(f, "${name}"),
            Source::PkiDir => f.write_str("--pki-dir"),
            Source::Kubeadm => f.write_str("--kubeadm"),
        }
    }
}

/// One etcd client URL, normalised.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    /// As the user wrote it (used in messages).
    pub original: String,
    /// Host name or IP address (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether to speak TLS.
    pub tls: bool,
}

impl Endpoint {
    /// `https://host:port` or `http://host:port`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url())
    }
}

/// A fully resolved way to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionConfig {
    /// Candidate endpoints, in the user's order.
    pub endpoints: Vec<Endpoint>,
    /// Where the endpoints came from.
    pub endpoints_source: Source,
    /// TLS settings (used for endpoints with `tls`).
    pub tls: TlsFiles,
    /// Where the CA, client certificate and key came from.
    pub tls_source: Option<Source>,
    /// Connect timeout per endpoint.
    pub dial_timeout: Duration,
    /// Timeout of short calls (status, member list, hash).
    pub command_timeout: Duration,
    /// Whether `--command-timeout` was given (etcdctl bounds `snapshot save` only then).
    pub command_timeout_explicit: bool,
    /// User name and password for etcd auth (the password never shown by `Debug`).
    #[serde(skip)]
    pub auth: Option<(String, Secret)>,
    /// Notes for the user (e.g. a variable shadowed by a flag).
    pub warnings: Vec<String>,
}

/// Why the settings cannot be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A malformed endpoint.
    #[error(
        "invalid endpoint {endpoint:?}: {why}; write it as https://HOST:PORT (or HOST:PORT, as etcdctl accepts)"
    )]
    BadEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong.
        why: String,
    },
    /// No endpoints at all.
    #[error("no etcd endpoint given: pass --endpoints https://HOST:2379")]
    NoEndpoints,
    /// A malformed value in an `ETCDCTL_*` variable.
    #[error("invalid value {value:?} in ${name}: {why}; fix or unset the variable")]
    BadEnv {
        /// Variable name.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong.
        why: String,
    },
    /// `--cert` without `--key` or the other way round.
    #[error(
        "{given} is set but {missing} is not: a client certificate needs both --cert and --key"
    )]
    HalfClientCert {
        /// What was given (with its source).
        given: String,
        /// What is missing.
        missing: String,
    },
    /// An empty string as a path.
    #[error("empty string passed to --{flag}")]
    EmptyFlag {
        /// The flag.
        flag: &'static str,
    },
    /// `--pki-dir` and `--kubeadm` together.
    #[error("--pki-dir and --kubeadm cannot be used together: pick one")]
    PkiDirAndKubeadm,
    /// Nothing usable under `--pki-dir`.
    #[error("{0}")]
    PkiDir(String),
    /// The kubeadm manifest could not be used.
    #[error(transparent)]
    Kubeadm(#[from] kubeadm::KubeadmError),
    /// `--password` without `--user`.
    #[error("--password needs --user")]
    PasswordWithoutUser,
    /// `--user NAME` without a password (etcdctl would prompt; we do not read the terminal).
    #[error("no password for etcd user {0:?}: pass --user NAME:PASSWORD or --password")]
    NoPassword(String),
}

/// Parses a Go `strconv.ParseBool` value.
pub fn parse_go_bool(input: &str) -> Result<bool, String> {
    match input {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("{input:?} is not a boolean (use true or false)")),
    }
}

/// Parses one endpoint as etcdctl accepts it: `https://h:p`, `http://h:p`, or `h:p` (TLS if any
/// TLS setting is present, as etcd's client does for scheme-less endpoints).
pub fn parse_endpoint(raw: &str, tls_configured: bool) -> Result<Endpoint, ConfigError> {
    let bad = |why: &str| ConfigError::BadEndpoint {
        endpoint: raw.to_string(),
        why: why.to_string(),
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(bad("empty"));
    }
    let (tls, rest) = if let Some(r) = trimmed.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = trimmed.strip_prefix("http://") {
        (false, r)
    } else if trimmed.contains("://") {
        return Err(bad("only http:// and https:// are supported"));
    } else {
        (tls_configured, trimmed)
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        return Err(bad("a path is not allowed"));
    }
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, p) = r.split_once("]:").ok_or_else(|| bad("missing port"))?;
        (h, p)
    } else {
        let (h, p) = rest.rsplit_once(':').ok_or_else(|| bad("missing port"))?;
        if h.contains(':') {
            return Err(bad(
                "write IPv6 addresses in brackets, e.g. https://[::1]:2379",
            ));
        }
        (h, p)
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let port: u16 = port.parse().map_err(|_| bad("invalid port"))?;
    Ok(Endpoint {
        original: raw.trim().to_string(),
        host: host.to_string(),
        port,
        tls,
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeFiles(HashMap<PathBuf, String>);
    impl FileProbe for FakeFiles {
        fn is_file(&self, path: &Path) -> bool {
            self.0.contains_key(path)
        }
        fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
            self.0
                .get(path)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
    }
    fn files(paths: &[&str]) -> FakeFiles {
        FakeFiles(
            paths
                .iter()
                .map(|p| (PathBuf::from(p), String::new()))
                .collect(),
        )
    }
    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }
    const NO_ENV: &[(&str, &str)] = &[];

    #[test]
    fn defaults_match_etcdctl() {
        let cfg = resolve(ConnectionArgs::default(), &env(NO_ENV), &files(&[])).unwrap();
        assert_eq!(cfg.endpoints.len(), 1);
        assert_eq!(cfg.endpoints[0].url(), "http://127.0.0.1:2379");
        assert_eq!(cfg.endpoints_source, Source::Default);
        assert_eq!(cfg.dial_timeout, Duration::from_secs(2));
        assert_eq!(cfg.command_timeout, Duration::from_secs(5));
        assert!(!cfg.command_timeout_explicit);
        assert_eq!(cfg.tls, TlsFiles::default());
    }

    #[test]
    fn env_is_used_when_no_flag() {
        let cfg = resolve(
            ConnectionArgs::default(),
            &env(&[
                ("ETCDCTL_ENDPOINTS", "https://10.0.0.1:2379, 10.0.0.2:2379"),
                ("ETCDCTL_CACERT", "/ca.crt"),
                ("ETCDCTL_CERT", "/c.crt"),
                ("ETCDCTL_KEY", "/c.key"),
                ("ETCDCTL_DIAL_TIMEOUT", "3s"),
                ("ETCDCTL_COMMAND_TIMEOUT", "1m30s"),
            ]),
            &files(&[]),
        )
        .unwrap();
        assert_eq!(
            cfg.endpoints.iter().map(Endpoint::url).collect::<Vec<_>>(),
            ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
        );
        assert_eq!(
            cfg.endpoints_source,
            Source::Env("ETCDCTL_ENDPOINTS".into())
        );
        assert_eq!(cfg.tls.cacert, Some(PathBuf::from("/ca.crt")));
        assert_eq!(
            cfg.tls.client,
            Some((PathBuf::from("/c.crt"), PathBuf::from("/c.key")))
        );
        assert_eq!(cfg.dial_timeout, Duration::from_secs(3));
        assert_eq!(cfg.command_timeout, Duration::from_secs(90));
        assert!(cfg.command_timeout_explicit);
        assert!(cfg.warnings.is_empty());
    }

    #[test]
    fn flag_wins_over_env_with_a_warning() {
        let args = ConnectionArgs {
            cacert: Some("/flag-ca.crt".into()),
            ..Default::default()
        };
        let cfg = resolve(
            args,
            &env(&[("ETCDCTL_CACERT", "/env-ca.crt")]),
            &files(&[]),
        )
        .unwrap();
        assert_eq!(cfg.tls.cacert, Some(PathBuf::from("/flag-ca.crt")));
        assert_eq!(cfg.tls_source, Some(Source::Flag));
        assert!(
            cfg.warnings[0].contains("$ETCDCTL_CACERT"),
            "{:?}",
            cfg.warnings
        );
    }

    #[test]
    fn empty_env_counts_as_unset() {
        let cfg = resolve(
            ConnectionArgs::default(),
            &env(&[("ETCDCTL_CACERT", ""), ("ETCDCTL_ENDPOINTS", "")]),
            &files(&[]),
        )
        .unwrap();
        assert_eq!(cfg.tls.cacert, None);
        assert_eq!(cfg.endpoints_source, Source::Default);
    }

    #[test]
    fn half_client_cert_is_an_error() {
        let args = ConnectionArgs {
            cert: Some("/c.crt".into()),
            ..Default::default()
        };
        let err = resolve(args, &env(NO_ENV), &files(&[])).unwrap_err();
        assert!(err.to_string().contains("--key"), "{err}");
        let err = resolve(
            ConnectionArgs::default(),
            &env(&[("ETCDCTL_KEY", "/k")]),
            &files(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("$ETCDCTL_KEY"), "{err}");
    }

    #[test]
    fn empty_flag_is_rejected() {
        let args = ConnectionArgs {
            cacert: Some(PathBuf::new()),
            ..Default::default()
        };
        assert_eq!(
            resolve(args, &env(NO_ENV), &files(&[])).unwrap_err(),
            ConfigError::EmptyFlag { flag: "cacert" }
        );
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let err = resolve(
            ConnectionArgs::default(),
            &env(&[("ETCDCTL_DIAL_TIMEOUT", "5")]),
            &files(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("$ETCDCTL_DIAL_TIMEOUT"), "{err}");
        let err = resolve(
            ConnectionArgs::default(),
            &env(&[("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "yes")]),
            &files(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("boolean"), "{err}");
    }

    #[test]
    fn skip_verify_only_when_asked() {
        let cfg = resolve(
            ConnectionArgs {
                endpoints: Some(vec!["127.0.0.1:2379".into()]),
                ..Default::default()
            },
            &env(NO_ENV),
            &files(&[]),
        )
        .unwrap();
        assert!(!cfg.tls.insecure_skip_verify);
        let cfg = resolve(
            ConnectionArgs {
                endpoints: Some(vec!["127.0.0.1:2379".into()]),
                insecure_skip_tls_verify: Some(true),
                ..Default::default()
            },
            &env(NO_ENV),
            &files(&[]),
        )
        .unwrap();
        assert!(cfg.tls.insecure_skip_verify);
        assert!(
            cfg.endpoints[0].tls,
            "scheme-less endpoint uses TLS when TLS is configured"
        );
        assert!(cfg.warnings.iter().any(|w| w.contains("NOT verified")));
    }

    #[test]
    fn pki_dir_prefers_healthcheck_client() {
        let fs = files(&[
            "/pki/etcd/ca.crt",
            "/pki/etcd/healthcheck-client.crt",
            "/pki/etcd/healthcheck-client.key",
            "/pki/apiserver-etcd-client.crt",
            "/pki/apiserver-etcd-client.key",
        ]);
        let cfg = resolve(
            ConnectionArgs {
                pki_dir: Some("/pki".into()),
                endpoints: Some(vec!["https://127.0.0.1:2379".into()]),
                ..Default::default()
            },
            &env(NO_ENV),
            &fs,
        )
        .unwrap();
        assert_eq!(cfg.tls.cacert, Some(PathBuf::from("/pki/etcd/ca.crt")));
        assert_eq!(
            cfg.tls.client,
            Some((
                PathBuf::from("/pki/etcd/healthcheck-client.crt"),
                PathBuf::from("/pki/etcd/healthcheck-client.key")
            ))
        );
        assert_eq!(cfg.tls_source, Some(Source::PkiDir));
    }

    #[test]
    fn pki_dir_falls_back_to_apiserver_etcd_client() {
        let fs = files(&[
            "/pki/etcd/ca.crt",
            "/pki/etcd/healthcheck-client.crt", // key missing: not usable
            "/pki/apiserver-etcd-client.crt",
            "/pki/apiserver-etcd-client.key",
        ]);
        let tls = find_in_pki_dir(Path::new("/pki"), &fs).unwrap();
        assert_eq!(
            tls.client,
            Some((
                PathBuf::from("/pki/apiserver-etcd-client.crt"),
                PathBuf::from("/pki/apiserver-etcd-client.key")
            ))
        );
    }

    #[test]
    fn pki_dir_errors_say_what_was_looked_for() {
        let err = find_in_pki_dir(Path::new("/pki"), &files(&[])).unwrap_err();
        assert!(err.to_string().contains("/pki/etcd/ca.crt"), "{err}");
        let err = find_in_pki_dir(Path::new("/pki"), &files(&["/pki/etcd/ca.crt"])).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("healthcheck-client.crt") && msg.contains("apiserver-etcd-client.crt")
        );
    }

    #[test]
    fn pki_dir_beats_env_but_not_flags() {
        let fs = files(&[
            "/pki/etcd/ca.crt",
            "/pki/etcd/healthcheck-client.crt",
            "/pki/etcd/healthcheck-client.key",
        ]);
        let cfg = resolve(
            ConnectionArgs {
                pki_dir: Some("/pki".into()),
                cacert: Some("/other-ca.crt".into()),
                ..Default::default()
            },
            &env(&[("ETCDCTL_CERT", "/env.crt"), ("ETCDCTL_KEY", "/env.key")]),
            &fs,
        )
        .unwrap();
        assert_eq!(cfg.tls.cacert, Some(PathBuf::from("/other-ca.crt")));
        assert_eq!(
            cfg.tls.client.unwrap().0,
            PathBuf::from("/pki/etcd/healthcheck-client.crt")
        );
    }

    #[test]
    fn pki_dir_and_kubeadm_conflict() {
        let args = ConnectionArgs {
            pki_dir: Some("/pki".into()),
            kubeadm_manifest: Some("/m.yaml".into()),
            ..Default::default()
        };
        assert_eq!(
            resolve(args, &env(NO_ENV), &files(&[])).unwrap_err(),
            ConfigError::PkiDirAndKubeadm
        );
    }

    #[test]
    fn endpoints_parse_like_etcdctl() {
        let ep = parse_endpoint("https://10.1.2.3:2379", false).unwrap();
        assert_eq!(
            (ep.host.as_str(), ep.port, ep.tls),
            ("10.1.2.3", 2379, true)
        );
        let ep = parse_endpoint("localhost:2379", false).unwrap();
        assert!(!ep.tls);
        let ep = parse_endpoint(" https://[::1]:2379/ ", false).unwrap();
        assert_eq!(
            (ep.host.as_str(), ep.url()),
            ("::1", "https://[::1]:2379".to_string())
        );
        for bad in [
            "",
            "unix://x",
            "https://host",
            "https://:2379",
            "h:99999",
            "::1:2379",
            "https://h:1/x",
        ] {
            assert!(
                parse_endpoint(bad, true).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn duplicate_endpoints_are_merged() {
        let cfg = resolve(
            ConnectionArgs {
                endpoints: Some(vec!["https://a:1".into(), "https://a:1".into(), "".into()]),
                ..Default::default()
            },
            &env(NO_ENV),
            &files(&[]),
        )
        .unwrap();
        assert_eq!(cfg.endpoints.len(), 1);
    }

    #[test]
    fn user_and_password() {
        let cfg = resolve(
            ConnectionArgs {
                user: Some("root:pw".into()),
                ..Default::default()
            },
            &env(NO_ENV),
            &files(&[]),
        )
        .unwrap();
        assert_eq!(cfg.auth, Some(("root".into(), Secret::new("pw"))));
        let err = resolve(
            ConnectionArgs {
                user: Some("root".into()),
                ..Default::default()
            },
            &env(NO_ENV),
            &files(&[]),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::NoPassword(_)));
    }

    /// No password reaches a `Debug` (logged at -v): not from `--user NAME:PASSWORD`, not from
    /// `--password`, not from `$ETCDCTL_PASSWORD`, not in the resolved configuration.
    #[test]
    fn debug_never_shows_a_password() {
        let args = ConnectionArgs {
            user: Some("root:pw-in-user-1".into()),
            password: None,
            ..Default::default()
        };
        let text = format!("{args:?}");
        assert!(
            text.contains("root") && !text.contains("pw-in-user-1"),
            "{text}"
        );
        let cfg = resolve(args, &env(NO_ENV), &files(&[])).unwrap();
        let text = format!("{cfg:?} {cfg:#?}");
        assert!(
            text.contains("root") && !text.contains("pw-in-user-1"),
            "{text}"
        );

        let args = ConnectionArgs {
            user: Some("root".into()),
            password: Some(Secret::new("pw-flag-2")),
            ..Default::default()
        };
        assert!(!format!("{args:?}").contains("pw-flag-2"));
        let cfg = resolve(args, &env(NO_ENV), &files(&[])).unwrap();
        assert!(!format!("{cfg:?}").contains("pw-flag-2"));
        assert_eq!(
            cfg.auth.as_ref().map(|(_, p)| p.expose()),
            Some("pw-flag-2")
        );

        let args = ConnectionArgs {
            user: Some("root".into()),
            ..Default::default()
        };
        let cfg = resolve(args, &env(&[("ETCDCTL_PASSWORD", "pw-env-3")]), &files(&[])).unwrap();
        assert!(!format!("{cfg:?}").contains("pw-env-3"));
        assert!(!serde_json::to_string(&cfg).unwrap().contains("pw-env-3"));
    }

    #[test]
    fn go_bools() {
        assert_eq!(parse_go_bool("true"), Ok(true));
        assert_eq!(parse_go_bool("F"), Ok(false));
        assert!(parse_go_bool("yes").is_err());
    }
}
