//! The built-in commands that upgrade one Debian/Ubuntu kubeadm node to a Kubernetes version:
//! one source for `upgrade plan -o markdown`'s runbook and `upgrade apply`'s executors.
//!
//! The sequence is the kubeadm documentation's ("Upgrading kubeadm clusters", "Upgrading Linux
//! nodes", "Changing the Kubernetes package repository" on kubernetes.io):
//! 1. point the pkgs.k8s.io repository at the target minor — one repository per minor
//!    (`deb [signed-by=…] https://pkgs.k8s.io/core:/stable:/v1.N/deb/ /` in
//!    `/etc/apt/sources.list.d/kubernetes.list`; the docs say to change the version in that URL,
//!    so the rest of the line, the keyring and an alias host such as `pkgs.kubernetes.io` stay);
//!    pkgs.k8s.io starts at v1.24: older minors were in the legacy `apt.kubernetes.io`
//!    repository, one for all minors, so there is nothing to switch;
//! 2. `apt-mark unhold kubeadm`, `apt-get update`, `apt-get install -y kubeadm=VERSION`,
//!    `apt-mark hold kubeadm` (held so that an unrelated `apt upgrade` cannot move it);
//! 3. the first control-plane node: `kubeadm upgrade plan vX.Y.Z` then
//!    `kubeadm upgrade apply vX.Y.Z --yes` (`--yes`: non-interactive); every other node
//!    (control plane or worker): `kubeadm upgrade node` (phases `preflight`, `control-plane`
//!    "if any", `kubelet-config`: on a worker it only refreshes the kubelet configuration);
//!    a kubelet moved on its own ([`NodeRole::KubeletOnly`], the plan's catch-up to the control
//!    plane's current version): `kubeadm upgrade node phase kubelet-config` only — it writes
//!    the kubelet configuration of the cluster's `kubernetesVersion` (the ConfigMap
//!    `kubelet-config-1.X` before 1.24), and touches no static pod and no certificate, on a
//!    control-plane node too (`kubeadm upgrade node phase kubelet-config --help`, v1.20.2:
//!    "kubeadm uses the KubernetesVersion field in the kubeadm-config ConfigMap to determine
//!    what the _desired_ kubelet version is");
//! 4. after the drain: the same unhold / update / install / hold for kubelet and kubectl, then
//!    `systemctl daemon-reload` and `systemctl restart kubelet`.
//!
//! Package versions: pkgs.k8s.io packages are versioned `1.29.3-1.1` (the Debian revision
//! after the dash can change between builds), so the install pins `1.29.3-*` as the docs do;
//! the legacy repository's were `1.20.2-00`.
//!
//! Commands are argument vectors (no shell between them and the executor), without `sudo`:
//! an executor adds what privilege it needs. [`NodeCommand::shell`] renders one for people.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::version::{Minor, Version};

/// Where kubeadm's installation docs write the Kubernetes apt repository.
pub const DEFAULT_APT_SOURCE: &str = "/etc/apt/sources.list.d/kubernetes.list";

/// The first minor published on pkgs.k8s.io.
pub const PKGS_K8S_IO_FIRST: Minor = Minor::new(1, 24);

/// What a node is in the upgrade: it decides `kubeadm upgrade apply` or `node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// The control-plane node that runs `kubeadm upgrade apply` (one per minor step).
    FirstControlPlane,
    /// Another control-plane node: `kubeadm upgrade node`, one at a time after the first.
    ControlPlane,
    /// A worker: `kubeadm upgrade node` (its kubelet configuration).
    Worker,
    /// Only the kubelet moves (a kubelet the plan moves first to stay within the skew window,
    /// to the control plane's current version): the repository switch, kubeadm at that version,
    /// `kubeadm upgrade node phase kubelet-config` (the kubelet configuration only: no static
    /// pod, no certificate renewal, even on a control-plane node), then kubelet and kubectl.
    KubeletOnly,
}

