//! Real nodes: a kubelet, containerd (with Debian's runc and CNI plugins) and kube-proxy per sandbox
//! cluster, in a network namespace of the node's own (docs/sandbox.md, "Real nodes").
//!
//! ```text
//!   sandbox namespace (e2e/isolated.sh: only lo, plus what the sandbox creates)
//!     API server of cluster N on 0.0.0.0 ── ferry-nN 10.200.N.1/24 ── veth ──┐
//!   node namespace of cluster N                                             eth0 10.200.N.2/24
//!     containerd, kubelet, kube-proxy (iptables) ── cni0 10.201.N.1/24 ── pods 10.201.N.x
//!     Services 10.202.N.0/24 (only this node's kube-proxy knows them)
//! ```
//!
//! Clusters reach each other only through a NodePort on a node address (10.200.N.2), or a
//! LoadBalancer address from 10.203.N.0/24 that the load-balancer stand-in assigns and routes to the
//! node (`load_balancer.rs`): the sandbox namespace routes between the 10.200.N.0/24 links, and no
//! route anywhere leads to another cluster's pod or Service range, so such a connect fails.

mod cleanup;
mod containerd;
mod host_settings;
mod kubelet;
mod load_balancer;
mod netns;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client};

use self::cleanup::NodeRecord;
use self::containerd::ContainerdPaths;
use self::netns::NodeNetwork;
use crate::process::Supervised;
use crate::{ControlPlane, Error, Result};

/// The pod sandbox image every node is configured with (`pinned_images.sandbox`), built by
/// `e2e/images/build.sh pause`.
pub const PAUSE_IMAGE: &str = "localhost/ferry-sandbox/pause:1";
/// Debian's CNI plugins (containernetworking-plugins).
const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// Debian's runc.
const RUNC: &str = "/usr/sbin/runc";

/// A cluster's addresses, from its number (1 to 250).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addressing {
    /// The cluster's number.
    pub cluster: u8,
}

impl Addressing {
    /// The addresses of cluster `cluster` (1 to 250).
    pub fn new(cluster: u8) -> Result<Self> {
        if !(1..=250).contains(&cluster) {
            return Err(Error::Sandbox(format!(
                "cluster number {cluster} is not within 1 to 250"
            )));
        }
        Ok(Self { cluster })
    }

    /// The sandbox side of the node's veth pair (the API server is reached there; the node's gateway).
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.cluster, 1)
    }

    /// The node's address (InternalIP; NodePorts answer here).
    pub fn node_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.cluster, 2)
    }

    /// The pods' range (the node's bridge subnet).
    pub fn pod_cidr(&self) -> String {
        format!("10.201.{}.0/24", self.cluster)
    }

    /// The addresses the load-balancer stand-in gives LoadBalancer Services (routed via the node).
    pub fn load_balancer_cidr(&self) -> String {
        format!("10.203.{}.0/24", self.cluster)
    }

    /// The Services' range (`--service-cluster-ip-range`).
    pub fn service_cidr(&self) -> String {
        format!("10.202.{}.0/24", self.cluster)
    }

    /// `controlplane serve` arguments for a control plane whose node is real: listening on every
    /// address of the sandbox namespace, advertising the node's gateway, this cluster's Service range,
    /// kube-scheduler, and the hostPath provisioner (StorageClass `standard`) under `volumes`.
    pub fn control_plane_args(&self, volumes: &Path) -> Vec<String> {
        vec![
            "--bind-address=0.0.0.0".into(),
            format!("--advertise-address={}", self.host_ip()),
            format!("--service-cluster-ip-range={}", self.service_cidr()),
            "--scheduler".into(),
            format!("--hostpath-provisioner-dir={}", volumes.display()),
        ]
    }
}

/// containerd, its shim and ctr: `$FERRY_NODE_BIN`, else `target/node` under the current directory or
/// a parent (`make node`, i.e. `e2e/node/build-containerd.sh`).
#[derive(Clone, Debug)]
pub struct NodeBinaries {
    /// The directory holding `containerd`, `containerd-shim-runc-v2` and `ctr`.
    pub dir: PathBuf,
}

impl NodeBinaries {
    /// Finds them, or says how to build them.
    pub fn find() -> Result<Self> {
        let candidates: Vec<PathBuf> = match std::env::var_os("FERRY_NODE_BIN") {
            Some(dir) => vec![PathBuf::from(dir)],
            None => {
                let cwd = std::env::current_dir().map_err(Error::io("reading the current directory"))?;
                cwd.ancestors()
                    .chain(Path::new(env!("CARGO_MANIFEST_DIR")).ancestors())
                    .map(|d| d.join("target/node"))
                    .collect()
            }
        };
        let dir = candidates
            .into_iter()
            .find(|d| d.join("containerd").is_file())
            .ok_or_else(|| {
                Error::Sandbox(
                    "containerd is missing from target/node; run `make node` (or set FERRY_NODE_BIN)".into(),
                )
            })?;
        // The shim is found on PATH by containerd.
        Ok(Self { dir })
    }
}

