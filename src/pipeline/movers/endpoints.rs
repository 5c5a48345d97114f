//! Where senders reach receivers: the Service (and Route) in front of each receive pod, the address a
//! sender dials for each endpoint type, and the NetworkPolicies that open only the movers' traffic.

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::json;

use super::{MoverSpec, ROLE, VOLUME, labels, meta, port, receiver_name, short};
use crate::api::plan::{DiscoveredVolume, EndpointType};

/// The Service in front of `volume`'s receiver, of the plan's endpoint type (Route: a ClusterIP
/// Service the Route points at).
pub fn receive_service(spec: &MoverSpec, volume: &DiscoveredVolume) -> Service {
    let port = port(&spec.uid, volume);
    let type_ = match spec.endpoint {
        EndpointType::NodePort => "NodePort",
        EndpointType::LoadBalancer => "LoadBalancer",
        EndpointType::ClusterIP | EndpointType::Route => "ClusterIP",
    };
    let mut selector = spec.labels.clone();
    selector.insert(ROLE.into(), "receive".into());
    selector.insert(VOLUME.into(), volume.id());
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": meta(&receiver_name(&spec.uid, volume), &volume.target_namespace, labels(spec, "receive", volume)),
        "spec": {
            "type": type_,
            "selector": selector,
            "ports": [{"name": "rsync-tls", "port": port, "targetPort": "rsync-tls", "protocol": "TCP"}],
        }
    });
    serde_json::from_value(service).expect("a valid service")
}

/// The OpenShift Route (TLS passthrough) to `volume`'s receiver.
pub fn receive_route(spec: &MoverSpec, volume: &DiscoveredVolume) -> serde_json::Value {
    let name = receiver_name(&spec.uid, volume);
    json!({
        "apiVersion": "route.openshift.io/v1", "kind": "Route",
        "metadata": meta(&name, &volume.target_namespace, labels(spec, "receive", volume)),
        "spec": {
            "to": {"kind": "Service", "name": name},
            "port": {"targetPort": "rsync-tls"},
            "tls": {"termination": "passthrough"},
        }
    })
}

/// Where a sender dials receiver Service `service`: `host:port`, once the endpoint has an address.
pub fn connect_address(
    endpoint: EndpointType,
    service: &Service,
    nodes: &[Node],
    route_host: Option<&str>,
) -> Option<String> {
    let spec = service.spec.as_ref()?;
    let port = spec.ports.as_ref()?.first()?;
    match endpoint {
        EndpointType::ClusterIP => {
            let ip = spec
                .cluster_ip
                .as_deref()
                .filter(|ip| !ip.is_empty() && *ip != "None")?;
            Some(host_port(ip, port.port))
        }
        EndpointType::NodePort => {
            let address = nodes.iter().filter(|n| node_ready(n)).find_map(node_address)?;
            Some(host_port(&address, port.node_port?))
        }
        EndpointType::LoadBalancer => {
            let ingress = service
                .status
                .as_ref()?
                .load_balancer
                .as_ref()?
                .ingress
                .as_ref()?
                .first()?;
            let host = ingress.ip.clone().or_else(|| ingress.hostname.clone())?;
            Some(host_port(&host, port.port))
        }
        EndpointType::Route => route_host.map(|host| host_port(host, 443)),
    }
}

fn host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A node's InternalIP, else its ExternalIP.
fn node_address(node: &Node) -> Option<String> {
    let addresses = node.status.as_ref()?.addresses.as_ref()?;
    ["InternalIP", "ExternalIP"].iter().find_map(|kind| {
        addresses
            .iter()
            .find(|a| a.type_ == *kind)
            .map(|a| a.address.clone())
    })
}

/// NetworkPolicies (plan `networkPolicies`): ingress to `volume`'s receiver on its port (target), and
/// egress from its senders to the port they dial (`dial_port`: the node port, load balancer or route
/// port) plus DNS (source).
pub fn network_policies(
    spec: &MoverSpec,
    volume: &DiscoveredVolume,
    dial_port: u16,
) -> (NetworkPolicy, NetworkPolicy) {
    let port = port(&spec.uid, volume);
    let select = |role: &str| {
        json!({"matchLabels": {ROLE: role, VOLUME: volume.id(),
                crate::pipeline::labels::MIGRATION_UID: spec.uid}})
    };
    let ingress = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": meta(&receiver_name(&spec.uid, volume), &volume.target_namespace, spec.labels.clone()),
        "spec": {"podSelector": select("receive"), "policyTypes": ["Ingress"],
                 "ingress": [{"ports": [{"protocol": "TCP", "port": port}]}]}
    });
    let egress = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": meta(&format!("ferry-send-{}-{}", short(&spec.uid), volume.id()), &volume.namespace, spec.labels.clone()),
        "spec": {"podSelector": select("send"), "policyTypes": ["Egress"],
                 "egress": [{"ports": [{"protocol": "TCP", "port": dial_port},
                                        {"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}
    });
    (
        serde_json::from_value(ingress).expect("a valid policy"),
        serde_json::from_value(egress).expect("a valid policy"),
    )
}
