//! The Kubernetes StatefulSet's container arguments are flags this binary
//! takes: each `args` line of `deploy/k8s/statefulset.yaml`, with the pod's
//! variables filled in, parses into a node config (a renamed or mistyped
//! flag fails here, not in a pod's crash loop).

use std::path::Path;

use clap::Parser;
use drove_cli::admin_args::AdminArgs;
use drove_cli::node_args::NodeArgs;

#[derive(Parser)]
struct NodeCommand {
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    admin: AdminArgs,
}

/// The `args:` list of the first container named `drove`.
fn container_args(yaml: &str) -> Vec<String> {
    let mut lines = yaml
        .lines()
        .skip_while(|l| l.trim() != "- name: drove")
        .skip_while(|l| l.trim() != "args:")
        .skip(1);
    let mut args = Vec::new();
    for line in lines.by_ref() {
        let t = line.trim();
        if t.starts_with('#') {
            continue;
        }
        match t.strip_prefix("- ") {
            Some(arg) => args.push(arg.to_string()),
            None => break,
        }
    }
    args
}

#[test]
fn the_statefulset_args_are_flags_drove_node_takes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let yaml = std::fs::read_to_string(root.join("deploy/k8s/statefulset.yaml")).unwrap();
    let args = container_args(&yaml);
    assert_eq!(args.first().map(String::as_str), Some("node"), "{args:?}");
    let filled: Vec<String> = args[1..]
        .iter()
        .map(|a| {
            a.replace("$(POD_NAME)", "drove-0")
                .replace("$(POD_IP)", "198.18.0.10")
                .replace("$(POD_NAMESPACE)", "default")
        })
        .collect();
    let cmd = NodeCommand::try_parse_from(std::iter::once("drove".to_string()).chain(filled))
        .unwrap_or_else(|e| panic!("the StatefulSet's args do not parse: {e}"));
    let config = cmd.node.to_config().unwrap();
    assert_eq!(config.name, "drove-0");
    assert_eq!(config.listen.to_string(), "198.18.0.10:4370");
    assert_eq!(
        config.discovery.to_string(),
        "dns:drove-headless.default.svc.cluster.local"
    );
    assert!(config.tls_files().unwrap().is_some(), "TLS is on");
    assert!(cmd.admin.admin_token_file.is_some());
}
