//! Address maps, roles, the commands shown, and a script in place of the built-in commands.

use kubemaint_core::upgrade::Version;
use kubemaint_core::upgrade::apply::Role;

use super::*;

fn job(role: Role, first: bool) -> NodeJob {
    NodeJob {
        node: "cp-1".into(),
        role,
        version: Version::parse("v1.29.3").unwrap(),
        first,
        kubelet_only: false,
    }
}

#[test]
fn address_maps() {
    let map = parse_address_map("# nodes\n\ncp-1 = 10.0.0.1\nworker-1=bastion-w1\n").unwrap();
    assert_eq!(map["cp-1"], "10.0.0.1");
    assert_eq!(map["worker-1"], "bastion-w1");
    assert!(matches!(
        parse_address_map("cp-1 10.0.0.1"),
        Err(SshError::AddressMapLine { line: 1, .. })
    ));
    assert!(matches!(
        parse_address_map("a=1\na=2"),
        Err(SshError::AddressMapDuplicate { line: 2, .. })
    ));
    assert!(matches!(
        parse_address_map("a=x y"),
        Err(SshError::AddressMapLine { .. })
    ));
}

#[test]
fn roles_and_shown_commands() {
    assert_eq!(
        node_role(&job(Role::ControlPlane, true)),
        NodeRole::FirstControlPlane
    );
    assert_eq!(
        node_role(&job(Role::ControlPlane, false)),
        NodeRole::ControlPlane
    );
    assert_eq!(node_role(&job(Role::Worker, false)), NodeRole::Worker);
    for role in [Role::ControlPlane, Role::Worker] {
        let catch_up = NodeJob {
            kubelet_only: true,
            ..job(role, false)
        };
        assert_eq!(node_role(&catch_up), NodeRole::KubeletOnly);
    }
    let ex = SshExecutor::new(SshOptions::default());
    let target = NodeTarget {
        job: job(Role::ControlPlane, true),
        address: Some("10.0.0.1".into()),
    };
    assert_eq!(ex.via(&target).unwrap(), "ssh 10.0.0.1");
    let shown = ex.commands(&target).unwrap();
    assert!(shown[0].starts_with("sudo -n sh -c "), "{}", shown[0]);
    assert!(shown.contains(&"sudo -n kubeadm upgrade apply v1.29.3 --yes".to_string()));
    assert_eq!(shown.last().unwrap(), "sudo -n systemctl restart kubelet");
    let root = SshExecutor::new(SshOptions {
        user: Some("root".into()),
        ..SshOptions::default()
    });
    assert_eq!(
        root.commands(&target).unwrap().last().unwrap(),
        "systemctl restart kubelet"
    );
    // What --dry-run shows is what runs: the same words, sudo -n only for a non-root login.
    let argv: Vec<String> = ["kubeadm", "upgrade", "node"].map(String::from).to_vec();
    assert_eq!(
        remote_words(&argv, Privilege::Sudo),
        ["sudo", "-n", "kubeadm", "upgrade", "node"]
    );
    assert_eq!(remote_words(&argv, Privilege::Root), argv);
    let admin = SshExecutor::new(SshOptions {
        user: Some("admin".into()),
        port: Some(2222),
        config_file: Some("/etc/km/ssh config".into()),
        identity: Some("/root/.ssh/km".into()),
        addresses: [("cp-1".to_string(), "bastion-cp1".to_string())].into(),
        ..SshOptions::default()
    });
    assert_eq!(admin.dry_run_privilege(), Privilege::Sudo);
    assert_eq!(root.dry_run_privilege(), Privilege::Root);
    assert_eq!(
        admin.via(&target).unwrap(),
        "ssh -F '/etc/km/ssh config' -p 2222 -i /root/.ssh/km admin@bastion-cp1"
    );
    assert!(
        admin
            .commands(&target)
            .unwrap()
            .iter()
            .all(|c| c.starts_with("sudo -n ")),
    );
}

#[test]
fn a_script_replaces_the_built_in_commands() {
    let ex = SshExecutor::new(SshOptions {
        script: Some(NodeScript {
            path: "/srv/up.sh".into(),
            text: "#!/usr/bin/env bash\necho $1\n".into(),
        }),
        ..SshOptions::default()
    });
    let argvs = ex.argvs(&job(Role::Worker, false)).unwrap();
    assert_eq!(argvs.len(), 1);
    let argv = &argvs[0];
    assert_eq!(
        argv[..6],
        [
            "env",
            "KUBEMAINT_NODE=cp-1",
            "KUBEMAINT_VERSION=v1.29.3",
            "KUBEMAINT_MINOR=1.29",
            "KUBEMAINT_ROLE=worker",
            "KUBEMAINT_FIRST=false"
        ]
    );
    assert_eq!(argv[6..9], ["/usr/bin/env", "bash", "-c"]);
    assert_eq!(
        argv[10..],
        [
            "kubemaint-node-script",
            "cp-1",
            "v1.29.3",
            "1.29",
            "worker",
            "false"
        ]
    );
    let shown = ex.display(argv, Privilege::Sudo);
    assert!(
        shown.contains("-c \"$(cat /srv/up.sh)\" kubemaint-node-script cp-1"),
        "{shown}"
    );
    let plain = NodeScript {
        path: "x".into(),
        text: "echo hi".into(),
    };
    assert_eq!(plain.interpreter(), ["sh"]);
}
