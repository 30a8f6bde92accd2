//! The version skew policy as a pure function over the versions a cluster runs.
//!
//! Rules from the Kubernetes version skew policy
//! (`kubernetes/website:content/en/releases/version-skew-policy.md`,
//! <https://kubernetes.io/releases/version-skew-policy/>):
//! * the newest and oldest kube-apiserver instances are within one minor;
//! * kubelet and kube-proxy are never newer than kube-apiserver and at most three minors older
//!   (two while the kubelet / kube-proxy itself is older than 1.25);
//! * kube-proxy is within three minors (two below 1.25) of the kubelet on its node;
//! * kube-controller-manager, kube-scheduler and cloud-controller-manager are not newer than the
//!   kube-apiserver instances they talk to, and at most one minor older;
//! * kubectl is within one minor (older or newer) of kube-apiserver.
//!
//! With mixed API servers (HA, mid-upgrade) every client's range is computed against the
//! server it could reach that is least favourable: "not newer" against the **oldest** API
//! server, "not too old" against the **newest** one (the policy's example: API servers at 1.35
//! and 1.34 allow kubelets 1.34, 1.33 and 1.32).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::version::Version;

/// A cluster component whose version the policy constrains or the plan moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// kube-apiserver.
    KubeApiserver,
    /// kube-controller-manager.
    KubeControllerManager,
    /// kube-scheduler.
    KubeScheduler,
    /// cloud-controller-manager (not managed by kubeadm).
    CloudControllerManager,
    /// etcd (stacked members are upgraded by kubeadm with the control plane).
    Etcd,
    /// kube-proxy (a DaemonSet with one image for every node).
    KubeProxy,
    /// CoreDNS (a Deployment).
    CoreDns,
    /// The kubelet of a node.
    Kubelet,
    /// The kubectl client.
    Kubectl,
    /// The kubeadm binary.
    Kubeadm,
}

impl Component {
    /// The name operators know (`kube-apiserver`, `CoreDNS`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::KubeApiserver => "kube-apiserver",
            Self::KubeControllerManager => "kube-controller-manager",
            Self::KubeScheduler => "kube-scheduler",
            Self::CloudControllerManager => "cloud-controller-manager",
            Self::Etcd => "etcd",
            Self::KubeProxy => "kube-proxy",
            Self::CoreDns => "CoreDNS",
            Self::Kubelet => "kubelet",
            Self::Kubectl => "kubectl",
            Self::Kubeadm => "kubeadm",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One running instance of a component: where it runs (if per node) and its version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Instance {
    /// The node it runs on; `None` when not tied to a node (a server seen only via `/version`).
    pub node: Option<String>,
    /// Its version.
    pub version: Version,
}

impl Instance {
    /// An instance on `node`.
    pub fn on(node: impl Into<String>, version: Version) -> Self {
        Self {
            node: Some(node.into()),
            version,
        }
    }
}

/// The versions of the skew-constrained components of a cluster. An empty list or `None` means
/// unknown (not discovered), which the policy skips rather than guesses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterVersions {
    /// Every kube-apiserver instance.
    pub apiservers: Vec<Instance>,
    /// Every kube-controller-manager instance.
    pub controller_managers: Vec<Instance>,
    /// Every kube-scheduler instance.
    pub schedulers: Vec<Instance>,
    /// Every cloud-controller-manager instance.
    pub cloud_controller_managers: Vec<Instance>,
    /// kube-proxy's version (the DaemonSet image; it runs alongside every kubelet).
    pub kube_proxy: Option<Version>,
    /// Every node's kubelet (`status.nodeInfo.kubeletVersion`).
    pub kubelets: Vec<Instance>,
    /// The kubectl client in use, when known.
    pub kubectl: Option<Version>,
}

impl ClusterVersions {
    /// The oldest and newest API server, if any is known.
    pub fn apiserver_range(&self) -> Option<(&Instance, &Instance)> {
        let oldest = self
            .apiservers
            .iter()
            .min_by(|a, b| a.version.cmp(&b.version))?;
        let newest = self
            .apiservers
            .iter()
            .max_by(|a, b| a.version.cmp(&b.version))?;
        Some((oldest, newest))
    }
}

