//! The objects that run the mover for one migration, built as pure values (DESIGN.md §6): per volume a
//! receive pod (target cluster, mounting the target PVC) behind a Service of the plan's endpoint type,
//! and per volume and pass a send pod (source cluster, mounting the source PVC read-only) that dials it.
//! Certificates live in one server Secret per target namespace and one client Secret per source
//! namespace. Every object carries the migration's UID label, so cleanup finds it.
//!
//! Decisions:
//! - The sender verifies the receiver's certificate against the fixed name [`SERVER_NAME`], not the
//!   address it dials: the address (node IP, load balancer, route host) is only known after the
//!   Service exists, while the per-migration CA already makes the name unique to this migration.
//! - Receivers listen on `$(POD_IP):<port>` with a port derived from the migration UID and the volume's
//!   id (20000–29999): any port works in a cluster, and distinct ones let several receivers share
//!   one machine in the sandbox.
//! - Every object of a volume is named and labelled by the volume's id (from the source PVC's UID,
//!   [`DiscoveredVolume::id`]), never by its position in a list: a PVC appearing or vanishing while a
//!   migration runs cannot pair a sender with another volume's receiver.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use crate::api::MoverIdentity;
use crate::api::plan::{DiscoveredVolume, EndpointType};

pub mod endpoint_choice;
mod endpoints;
pub mod held;
mod security;
pub use endpoints::{connect_address, network_policies, receive_route, receive_service};
pub use security::{Side, capabilities};

/// The name in every receiver certificate, which senders check.
pub const SERVER_NAME: &str = "receiver.mover.migration.ferry.dev";
/// The image run when the plan names none.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/ferry-dev/ferry:", env!("CARGO_PKG_VERSION"));
/// Label telling movers apart: `receive` or `send`.
pub const ROLE: &str = "migration.ferry.dev/mover";
/// Label with the volume's id, which pairs a sender with its receiver.
pub const VOLUME: &str = "migration.ferry.dev/volume";
/// Label with a sender's pass (`stage`, `final`, `verify`).
pub const PASS: &str = "migration.ferry.dev/pass";
/// Where pods mount the volume, the certificates and the proxy URL.
const DATA: &str = "/data";
const CERTS: &str = "/certs";
const TERMINATION_LOG: &str = "/dev/termination-log";

/// Which sync a send pod performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// While the app runs: vanished files (rsync 24) are fine.
    Stage,
    /// After quiesce: strict (a vanished file fails it).
    Final,
    /// After the final sync: compares checksums of both trees and changes nothing; a difference
    /// fails the migration naming the files.
    Verify,
}

impl Pass {
    /// Lower-case name used in object names.
    pub fn as_str(self) -> &'static str {
        match self {
            Pass::Stage => "stage",
            Pass::Final => "final",
            Pass::Verify => "verify",
        }
    }
}

/// What the builders need to know about the migration.
#[derive(Clone, Debug)]
pub struct MoverSpec {
    /// Migration UID.
    pub uid: String,
    /// Labels every object gets (the plan's and the UID).
    pub labels: BTreeMap<String, String>,
    /// Container image.
    pub image: String,
    /// Endpoint type for receivers.
    pub endpoint: EndpointType,
    /// Groups of the source and target pods' security contexts.
    pub src_groups: Vec<i64>,
    /// See `src_groups`.
    pub target_groups: Vec<i64>,
    /// `--bwlimit` in KiB/s.
    pub bw_limit: Option<u32>,
    /// Whether a proxy URL Secret exists for senders.
    pub proxy: bool,
    /// Who the movers run as (MTC's `runAsRoot`, `runAsUser`, `runAsGroup`, resolved).
    pub identity: MoverIdentity,
    /// Compress data on the wire (the plan's `transfer.compress`).
    pub compress: bool,
    /// Plain rsync passes, no manifest (the plan's `transfer.fullPasses`).
    pub full_passes: bool,
}

pub(super) fn short(uid: &str) -> String {
    uid.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect::<String>()
        .to_lowercase()
}

/// Name of the receive pod and its Service for `volume`.
pub fn receiver_name(uid: &str, volume: &DiscoveredVolume) -> String {
    format!("ferry-recv-{}-{}", short(uid), volume.id())
}

