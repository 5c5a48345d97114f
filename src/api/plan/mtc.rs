//! MigPlan fields that only MTC has: hooks, resource and label filters. Accepted so MTC's manifests
//! apply unchanged; `controller::plan` reports which of them Ferry does not (yet) honour.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::ResourceRef;

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
