//! `MigMigration`: one run of a plan — a stage, a cutover (MTC's "Final" itinerary) or a rollback —
//! with MTC-shaped status: conditions, itinerary, phase and a pipeline of steps.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::plan::DiscoveredVolume;
use super::{Condition, ResourceRef, Step};

/// Spec of a `MigMigration` (MTC field names).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "migration.ferry.dev",
    version = "v1alpha1",
    kind = "MigMigration",
    namespaced,
    status = "MigMigrationStatus",
    shortname = "fmig",
    category = "ferry",
    printcolumn = r#"{"name":"Plan","type":"string","jsonPath":".spec.migPlanRef.name"}"#,
    printcolumn = r#"{"name":"Itinerary","type":"string","jsonPath":".status.itinerary"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Step","type":"string","jsonPath":".status.conditions[?(@.type==\"Running\")].message"}"#,
    printcolumn = r#"{"name":"Downtime","type":"number","jsonPath":".status.downtime.seconds"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MigMigrationSpec {
    /// The plan to run.
    pub mig_plan_ref: ResourceRef,
    /// A stage: copy the data while the app keeps running.
    #[serde(default)]
    pub stage: bool,
    /// Stop the source app before the final sync (cutover).
    #[serde(default)]
    pub quiesce_pods: bool,
    /// Undo a completed or failed cutover.
    #[serde(default)]
    pub rollback: bool,
    /// State only: sync the volumes, leave the app's manifests to Argo CD.
    #[serde(default)]
    pub migrate_state: bool,
    /// Verify the copied data with checksums.
    #[serde(default)]
    pub verify: bool,
    /// Cancel a running migration.
    #[serde(default)]
    pub canceled: bool,
    /// MTC: keep the migration's bookkeeping annotations on the migrated objects: a successful cutover
    /// otherwise removes `migration.ferry.dev/source-pvc` from the target PVCs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_annotations: Option<bool>,
    /// MTC: run the mover pods as root (uid 0, every capability dropped but the few preserving
    /// ownership needs; the default when neither this migration nor its plan says otherwise). `false`:
    /// the image's non-root user. Refused together with a non-zero `runAsUser`. Any of the three fields
    /// set here replaces the plan's `transfer.runAsRoot/runAsUser/runAsGroup` (docs/api.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_root: Option<bool>,
    /// MTC: user id of the mover pods (`securityContext.runAsUser`); non-zero: restricted, a file it
    /// cannot read fails the transfer naming it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub run_as_user: Option<i64>,
    /// MTC: group id of the mover pods (`securityContext.runAsGroup`).
    #[schemars(range(min = 0))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
}

impl MigMigrationSpec {
    /// A spec running plan `namespace/name`, every flag off (set `stage`, `quiesce_pods`, … after).
    pub fn of_plan(namespace: &str, name: &str) -> Self {
        MigMigrationSpec {
            mig_plan_ref: ResourceRef {
                name: name.to_string(),
                namespace: Some(namespace.to_string()),
            },
            ..MigMigrationSpec::default()
        }
    }

    /// The mover identity fields (`runAsRoot`, `runAsUser`, `runAsGroup`) as written here.
    pub fn identity_fields(&self) -> crate::api::IdentityFields {
        crate::api::IdentityFields {
            run_as_root: self.run_as_root,
            run_as_user: self.run_as_user,
            run_as_group: self.run_as_group,
        }
    }

    /// The MTC fields set here, to other than their default, that Ferry accepts and does not honour yet.
    pub fn unused_fields(&self) -> Vec<String> {
        // Every MTC field of a MigMigration is honoured.
        Vec::new()
    }
}

/// The sequence of steps a migration runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Itinerary {
    /// Copy the data while the app runs.
    Stage,
    /// Cutover: quiesce, final sync, start on the target, flip DNS.
    Final,
    /// Undo a cutover.
    Rollback,
}

impl Itinerary {
    /// The itinerary a spec asks for. `rollback` wins over `stage`; state-only runs the stage steps.
    pub fn for_spec(spec: &MigMigrationSpec) -> Self {
        if spec.rollback {
            Itinerary::Rollback
        } else if spec.stage || spec.migrate_state {
            Itinerary::Stage
        } else {
            Itinerary::Final
        }
    }