impl NodeRole {
    /// The word used in placeholders and reports: `first-control-plane`, `control-plane`,
    /// `worker`, `kubelet-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::FirstControlPlane => "first-control-plane",
            NodeRole::ControlPlane => "control-plane",
            NodeRole::Worker => "worker",
            NodeRole::KubeletOnly => "kubelet-only",
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a command runs relative to the node's drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommandStage {
    /// Repository, kubeadm package and `kubeadm upgrade`: the docs run these before the drain
    /// (they do not restart workloads), an orchestrator may run them after it.
    Kubeadm,
    /// kubelet and kubectl packages and the kubelet restart: only on a drained node (in-place
    /// minor kubelet upgrades are not supported).
    Kubelet,
}

/// One command for a node: a program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCommand {
    /// Program then arguments, exactly as they reach the node (no shell expansion).
    pub argv: Vec<String>,
    /// Before or after the drain.
    pub stage: CommandStage,
    /// What it does, for dry runs and reports.
    pub purpose: String,
}

impl NodeCommand {
    fn new(stage: CommandStage, purpose: impl Into<String>, argv: &[&str]) -> Self {
        Self {
            argv: argv.iter().map(|a| (*a).to_string()).collect(),
            stage,
            purpose: purpose.into(),
        }
    }

    /// The program (first word).
    pub fn program(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or("")
    }

    /// The command as one POSIX shell line: every word that a shell would change is quoted.
    pub fn shell(&self) -> String {
        shell_join(&self.argv)
    }
}

impl fmt::Display for NodeCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shell())
    }
}

/// Why no commands could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeCommandsError {
    /// Pre-releases live in other repositories (`core:/prerelease:`) under other package
    /// versions; the built-in commands only install releases.
    #[error(
        "{version} is a pre-release: the built-in node commands install releases from the stable \
         repositories only; give your own node script for pre-releases"
    )]
    PreRelease {
        /// The version asked for.
        version: Version,
    },
    /// The apt source path is not an absolute path without whitespace.
    #[error("apt source file `{path}` must be an absolute path without whitespace")]
    BadAptSource {
        /// The path given.
        path: String,
    },
}

/// Inputs of [`node_commands`] besides role and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCommandOptions {
    /// The apt source file holding the pkgs.k8s.io line ([`DEFAULT_APT_SOURCE`]).
    pub apt_source: String,
}

impl Default for NodeCommandOptions {
    fn default() -> Self {
        Self {
            apt_source: DEFAULT_APT_SOURCE.to_string(),
        }
    }
}

/// The apt version pattern of a Kubernetes release in its repository: `1.29.3-*` on pkgs.k8s.io
/// (packages `1.29.3-1.1`), `1.20.2-00` in the legacy repository (before v1.24).
pub fn package_version(version: &Version) -> String {
    let Version {
        major,
        minor,
        patch,
        ..
    } = version;
    if version.minor_of() >= PKGS_K8S_IO_FIRST {
        format!("{major}.{minor}.{patch}-*")
    } else {
        format!("{major}.{minor}.{patch}-00")
    }
}

/// The pkgs.k8s.io repository URL of a minor: `https://pkgs.k8s.io/core:/stable:/v1.29/deb/`.
pub fn repository_url(minor: Minor) -> String {
    format!("https://pkgs.k8s.io/core:/stable:/v{minor}/deb/")
}

/// The script that points the apt source at `minor` (argument `$1`: the file). It refuses a
/// file without a pkgs.k8s.io line (else `apt-get install` fails later with the puzzling
/// "Version '1.29.3-*' for 'kubeadm' was not found") and checks the edit took.
fn repository_switch_script(minor: Minor) -> String {
    // Double quotes only: the script itself travels inside single quotes when shown.
    format!(
        "f=\"$1\"; \
         grep -Eq \"/core:/stable:/v[0-9]+[.][0-9]+/deb/\" \"$f\" || {{ echo \"$f has no pkgs.k8s.io repository line (https://pkgs.k8s.io/core:/stable:/v1.N/deb/): move this node to pkgs.k8s.io first (https://kubernetes.io/blog/2023/08/15/pkgs-k8s-io-introduction/) or give your own node script\" >&2; exit 1; }}; \
         sed -i -E \"s#/core:/stable:/v[0-9]+[.][0-9]+/deb/#/core:/stable:/v{minor}/deb/#g\" \"$f\" && \
         grep -q \"/core:/stable:/v{minor}/deb/\" \"$f\""
    )
}

