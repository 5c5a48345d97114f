//! The kubelet and kube-proxy of a real node: the upstream commands, run as `controlplane kubelet` and
//! `controlplane kube-proxy` (the same binary and module graph as the control plane), inside the node's
//! network namespace. Their configuration keeps their state under the node's directory; what they
//! still change on the host is recorded by `host_settings`.

use std::path::{Path, PathBuf};

use super::netns::NodeNetwork;
use super::{Addressing, containerd::ContainerdPaths};
use crate::process::Supervised;
use crate::{ControlPlane, Error, Result, controlplane_binary};

/// The node's kubeconfig: the control plane's admin credentials (the sandbox's nodes are trusted
/// components, as kubeadm's bootstrap is not modelled), with the API server reached at the sandbox side
/// of the node's veth pair (the API server listens there too; its certificate names that address).
pub(crate) fn write_kubeconfig(
    control_plane: &ControlPlane,
    addressing: &Addressing,
    dir: &Path,
) -> Result<PathBuf> {
    let admin = std::fs::read_to_string(&control_plane.kubeconfig).map_err(Error::io(format!(
        "reading {}",
        control_plane.kubeconfig.display()
    )))?;
    let loopback = "https://127.0.0.1:";
    if !admin.contains(loopback) {
        return Err(Error::Sandbox(format!(
            "{} names no https://127.0.0.1 server",
            control_plane.kubeconfig.display()
        )));
    }
    let node = admin.replace(loopback, &format!("https://{}:", addressing.host_ip()));
    let path = dir.join("node.kubeconfig");
    std::fs::write(&path, node).map_err(Error::io(format!("writing {}", path.display())))?;
    Ok(path)
}

/// The kubelet's configuration file.
fn kubelet_config(addressing: &Addressing, paths: &ContainerdPaths, dir: &Path, cgroup_root: &str) -> String {
    let d = dir.display();
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroups v1, no systemd and swap may be on.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
# Its own cgroup subtree, so two nodes on one machine never see (and clean up) each other's pods.
cgroupRoot: {cgroup_root}
cgroupsPerQOS: true
enforceNodeAllocatable: []
containerRuntimeEndpoint: unix://{socket}
address: {node_ip}
port: 10250
readOnlyPort: 0
healthzPort: 0
# The API server dials the kubelet without a client certificate (it has none configured).
authentication:
  anonymous: {{enabled: true}}
  webhook: {{enabled: false}}
authorization: {{mode: AlwaysAllow}}
volumePluginDir: {d}/kubelet/volume-plugins
podLogsDir: {d}/pod-logs
# Pods resolve names only through the sandbox's DNS (the sandbox side of the veth pair), never the
# machine's resolvers.
resolvConf: {d}/resolv.conf
clusterDomain: cluster.local
protectKernelDefaults: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{}}
localStorageCapacityIsolation: false
"#,
        socket = paths.socket.display(),
        node_ip = addressing.node_ip(),
    )
}

/// Starts the kubelet (registering Node `name` with the node's address).
pub(crate) fn start_kubelet(
    network: &NodeNetwork,
    name: &str,
    addressing: &Addressing,
    paths: &ContainerdPaths,
    kubeconfig: &Path,
    dir: &Path,
    cgroup_root: &str,
) -> Result<Supervised> {
    let config = dir.join("kubelet.yaml");
    std::fs::write(&config, kubelet_config(addressing, paths, dir, cgroup_root))
        .map_err(Error::io(format!("writing {}", config.display())))?;
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {}\n", addressing.host_ip()))
        .map_err(Error::io(format!("writing {}", resolv.display())))?;
    let mut command = network.command(controlplane_binary()?);
    command
        .arg("kubelet")
        .arg("--config")
        .arg(&config)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--root-dir")
        .arg(dir.join("kubelet/root"))
        .arg("--cert-dir")
        .arg(dir.join("kubelet/pki"))
        .args(["--hostname-override", name])
        .args(["--node-ip", &addressing.node_ip().to_string()])
        .args(["--v", "1"]);
    Supervised::spawn(
        &format!("kubelet {name}"),
        command,
        &dir.join("kubelet.log"),
        false,
    )
}

/// Starts kube-proxy in iptables mode: its rules live in the node's namespace, and NodePorts answer on
/// the node's address only.
pub(crate) fn start_kube_proxy(
    network: &NodeNetwork,
    name: &str,
    addressing: &Addressing,
    kubeconfig: &Path,
    dir: &Path,
) -> Result<Supervised> {
    let config = dir.join("kube-proxy.yaml");
    let contents = format!(
        r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {{kubeconfig: {kubeconfig}}}
mode: iptables
clusterCIDR: {cluster_cidr}
hostnameOverride: {name}
bindAddress: {node_ip}
healthzBindAddress: ""
metricsBindAddress: ""
conntrack: {{maxPerCore: 0}}
nodePortAddresses: ["{node_ip}/32"]
"#,
        kubeconfig = kubeconfig.display(),
        cluster_cidr = addressing.pod_cidr(),
        node_ip = addressing.node_ip(),
    );
    std::fs::write(&config, contents).map_err(Error::io(format!("writing {}", config.display())))?;
    let mut command = network.command(controlplane_binary()?);
    command.arg("kube-proxy").arg("--config").arg(&config);
    Supervised::spawn(
        &format!("kube-proxy {name}"),
        command,
        &dir.join("kube-proxy.log"),
        false,
    )
}
