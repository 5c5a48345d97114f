//! MigPlan fields that only MTC has: hooks (run by the pipeline, docs/pipeline.md), resource and label
//! filters (accepted so MTC's manifests apply unchanged; `controller::plan` reports them unused).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::{HookPhase, ResourceRef};

/// MTC's `MigPlanHook`: a MigHook to run at one phase of a migration.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanHook {
    /// The MigHook to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<ResourceRef>,
    /// Namespace the hook's job runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_namespace: Option<String>,
    /// ServiceAccount the hook's job runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// When it runs: `PreBackup`, `PostBackup`, `PreRestore` or `PostRestore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

impl PlanHook {
    /// The hook's phase, when it names one.
    pub fn phase(&self) -> Option<HookPhase> {
        self.phase.as_deref().and_then(HookPhase::parse)
    }
}

/// MTC's `metav1.GroupKind` in `includedResources`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupKind {
    /// API group, empty for the core group.
    #[serde(default)]
    pub group: String,
    /// Kind, e.g. `ConfigMap`.
    #[serde(default)]
    pub kind: String,
}