    /// The steps of the itinerary, in order (DESIGN.md §3). A cutover creates the target namespaces
    /// and PVCs itself, so MTC's procedure (a final migration with no stage before it) works.
    pub fn steps(self) -> &'static [Step] {
        use Step::*;
        match self {
            Itinerary::Stage => &[
                Prepare,
                CreateDestinationNamespaces,
                CreateDestinationPVCs,
                CreateMoverSecrets,
                CreateMoverEndpoints,
                CreateMoverPods,
                WaitForTransfer,
                CleanupMovers,
            ],
            Itinerary::Final => &[
                Prepare,
                CreateDestinationNamespaces,
                CreateDestinationPVCs,
                StageSync,
                LowerDNSTTL,
                PreBackupHooks,
                QuiesceSource,
                EnsureSourceQuiesced,
                FinalSync,
                Verify,
                PostBackupHooks,
                PreRestoreHooks,
                UnquiesceTarget,
                EnsureTargetReady,
                PostRestoreHooks,
                FlipDNS,
                VerifyDNS,
                Cleanup,
            ],
            Itinerary::Rollback => &[Prepare, RestoreDNS, QuiesceTarget, UnquiesceSource, RevertCommits],
        }
    }
}

/// Status of a `MigMigration`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigMigrationStatus {
    /// `Ready`, `Running` (`Step: N/M`), `Succeeded`, `Failed`, and Critical conditions for problems.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The itinerary being run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itinerary: Option<Itinerary>,
    /// The current phase (a step name, `Waiting`, `Completed` or `Failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// One entry per step of the itinerary.
    #[serde(default)]
    pub pipeline: Vec<PipelineStep>,
    /// When the migration started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<String>,
    /// Errors that failed the migration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// The cutover's downtime window: QuiesceSource start to VerifyDNS end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime: Option<Downtime>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The volumes this migration moves (source PVC and UID, target namespace and name), fixed when
    /// it starts: a PVC created or deleted in the plan's namespaces later does not change them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<DiscoveredVolume>>,
}

/// One step of the pipeline, as MTC shows it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStep {
    /// Step name, e.g. `FinalSync`.
    pub name: String,
    /// When the step started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// When the step completed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<String>,
    /// A short message: `Not started`, `Completed`, or what it is doing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Progress lines (e.g. bytes and files transferred).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub progress: Vec<String>,
    /// Whether the step failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    /// Whether the step was skipped (not configured for this plan).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// Transient failures retried so far (bounded per step).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl PipelineStep {
    /// A step that has not started yet.
    pub fn not_started(step: Step) -> Self {
        Self {
            name: step.to_string(),
            message: Some("Not started".to_string()),
            ..Self::default()
        }
    }
}

/// A cutover's downtime window.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Downtime {
    /// QuiesceSource started (RFC 3339).
    pub start: String,
    /// VerifyDNS completed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Length of the window in seconds, once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_selects_the_itinerary() {
        let spec = |stage, rollback, migrate_state| MigMigrationSpec {
            stage,
            rollback,
            migrate_state,
            ..MigMigrationSpec::default()
        };
        assert_eq!(Itinerary::for_spec(&spec(true, false, false)), Itinerary::Stage);
        assert_eq!(Itinerary::for_spec(&spec(false, false, true)), Itinerary::Stage);
        assert_eq!(Itinerary::for_spec(&spec(false, false, false)), Itinerary::Final);
        assert_eq!(Itinerary::for_spec(&spec(true, true, false)), Itinerary::Rollback);
    }

    #[test]
    fn the_cutover_quiesces_before_the_final_sync_and_flips_dns_after_it() {
        let steps = Itinerary::Final.steps();
        let at = |step| steps.iter().position(|s| *s == step).unwrap();
        assert!(at(Step::CreateDestinationPVCs) < at(Step::StageSync));
        assert!(at(Step::QuiesceSource) < at(Step::FinalSync));
        assert!(at(Step::FinalSync) < at(Step::FlipDNS));
        assert!(at(Step::FlipDNS) < at(Step::VerifyDNS));
    }

    #[test]
    fn hooks_run_at_their_phases_of_the_cutover_only() {
        let steps = Itinerary::Final.steps();
        let at = |step| steps.iter().position(|s| *s == step).unwrap();
        assert_eq!(at(Step::PreBackupHooks) + 1, at(Step::QuiesceSource));
        assert_eq!(at(Step::Verify) + 1, at(Step::PostBackupHooks));
        assert_eq!(at(Step::PreRestoreHooks) + 1, at(Step::UnquiesceTarget));
        assert_eq!(at(Step::EnsureTargetReady) + 1, at(Step::PostRestoreHooks));
        assert!(at(Step::PostRestoreHooks) < at(Step::FlipDNS));
        for phase in crate::api::HookPhase::ALL {
            for other in [Itinerary::Stage, Itinerary::Rollback] {
                assert!(!other.steps().contains(&phase.step()), "{other:?} runs {phase:?}");
            }
        }
    }
}
