//! The sandbox's nodes: by default one real node per cluster ([`crate::RealNode`]: kubelet, containerd
//! with runc, CNI, kube-proxy; docs/sandbox.md, "Real nodes"), or, for the few tests that need its
//! stand-ins, the node agent (movers as host processes, other pods only marked Running).

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};

use super::{APP_NAMESPACE, SOURCE_NODE, TARGET_NODE, images_dir};
use crate::{
    Addressing, ControlPlane, Error, NodeAgent, NodeAgentOptions, RealNode, RealNodeOptions, Result,
};

/// What runs the pods of the sandbox's clusters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Nodes {
    /// A real node per cluster: every pod (movers, the app, hooks) is a container.
    #[default]
    Real,
    /// The e2e node agent: movers run as host processes on 127.0.0.1, other pods are only marked
    /// Running, hook images are the agent's stand-ins (`Sandbox::install_image`: host scripts). For
    /// tests that rely on the agent's ways; each says why.
    Agent,
}

/// The started nodes, stopped with the sandbox.
pub(super) enum Started {
    Real(Vec<RealNode>),
    Agents(Vec<NodeAgent>),
}

/// Cluster numbers (their address ranges) are unique within this process: sandboxes of one test
/// binary run side by side; another process has a network namespace of its own (e2e/isolated.sh).
static NEXT_CLUSTER: AtomicU8 = AtomicU8::new(1);

/// Starts the two control planes for `nodes`: with real nodes each on its own addresses
/// ([`Addressing::control_plane_args`]), else with a Ready Node object each for the agent.
pub(super) fn start_control_planes(
    dir: &Path,
    nodes: Nodes,
) -> Result<(ControlPlane, ControlPlane, Option<[Addressing; 2]>)> {
    let addressing = match nodes {
        Nodes::Real => {
            let first = NEXT_CLUSTER.fetch_add(2, Ordering::SeqCst);
            if first > 249 {
                return Err(Error::Sandbox("this process started too many sandboxes".into()));
            }
            Some([Addressing::new(first)?, Addressing::new(first + 1)?])
        }
        Nodes::Agent => None,
    };
    let start = |side: &str, node: &str, index: usize| match addressing {
        Some(addressing) => {
            let volumes = dir.join("provisioned").join(side);
            let args = addressing[index].control_plane_args(&volumes);
            ControlPlane::start_with_args(side, &dir.join(side), &args)
        }
        None => ControlPlane::start_with(side, &dir.join(side), &[node], true),
    };
    let (source, target) = std::thread::scope(|scope| {
        let source = scope.spawn(|| start("source", SOURCE_NODE, 0));
        let target = scope.spawn(|| start("target", TARGET_NODE, 1));
        (source.join(), target.join())
    });
    let joined = |r: std::thread::Result<Result<ControlPlane>>| {
        r.unwrap_or_else(|_| Err(Error::Sandbox("a control-plane start thread panicked".into())))
    };
    Ok((joined(source)?, joined(target)?, addressing))
}

/// Starts the nodes: real ones (images built or taken from the cache, imported) or the agents.
pub(super) async fn start_nodes(
    dir: &Path,
    ferry_binary: &Path,
    planes: (&ControlPlane, &ControlPlane),
    clients: (&Client, &Client),
    addressing: Option<[Addressing; 2]>,
) -> Result<Started> {
    let Some([source_addressing, target_addressing]) = addressing else {
        return start_agents(dir, ferry_binary, clients).map(Started::Agents);
    };
    let started = Instant::now();
    let binary = ferry_binary.to_path_buf();
    let images = tokio::task::spawn_blocking(move || crate::images::sandbox_images(&binary))
        .await
        .map_err(|err| Error::Sandbox(format!("building the images: {err}")))??;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "sandbox images ready");
    let options = |name: &str, addressing| RealNodeOptions {
        name: name.to_string(),
        addressing,
        images: images.clone(),
    };
    let (source_dir, target_dir) = (dir.join("node-source"), dir.join("node-target"));
    let (source, target) = tokio::join!(
        RealNode::start(planes.0, &source_dir, options(SOURCE_NODE, source_addressing)),
        RealNode::start(planes.1, &target_dir, options(TARGET_NODE, target_addressing)),
    );
    Ok(Started::Real(vec![source?, target?]))
}

fn start_agents(dir: &Path, ferry_binary: &Path, clients: (&Client, &Client)) -> Result<Vec<NodeAgent>> {
    let agent_options = NodeAgentOptions {
        ferry_binary: Some(ferry_binary.to_path_buf()),
        mark_others_running: true,
        // The nodes hold Ferry's image only: a plan naming another mover image fails to pull.
        images: Some(vec![ferry::pipeline::movers::DEFAULT_IMAGE.to_string()]),
        ..NodeAgentOptions::default()
    };
    // Each node's stand-in images (hooks a test "pushes" with `Sandbox::install_image`).
    let with_images = |source: bool| NodeAgentOptions {
        entrypoints: Some(images_dir(dir, source)),
        ..agent_options.clone()
    };
    Ok(vec![
        NodeAgent::start(
            clients.0.clone(),
            SOURCE_NODE,
            &dir.join("agent-source"),
            with_images(true),
        )?,
        NodeAgent::start(
            clients.1.clone(),
            TARGET_NODE,
            &dir.join("agent-target"),
            with_images(false),
        )?,
    ])
}

impl Started {
    /// The real nodes (none with the agent).
    pub(super) fn real(&self) -> &[RealNode] {
        match self {
            Started::Real(nodes) => nodes,
            Started::Agents(_) => &[],
        }
    }

    /// Stops the nodes: a real node's kube-proxy, kubelet, containerd and pods, with its cleanup.
    pub(super) async fn stop(self) {
        match self {
            Started::Agents(agents) => {
                for agent in agents {
                    agent.stop().await;
                }
            }
            Started::Real(nodes) => {
                let stops: Vec<_> = nodes
                    .into_iter()
                    .map(|node| tokio::task::spawn_blocking(move || node.stop()))
                    .collect();
                for stop in stops {
                    stop.await.ok();
                }
            }
        }
    }
}

/// Waits until every Deployment of the app in `client`'s cluster has all its replicas available (on
/// a real node: their containers run) and, when `data` is given, the database has made its 0700 data
/// directory there.
pub(super) async fn wait_app_running(client: &Client, data: Option<&Path>) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), APP_NAMESPACE);
    let timeout = Duration::from_secs(120);
    let deadline = Instant::now() + timeout;
    loop {
        let list = deployments.list(&Default::default()).await?;
        let pending: Vec<String> = list
            .items
            .iter()
            .filter(|d| {
                let want = d.spec.replicas.unwrap_or(1);
                let have = d.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
                have < want
            })
            .map(|d| d.metadata.name.clone().unwrap_or_default())
            .collect();
        let data_ready = data.is_none_or(|file| file.is_file());
        if pending.is_empty() && data_ready && !list.items.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Sandbox(format!(
                "the example app did not run within {timeout:?}: Deployments not available: {pending:?}; \
                 data directory made: {data_ready}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
