//! The part of kube-proxy the sandbox needs. There is no kube-proxy and every sandbox node is
//! 127.0.0.1, so for each NodePort (or LoadBalancer, which also has node ports) Service whose selector
//! matches a Running pod on this agent's node, the agent listens on `127.0.0.1:<nodePort>` and forwards
//! each connection to `podIP:targetPort` — as kube-proxy does with `externalTrafficPolicy: Local`.
//! (The node's address, InternalIP 127.0.0.1, is reported by `kubelet_api`.)
//!
//! The Services and pods are re-listed every 200 ms: simple, and plenty for tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::Shared;

/// One forwarded node port: where it goes, and the accept loop.
struct Forward {
    target: String,
    task: JoinHandle<()>,
}

/// Runs until the agent stops.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut forwards: HashMap<u16, Forward> = HashMap::new();
    loop {
        match wanted(&shared).await {
            Ok(wanted) => reconcile(&mut forwards, wanted).await,
            Err(err) => tracing::debug!(node = %shared.node, "kube-proxy emulation: {err}"),
        }
        tokio::select! {
            () = shared.stopping.cancelled() => break,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    for forward in forwards.into_values() {
        forward.task.abort();
    }
}

/// `nodePort → podIP:targetPort` for every node port that should be forwarded now.
async fn wanted(shared: &Shared) -> kube::Result<HashMap<u16, String>> {
    let services: Api<Service> = Api::all(shared.client.clone());
    let pods: Api<Pod> = Api::all(shared.client.clone());
    let on_node = ListParams::default().fields(&format!("spec.nodeName={}", shared.node));
    let pods = pods.list(&on_node).await?.items;
    let mut wanted = HashMap::new();
    for service in services.list(&ListParams::default()).await?.items {
        let Some(spec) = &service.spec else { continue };
        if !matches!(spec.type_.as_deref(), Some("NodePort") | Some("LoadBalancer")) {
            continue;
        }
        let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let namespace = service.namespace().unwrap_or_default();
        let backend = pods.iter().find(|pod| {
            pod.namespace().as_deref() == Some(namespace.as_str())
                && selector.iter().all(|(k, v)| pod.labels().get(k) == Some(v))
                && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && pod.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()
        });
        let Some(pod) = backend else { continue };
        let pod_ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default();
        for port in spec.ports.iter().flatten() {
            let (Some(node_port), Some(target)) = (port.node_port, target_port(port, pod)) else {
                continue;
            };
            if let Ok(node_port) = u16::try_from(node_port) {
                wanted.insert(node_port, format!("{pod_ip}:{target}"));
            }
        }
    }
    Ok(wanted)
}

/// The pod port a Service port sends to: a number, a named container port, or the port itself.
fn target_port(port: &k8s_openapi::api::core::v1::ServicePort, pod: &Pod) -> Option<i32> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

/// Starts, retargets and stops forwarders to match `wanted`.
async fn reconcile(forwards: &mut HashMap<u16, Forward>, wanted: HashMap<u16, String>) {
    forwards.retain(|port, forward| {
        let keep = wanted.get(port) == Some(&forward.target);
        if !keep {
            forward.task.abort();
        }
        keep
    });
    for (port, target) in wanted {
        if forwards.contains_key(&port) {
            continue;
        }
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => {
                let task = tokio::spawn(accept_loop(listener, target.clone()));
                forwards.insert(port, Forward { target, task });
            }
            Err(err) => tracing::warn!(port, "cannot listen for the node port: {err}"),
        }
    }
}

async fn accept_loop(listener: TcpListener, target: String) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        let target = target.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(&target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}