/// Name of the send pod for `volume` and `pass`.
pub fn sender_name(uid: &str, volume: &DiscoveredVolume, pass: Pass) -> String {
    format!("ferry-send-{}-{}-{}", short(uid), volume.id(), pass.as_str())
}

/// Name of the server Secret (target namespaces).
pub fn server_secret_name(uid: &str) -> String {
    format!("ferry-mover-server-{}", short(uid))
}

/// Name of the client Secret (source namespaces).
pub fn client_secret_name(uid: &str) -> String {
    format!("ferry-mover-client-{}", short(uid))
}

/// Name of the Secret holding the proxy URL (source namespaces).
pub fn proxy_secret_name(uid: &str) -> String {
    format!("ferry-mover-proxy-{}", short(uid))
}

/// The receiver's port for `volume` (FNV-1a of the migration UID and the volume id, spread over
/// 20000–29999).
pub fn port(uid: &str, volume: &DiscoveredVolume) -> i32 {
    let hash = uid
        .bytes()
        .chain(volume.id().into_bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    20000 + (hash % 10000) as i32
}

pub(super) fn labels(spec: &MoverSpec, role: &str, volume: &DiscoveredVolume) -> BTreeMap<String, String> {
    let mut labels = spec.labels.clone();
    labels.insert(ROLE.into(), role.into());
    labels.insert(VOLUME.into(), volume.id());
    labels
}

pub(super) fn meta(name: &str, namespace: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

/// A TLS Secret in the layout the mover reads (`ca.crt`, `tls.crt`, `tls.key`).
pub fn tls_secret(spec: &MoverSpec, name: &str, namespace: &str, ca: &str, cert: &str, key: &str) -> Secret {
    Secret {
        metadata: meta(name, namespace, spec.labels.clone()),
        type_: Some("kubernetes.io/tls".into()),
        string_data: Some(BTreeMap::from([
            ("ca.crt".into(), ca.into()),
            ("tls.crt".into(), cert.into()),
            ("tls.key".into(), key.into()),
        ])),
        ..Secret::default()
    }
}

/// The Secret holding the proxy URL, which carries a password and so never goes into a pod spec.
pub fn proxy_secret(spec: &MoverSpec, namespace: &str, url: &str) -> Secret {
    Secret {
        metadata: meta(&proxy_secret_name(&spec.uid), namespace, spec.labels.clone()),
        string_data: Some(BTreeMap::from([("url".into(), url.into())])),
        ..Secret::default()
    }
}

fn groups_env(groups: &[i64]) -> serde_json::Value {
    let text: Vec<String> = groups.iter().map(ToString::to_string).collect();
    json!({"name": "FERRY_MOVER_SUPPLEMENTAL_GROUPS", "value": text.join(",")})
}

/// The receive pod of `volume`, mounting the target PVC.
pub fn receive_pod(spec: &MoverSpec, volume: &DiscoveredVolume) -> Pod {
    let port = port(&spec.uid, volume);
    let mut env = vec![
        json!({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}),
        json!({"name": "FERRY_MOVER_LISTEN", "value": format!("$(POD_IP):{port}")}),
        json!({"name": "FERRY_MOVER_ROOT", "value": DATA}),
        json!({"name": "FERRY_MOVER_CERTS_DIR", "value": CERTS}),
        security::tmpdir_env(),
    ];
    if !spec.target_groups.is_empty() {
        env.push(groups_env(&spec.target_groups));
    }
    let (scratch_volume, scratch_mount) = security::scratch();
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": meta(&receiver_name(&spec.uid, volume), &volume.target_namespace, labels(spec, "receive", volume)),
        "spec": {
            "restartPolicy": "Always",
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 10,
            "securityContext": security::pod_context(spec.identity, &spec.target_groups),
            "containers": [{
                "name": "mover",
                "image": spec.image,
                "command": ["ferry", "mover", "receive"],
                "securityContext": security::container_context(spec.identity, Side::Receive),
                "env": env,
                "ports": [{"name": "rsync-tls", "containerPort": port, "protocol": "TCP"}],
                "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 2},
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [
                    {"name": "data", "mountPath": DATA},
                    {"name": "certs", "mountPath": CERTS, "readOnly": true},
                    scratch_mount,
                ],
            }],
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": volume.target_name}},
                {"name": "certs", "secret": {"secretName": server_secret_name(&spec.uid), "defaultMode": 0o400}},
                scratch_volume,
            ],
        }
    });
    serde_json::from_value(pod).expect("a valid pod")
}

