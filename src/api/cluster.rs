//! `MigCluster`: a cluster Ferry migrates from or to. The host cluster is the one the controller runs
//! in; a remote cluster is reached at `url` with the ServiceAccount token in the referenced Secret.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, ResourceRef};

/// The Secret key holding a remote cluster's ServiceAccount token (MTC's name).
pub const SA_TOKEN_KEY: &str = "saToken";

/// Spec of a `MigCluster` (MTC field names).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "migration.ferry.dev",
    version = "v1alpha1",
    kind = "MigCluster",
    namespaced,
    status = "MigClusterStatus",
    shortname = "fcluster",
    category = "ferry",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MigClusterSpec {
    /// True for the cluster the controller runs in; it is reached with the controller's own credentials.
    #[serde(default)]
    pub is_host_cluster: bool,
    /// API server URL of a remote cluster, e.g. `https://api.example.com:6443`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub url: Option<String>,
    /// Secret holding the remote cluster's ServiceAccount token under the key `saToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_secret_ref: Option<ResourceRef>,
    /// Skip TLS verification of the remote API server (not recommended).
    #[serde(default)]
    pub insecure: bool,
    /// Base64-encoded PEM CA bundle that signs the remote API server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// Accepted for MTC compatibility; Ferry moves no images, so it is unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_registry_path: Option<String>,
    /// MTC: Azure resource group of the cluster (unused: Ferry needs no cloud credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_resource_group: Option<String>,
    /// MTC: restart the Restic pods (unused: Ferry has no Restic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_restic: Option<bool>,
    /// MTC: re-check the cluster now. Setting it changes the spec, so the reconciler looks again at
    /// once (it also does every resync); Ferry never writes a spec, so it does not reset it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<bool>,
}

impl MigClusterSpec {
    /// The MTC fields set here, to other than their default, that Ferry accepts and does not use, each
    /// with why.
    pub fn unused_fields(&self) -> Vec<String> {
        let mut fields = Vec::new();
        if self.exposed_registry_path.is_some() {
            fields.push("spec.exposedRegistryPath (Ferry moves no images)".to_string());
        }
        if self.azure_resource_group.is_some() {
            fields.push("spec.azureResourceGroup (no cloud credentials needed)".to_string());
        }
        if self.restart_restic == Some(true) {
            fields.push("spec.restartRestic (no Restic)".to_string());
        }
        fields
    }
}

/// Status of a `MigCluster`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigClusterStatus {
    /// `Ready`, or `Ready=False` with reason SecretNotFound, InvalidToken, Unreachable, TLSError,
    /// Forbidden or InvalidSpec.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The remote API server's version (`gitVersion`), when reachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
}