/// A rule of the skew policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The newest and oldest kube-apiserver instances must be within one minor.
    ApiserverHaSkew,
    /// A kubelet must not be newer than kube-apiserver.
    KubeletNewerThanApiserver,
    /// A kubelet may be at most 3 minors older than kube-apiserver (2 below 1.25).
    KubeletTooOld,
    /// kube-proxy must not be newer than kube-apiserver.
    KubeProxyNewerThanApiserver,
    /// kube-proxy may be at most 3 minors older than kube-apiserver (2 below 1.25).
    KubeProxyTooOld,
    /// kube-proxy within 3 minors (2 below 1.25) of the kubelet on its node.
    KubeProxyKubeletSkew,
    /// controller-manager / scheduler / cloud-controller-manager not newer than kube-apiserver.
    ControlPlaneNewerThanApiserver,
    /// controller-manager / scheduler / cloud-controller-manager at most one minor older.
    ControlPlaneTooOld,
    /// kubectl within one minor of kube-apiserver.
    KubectlSkew,
    /// kubeadm's own check before `upgrade apply`: kubelets at most 1 minor older than the
    /// target (kubeadm < 1.29, `MaximumAllowedMinorVersionKubeletSkew = 1`), 3 from 1.29
    /// (`MinimumKubeletVersion = getSkewedKubernetesVersion(-3)`).
    KubeadmKubeletSkew,
}

impl Rule {
    /// The rule in one sentence, as the policy states it.
    pub fn text(self) -> &'static str {
        match self {
            Self::ApiserverHaSkew => {
                "the newest and oldest kube-apiserver instances must be within one minor version"
            }
            Self::KubeletNewerThanApiserver => "kubelet must not be newer than kube-apiserver",
            Self::KubeletTooOld => {
                "kubelet may be up to three minor versions older than kube-apiserver (two while the kubelet is older than 1.25)"
            }
            Self::KubeProxyNewerThanApiserver => "kube-proxy must not be newer than kube-apiserver",
            Self::KubeProxyTooOld => {
                "kube-proxy may be up to three minor versions older than kube-apiserver (two while kube-proxy is older than 1.25)"
            }
            Self::KubeProxyKubeletSkew => {
                "kube-proxy may be up to three minor versions older or newer than the kubelet on its node (two below 1.25)"
            }
            Self::ControlPlaneNewerThanApiserver => {
                "kube-controller-manager, kube-scheduler and cloud-controller-manager must not be newer than any kube-apiserver they talk to"
            }
            Self::ControlPlaneTooOld => {
                "kube-controller-manager, kube-scheduler and cloud-controller-manager may be at most one minor version older than kube-apiserver"
            }
            Self::KubectlSkew => {
                "kubectl is supported within one minor version (older or newer) of kube-apiserver"
            }
            Self::KubeadmKubeletSkew => {
                "kubeadm upgrade apply refuses kubelets more than one minor older than the target (three from kubeadm 1.29)"
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// One side of a finding: a component instance and its version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Party {
    /// The component.
    pub component: Component,
    /// Its node, when it runs on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Its version.
    pub version: Version,
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(node) => write!(f, "{} {} on {node}", self.component, self.version),
            None => write!(f, "{} {}", self.component, self.version),
        }
    }
}

/// A violation of one rule between two parties.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SkewFinding {
    /// The rule broken.
    pub rule: Rule,
    /// The component out of policy.
    pub subject: Party,
    /// The component it is measured against.
    pub reference: Party,
}

impl fmt::Display for SkewFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} vs {}: {}",
            self.subject,
            self.reference,
            self.rule.text()
        )
    }
}

/// How many minors a kubelet or kube-proxy of this version may trail kube-apiserver: three, or
/// two while it is older than 1.25 (KEP-3935 widened the window from 1.25 on).
pub fn node_component_max_lag(version: &Version) -> i64 {
    if version.major == 1 && version.minor < 25 {
        2
    } else {
        3
    }
}