fn package_steps(
    out: &mut Vec<NodeCommand>,
    stage: CommandStage,
    packages: &[&str],
    version: &Version,
) {
    let pinned: Vec<String> = packages
        .iter()
        .map(|p| format!("{p}={}", package_version(version)))
        .collect();
    let names = packages.join(" ");
    let mut unhold = vec!["apt-mark", "unhold"];
    unhold.extend_from_slice(packages);
    out.push(NodeCommand::new(
        stage,
        format!("let apt change {names}"),
        &unhold,
    ));
    out.push(NodeCommand::new(
        stage,
        "read the package lists",
        &["apt-get", "update"],
    ));
    let mut install = vec!["apt-get", "install", "-y"];
    install.extend(pinned.iter().map(String::as_str));
    out.push(NodeCommand::new(
        stage,
        format!("install {names} {version}"),
        &install,
    ));
    let mut hold = vec!["apt-mark", "hold"];
    hold.extend_from_slice(packages);
    out.push(NodeCommand::new(
        stage,
        format!("keep {names} at {version} (no upgrade by accident)"),
        &hold,
    ));
}

/// The built-in commands that bring a Debian/Ubuntu kubeadm node of `role` to `version`, in
/// order: the [`CommandStage::Kubeadm`] ones, then the [`CommandStage::Kubelet`] ones.
pub fn node_commands(
    role: NodeRole,
    version: &Version,
    options: &NodeCommandOptions,
) -> Result<Vec<NodeCommand>, NodeCommandsError> {
    if !version.is_release() {
        return Err(NodeCommandsError::PreRelease {
            version: version.clone(),
        });
    }
    let source = options.apt_source.as_str();
    if !source.starts_with('/') || source.chars().any(char::is_whitespace) {
        return Err(NodeCommandsError::BadAptSource {
            path: source.to_string(),
        });
    }
    let minor = version.minor_of();
    let v = version.to_string();
    let mut out = Vec::new();
    if minor >= PKGS_K8S_IO_FIRST {
        let script = repository_switch_script(minor);
        out.push(NodeCommand::new(
            CommandStage::Kubeadm,
            format!("point {source} at {}", repository_url(minor)),
            &["sh", "-c", &script, "sh", source],
        ));
    }
    package_steps(&mut out, CommandStage::Kubeadm, &["kubeadm"], version);
    match role {
        NodeRole::FirstControlPlane => {
            out.push(NodeCommand::new(
                CommandStage::Kubeadm,
                "check the cluster can be upgraded",
                &["kubeadm", "upgrade", "plan", &v],
            ));
            out.push(NodeCommand::new(
                CommandStage::Kubeadm,
                format!("upgrade the control plane to {v}"),
                &["kubeadm", "upgrade", "apply", &v, "--yes"],
            ));
        }
        NodeRole::ControlPlane => out.push(NodeCommand::new(
            CommandStage::Kubeadm,
            "upgrade this node's control-plane components and kubelet configuration",
            &["kubeadm", "upgrade", "node"],
        )),
        NodeRole::Worker => out.push(NodeCommand::new(
            CommandStage::Kubeadm,
            "upgrade this node's kubelet configuration",
            &["kubeadm", "upgrade", "node"],
        )),
        NodeRole::KubeletOnly => out.push(NodeCommand::new(
            CommandStage::Kubeadm,
            "write the kubelet configuration of the cluster's version (nothing else on this node)",
            &["kubeadm", "upgrade", "node", "phase", "kubelet-config"],
        )),
    }
    package_steps(
        &mut out,
        CommandStage::Kubelet,
        &["kubelet", "kubectl"],
        version,
    );
    out.push(NodeCommand::new(
        CommandStage::Kubelet,
        "reload systemd units (the package may ship a new drop-in)",
        &["systemctl", "daemon-reload"],
    ));
    out.push(NodeCommand::new(
        CommandStage::Kubelet,
        format!("start kubelet {v}"),
        &["systemctl", "restart", "kubelet"],
    ));
    Ok(out)
}