/// What a volume's manifest is kept under: the source PVC (its UID when known) and the target PVC, so
/// a manifest is only ever trusted by the pair that wrote it.
pub fn manifest_key(volume: &DiscoveredVolume) -> String {
    let source = volume.uid.clone().unwrap_or_else(|| volume.source_key());
    format!("{source}/{}/{}", volume.target_namespace, volume.target_name)
}

/// The send pod of `volume` for `pass`, dialling `connect`.
pub fn send_pod(spec: &MoverSpec, volume: &DiscoveredVolume, pass: Pass, connect: &str) -> Pod {
    let flag = |on: bool| if on { "true" } else { "false" };
    let mut env = vec![
        json!({"name": "FERRY_MOVER_CONNECT", "value": connect}),
        json!({"name": "FERRY_MOVER_SERVER_NAME", "value": SERVER_NAME}),
        json!({"name": "FERRY_MOVER_CERTS_DIR", "value": CERTS}),
        json!({"name": "FERRY_MOVER_SOURCE", "value": DATA}),
        json!({"name": "FERRY_MOVER_FINAL", "value": flag(pass != Pass::Stage)}),
        // Verify compares without writing; the final sync never checksums (Verify reads both trees).
        json!({"name": "FERRY_MOVER_VERIFY", "value": flag(pass == Pass::Verify)}),
        json!({"name": "FERRY_MOVER_STATS_FILE", "value": TERMINATION_LOG}),
        json!({"name": "FERRY_MOVER_RETRY_DELAY_MS", "value": "1000"}),
        security::tmpdir_env(),
    ];
    // Stages leave a manifest on the target and later passes send only what changed; the key ties
    // it to this source PVC and target PVC (docs/mover.md, "Delta passes").
    if !spec.full_passes {
        env.push(json!({"name": "FERRY_MOVER_MANIFEST_KEY", "value": manifest_key(volume)}));
    }
    if spec.compress {
        env.push(json!({"name": "FERRY_MOVER_COMPRESS", "value": "true"}));
    }
    if let Some(limit) = spec.bw_limit {
        env.push(json!({"name": "FERRY_MOVER_BWLIMIT", "value": limit.to_string()}));
    }
    if spec.proxy {
        env.push(
            json!({"name": "FERRY_MOVER_PROXY", "valueFrom": {"secretKeyRef": {
            "name": proxy_secret_name(&spec.uid), "key": "url"}}}),
        );
    }
    if !spec.src_groups.is_empty() {
        env.push(groups_env(&spec.src_groups));
    }
    let rwo = volume
        .access_modes
        .iter()
        .any(|m| m == "ReadWriteOnce" || m == "ReadWriteOncePod");
    let (scratch_volume, scratch_mount) = security::scratch();
    let mut pod_spec = json!({
        "restartPolicy": "Never",
        "automountServiceAccountToken": false,
        "securityContext": security::pod_context(spec.identity, &spec.src_groups),
        "containers": [{
            "name": "mover",
            "image": spec.image,
            "command": ["ferry", "mover", "send"],
            "securityContext": security::container_context(spec.identity, Side::Send),
            "env": env,
            "terminationMessagePath": TERMINATION_LOG,
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": [
                {"name": "data", "mountPath": DATA, "readOnly": true},
                {"name": "certs", "mountPath": CERTS, "readOnly": true},
                scratch_mount,
            ],
        }],
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": volume.name, "readOnly": true}},
            {"name": "certs", "secret": {"secretName": client_secret_name(&spec.uid), "defaultMode": 0o400}},
            scratch_volume,
        ],
    });
    // A ReadWriteOnce volume can only be mounted on the node that already mounts it.
    if let Some(node) = volume.node.as_ref().filter(|_| rwo) {
        pod_spec["nodeName"] = json!(node);
    }
    let mut labels = labels(spec, "send", volume);
    labels.insert(PASS.into(), pass.as_str().into());
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": meta(&sender_name(&spec.uid, volume, pass), &volume.namespace, labels),
        "spec": pod_spec,
    });
    serde_json::from_value(pod).expect("a valid pod")
}

#[cfg(test)]
mod tests;