/// How many minors kubeadm `upgrade apply` to `target` lets a kubelet trail the target.
pub fn kubeadm_kubelet_max_lag(target: &Version) -> i64 {
    if target.major == 1 && target.minor < 29 {
        1
    } else {
        3
    }
}

fn party(component: Component, instance: &Instance) -> Party {
    Party {
        component,
        node: instance.node.clone(),
        version: instance.version.clone(),
    }
}

/// Checks every rule over `cluster`; findings come in a stable order (rule checks in the
/// order of the policy page, instances in input order).
pub fn check(cluster: &ClusterVersions) -> Vec<SkewFinding> {
    let mut out = Vec::new();
    let Some((oldest, newest)) = cluster.apiserver_range() else {
        return out;
    };
    if newest.version.minors_above(&oldest.version) > 1 {
        out.push(SkewFinding {
            rule: Rule::ApiserverHaSkew,
            subject: party(Component::KubeApiserver, oldest),
            reference: party(Component::KubeApiserver, newest),
        });
    }
    for (component, list) in [
        (
            Component::KubeControllerManager,
            &cluster.controller_managers,
        ),
        (Component::KubeScheduler, &cluster.schedulers),
        (
            Component::CloudControllerManager,
            &cluster.cloud_controller_managers,
        ),
    ] {
        for instance in list {
            check_control_plane(component, instance, oldest, newest, &mut out);
        }
    }
    if let Some(proxy) = &cluster.kube_proxy {
        let proxy_instance = Instance {
            node: None,
            version: proxy.clone(),
        };
        check_node_component(
            Component::KubeProxy,
            &proxy_instance,
            oldest,
            newest,
            &mut out,
        );
    }
    for kubelet in &cluster.kubelets {
        check_kubelet_with(
            cluster.kube_proxy.as_ref(),
            kubelet,
            oldest,
            newest,
            &mut out,
        );
    }
    if let Some(kubectl) = &cluster.kubectl {
        for apiserver in [oldest, newest] {
            if kubectl.minors_above(&apiserver.version).abs() > 1 {
                out.push(SkewFinding {
                    rule: Rule::KubectlSkew,
                    subject: Party {
                        component: Component::Kubectl,
                        node: None,
                        version: kubectl.clone(),
                    },
                    reference: party(Component::KubeApiserver, apiserver),
                });
                break;
            }
        }
    }
    out
}

/// Checks the rules that involve one kubelet (against the API servers and kube-proxy): what
/// changes when only that kubelet moves.
pub fn check_kubelet(cluster: &ClusterVersions, kubelet: &Instance) -> Vec<SkewFinding> {
    let mut out = Vec::new();
    if let Some((oldest, newest)) = cluster.apiserver_range() {
        check_kubelet_with(
            cluster.kube_proxy.as_ref(),
            kubelet,
            oldest,
            newest,
            &mut out,
        );
    }
    out
}

fn check_kubelet_with(
    kube_proxy: Option<&Version>,
    kubelet: &Instance,
    oldest: &Instance,
    newest: &Instance,
    out: &mut Vec<SkewFinding>,
) {
    check_node_component(Component::Kubelet, kubelet, oldest, newest, out);
    if let Some(proxy) = kube_proxy {
        let lower = if kubelet.version < *proxy {
            &kubelet.version
        } else {
            proxy
        };
        if proxy.minors_above(&kubelet.version).abs() > node_component_max_lag(lower) {
            out.push(SkewFinding {
                rule: Rule::KubeProxyKubeletSkew,
                subject: Party {
                    component: Component::KubeProxy,
                    node: kubelet.node.clone(),
                    version: proxy.clone(),
                },
                reference: party(Component::Kubelet, kubelet),
            });
        }
    }
}

