//! Pure parts of the real nodes: the addressing plan keeps clusters apart, the journal's node records
//! survive a round trip, and the generated configurations carry what this machine needs.

use std::path::{Path, PathBuf};

use super::Addressing;
use super::cleanup::NodeRecord;
use super::containerd::{ContainerdPaths, config};

#[test]
fn clusters_get_disjoint_ranges() {
    let a = Addressing::new(1).unwrap();
    let b = Addressing::new(2).unwrap();
    assert_eq!(
        (a.host_ip().to_string(), a.node_ip().to_string()),
        ("10.200.1.1".into(), "10.200.1.2".into())
    );
    for (x, y) in [
        (a.pod_cidr(), b.pod_cidr()),
        (a.service_cidr(), b.service_cidr()),
        (a.load_balancer_cidr(), b.load_balancer_cidr()),
    ] {
        assert_ne!(x, y);
    }
    let all = [
        a.pod_cidr(),
        a.service_cidr(),
        a.load_balancer_cidr(),
        "10.200.1.0/24".to_string(),
    ];
    let prefixes: std::collections::BTreeSet<_> =
        all.iter().map(|c| c.rsplitn(3, '.').last().unwrap()).collect();
    assert_eq!(prefixes.len(), all.len(), "{all:?} overlap");
    assert!(Addressing::new(0).is_err() && Addressing::new(251).is_err());
    assert!(
        a.control_plane_args(Path::new("/v"))
            .contains(&"--service-cluster-ip-range=10.202.1.0/24".to_string())
    );
}

#[test]
fn node_record_round_trips() {
    let record = NodeRecord {
        owner: 42,
        dir: PathBuf::from("/tmp/x/node1"),
        shim_sockets: PathBuf::from("/tmp/ferry-shims-42-1"),
        cgroup_root: "ferry-node-42-1".into(),
        netns_id: Some("net:[4026532177]".into()),
    };
    assert_eq!(NodeRecord::from_json(&record.to_json()), Some(record));
}

#[test]
fn containerd_stays_in_the_node_directory() {
    let paths = ContainerdPaths::new(Path::new("/s/node1"), PathBuf::from("/tmp/ferry-shims-1-1"));
    let text = config(&paths, &Addressing::new(1).unwrap());
    for needed in [
        "restrict_oom_score_adj = true",
        "netns_mounts_under_state_dir = true",
        "root = \"/s/node1/containerd/root\"",
        "state = \"/s/node1/containerd/state\"",
        "socket_dir = \"/tmp/ferry-shims-1-1\"",
        "Root = \"/s/node1/containerd/runc\"",
        "sandbox = \"localhost/ferry-sandbox/pause:1\"",
        "stream_server_address = \"10.200.1.2\"",
        "config_path = \"/s/node1/containerd/certs.d\"",
    ] {
        assert!(text.contains(needed), "{needed} missing from:\n{text}");
    }
    assert!(
        !text.contains("/run/containerd") && !text.contains("/var/lib"),
        "{text}"
    );
}
