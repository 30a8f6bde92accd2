//! The precedence rules of [`super::resolve`]: flags, `--pki-dir`/`--kubeadm`, `ETCDCTL_*`, defaults.

use std::collections::HashMap;
use std::path::Path;

use super::*;
use crate::client::files::FileProbe;

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
    assert!(msg.contains("healthcheck-client.crt") && msg.contains("apiserver-etcd-client.crt"));
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
