//! `kubemaint backup manifests`: prints ready-to-apply YAML that runs backups inside a kubeadm
//! cluster against its local etcd — a CronJob running `backup run` (or a Deployment running
//! `backup schedule`), its ServiceAccount (and RBAC when a PodSecurityPolicy must be used), and
//! a Secret template for the store's credentials and the passphrase.
//!
//! The pod runs on control-plane nodes (node affinity on kubeadm's `control-plane` or `master`
//! role label, tolerating both taints), with `hostNetwork` so etcd's `https://127.0.0.1:2379`
//! is reachable, and `/etc/kubernetes/pki/etcd` mounted read-only for the CA and the
//! healthcheck client certificate kubeadm creates. It needs no Kubernetes API access at all:
//! the ServiceAccount gets no token.

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::exit::{CodedError, SUCCESS};
use crate::global::GlobalArgs;

/// Where kubeadm keeps the etcd PKI (`DIR/etcd/ca.crt`, `DIR/etcd/healthcheck-client.*`).
const KUBEADM_PKI: &str = "/etc/kubernetes/pki";
/// kubeadm's local etcd client URL, reachable with `hostNetwork`.
const LOCAL_ETCD: &str = "https://127.0.0.1:2379";
/// Where the Secret is mounted.
const SECRET_DIR: &str = "/etc/kubemaint";

/// What runs the backups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// A CronJob running `kubemaint backup run` (Kubernetes schedules; concurrencyPolicy Forbid).
    Cronjob,
    /// A one-replica Deployment running `kubemaint backup schedule` (kubemaint schedules).
    Deployment,
}

/// Arguments of `backup manifests`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kubemaint backup manifests --image registry.example.net/kubemaint:0.1 --to s3://backups/etcd/prod \\
      --recipient age1... --cron '0 */6 * * *' -- --keep-daily 14 --keep-monthly 6 > backup.yaml
  # fill in the Secret's values, then:
  kubectl apply -f backup.yaml

Everything after `--` is passed to `backup run` / `backup schedule` (retention, --level, ...);
it is checked here, so a typo fails now and not at 3 a.m. in the cluster.")]
pub struct ManifestsArgs {
    /// Where the backups go: s3://bucket/prefix (credentials from the Secret) or a directory on
    /// the control-plane node (a hostPath, created 0700).
    #[arg(long, value_name = "DEST")]
    pub to: String,
    /// The container image holding the kubemaint binary (entrypoint not used: `kubemaint` is run).
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// CronJob (Kubernetes schedules `backup run`) or Deployment (`backup schedule`).
    #[arg(long, value_enum, default_value = "cronjob")]
    pub mode: Mode,
    /// When to run (cron; 5 fields for a CronJob, 5 or 6 for a Deployment).
    #[arg(long, value_name = "EXPR", default_value = "0 */6 * * *")]
    pub cron: String,
    /// Namespace of every object.
    #[arg(long, short = 'n', default_value = "kube-system")]
    pub namespace: String,
    /// Name of every object.
    #[arg(long, default_value = "kubemaint-etcd-backup")]
    pub name: String,
    /// Encrypt to this age recipient (age1...); repeatable.
    #[arg(long = "recipient", short = 'r', value_name = "AGE1...")]
    pub recipients: Vec<String>,
    /// Encrypt to a passphrase kept in the Secret (key `passphrase`) instead.
    #[arg(long, conflicts_with = "recipients")]
    pub passphrase: bool,
    /// Cluster version: below 1.21 the CronJob is `batch/v1beta1` (batch/v1 CronJob is GA in 1.21).
    #[arg(long, value_name = "VERSION", default_value = "v1.21.0")]
    pub kubernetes_version: String,
    /// Also grant `use` of this PodSecurityPolicy (clusters with the PSP admission plugin,
    /// Kubernetes < 1.25): the pod needs hostNetwork and hostPath.
    #[arg(long, value_name = "NAME")]
    pub pod_security_policy: Option<String>,
    /// More `backup run` / `backup schedule` flags.
    #[arg(last = true, value_name = "BACKUP_FLAGS")]
    pub extra: Vec<String>,
}