/// Which node to start.
#[derive(Clone, Debug)]
pub struct RealNodeOptions {
    /// The Node's name.
    pub name: String,
    /// The cluster's addresses (the control plane must have been started with
    /// [`Addressing::control_plane_args`] of the same cluster).
    pub addressing: Addressing,
    /// OCI or docker-archive tars imported into the node's containerd; must include [`PAUSE_IMAGE`].
    pub images: Vec<PathBuf>,
}

/// Gives the `kubernetes` Service its EndpointSlice, the API server at `host` (the node's gateway) on
/// the port of `url` (the test's loopback URL), so pods reach their API server as in any cluster
/// (in-cluster clients dial the Service's ClusterIP, which kube-proxy forwards; without endpoints it
/// rejects the connection). The sandbox's API server runs with `--endpoint-reconciler-type=none` (on
/// loopback, for the node agent, it advertises an address Endpoints may not carry): it writes none.
async fn publish_api_endpoint(client: &Client, host: Ipv4Addr, url: &str) -> Result<()> {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let port = url
        .trim_end_matches('/')
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse::<u16>().ok());
    let Some(port) = port else {
        return Err(Error::Sandbox(format!("API server URL {url} has no port")));
    };
    let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {
                "kubernetes.io/service-name": "kubernetes",
                "endpointslice.kubernetes.io/managed-by": "ferry-sandbox",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [host.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }))
    .map_err(|err| Error::Sandbox(format!("the kubernetes EndpointSlice: {err}")))?;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let params = kube::api::PatchParams::apply("ferry-sandbox").force();
    slices
        .patch("kubernetes", &params, &kube::api::Patch::Apply(&slice))
        .await?;
    Ok(())
}

/// A running real node. Dropping it (or [`RealNode::stop`]) stops kube-proxy, the kubelet and
/// containerd, ends every process of its pods, unmounts, removes its cgroups and namespace, and, for
/// the last node on the machine, puts the host's settings back.
#[derive(Debug)]
pub struct RealNode {
    /// The Node's name.
    pub name: String,
    /// Its addresses.
    pub addressing: Addressing,
    /// Its directory (configuration, state, logs: `kubelet.log`, `containerd.log`, `kube-proxy.log`).
    pub dir: PathBuf,
    processes: Vec<Supervised>,
    network: Option<NodeNetwork>,
    load_balancer: Option<load_balancer::LoadBalancer>,
    record: NodeRecord,
}

impl RealNode {
    /// Starts a node of `control_plane` with its state in `dir` and waits until the Node is Ready.
    pub async fn start(control_plane: &ControlPlane, dir: &Path, options: RealNodeOptions) -> Result<Self> {
        let RealNodeOptions {
            name,
            addressing,
            images,
        } = options;
        let binaries = NodeBinaries::find()?;
        std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        let dir = dir
            .canonicalize()
            .map_err(Error::io(format!("resolving {}", dir.display())))?;
        let record = NodeRecord {
            owner: std::process::id(),
            dir: dir.clone(),
            shim_sockets: PathBuf::from(format!(
                "/tmp/ferry-shims-{}-{}",
                std::process::id(),
                addressing.cluster
            )),
            cgroup_root: format!("ferry-node-{}-{}", std::process::id(), addressing.cluster),
            netns_id: None,
        };
        host_settings::register(&record)?;
        let mut node = Self {
            name,
            addressing,
            dir,
            processes: Vec::new(),
            network: None,
            load_balancer: None,
            record,
        };
        node.launch(control_plane, &binaries, &images)?;
        let client = control_plane.client().await?;
        publish_api_endpoint(&client, node.addressing.host_ip(), &control_plane.url).await?;
        node.wait_ready(&client, Duration::from_secs(90)).await?;
        node.load_balancer = Some(load_balancer::LoadBalancer::start(client, node.addressing)?);
        Ok(node)
    }

    /// Holds (`true`) or releases the load-balancer stand-in: while held, new LoadBalancer Services get
    /// no address, as behind a cloud load balancer that is still provisioning (a test of Ferry's wait).
    pub fn hold_load_balancer(&self, hold: bool) {
        if let Some(load_balancer) = &self.load_balancer {
            load_balancer.hold(hold);
        }
    }

