//! `MigPlan`: what to migrate (namespaces, volumes), from which cluster to which, and how (GitOps
//! quiesce, DNS flip, transfer settings, triggers). MTC's fields first, Ferry's extensions after.

mod gitops;
mod mapping;
mod mtc;
mod transfer;
mod triggers;
mod volumes;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use gitops::{ArgoCd, GitAuthor, GitOps, GitRepo, Quiesce, QuiesceMethod};
pub use mapping::{NAME_MAPPING_PATTERN, NameMapping};
pub use mtc::{GroupKind, PlanHook};
pub use transfer::{EndpointType, Transfer};
pub use triggers::{DEFAULT_HISTORY_LIMIT, PushRecord, TriggerStatus, Triggers};
pub use volumes::{
    Action, DiscoveredVolume, PersistentVolume, PvcEntry, Selection, Supported, VolumeSelector,
};

use super::{Condition, ResourceRef};

/// Spec of a `MigPlan`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "migration.ferry.dev",
    version = "v1alpha1",
    kind = "MigPlan",
    namespaced,
    status = "MigPlanStatus",
    shortname = "fplan",
    category = "ferry",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".spec.srcMigClusterRef.name"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.destMigClusterRef.name"}"#,
    printcolumn = r#"{"name":"Volumes","type":"string","jsonPath":".status.volumes[*].name"}"#,
    printcolumn = r#"{"name":"Last Stage","type":"date","jsonPath":".status.lastStage.time"}"#,
    printcolumn = r#"{"name":"Next Stage","type":"date","jsonPath":".status.nextScheduledStage"}"#,
    printcolumn = r#"{"name":"Cut Over","type":"string","priority":1,"jsonPath":".status.cutover.migration"}"#,
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
    /// MTC's per-volume list: `pvc.name` (`src` or `src:dest`), `selection.action` (`copy`, `skip`,
    /// `move`), `selection.storageClass` / `accessMode` for the target. Unlisted PVCs are copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub persistent_volumes: Vec<PersistentVolume>,
    /// MTC: the plan is closed and runs no more migrations: a new MigMigration of it waits with the
    /// condition `PlanClosed` (one already running finishes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<bool>,
    /// MTC: re-run discovery now. Setting it changes the spec, so the reconciler inspects the source
    /// again at once (it also does every resync); Ferry never writes a spec, so it does not reset it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<bool>,
    /// MTC: MigHooks to run as Jobs at the cutover's phases (`PreBackup`, `PostBackup`, `PreRestore`,
    /// `PostRestore`; one per phase), each with the namespace and ServiceAccount its Job runs as.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<PlanHook>,
    /// MTC: Kubernetes resources to migrate (unused: Argo CD deploys the app's resources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included_resources: Vec<GroupKind>,
    /// MTC: resources to migrate by label (unused: Argo CD deploys the app's resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// MTC: live-migrate KubeVirt VMs (unused: Ferry has no KubeVirt support).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_migrate: Option<bool>,
    /// Ferry: only PVCs carrying these labels move (applied before `persistentVolumes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_selector: Option<VolumeSelector>,
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

impl MigPlanSpec {
    /// The MTC fields set here, to other than their default, that Ferry accepts and does not use
    /// (yet), each with why. A field at its default asks for nothing, so it is not named.
    pub fn unused_fields(&self) -> Vec<String> {
        let mut fields = Vec::new();
        let mut add = |set: bool, field: &str| {
            if set {
                fields.push(field.to_string());
            }
        };
        add(
            !self.included_resources.is_empty(),
            "spec.includedResources (Argo CD deploys the resources)",
        );
        add(
            self.label_selector.is_some(),
            "spec.labelSelector (Argo CD deploys the resources)",
        );
        add(self.live_migrate == Some(true), "spec.liveMigrate (no KubeVirt)");
        let volumes = &self.persistent_volumes;
        let any = |f: fn(&PersistentVolume) -> bool| volumes.iter().any(f);
        add(
            any(|v| v.selection.as_ref().is_some_and(|s| s.copy_method.is_some())),
            "spec.persistentVolumes[].selection.copyMethod (always rsync)",
        );
        add(
            any(|v| v.selection.as_ref().is_some_and(|s| s.verify.is_some())),
            "spec.persistentVolumes[].selection.verify (use MigMigration spec.verify)",
        );
        add(
            any(|v| {
                v.name.is_some()
                    || v.capacity.is_some()
                    || v.storage_class.is_some()
                    || v.supported.is_some()
                    || v.staged.is_some()
                    || v.capacity_confirmed.is_some()
                    || v.proposed_capacity.is_some()
                    || v.pvc.as_ref().is_some_and(|p| {
                        !p.access_modes.is_empty() || p.volume_mode.is_some() || p.has_reference.is_some()
                    })
            }),
            "spec.persistentVolumes[] discovery fields (Ferry discovers into status.volumes)",
        );
        fields
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mtc_fields_asking_for_something_are_named() {
        let mut spec = MigPlanSpec {
            closed: Some(true),
            refresh: Some(true),
            live_migrate: Some(false),
            ..MigPlanSpec::default()
        };
        assert!(spec.unused_fields().is_empty());
        spec.live_migrate = Some(true);
        spec.hooks = vec![PlanHook::default()];
        spec.persistent_volumes = vec![PersistentVolume {
            pvc: Some(PvcEntry {
                name: Some("data".into()),
                ..PvcEntry::default()
            }),
            ..PersistentVolume::default()
        }];
        assert_eq!(spec.unused_fields(), ["spec.liveMigrate (no KubeVirt)"]);
    }
}
