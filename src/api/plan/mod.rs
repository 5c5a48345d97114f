//! `MigPlan`: what to migrate (namespaces, volumes), from which cluster to which, and how (GitOps
//! quiesce, DNS flip, transfer settings, triggers). MTC's fields first, Ferry's extensions after.

mod gitops;
mod mapping;
mod transfer;
mod triggers;
mod volumes;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use gitops::{ArgoCd, GitAuthor, GitOps, GitRepo, Quiesce, QuiesceMethod};
pub use mapping::{NAME_MAPPING_PATTERN, NameMapping};
pub use transfer::{EndpointType, Transfer};
pub use triggers::{DEFAULT_HISTORY_LIMIT, PushRecord, TriggerStatus, Triggers};
pub use volumes::{DiscoveredVolume, PersistentVolumes, VolumeOverride};

use super::{Condition, ResourceRef};

/// Spec of a `MigPlan`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "migration.ferry.dev",
    version = "v1alpha1",
    kind = "MigPlan",
    namespaced,
    status = "MigPlanStatus",
    shortname = "migplan",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".spec.srcMigClusterRef.name"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.destMigClusterRef.name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MigPlanSpec {
    /// The cluster the application and its data move from.
    pub src_mig_cluster_ref: ResourceRef,
    /// The cluster the application and its data move to.
    pub dest_mig_cluster_ref: ResourceRef,
    /// Replication repository (MTC); optional because Ferry transfers directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mig_storage_ref: Option<ResourceRef>,
    /// Source namespaces, each `src` or `src:dest` when the target namespace has another name.
    #[schemars(length(min = 1), inner(regex(pattern = NAME_MAPPING_PATTERN)))]
    pub namespaces: Vec<String>,
    /// MTC: move volumes through object storage. Only `false` (direct rsync) is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indirect_volume_migration: Option<bool>,
    /// MTC: move images through object storage. Ferry moves no images; only `false` is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indirect_image_migration: Option<bool>,
    /// Which PersistentVolumeClaims to move, renames and target overrides. Default: all in the namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volumes: Option<PersistentVolumes>,
    /// Where the app's manifests live in Git and how to quiesce it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitops: Option<GitOps>,
    /// Cron schedule (5 fields) for automatic stage migrations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// IANA time zone for `schedule`, e.g. `Europe/Berlin`; UTC when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Event triggers for automatic stage migrations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Triggers>,
    /// DNS records to flip to the target at cutover, and the provider that owns them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<crate::dns::DnsSpec>,
    /// Data transfer settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
}

/// Status of a `MigPlan`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigPlanStatus {
    /// `Ready`, or one Critical condition per problem found (all of them at once) and `Ready=False`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The PersistentVolumeClaims discovered in the source namespaces that the plan will move.
    #[serde(default)]
    pub volumes: Vec<DiscoveredVolume>,
    /// The most recent successful stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_stage: Option<LastStage>,
    /// When the schedule fires next (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_scheduled_stage: Option<String>,
    /// The Git commit of `gitops.repo` last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_revision: Option<String>,
    /// What the schedule and push triggers remember between reconciles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<TriggerStatus>,
    /// Set when a cutover started the app on the target (before it did), cleared when a rollback
    /// succeeds: while set, stages and other cutovers are refused, since they would overwrite the
    /// live target with the stopped source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover: Option<CutoverRecord>,
}

/// The cutover that made the target the live copy.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CutoverRecord {
    /// The MigMigration, `namespace/name`.
    pub migration: String,
    /// Its UID.
    pub uid: String,
    /// When it started the target (RFC 3339).
    pub time: String,
}

/// Summary of the last successful stage.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastStage {
    /// When it completed (RFC 3339).
    pub time: String,
    /// How long it took, e.g. `1m30s`.
    pub duration: String,
    /// Bytes transferred.
    pub bytes: u64,
}