/// The CronJob API group/version for a cluster's minor version.
pub fn cronjob_api(minor: u32) -> &'static str {
    if minor < 21 {
        "batch/v1beta1"
    } else {
        "batch/v1"
    }
}

fn minor_of(version: &str) -> Option<u32> {
    let v = version.strip_prefix('v').unwrap_or(version);
    let mut parts = v.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    (major == 1).then_some(minor)
}

/// The kubemaint arguments the container runs with.
pub fn container_args(a: &ManifestsArgs) -> Vec<String> {
    let mut args: Vec<String> = vec!["backup".into()];
    match a.mode {
        Mode::Cronjob => args.push("run".into()),
        Mode::Deployment => {
            args.extend(["schedule".into(), "--cron".into(), a.cron.clone()]);
        }
    }
    args.extend([
        "--to".into(),
        a.to.clone(),
        "--endpoints".into(),
        LOCAL_ETCD.into(),
        "--pki-dir".into(),
        KUBEADM_PKI.into(),
    ]);
    for r in &a.recipients {
        args.extend(["--recipient".into(), r.clone()]);
    }
    if a.passphrase {
        args.extend([
            "--passphrase-file".into(),
            format!("{SECRET_DIR}/passphrase"),
        ]);
    }
    args.extend(a.extra.iter().cloned());
    args
}