/// kubelet / kube-proxy against the API servers.
fn check_node_component(
    component: Component,
    instance: &Instance,
    oldest: &Instance,
    newest: &Instance,
    out: &mut Vec<SkewFinding>,
) {
    let (newer_rule, old_rule) = match component {
        Component::KubeProxy => (Rule::KubeProxyNewerThanApiserver, Rule::KubeProxyTooOld),
        _ => (Rule::KubeletNewerThanApiserver, Rule::KubeletTooOld),
    };
    // Minor granularity: a kubelet v1.20.5 with an API server v1.20.2 is within policy.
    if instance.version.minors_above(&oldest.version) > 0 {
        out.push(SkewFinding {
            rule: newer_rule,
            subject: party(component, instance),
            reference: party(Component::KubeApiserver, oldest),
        });
    }
    if newest.version.minors_above(&instance.version) > node_component_max_lag(&instance.version) {
        out.push(SkewFinding {
            rule: old_rule,
            subject: party(component, instance),
            reference: party(Component::KubeApiserver, newest),
        });
    }
}

fn check_control_plane(
    component: Component,
    instance: &Instance,
    oldest: &Instance,
    newest: &Instance,
    out: &mut Vec<SkewFinding>,
) {
    if instance.version.minors_above(&oldest.version) > 0 {
        out.push(SkewFinding {
            rule: Rule::ControlPlaneNewerThanApiserver,
            subject: party(component, instance),
            reference: party(Component::KubeApiserver, oldest),
        });
    }
    if newest.version.minors_above(&instance.version) > 1 {
        out.push(SkewFinding {
            rule: Rule::ControlPlaneTooOld,
            subject: party(component, instance),
            reference: party(Component::KubeApiserver, newest),
        });
    }
}

