//! What runs the demo's pods, as the clusters report it: each node's kubelet and container runtime
//! (`Node.status.nodeInfo`), and for each pod of the app's namespace (the app and Ferry's movers) the
//! runtime behind its containers, the scheme of `containerStatuses[].containerID` (`containerd://…`).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{Api, Client, ResourceExt as _};

use crate::Sandbox;
use crate::world::APP_NAMESPACE;

/// One line per node: `node-a (source): kubelet v1.37.2, runtime containerd://2.4.2, InternalIP …`.
pub(super) async fn describe_nodes(sandbox: &Sandbox) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for (cluster, client) in clusters(sandbox) {
        for node in Api::<Node>::all(client.clone()).list(&Default::default()).await? {
            let status = node.status.clone().unwrap_or_default();
            let info = status.node_info.unwrap_or_default();
            let address = status
                .addresses
                .unwrap_or_default()
                .into_iter()
                .find(|a| a.type_ == "InternalIP")
                .map(|a| a.address)
                .unwrap_or_else(|| "-".into());
            lines.push(format!(
                "node {} ({cluster}): kubelet {}, runtime {}, kernel {}, InternalIP {address}",
                node.name_any(),
                info.kubelet_version,
                info.container_runtime_version,
                info.kernel_version,
            ));
        }
    }
    Ok(lines)
}

/// Remembers which pods it has reported, so each is named once, when its containers have started.
#[derive(Default)]
pub(super) struct PodWatch {
    seen: BTreeSet<String>,
}

impl PodWatch {
    /// Lines for the pods of the app's namespace whose containers started since the last call:
    /// `target shop/ferry-receive-… on node-b: containerd (image …, uid …)`.
    pub(super) async fn started(&mut self, sandbox: &Sandbox) -> anyhow::Result<Vec<String>> {
        let mut lines = Vec::new();
        for (cluster, client) in clusters(sandbox) {
            let pods: Api<Pod> = Api::namespaced(client.clone(), APP_NAMESPACE);
            for pod in pods.list(&Default::default()).await? {
                let key = format!("{cluster}/{}", pod.uid().unwrap_or_default());
                if self.seen.contains(&key) {
                    continue;
                }
                let Some(line) = describe_pod(&pod) else {
                    continue;
                };
                self.seen.insert(key);
                lines.push(format!("{cluster} {line}"));
            }
        }
        Ok(lines)
    }
}

/// `shop/NAME on NODE: RUNTIME (image IMAGE)` once a container of `pod` has an ID.
fn describe_pod(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let container = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.container_id.is_some())?;
    let id = container.container_id.as_deref()?;
    let runtime = id.split_once("://").map_or(id, |(scheme, _)| scheme);
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    Some(format!(
        "pod {}/{} on {node}: {runtime} container {} (image {})",
        pod.namespace().unwrap_or_default(),
        pod.name_any(),
        short(id),
        container.image
    ))
}

/// `containerd://0123456789ab…` cut to the scheme and 12 hex digits.
fn short(id: &str) -> String {
    match id.split_once("://") {
        Some((scheme, hex)) => format!("{scheme}://{}", &hex[..hex.len().min(12)]),
        None => id.to_string(),
    }
}

fn clusters(sandbox: &Sandbox) -> [(&'static str, &Client); 2] {
    [
        ("source", &sandbox.source_client),
        ("target", &sandbox.host_client),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_id_is_cut_to_its_runtime_and_twelve_digits() {
        assert_eq!(
            short("containerd://0123456789abcdef"),
            "containerd://0123456789ab"
        );
        assert_eq!(short("sandbox-agent"), "sandbox-agent");
    }
}