/// The objects, in apply order.
pub fn render(a: &ManifestsArgs, cronjob_api: &str) -> Vec<Value> {
    let s3 = a.to.starts_with("s3://");
    let labels =
        json!({ "app.kubernetes.io/name": a.name, "app.kubernetes.io/managed-by": "kubemaint" });
    let meta = json!({ "name": a.name, "namespace": a.namespace, "labels": labels });
    let mut out = vec![json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta,
        // kubemaint talks to etcd only; it never calls the Kubernetes API.
        "automountServiceAccountToken": false,
    })];
    if let Some(psp) = &a.pod_security_policy {
        out.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [{
                "apiGroups": ["policy"],
                "resources": ["podsecuritypolicies"],
                "resourceNames": [psp],
                "verbs": ["use"],
            }],
        }));
        out.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": a.name },
            "subjects": [{ "kind": "ServiceAccount", "name": a.name, "namespace": a.namespace }],
        }));
    }
    let mut secret_data = serde_json::Map::new();
    if s3 {
        for (k, v) in [
            ("AWS_ENDPOINT_URL", "https://s3.example.net"),
            ("AWS_REGION", "REPLACE-ME"),
            ("AWS_ACCESS_KEY_ID", "REPLACE-ME"),
            ("AWS_SECRET_ACCESS_KEY", "REPLACE-ME"),
        ] {
            secret_data.insert(k.into(), json!(v));
        }
    }
    if a.passphrase {
        secret_data.insert(
            "passphrase".into(),
            json!("REPLACE-ME with a long passphrase"),
        );
    }
    let with_secret = !secret_data.is_empty();
    if with_secret {
        out.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": "Opaque",
            "stringData": secret_data,
        }));
    }

    let mut mounts = vec![
        json!({ "name": "etcd-pki", "mountPath": format!("{KUBEADM_PKI}/etcd"), "readOnly": true }),
    ];
    let mut volumes = vec![json!({
        "name": "etcd-pki",
        "hostPath": { "path": format!("{KUBEADM_PKI}/etcd"), "type": "Directory" },
    })];
    if a.passphrase {
        mounts.push(json!({ "name": "secret", "mountPath": SECRET_DIR, "readOnly": true }));
        volumes.push(json!({
            "name": "secret",
            "secret": { "secretName": a.name, "defaultMode": 0o400, "items": [{ "key": "passphrase", "path": "passphrase" }] },
        }));
    }
    if !s3 {
        mounts.push(json!({ "name": "backups", "mountPath": a.to }));
        volumes.push(json!({
            "name": "backups",
            "hostPath": { "path": a.to, "type": "DirectoryOrCreate" },
        }));
    }
    let mut container = json!({
        "name": "backup",
        "image": a.image,
        "command": ["kubemaint"],
        "args": container_args(a),
        "volumeMounts": mounts,
        "resources": {
            "requests": { "cpu": "100m", "memory": "64Mi" },
            "limits": { "memory": "256Mi" },
        },
        // The etcd client key is root's and 0600: run as root, with nothing else.
        "securityContext": {
            "runAsUser": 0,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": { "drop": ["ALL"] },
        },
    });
    if s3 {
        container["envFrom"] = json!([{ "secretRef": { "name": a.name } }]);
    }
    let pod_spec = json!({
        "serviceAccountName": a.name,
        "automountServiceAccountToken": false,
        "hostNetwork": true,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "priorityClassName": "system-cluster-critical",
        "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                { "matchExpressions": [{ "key": "node-role.kubernetes.io/control-plane", "operator": "Exists" }] },
                { "matchExpressions": [{ "key": "node-role.kubernetes.io/master", "operator": "Exists" }] },
            ],
        } } },
        "tolerations": [
            { "key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule" },
            { "key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule" },
        ],
        "containers": [container],
        "volumes": volumes,
    });
    match a.mode {
        Mode::Cronjob => {
            let mut spec = pod_spec;
            spec["restartPolicy"] = json!("Never");
            out.push(json!({
                "apiVersion": cronjob_api,
                "kind": "CronJob",
                "metadata": meta,
                "spec": {
                    "schedule": a.cron,
                    "concurrencyPolicy": "Forbid",
                    "startingDeadlineSeconds": 300,
                    "successfulJobsHistoryLimit": 3,
                    "failedJobsHistoryLimit": 3,
                    "jobTemplate": { "metadata": { "labels": labels }, "spec": {
                        "backoffLimit": 1,
                        "template": { "metadata": { "labels": labels }, "spec": spec },
                    } },
                },
            }));
        }
        Mode::Deployment => {
            out.push(json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": meta,
                "spec": {
                    "replicas": 1,
                    // Never two schedulers at once: the old pod stops (SIGTERM abandons its
                    // run cleanly) before the new one starts.
                    "strategy": { "type": "Recreate" },
                    "selector": { "matchLabels": { "app.kubernetes.io/name": a.name } },
                    "template": { "metadata": { "labels": labels }, "spec": pod_spec },
                },
            }));
        }
    }
    out
}

