//! The plan's data transfer settings: how the movers reach each other and how rsync runs (DESIGN.md §6).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// [`Transfer::load_balancer_wait`] when the plan does not say.
pub const DEFAULT_LOAD_BALANCER_WAIT_SECS: u32 = 30;

/// Transfer settings; every field has a safe default.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    /// How the send pod reaches the receive pod; unset: Ferry picks what works (ClusterIP inside one
    /// cluster, Route where served, a LoadBalancer with an address in time, else NodePort).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_type: Option<EndpointType>,
    /// HTTP CONNECT proxy with basic auth, e.g. `http://user:pass@proxy:3128` (MTC's
    /// `stunnel_tcp_proxy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub proxy: Option<String>,
    /// Supplemental groups of the send pod (to read volumes owned by a group).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub src_supplemental_groups: Vec<i64>,
    /// Supplemental groups of the receive pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_supplemental_groups: Vec<i64>,
    /// Image for the mover pods; the controller's own image when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mover_image: Option<String>,
    /// Compare checksums of every file (rsync `--checksum`) on the final sync.
    #[serde(default)]
    pub verify: bool,
    /// Bandwidth limit in KiB/s (rsync `--bwlimit`); unlimited when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub bw_limit: Option<u32>,
    /// Create NetworkPolicies that allow traffic between the movers.
    #[serde(default)]
    pub network_policies: bool,
    /// Compress data on the wire (zstd through rsync `--compress --compress-choice=zstd`): for slow
    /// links; on fast ones it costs CPU on both movers.
    #[serde(default)]
    pub compress: bool,
    /// Walk both trees in every pass, as plain rsync movers do, instead of sending only what changed
    /// since the last stage against the manifest it left on the target (docs/mover.md, "Delta
    /// passes"): for a volume whose files may change without their size, mtime or ctime changing.
    /// No manifest is written or read.
    #[serde(default)]
    pub full_passes: bool,
    /// How long a mover pod may stay unstarted (unschedulable, image not pullable, volume not
    /// attachable) before the step fails with the pod's reason; 300 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub mover_start_timeout_seconds: Option<u32>,
    /// How long a LoadBalancer Service may take to get an ingress address when `endpointType` is
    /// unset, before Ferry turns it into a NodePort Service; 30 when unset (docs/api.md, "Endpoints").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub load_balancer_wait_seconds: Option<u32>,
    /// Default of MigMigration `runAsRoot` for this plan's migrations (a migration setting any of
    /// `runAsRoot`, `runAsUser`, `runAsGroup` replaces all three): `false` on clusters whose policy
    /// refuses root pods. Unset: root with only the capabilities ownership needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_root: Option<bool>,
    /// Default of MigMigration `runAsUser` for this plan's migrations (a non-root uid: restricted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub run_as_user: Option<i64>,
    /// Default of MigMigration `runAsGroup` for this plan's migrations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub run_as_group: Option<i64>,
}

impl Transfer {
    /// The plan's defaults of the mover identity fields.
    pub fn identity_fields(&self) -> crate::api::IdentityFields {
        crate::api::IdentityFields {
            run_as_root: self.run_as_root,
            run_as_user: self.run_as_user,
            run_as_group: self.run_as_group,
        }
    }

    /// How long an unset `endpointType` waits for a load-balancer address before falling back to a
    /// NodePort.
    pub fn load_balancer_wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(
            self.load_balancer_wait_seconds
                .unwrap_or(DEFAULT_LOAD_BALANCER_WAIT_SECS),
        ))
    }

    /// The bound on a mover pod that does not start.
    pub fn mover_start_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.mover_start_timeout_seconds.unwrap_or(300)))
    }
}

/// How the receive pod is exposed to the send pod. Unset, `pipeline::movers::endpoint_choice` picks
/// one; a ClusterIP is only routable inside its own cluster, so it is refused between two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum EndpointType {
    /// An OpenShift Route (passthrough TLS); only where the Route API exists.
    Route,
    /// A NodePort Service on a Ready node's InternalIP (the last resort when unset).
    #[default]
    NodePort,
    /// A ClusterIP Service: both clusters must share a network that routes Service IPs.
    ClusterIP,
    /// A LoadBalancer Service; Ferry waits (bounded) for its address.
    LoadBalancer,
}
