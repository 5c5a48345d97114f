//! A plan's hook as a Kubernetes Job, without I/O: which hook runs at a phase, the Job that runs it (one
//! per migration and phase, under a name derived from both, so a controller that restarts finds the
//! Job it created and follows it instead of running the hook again), and what the Job's status means.
//! `steps::hooks` does the reads and writes.
//!
//! ```text
//!  plan.spec.hooks ─► selected(phase) ─► job(..) ─► create (once) ─► decide(job, pods) ─► StepOutcome
//! ```

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::plan::PlanHook;
use crate::api::{HookPhase, MigHookSpec, MigPlanSpec};
use crate::pipeline::engine::seconds_between;

/// Label on a hook Job and its pod: the phase it runs at.
pub const HOOK_PHASE: &str = "migration.ferry.dev/hook-phase";
/// The hook's container (the one whose log a failure quotes).
pub const CONTAINER: &str = "hook";
/// How many of a failed hook's last log lines its message quotes.
pub const LOG_LINES: usize = 5;
/// The most characters of one quoted log line.
const LOG_LINE_CHARS: usize = 200;
/// Pod waiting reasons that mean the hook's container will never start by itself.
const CANNOT_START: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// The plan's hook at `phase`, if any (a Ready plan has at most one per phase).
pub fn selected(plan: &MigPlanSpec, phase: HookPhase) -> Option<&PlanHook> {
    plan.hooks.iter().find(|h| h.phase() == Some(phase))
}

/// The Job's name for migration `uid` at `phase`: stable across restarts, unique per migration.
pub fn job_name(phase: HookPhase, uid: &str) -> String {
    format!("ferry-{}-{uid}", phase.as_str().to_ascii_lowercase())
}

/// What the Job of a hook is built from.
pub struct JobInput<'a> {
    /// The phase it runs at.
    pub phase: HookPhase,
    /// The plan's entry (execution namespace, ServiceAccount).
    pub plan_hook: &'a PlanHook,
    /// The MigHook's spec (image, deadline).
    pub hook: &'a MigHookSpec,
    /// UID of the migration.
    pub uid: &'a str,
    /// Name of the plan (`MIGRATION_PLAN_NAME`).
    pub plan_name: &'a str,
    /// The plan's `spec.namespaces` (`MIGRATION_NAMESPACES`, comma-separated, as MTC).
    pub namespaces: &'a [String],
    /// The migration's temporary labels (Cleanup removes the Job by them).
    pub labels: BTreeMap<String, String>,
}

/// The Job running the hook: the image with its own entrypoint, one pod, no retry (`backoffLimit: 0`),
/// bounded by the hook's `activeDeadlineSeconds`, labelled like every temporary object.
pub fn job(input: &JobInput<'_>) -> Job {
    let mut labels = input.labels.clone();
    labels.insert(HOOK_PHASE.to_string(), input.phase.as_str().to_string());
    let env = |name: &str, value: String| EnvVar {
        name: name.to_string(),
        value: Some(value),
        ..EnvVar::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(input.phase, input.uid)),
            namespace: input.plan_hook.execution_namespace.clone(),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(input.hook.deadline_seconds()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: input.plan_hook.service_account.clone(),
                    containers: vec![Container {
                        name: CONTAINER.into(),
                        image: Some(input.hook.image.clone()),
                        env: Some(vec![
                            env("MIGRATION_NAMESPACES", input.namespaces.join(",")),
                            env("MIGRATION_PLAN_NAME", input.plan_name.to_string()),
                            env("MIGRATION_HOOK_PHASE", input.phase.as_str().to_string()),
                        ]),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// What to do about a hook, from its Job (if one exists) and the Job's pods.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// No Job yet: create it.
    Create,
    /// The Job runs; `seconds` since it started.
    Wait { seconds: Option<f64> },
    /// It succeeded, in `seconds`.
    Succeeded { seconds: Option<f64> },
    /// It failed (`why`, from the Job's condition), after `seconds`; quote the pod's log.
    Failed { why: String, seconds: Option<f64> },
    /// Its pod cannot start (`why`: the waiting reason and message); the Job will not finish by itself.
    CannotStart { why: String },
}

/// The decision for `existing` (the Job of this migration and phase, looked up by name) and its pods.
/// An existing Job is always followed, never replaced: a restart must not run a hook twice.
pub fn decide(existing: Option<&Job>, pods: &[Pod], now: &str) -> Decision {
    let Some(job) = existing else {
        return Decision::Create;
    };
    let status = job.status.clone().unwrap_or_default();
    let started = status.start_time.as_ref().map(|t| t.0.to_string());
    let since = |end: Option<String>| {
        let end = end.unwrap_or_else(|| now.to_string());
        started.as_deref().and_then(|start| seconds_between(start, &end))
    };
    let conditions = status.conditions.unwrap_or_default();
    let holding = |type_: &str| conditions.iter().find(|c| c.type_ == type_ && c.status == "True");
    if holding("Complete").is_some() || status.succeeded.unwrap_or(0) > 0 {
        let end = status.completion_time.as_ref().map(|t| t.0.to_string());
        return Decision::Succeeded { seconds: since(end) };
    }
    if let Some(failed) = holding("Failed").or_else(|| holding("FailureTarget")) {
        let end = failed.last_transition_time.as_ref().map(|t| t.0.to_string());
        let why = match failed.reason.as_deref() {
            Some("DeadlineExceeded") => format!(
                "it ran past its activeDeadlineSeconds ({}s)",
                job.spec
                    .as_ref()
                    .and_then(|s| s.active_deadline_seconds)
                    .unwrap_or_default()
            ),
            Some("BackoffLimitExceeded") => "its pod failed".to_string(),
            Some(reason) => format!("{reason}: {}", failed.message.as_deref().unwrap_or_default()),
            None => "the Job failed".to_string(),
        };
        return Decision::Failed {
            why,
            seconds: since(end),
        };
    }
    let waiting = pods
        .iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .find(|w| w.reason.as_deref().is_some_and(|r| CANNOT_START.contains(&r)));
    if let Some(waiting) = waiting {
        let reason = waiting.reason.as_deref().unwrap_or_default();
        let why = match waiting.message.as_deref().map(one_line) {
            Some(message) if !message.is_empty() => format!("{reason}: {message}"),
            _ => reason.to_string(),
        };
        return Decision::CannotStart { why };
    }
    Decision::Wait { seconds: since(None) }
}

/// The last [`LOG_LINES`] non-empty lines of `log`, each cut to a readable length, on one line.
pub fn log_tail(log: &str) -> String {
    let lines: Vec<String> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.chars().take(LOG_LINE_CHARS).collect())
        .collect();
    lines[lines.len().saturating_sub(LOG_LINES)..].join(" | ")
}

/// The prefix of the progress line that shows a running hook's last log lines.
pub const LOG_PROGRESS: &str = "log: ";

/// The log lines a running hook's progress last showed (the only ones left once the Job controller
/// deleted a pod that ran past its deadline).
pub fn logged_before(progress: &[String]) -> Option<&str> {
    progress.iter().find_map(|line| line.strip_prefix(LOG_PROGRESS))
}

/// `text` on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `12s` / `1.4s`, or nothing when unknown.
pub fn duration(seconds: Option<f64>) -> String {
    match seconds {
        Some(s) if s >= 10.0 => format!(" in {s:.0}s"),
        Some(s) => format!(" in {s:.1}s"),
        None => String::new(),
    }
}

#[cfg(test)]
#[path = "hook_job_tests.rs"]
mod tests;