/// A word safe to leave unquoted in a POSIX shell.
fn shell_safe(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
        && !word.starts_with('=')
}

/// Quotes one word for a POSIX shell: as is when safe, else in single quotes (a `'` inside
/// becomes `'\''`). `kubeadm=1.29.3-*` is shown `kubeadm='1.29.3-*'`, as the docs write it.
pub fn shell_quote(word: &str) -> String {
    if shell_safe(word) {
        return word.to_string();
    }
    if let Some((name, value)) = word.split_once('=')
        && shell_safe(name)
        && !value.contains(|c: char| c == '\'' || c.is_whitespace())
    {
        return format!("{name}='{value}'");
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Joins words into one shell line, quoting each as [`shell_quote`] does.
pub fn shell_join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn lines(role: NodeRole, version: &str) -> Vec<String> {
        node_commands(role, &v(version), &NodeCommandOptions::default())
            .unwrap()
            .iter()
            .map(|c| {
                if c.program() == "sh" {
                    format!(
                        "<switch repository to {}>",
                        c.argv[2].contains("v1.29/deb/")
                    )
                } else {
                    c.shell()
                }
            })
            .collect()
    }

    const KUBELET_129: [&str; 6] = [
        "apt-mark unhold kubelet kubectl",
        "apt-get update",
        "apt-get install -y kubelet='1.29.3-*' kubectl='1.29.3-*'",
        "apt-mark hold kubelet kubectl",
        "systemctl daemon-reload",
        "systemctl restart kubelet",
    ];

    #[test]
    fn every_role_on_pkgs_k8s_io() {
        let kubeadm = [
            "<switch repository to true>",
            "apt-mark unhold kubeadm",
            "apt-get update",
            "apt-get install -y kubeadm='1.29.3-*'",
            "apt-mark hold kubeadm",
        ];
        let table: [(NodeRole, &[&str]); 4] = [
            (
                NodeRole::FirstControlPlane,
                &[
                    "kubeadm upgrade plan v1.29.3",
                    "kubeadm upgrade apply v1.29.3 --yes",
                ],
            ),
            (NodeRole::ControlPlane, &["kubeadm upgrade node"]),
            (NodeRole::Worker, &["kubeadm upgrade node"]),
            (
                NodeRole::KubeletOnly,
                &["kubeadm upgrade node phase kubelet-config"],
            ),
        ];
        for (role, upgrade) in table {
            let mut want: Vec<String> = Vec::new();
            want.extend(kubeadm.iter().map(|s| s.to_string()));
            want.extend(upgrade.iter().map(|s| s.to_string()));
            want.extend(KUBELET_129.iter().map(|s| s.to_string()));
            assert_eq!(lines(role, "v1.29.3"), want, "{role}");
        }
    }

    #[test]
    fn legacy_repository_before_1_24_has_no_switch_and_00_revisions() {
        let got = lines(NodeRole::Worker, "v1.20.2");
        assert_eq!(
            got,
            [
                "apt-mark unhold kubeadm",
                "apt-get update",
                "apt-get install -y kubeadm=1.20.2-00",
                "apt-mark hold kubeadm",
                "kubeadm upgrade node",
                "apt-mark unhold kubelet kubectl",
                "apt-get update",
                "apt-get install -y kubelet=1.20.2-00 kubectl=1.20.2-00",
                "apt-mark hold kubelet kubectl",
                "systemctl daemon-reload",
                "systemctl restart kubelet",
            ]
        );
        // v1.24 is the first minor on pkgs.k8s.io.
        assert_eq!(package_version(&v("v1.23.17")), "1.23.17-00");
        assert_eq!(package_version(&v("v1.24.0")), "1.24.0-*");
        assert_eq!(
            lines(NodeRole::Worker, "v1.24.0")[0],
            "<switch repository to false>"
        );
    }

    #[test]
    fn stages_split_at_the_drain() {
        for role in [
            NodeRole::FirstControlPlane,
            NodeRole::ControlPlane,
            NodeRole::Worker,
            NodeRole::KubeletOnly,
        ] {
            let cmds = node_commands(role, &v("v1.30.1"), &NodeCommandOptions::default()).unwrap();
            let first_kubelet = cmds
                .iter()
                .position(|c| c.stage == CommandStage::Kubelet)
                .unwrap();
            assert!(
                cmds[first_kubelet..]
                    .iter()
                    .all(|c| c.stage == CommandStage::Kubelet),
                "{role}: stages interleave"
            );
            assert_eq!(
                cmds[first_kubelet].shell(),
                "apt-mark unhold kubelet kubectl"
            );
            assert!(
                cmds[..first_kubelet]
                    .iter()
                    .all(|c| !c.argv.iter().any(|a| a.contains("kubelet="))),
                "{role}: kubelet installed before the drain"
            );
        }
    }

    #[test]
    fn repository_switch_names_the_minor_and_the_file() {
        let opts = NodeCommandOptions {
            apt_source: "/tmp/x/kubernetes.list".into(),
        };
        let cmds = node_commands(NodeRole::Worker, &v("v1.31.4"), &opts).unwrap();
        let switch = &cmds[0];
        assert_eq!(switch.argv[0], "sh");
        assert_eq!(switch.argv[1], "-c");
        assert_eq!(switch.argv[3], "sh");
        assert_eq!(switch.argv[4], "/tmp/x/kubernetes.list");
        assert!(switch.argv[2].contains("#/core:/stable:/v1.31/deb/#g"));
        assert!(
            !switch.argv[2].contains('\''),
            "the script must quote cleanly"
        );
        assert_eq!(
            switch.purpose,
            "point /tmp/x/kubernetes.list at https://pkgs.k8s.io/core:/stable:/v1.31/deb/"
        );
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            node_commands(
                NodeRole::Worker,
                &v("v1.30.0-rc.1"),
                &NodeCommandOptions::default()
            ),
            Err(NodeCommandsError::PreRelease { .. })
        ));
        for bad in ["relative/path", "/with space", ""] {
            let opts = NodeCommandOptions {
                apt_source: bad.into(),
            };
            assert!(
                matches!(
                    node_commands(NodeRole::Worker, &v("v1.30.0"), &opts),
                    Err(NodeCommandsError::BadAptSource { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn quoting() {
        let table = [
            ("kubeadm", "kubeadm"),
            ("v1.29.3", "v1.29.3"),
            ("kubeadm=1.29.3-*", "kubeadm='1.29.3-*'"),
            ("", "''"),
            ("a b", "'a b'"),
            ("it's", r"'it'\''s'"),
            ("$HOME", "'$HOME'"),
            ("=x", "'=x'"),
            ("a=b'c", r"'a=b'\''c'"),
            ("f=\"$1\"; x", "'f=\"$1\"; x'"),
        ];
        for (word, want) in table {
            assert_eq!(shell_quote(word), want, "{word:?}");
        }
    }

    proptest::proptest! {
        /// Any release, any role: kubeadm is installed before `kubeadm upgrade`, every unhold
        /// is followed by the hold of the same packages, every pin names the version, and the
        /// kubelet restarts last.
        #[test]
        fn invariants(minor in 19u32..40, patch in 0u32..30, role_ix in 0usize..4) {
            let role = [
                NodeRole::FirstControlPlane,
                NodeRole::ControlPlane,
                NodeRole::Worker,
                NodeRole::KubeletOnly,
            ][role_ix];
            let version = Version { major: 1, minor, patch, pre: String::new() };
            let cmds = node_commands(role, &version, &NodeCommandOptions::default()).unwrap();
            let shells: Vec<String> = cmds.iter().map(NodeCommand::shell).collect();
            let pos = |s: &str| shells.iter().position(|l| l.starts_with(s));
            proptest::prop_assert_eq!(shells.last().unwrap(), "systemctl restart kubelet");
            proptest::prop_assert_eq!(pos("sh -c").is_some(), minor >= 24);
            let upgrade = pos("kubeadm upgrade").unwrap();
            proptest::prop_assert!(pos("apt-mark hold kubeadm").unwrap() < upgrade);
            proptest::prop_assert!(upgrade < pos("apt-mark unhold kubelet").unwrap());
            proptest::prop_assert_eq!(
                shells.iter().filter(|l| l.starts_with("kubeadm upgrade apply")).count(),
                usize::from(role == NodeRole::FirstControlPlane)
            );
            // A kubelet-only move never reaches the static pods (no `upgrade node` control-plane
            // phase, no certificate renewal): only the kubelet-config phase runs.
            let kubeadm_runs: Vec<&String> =
                shells.iter().filter(|l| l.starts_with("kubeadm upgrade")).collect();
            if role == NodeRole::KubeletOnly {
                proptest::prop_assert_eq!(kubeadm_runs, vec!["kubeadm upgrade node phase kubelet-config"]);
            } else {
                proptest::prop_assert!(kubeadm_runs.iter().all(|l| !l.contains("phase")));
            }
            for (i, c) in cmds.iter().enumerate() {
                if c.argv[..2] == ["apt-mark", "unhold"] {
                    let held = cmds[i..].iter().find(|d| d.argv[..2] == ["apt-mark", "hold"]).unwrap();
                    proptest::prop_assert_eq!(&held.argv[2..], &c.argv[2..]);
                }
                for a in &c.argv {
                    if let Some((_, pin)) = a.split_once('=').filter(|(p, _)| ["kubeadm", "kubelet", "kubectl"].contains(p)) {
                        proptest::prop_assert_eq!(pin, package_version(&version));
                        let prefix = format!("1.{minor}.{patch}-");
                        proptest::prop_assert!(pin.starts_with(&prefix));
                    }
                }
            }
        }
    }

    /// The quoted line means the same words to a real shell.
    #[test]
    fn quoting_round_trips_through_sh() {
        let words = [
            "sh",
            "-c",
            &repository_switch_script(Minor::new(1, 29)),
            "kubeadm=1.29.3-*",
            "it's",
            "",
            "a b",
        ];
        let line = format!("printf '%s\\0' {}", shell_join(&words));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .expect("sh runs");
        let got: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        let mut want: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        want.push(String::new()); // after the last NUL
        assert_eq!(got, want);
    }

    /// The switch script against real files: the version moves, the rest of the line stays,
    /// and a file without a pkgs.k8s.io line is refused with the next step.
    #[test]
    fn repository_switch_script_runs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kubernetes.list");
        let line = "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.kubernetes.io/core:/stable:/v1.28/deb/ /\n";
        std::fs::write(&file, line).unwrap();
        let run = |path: &std::path::Path| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(repository_switch_script(Minor::new(1, 29)))
                .arg("sh")
                .arg(path)
                .output()
                .expect("sh runs")
        };
        let out = run(&file);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            line.replace("v1.28", "v1.29")
        );
        std::fs::write(
            &file,
            "deb https://apt.kubernetes.io/ kubernetes-xenial main\n",
        )
        .unwrap();
        let out = run(&file);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("has no pkgs.k8s.io repository line"), "{err}");
        assert!(err.contains("move this node to pkgs.k8s.io first"), "{err}");
    }
}
