//! `MigStorage`: MTC's replication repository. Ferry transfers directly with rsync and does not use
//! object storage, but accepts the resource so MTC's CLI procedure works, and reports it Ready when its
//! credentials Secret exists with the keys its provider needs.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, ResourceRef};

/// Spec of a `MigStorage` (MTC field names).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "migration.ferry.dev",
    version = "v1alpha1",
    kind = "MigStorage",
    namespaced,
    status = "MigStorageStatus",
    shortname = "fstorage",
    category = "ferry",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.backupStorageProvider"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MigStorageSpec {
    /// Object storage provider: `aws` (any S3), `gcp` or `azure`.
    #[serde(default)]
    pub backup_storage_provider: String,
    /// Object storage settings.
    #[serde(default)]
    pub backup_storage_config: BackupStorageConfig,
    /// Snapshot provider (`aws`, `gcp`, `azure`); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_provider: Option<String>,
    /// Snapshot settings; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_config: Option<VolumeSnapshotConfig>,
}

/// MTC's `backupStorageConfig`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStorageConfig {
    /// S3 bucket name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_bucket_name: Option<String>,
    /// S3 region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    /// S3 endpoint URL (for S3-compatible stores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_s3_url: Option<String>,
    /// Force path-style S3 addressing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_s3_force_path_style: Option<bool>,
    /// GCP bucket name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp_bucket: Option<String>,
    /// Azure storage account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_storage_account: Option<String>,
    /// Azure storage container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_storage_container: Option<String>,
    /// Azure resource group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_resource_group: Option<String>,
    /// Public S3 URL (MTC: for image registry links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_public_url: Option<String>,
    /// KMS key for server-side encryption of the S3 bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_kms_key_id: Option<String>,
    /// S3 request signature version (`1` or `4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_signature_version: Option<String>,
    /// Base64 PEM bundle of the CA signing the S3 endpoint's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "s3CustomCABundle")]
    pub s3_custom_ca_bundle: Option<String>,
    /// Skip TLS verification of the object store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// Secret with the provider's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creds_secret_ref: Option<ResourceRef>,
}

/// MTC's `volumeSnapshotConfig`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotConfig {
    /// Snapshot region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    /// Azure resource group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_resource_group: Option<String>,
    /// How long to wait for a snapshot, e.g. `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_creation_timeout: Option<String>,
    /// Azure API timeout, e.g. `2m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_api_timeout: Option<String>,
    /// Secret with the provider's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creds_secret_ref: Option<ResourceRef>,
}

impl MigStorageSpec {
    /// The fields set here that Ferry accepts and does not use: everything but the provider and the
    /// credentials Secret, since Ferry transfers directly and never reaches the object store.
    pub fn unused_fields(&self) -> Vec<String> {
        let config = serde_json::to_value(&self.backup_storage_config).unwrap_or_default();
        let mut fields: Vec<String> = config
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys())
            .filter(|k| *k != "credsSecretRef")
            .map(|k| format!("spec.backupStorageConfig.{k}"))
            .collect();
        if self.volume_snapshot_provider.is_some() {
            fields.push("spec.volumeSnapshotProvider".to_string());
        }
        if self.volume_snapshot_config.is_some() {
            fields.push("spec.volumeSnapshotConfig".to_string());
        }
        if !fields.is_empty() {
            let last = fields.len() - 1;
            fields[last].push_str(" (Ferry transfers directly, not through object storage)");
        }
        fields
    }
}

/// Status of a `MigStorage`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigStorageStatus {
    /// `Ready`, or `Ready=False` with reason InvalidProvider, SecretNotFound or SecretKeyMissing.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The Secret keys each provider needs (MTC's names).
pub fn required_secret_keys(provider: &str) -> Option<&'static [&'static str]> {
    match provider {
        "aws" => Some(&["aws-access-key-id", "aws-secret-access-key"]),
        "gcp" => Some(&["gcp-credentials"]),
        "azure" => Some(&["azure-credentials"]),
        _ => None,
    }
}