/// Runs `backup manifests`.
pub async fn run(args: ManifestsArgs, _global: &GlobalArgs) -> anyhow::Result<i32> {
    let minor = minor_of(&args.kubernetes_version).ok_or_else(|| {
        CodedError::usage(format!(
            "--kubernetes-version {:?} is not a Kubernetes 1.x version (e.g. v1.20.2)",
            args.kubernetes_version
        ))
    })?;
    if args.recipients.is_empty() && !args.passphrase {
        eprintln!(
            "WARNING: these backups will NOT be encrypted: add --recipient age1... (age-keygen) or --passphrase."
        );
    }
    // The container's arguments must parse as kubemaint's own: check them now.
    let mut argv = vec!["kubemaint".to_string()];
    argv.extend(container_args(&args));
    if let Err(e) = crate::cli_command().try_get_matches_from(&argv) {
        return Err(CodedError::usage(format!(
            "the backup command these manifests would run is not valid: {}",
            e.render()
        )));
    }
    if args.mode == Mode::Cronjob
        && args.cron.split_whitespace().count() != 5
        && !args.cron.starts_with('@')
    {
        return Err(CodedError::usage(format!(
            "a CronJob's schedule has 5 fields, not {:?}; use --mode deployment for a seconds field",
            args.cron
        )));
    }
    kubemaint_core::schedule::CronSchedule::parse(&args.cron)
        .map_err(|e| CodedError::usage(e.to_string()))?;
    println!(
        "# kubemaint etcd backups for a kubeadm cluster ({}): fill in the Secret, then kubectl apply -f this file.",
        match args.mode {
            Mode::Cronjob => "CronJob running `kubemaint backup run`",
            Mode::Deployment => "Deployment running `kubemaint backup schedule`",
        }
    );
    for doc in render(&args, cronjob_api(minor)) {
        println!("---");
        print!("{}", serde_saphyr::to_string(&doc)?);
    }
    Ok(SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(mode: Mode, to: &str) -> ManifestsArgs {
        ManifestsArgs {
            to: to.into(),
            image: "img:1".into(),
            mode,
            cron: "0 */6 * * *".into(),
            namespace: "kube-system".into(),
            name: "b".into(),
            recipients: vec!["age1xyz".into()],
            passphrase: false,
            kubernetes_version: "v1.20.2".into(),
            pod_security_policy: None,
            extra: vec!["--keep-last".into(), "3".into()],
        }
    }

    #[test]
    fn cronjob_api_by_version() {
        assert_eq!(cronjob_api(minor_of("v1.20.2").unwrap()), "batch/v1beta1");
        assert_eq!(cronjob_api(minor_of("1.21").unwrap()), "batch/v1");
        assert_eq!(minor_of("v2.0"), None);
        assert_eq!(minor_of("x"), None);
    }

    #[test]
    fn cronjob_on_control_planes_with_the_pki_read_only() {
        let docs = render(&args(Mode::Cronjob, "s3://b/p"), "batch/v1beta1");
        let kinds: Vec<_> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["ServiceAccount", "Secret", "CronJob"]);
        let cj = &docs[2];
        assert_eq!(cj["apiVersion"], "batch/v1beta1");
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Forbid");
        let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["hostNetwork"], true);
        assert_eq!(pod["tolerations"].as_array().unwrap().len(), 2);
        let c = &pod["containers"][0];
        assert_eq!(
            c["volumeMounts"][0]["mountPath"],
            "/etc/kubernetes/pki/etcd"
        );
        assert_eq!(c["volumeMounts"][0]["readOnly"], true);
        assert_eq!(c["envFrom"][0]["secretRef"]["name"], "b");
        let a: Vec<_> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            a,
            [
                "backup",
                "run",
                "--to",
                "s3://b/p",
                "--endpoints",
                "https://127.0.0.1:2379",
                "--pki-dir",
                "/etc/kubernetes/pki",
                "--recipient",
                "age1xyz",
                "--keep-last",
                "3"
            ]
        );
    }

    #[test]
    fn deployment_to_a_host_dir_with_a_passphrase_and_psp() {
        let mut a = args(Mode::Deployment, "/var/backups/etcd");
        a.recipients.clear();
        a.passphrase = true;
        a.cron = "*/30 * * * * *".into();
        a.pod_security_policy = Some("privileged".into());
        let docs = render(&a, "batch/v1");
        let kinds: Vec<_> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "Secret",
                "Deployment"
            ]
        );
        assert_eq!(docs[1]["rules"][0]["resourceNames"][0], "privileged");
        assert!(docs[3]["stringData"].get("AWS_ACCESS_KEY_ID").is_none());
        let pod = &docs[4]["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert!(c.get("envFrom").is_none());
        let a: Vec<_> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(&a[..4], ["backup", "schedule", "--cron", "*/30 * * * * *"]);
        assert!(
            a.windows(2)
                .any(|w| w == ["--passphrase-file", "/etc/kubemaint/passphrase"])
        );
        let vols = pod["volumes"].as_array().unwrap();
        assert!(
            vols.iter()
                .any(|v| v["hostPath"]["path"] == "/var/backups/etcd")
        );
        assert_eq!(docs[4]["spec"]["strategy"]["type"], "Recreate");
    }
}