/// kubeadm's own kubelet check for `kubeadm upgrade apply <target>`: every kubelet whose minor
/// trails the target by more than kubeadm allows.
pub fn check_kubeadm_kubelets(cluster: &ClusterVersions, target: &Version) -> Vec<SkewFinding> {
    let lag = kubeadm_kubelet_max_lag(target);
    cluster
        .kubelets
        .iter()
        .filter(|k| target.minors_above(&k.version) > lag)
        .map(|k| SkewFinding {
            rule: Rule::KubeadmKubeletSkew,
            subject: party(Component::Kubelet, k),
            reference: Party {
                component: Component::Kubeadm,
                node: None,
                version: target.clone(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn cluster(apiservers: &[&str]) -> ClusterVersions {
        ClusterVersions {
            apiservers: apiservers
                .iter()
                .enumerate()
                .map(|(i, ver)| Instance::on(format!("cp{i}"), v(ver)))
                .collect(),
            ..Default::default()
        }
    }

    fn rules(findings: &[SkewFinding]) -> Vec<Rule> {
        findings.iter().map(|f| f.rule).collect()
    }

    #[test]
    fn apiserver_ha_boundaries() {
        let table: &[(&[&str], bool)] = &[
            (&["v1.20.2"], false),
            (&["v1.20.2", "v1.20.15"], false),
            (&["v1.19.16", "v1.20.2"], false),
            (&["v1.19.16", "v1.20.2", "v1.21.0"], true),
            (&["v1.18.20", "v1.20.2"], true),
        ];
        for (servers, broken) in table {
            let findings = check(&cluster(servers));
            assert_eq!(
                rules(&findings).contains(&Rule::ApiserverHaSkew),
                *broken,
                "{servers:?}: {findings:?}"
            );
        }
        let findings = check(&cluster(&["v1.18.20", "v1.20.2"]));
        assert_eq!(findings[0].subject.version, v("v1.18.20"));
        assert_eq!(findings[0].subject.node.as_deref(), Some("cp0"));
        assert_eq!(findings[0].reference.version, v("v1.20.2"));
        assert_eq!(findings[0].reference.node.as_deref(), Some("cp1"));
    }

    #[test]
    fn kubelet_window_every_boundary() {
        // (API servers, kubelet, expected rules)
        let table: &[(&[&str], &str, &[Rule])] = &[
            (&["v1.20.2"], "v1.20.2", &[]),
            (&["v1.20.2"], "v1.20.9", &[]), // newer patch of the same minor is fine
            (&["v1.20.2"], "v1.21.0", &[Rule::KubeletNewerThanApiserver]),
            (&["v1.20.2"], "v1.18.20", &[]), // two older, below 1.25: allowed
            (&["v1.20.2"], "v1.17.17", &[Rule::KubeletTooOld]),
            (&["v1.26.0"], "v1.24.17", &[]), // kubelet < 1.25: two allowed
            (&["v1.27.0"], "v1.24.17", &[Rule::KubeletTooOld]), // three but kubelet < 1.25
            (&["v1.28.0"], "v1.25.16", &[]), // three, kubelet ≥ 1.25
            (&["v1.29.0"], "v1.25.16", &[Rule::KubeletTooOld]),
            // HA narrowing: newer-than against the oldest, too-old against the newest.
            (
                &["v1.34.0", "v1.35.0"],
                "v1.35.0",
                &[Rule::KubeletNewerThanApiserver],
            ),
            (&["v1.34.0", "v1.35.0"], "v1.32.0", &[]),
            (&["v1.34.0", "v1.35.0"], "v1.31.0", &[Rule::KubeletTooOld]),
        ];
        for (servers, kubelet, want) in table {
            let mut c = cluster(servers);
            c.kubelets.push(Instance::on("w1", v(kubelet)));
            let got = rules(&check(&c));
            assert_eq!(got, *want, "servers {servers:?} kubelet {kubelet}");
            let only = rules(&check_kubelet(&c, &c.kubelets[0]));
            assert_eq!(only, *want, "check_kubelet agrees");
        }
    }

    #[test]
    fn kube_proxy_window_every_boundary() {
        let table: &[(&[&str], &str, &[Rule])] = &[
            (&["v1.20.2"], "v1.20.2", &[]),
            (
                &["v1.20.2"],
                "v1.21.0",
                &[Rule::KubeProxyNewerThanApiserver],
            ),
            (&["v1.20.2"], "v1.18.0", &[]),
            (&["v1.20.2"], "v1.17.0", &[Rule::KubeProxyTooOld]),
            (&["v1.28.0"], "v1.25.0", &[]),
            (&["v1.27.0"], "v1.24.0", &[Rule::KubeProxyTooOld]),
            (
                &["v1.19.0", "v1.20.0"],
                "v1.20.0",
                &[Rule::KubeProxyNewerThanApiserver],
            ),
        ];
        for (servers, proxy, want) in table {
            let mut c = cluster(servers);
            c.kube_proxy = Some(v(proxy));
            assert_eq!(
                rules(&check(&c)),
                *want,
                "servers {servers:?} proxy {proxy}"
            );
        }
    }

    #[test]
    fn kube_proxy_against_its_kubelet() {
        // (kube-proxy, kubelet, broken); API server high enough not to interfere with the
        // newer-than rules, low enough not to flag too-old.
        let table = [
            ("v1.30.0", "v1.27.0", false), // three, both ≥ 1.25
            ("v1.30.0", "v1.26.0", true),  // four
            ("v1.27.0", "v1.30.0", false), // kube-proxy older by three
            ("v1.26.0", "v1.24.0", false), // two, kubelet < 1.25
            ("v1.27.0", "v1.24.0", true),  // three with the older side < 1.25
        ];
        for (proxy, kubelet, broken) in table {
            let mut c = cluster(&["v1.30.0"]);
            c.kube_proxy = Some(v(proxy));
            c.kubelets.push(Instance::on("w1", v(kubelet)));
            let found = check(&c)
                .into_iter()
                .filter(|f| f.rule == Rule::KubeProxyKubeletSkew)
                .collect::<Vec<_>>();
            assert_eq!(!found.is_empty(), broken, "proxy {proxy} kubelet {kubelet}");
            if let Some(f) = found.first() {
                assert_eq!(f.subject.node.as_deref(), Some("w1"));
                assert_eq!(f.reference.version, v(kubelet));
            }
        }
    }

    #[test]
    fn controller_manager_scheduler_ccm() {
        let table: &[(&[&str], &str, &[Rule])] = &[
            (&["v1.20.2"], "v1.20.2", &[]),
            (&["v1.20.2"], "v1.19.16", &[]),
            (&["v1.20.2"], "v1.18.20", &[Rule::ControlPlaneTooOld]),
            (
                &["v1.20.2"],
                "v1.21.0",
                &[Rule::ControlPlaneNewerThanApiserver],
            ),
            // Mid-upgrade: must stay at the older minor until every API server is new.
            (&["v1.19.16", "v1.20.2"], "v1.19.16", &[]),
            (
                &["v1.19.16", "v1.20.2"],
                "v1.20.2",
                &[Rule::ControlPlaneNewerThanApiserver],
            ),
        ];
        for component in [
            Component::KubeControllerManager,
            Component::KubeScheduler,
            Component::CloudControllerManager,
        ] {
            for (servers, version, want) in table {
                let mut c = cluster(servers);
                let instance = Instance::on("cp0", v(version));
                match component {
                    Component::KubeControllerManager => c.controller_managers.push(instance),
                    Component::KubeScheduler => c.schedulers.push(instance),
                    _ => c.cloud_controller_managers.push(instance),
                }
                let findings = check(&c);
                assert_eq!(rules(&findings), *want, "{component} {servers:?} {version}");
                for f in findings {
                    assert_eq!(f.subject.component, component);
                }
            }
        }
    }

    #[test]
    fn kubectl_within_one_minor() {
        let table = [
            ("v1.20.2", false),
            ("v1.21.0", false),
            ("v1.19.0", false),
            ("v1.22.0", true),
            ("v1.18.0", true),
        ];
        for (kubectl, broken) in table {
            let mut c = cluster(&["v1.20.2"]);
            c.kubectl = Some(v(kubectl));
            assert_eq!(
                rules(&check(&c)) == [Rule::KubectlSkew],
                broken,
                "kubectl {kubectl}"
            );
        }
        // Mixed servers: must be at one of the two minors.
        let mut c = cluster(&["v1.34.0", "v1.35.0"]);
        c.kubectl = Some(v("v1.36.0"));
        assert_eq!(rules(&check(&c)), [Rule::KubectlSkew]);
        c.kubectl = Some(v("v1.33.0"));
        assert_eq!(rules(&check(&c)), [Rule::KubectlSkew]);
        c.kubectl = Some(v("v1.34.9"));
        assert!(check(&c).is_empty());
    }

    #[test]
    fn unknown_apiserver_means_no_verdict() {
        let c = ClusterVersions {
            kubelets: vec![Instance::on("w1", v("v1.10.0"))],
            ..Default::default()
        };
        assert!(check(&c).is_empty());
    }

    #[test]
    fn kubeadm_kubelet_rule() {
        let mut c = cluster(&["v1.19.16"]);
        c.kubelets = vec![
            Instance::on("w1", v("v1.19.16")),
            Instance::on("w2", v("v1.18.20")),
        ];
        let found = check_kubeadm_kubelets(&c, &v("v1.20.2"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].subject.node.as_deref(), Some("w2"));
        assert_eq!(found[0].reference.component, Component::Kubeadm);
        // From 1.29 kubeadm allows three.
        c.kubelets = vec![Instance::on("w1", v("v1.26.0"))];
        assert!(check_kubeadm_kubelets(&c, &v("v1.29.0")).is_empty());
        assert_eq!(check_kubeadm_kubelets(&c, &v("v1.28.0")).len(), 1);
        c.kubelets = vec![Instance::on("w1", v("v1.25.0"))];
        assert_eq!(check_kubeadm_kubelets(&c, &v("v1.29.0")).len(), 1);
    }

    #[test]
    fn finding_text_names_everything() {
        let mut c = cluster(&["v1.20.2"]);
        c.kubelets.push(Instance::on("worker-3", v("v1.17.17")));
        let text = check(&c)[0].to_string();
        for part in [
            "kubelet",
            "v1.17.17",
            "worker-3",
            "kube-apiserver",
            "v1.20.2",
            "cp0",
            "three",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
    }
}
