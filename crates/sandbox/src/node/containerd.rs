//! containerd v2 on a real node (built from Go modules by `e2e/node/build-containerd.sh`), with its CRI
//! plugin configured so that nothing lands outside the node's directory: `root`, `state`, the sockets,
//! runc's state, the CNI configuration and IPAM state, and the pods' network namespaces
//! (`netns_mounts_under_state_dir`). Shim sockets go to a short directory of their own (containerd
//! allows at most 42 characters there). No registry: images are imported from OCI tars, and a pull of
//! any other image goes to the node's own loopback (`certs.d/_default`), where nothing listens, so it
//! fails at once with the kubelet's `ErrImagePull` instead of waiting on a resolver the sandbox cannot
//! reach (a pull of `registry.invalid/...` was still waiting after 30 s), and never leaves the machine even without `e2e/isolated.sh`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::netns::{NodeNetwork, run};
use super::{Addressing, NodeBinaries, PAUSE_IMAGE};
use crate::process::Supervised;
use crate::{Error, Result};

/// Where one node's containerd keeps everything.
#[derive(Clone, Debug)]
pub(crate) struct ContainerdPaths {
    pub(crate) dir: PathBuf,
    pub(crate) socket: PathBuf,
    pub(crate) shim_sockets: PathBuf,
    pub(crate) cni_conf: PathBuf,
}

impl ContainerdPaths {
    pub(crate) fn new(node_dir: &Path, shim_sockets: PathBuf) -> Self {
        let dir = node_dir.join("containerd");
        Self {
            socket: dir.join("containerd.sock"),
            cni_conf: node_dir.join("cni/net.d"),
            dir,
            shim_sockets,
        }
    }
}

/// The configuration (version 3, containerd 2.x plugin names).
pub(crate) fn config(paths: &ContainerdPaths, addressing: &Addressing) -> String {
    let d = paths.dir.display();
    format!(
        r#"version = 3
root = "{d}/root"
state = "{d}/state"

[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"

[plugins.'io.containerd.shim.v1.manager']
  socket_dir = "{shims}"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"
  [plugins.'io.containerd.cri.v1.images'.registry]
    # Not the machine's /etc/containerd/certs.d.
    config_path = "{d}/certs.d"

[plugins.'io.containerd.cri.v1.runtime']
  # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails with
  # "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{cni_bin}"]
    conf_dir = "{cni_conf}"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "{runc}"
      Root = "{d}/runc"
      SystemdCgroup = false

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "{node_ip}"
  stream_server_port = "0"
"#,
        socket = paths.socket.display(),
        shims = paths.shim_sockets.display(),
        cni_bin = super::CNI_BIN_DIR,
        cni_conf = paths.cni_conf.display(),
        runc = super::RUNC,
        node_ip = addressing.node_ip(),
    )
}

/// The pod network: a bridge `cni0` in the node's namespace with the cluster's pod subnet, the node as
/// gateway, masquerading for traffic leaving the pod subnet, and portmap for hostPorts.
fn cni_conflist(addressing: &Addressing, node_dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": format!("ferry-cluster-{}", addressing.cluster),
        "plugins": [
            {
                "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": addressing.pod_cidr()}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": node_dir.join("cni/ipam"),
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    })
    .to_string()
}

/// Every registry's host (`_default` applies to each one without a directory of its own): port 1 of the
/// node namespace's loopback, refused at once.
const NO_REGISTRY: &str = "server = \"https://127.0.0.1:1\"\n";

/// Writes the configuration and the CNI conflist, starts containerd in the node's namespace and waits
/// for its socket.
pub(crate) fn start(
    network: &NodeNetwork,
    binaries: &NodeBinaries,
    paths: &ContainerdPaths,
    node_dir: &Path,
    addressing: &Addressing,
) -> Result<Supervised> {
    for dir in [&paths.dir, &paths.cni_conf, &paths.shim_sockets] {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    }
    let config_path = paths.dir.join("config.toml");
    write(&config_path, &config(paths, addressing))?;
    let registries = paths.dir.join("certs.d/_default");
    std::fs::create_dir_all(&registries).map_err(Error::io(format!("creating {}", registries.display())))?;
    write(&registries.join("hosts.toml"), NO_REGISTRY)?;
    write(
        &paths.cni_conf.join("10-ferry.conflist"),
        &cni_conflist(addressing, node_dir),
    )?;
    let mut command = network.command(binaries.dir.join("containerd"));
    command.arg("--config").arg(&config_path);
    let log = node_dir.join("containerd.log");
    let mut process = Supervised::spawn("containerd", command, &log, false)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !paths.socket.exists() {
        if let Ok(Some(status)) = process.child().try_wait() {
            return Err(Error::Sandbox(format!(
                "containerd exited ({status}); see {}",
                log.display()
            )));
        }
        if Instant::now() > deadline {
            return Err(Error::Sandbox(format!(
                "containerd did not open {} within 30s; see {}",
                paths.socket.display(),
                log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(process)
}

/// `ctr -n k8s.io images import` of an OCI (or docker-archive) tar.
pub(crate) fn import(binaries: &NodeBinaries, paths: &ContainerdPaths, image: &Path) -> Result<()> {
    run(std::process::Command::new(binaries.dir.join("ctr"))
        .arg("--address")
        .arg(&paths.socket)
        .args(["--namespace", "k8s.io", "images", "import", "--all-platforms"])
        .arg(image))
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).map_err(Error::io(format!("writing {}", path.display())))
}