    /// Imports an image tar (OCI layout) into the running node's containerd, as a push to a registry
    /// the node pulls from would make it available: pods of it start from then on.
    pub fn import_image(&self, tar: &Path) -> Result<()> {
        let paths = ContainerdPaths::new(&self.dir, self.record.shim_sockets.clone());
        containerd::import(&NodeBinaries::find()?, &paths, tar)
    }

    fn launch(
        &mut self,
        control_plane: &ControlPlane,
        binaries: &NodeBinaries,
        images: &[PathBuf],
    ) -> Result<()> {
        let network = NodeNetwork::create(&self.addressing, &self.dir.join("netns.log"))?;
        self.record.netns_id = Some(network.netns_id.clone());
        host_settings::update(&self.record)?;
        let forward = Path::new("/proc/sys/net/ipv4/ip_forward");
        std::fs::write(forward, "1").map_err(Error::io(
            "turning on IPv4 forwarding (the nodes route through the sandbox)",
        ))?;
        cleanup::create_cgroup_root(&self.record.cgroup_root)?;
        let paths = ContainerdPaths::new(&self.dir, self.record.shim_sockets.clone());
        let containerd = containerd::start(&network, binaries, &paths, &self.dir, &self.addressing)?;
        self.processes.push(containerd);
        for image in images {
            containerd::import(binaries, &paths, image)?;
        }
        let kubeconfig = kubelet::write_kubeconfig(control_plane, &self.addressing, &self.dir)?;
        let cgroup_root = format!("/{}", self.record.cgroup_root);
        let kubelet = kubelet::start_kubelet(
            &network,
            &self.name,
            &self.addressing,
            &paths,
            &kubeconfig,
            &self.dir,
            &cgroup_root,
        )?;
        self.processes.push(kubelet);
        let proxy =
            kubelet::start_kube_proxy(&network, &self.name, &self.addressing, &kubeconfig, &self.dir)?;
        self.processes.push(proxy);
        tracing::info!(node = %self.name, holder = network.holder_pid(), "real node started");
        self.network = Some(network);
        Ok(())
    }

    async fn wait_ready(&mut self, client: &Client, timeout: Duration) -> Result<()> {
        let nodes: Api<Node> = Api::all(client.clone());
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(node) = nodes.get(&self.name).await {
                let ready = node
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                if ready {
                    return Ok(());
                }
            }
            for process in &mut self.processes {
                if let Ok(Some(status)) = process.child().try_wait() {
                    let tails: Vec<String> = ["containerd.log", "kubelet.log", "kube-proxy.log"]
                        .iter()
                        .map(|log| format!("{log}: {}", last_lines(&self.dir.join(log), 4)))
                        .collect();
                    return Err(Error::Sandbox(format!(
                        "a process of node {} exited ({status}) before it was Ready; the logs in {} end with\n{}",
                        self.name,
                        self.dir.display(),
                        tails.join("\n")
                    )));
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Sandbox(format!(
                    "node {} was not Ready within {timeout:?}; see kubelet.log in {}",
                    self.name,
                    self.dir.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A command to run inside the node's network namespace (e.g. `ip route`, `iptables-save`).
    pub fn command(&self, program: &str) -> std::process::Command {
        match &self.network {
            Some(network) => network.command(program),
            None => std::process::Command::new(program),
        }
    }

    /// The image references its containerd holds (`ctr -n k8s.io images ls -q`).
    pub fn images(&self) -> Result<Vec<String>> {
        let binaries = NodeBinaries::find()?;
        let socket = ContainerdPaths::new(&self.dir, self.record.shim_sockets.clone()).socket;
        let output = std::process::Command::new(binaries.dir.join("ctr"))
            .arg("--address")
            .arg(&socket)
            .args(["--namespace", "k8s.io", "images", "ls", "-q"])
            .output()
            .map_err(Error::io("running ctr images ls"))?;
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// Stops it and cleans up (as dropping it does).
    pub fn stop(self) {}

    fn shut_down(&mut self) {
        self.load_balancer = None;
        // kube-proxy, then the kubelet, then containerd.
        while let Some(mut process) = self.processes.pop() {
            process.stop(Duration::from_secs(10));
        }
        cleanup::teardown(&self.record);
        self.network = None;
        if let Err(err) = host_settings::unregister(&self.record) {
            tracing::warn!(node = %self.name, "restoring host settings: {err}");
        }
    }
}

/// The last `n` lines of a log file (empty if it cannot be read).
fn last_lines(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for RealNode {
    fn drop(&mut self) {
        self.shut_down();
    }
}
