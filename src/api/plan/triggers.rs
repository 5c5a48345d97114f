//! The plan's automatic stages: event triggers in the spec (push webhook or polling) and what the
//! trigger logic remembers between reconciles in the status (schedule checkpoint, pushes seen and
//! handled, skipped fires). DESIGN.md §1 and §5; the rules are in `crate::triggers`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::ResourceRef;

/// Event triggers of a plan.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Triggers {
    /// Run a stage when a push to the plan's repo and branch touches `gitops.sourcePath` or
    /// `gitops.targetPath`.
    #[serde(default)]
    pub on_push: bool,
    /// Secret (key `secret`) the forge signs push webhooks with (GitHub/Gitea HMAC key, GitLab token).
    /// Without it the controller polls the branch every `pollIntervalSeconds` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_ref: Option<ResourceRef>,
    /// Seconds between polls of the branch when no webhook is configured; default 60, at least 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5))]
    pub poll_interval_seconds: Option<u32>,
    /// Quiet seconds after the last push of a burst before its stage starts; default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce_seconds: Option<u32>,
    /// Succeeded stage migrations created by the schedule and push triggers to keep per plan (the
    /// newest); older ones are deleted. Default 5, as a CronJob's `successfulJobsHistoryLimit` is 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_history_limit: Option<u32>,
    /// Failed (or canceled) triggered stage migrations to keep per plan; default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_history_limit: Option<u32>,
}

/// The default of both history limits.
pub const DEFAULT_HISTORY_LIMIT: u32 = 5;

/// What the triggers remember between reconciles (written by the plan reconciler only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerStatus {
    /// The schedule (`spec.schedule` in `spec.timeZone`) the checkpoint belongs to; a changed schedule
    /// starts from a new checkpoint, never from the past.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The last fire handled (created or skipped), or when the schedule was first seen (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_checkpoint: Option<String>,
    /// Fires that started no stage: another migration of the plan was running, the controller was
    /// down over several fires (only the latest is caught up), or the plan was cut over.
    #[serde(default)]
    pub skipped_scheduled_stages: u64,
    /// The newest push seen (webhook or poll) that touched the watched paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_push: Option<PushRecord>,
    /// The time of the last push turned into a stage (or dropped because the plan was cut over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_handled: Option<String>,
    /// When the branch was last polled (RFC 3339); only without a webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_poll: Option<String>,
    /// The last stage migration a trigger created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_triggered_stage: Option<String>,
}

/// A push that touched the plan's watched paths.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushRecord {
    /// The commit the branch pointed to.
    pub revision: String,
    /// When Ferry received (webhook) or noticed (poll) it, RFC 3339 with milliseconds.
    pub time: String,
}
