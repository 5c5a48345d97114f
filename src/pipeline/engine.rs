//! The pure itinerary engine: which step runs next, and how a step's outcome changes the status.
//! Nothing here does I/O; the reconciler runs the step and persists what [`advance`] returns.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::condition;
use crate::api::migration::Downtime;
use crate::api::plan::DiscoveredVolume;
use crate::api::{Category, Condition, Itinerary, MigMigrationStatus, PipelineStep, Step};
use crate::pipeline::kstatus;

/// The step whose start opens a cutover's downtime window.
pub const DOWNTIME_START: Step = Step::QuiesceSource;
/// The step whose end closes it.
pub const DOWNTIME_END: Step = Step::VerifyDNS;
/// How often a step may fail transiently before the migration fails.
pub const MAX_RETRIES: u32 = 5;

/// What a step reports after one run. Steps are idempotent `ensure_*` ladders, so running one again
/// after any outcome (or after a crash) is always safe.
#[derive(Clone, Debug, PartialEq)]
pub enum StepOutcome {
    /// Finished; the message is kept on the step.
    Done(String),
    /// Still working (e.g. a transfer); look again after `after`.
    InProgress {
        /// What it is doing now.
        message: String,
        /// Progress lines (replace the previous ones).
        progress: Vec<String>,
        /// When to look again.
        after: Duration,
    },
    /// Failed in a way that may pass (network, conflict); retried up to [`MAX_RETRIES`] times.
    Retry {
        /// What went wrong.
        reason: String,
        /// Backoff before the next attempt.
        after: Duration,
    },
    /// Failed for good: the migration fails with this cause.
    Failed(String),
    /// Not configured for this plan (e.g. LowerDNSTTL without `dns`).
    Skipped(String),
    /// Finished, but the user should know something: the step completes with `message` and the
    /// migration gets the warning's `Warn` condition (it does not fail for it).
    Warned {
        /// Kept on the step, like [`StepOutcome::Done`]'s.
        message: String,
        /// What to tell the user.
        warning: Warning,
    },
}

/// Things a migration succeeds despite, each a `Warn` condition a user can act on.
#[derive(Clone, Debug, PartialEq)]
pub enum Warning {
    /// A final migration with `quiescePods: false`: the source kept running during the final sync.
    NotQuiesced,
    /// The target namespaces (listed) have no workloads to start: the app is deployed there later.
    NoTargetWorkloads(String),
    /// PVCs (listed) appeared in the source namespaces after this migration fixed its volumes.
    VolumesNotMoved(String),
}

impl Warning {
    /// The condition shown for it.
    pub fn condition(&self) -> Condition {
        let (type_, reason, message) = match self {
            Warning::NotQuiesced => (
                "SourceNotQuiesced",
                "QuiescePodsFalse",
                "quiescePods is false: the source app kept running during the final sync, so the copy \
                 may be inconsistent; run a cutover with quiescePods: true for a consistent copy."
                    .to_string(),
            ),
            Warning::NoTargetWorkloads(namespaces) => (
                "NoTargetWorkloads",
                "NothingToStart",
                format!(
                    "The target namespaces {namespaces} have no workloads to start; deploy the app there \
                     (for example with Argo CD) to run it on the migrated data."
                ),
            ),
            Warning::VolumesNotMoved(pvcs) => (
                "VolumesNotMoved",
                "CreatedAfterStart",
                format!(
                    "PVCs created after this migration started were not moved by it: {pvcs}; the next \
                     migration of the plan moves them."
                ),
            ),
        };
        Condition::holds(type_, Category::Warn, reason, message)
    }
}

/// What the reconciler does next.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Run the next step at once.
    Continue,
    /// Look again after this long.
    RequeueAfter(Duration),
    /// The migration ended (succeeded or failed); nothing more to do.
    Finished,
}

/// Prepares the status of a migration that starts `itinerary` now: one not-started entry per step,
/// and the set of volumes it moves, fixed from `volumes` (the plan's discovery) once and for all.
pub fn start(
    status: &mut MigMigrationStatus,
    itinerary: Itinerary,
    volumes: &[DiscoveredVolume],
    now: &Time,
) {
    if status.itinerary == Some(itinerary) && !status.pipeline.is_empty() {
        return;
    }
    status.volumes = Some(volumes.to_vec());
    status.itinerary = Some(itinerary);
    status.pipeline = itinerary
        .steps()
        .iter()
        .map(|step| PipelineStep::not_started(*step))
        .collect();
    status.start_timestamp = Some(rfc3339(now));
    status.phase = itinerary.steps().first().map(|s| s.to_string());
}

/// The index and name of the step to run, or `None` when every step has completed or one failed.
pub fn current_step(status: &MigMigrationStatus) -> Option<(usize, String)> {
    if status.pipeline.iter().any(|s| s.failed) {
        return None;
    }
    status
        .pipeline
        .iter()
        .position(|s| s.completed.is_none())
        .map(|i| (i, status.pipeline[i].name.clone()))
}

/// Applies the outcome of the current step, run between `started_at` and `now`.
pub fn advance(
    status: &MigMigrationStatus,
    outcome: StepOutcome,
    started_at: &Time,
    now: &Time,
) -> (MigMigrationStatus, Next) {
    let mut status = status.clone();
    let Some((index, name)) = current_step(&status) else {
        return (status, Next::Finished);
    };
    let total = status.pipeline.len();
    let stops_source = stops_source(&outcome);
    let mut warned = None;
    let step = &mut status.pipeline[index];
    step.started.get_or_insert_with(|| rfc3339(started_at));
    let next = match outcome {
        StepOutcome::Done(message) => {
            step.completed = Some(rfc3339(now));
            step.message = Some(if message.is_empty() {
                "Completed".into()
            } else {
                message
            });
            Next::Continue
        }
        StepOutcome::Warned { message, warning } => {
            step.completed = Some(rfc3339(now));
            step.message = Some(message);
            warned = Some(warning.condition());
            Next::Continue
        }
        StepOutcome::Skipped(reason) => {
            step.completed = Some(rfc3339(now));
            step.skipped = true;
            step.message = Some(format!("Skipped: {reason}"));
            Next::Continue
        }
        StepOutcome::InProgress {
            message,
            progress,
            after,
        } => {
            step.message = Some(message);
            step.progress = progress;
            Next::RequeueAfter(after)
        }
        StepOutcome::Retry { reason, after } if step.retries < MAX_RETRIES => {
            step.retries += 1;
            step.message = Some(format!("Retrying ({}/{MAX_RETRIES}): {reason}", step.retries));
            Next::RequeueAfter(after)
        }
        StepOutcome::Retry { reason, .. } => {
            fail(step, format!("{reason} (gave up after {MAX_RETRIES} retries)"))
        }
        StepOutcome::Failed(reason) => fail(step, reason),
    };
    let failed = step.failed;
    let step_message = step.message.clone();
    record_downtime(&mut status, index, stops_source, now);
    if let Some(warning) = warned {
        condition::set(&mut status.conditions, warning.durable(), now);
    }

    let conditions = &mut status.conditions;
    if failed {
        let cause = format!("{name} failed: {}", step_message.unwrap_or_default());
        condition::remove(conditions, "Running");
        condition::set(
            conditions,
            Condition::holds("Failed", Category::Critical, &name, &cause).durable(),
            now,
        );
        kstatus::finished(conditions, Some((&name, &cause)), now);
        status.errors.push(cause);
        status.phase = Some("Failed".into());
        return (status, Next::Finished);
    }
    match current_step(&status) {
        Some((index, next_name)) => {
            let running = format!("Step: {}/{total}", index + 1);
            kstatus::reconciling(&mut status.conditions, &next_name, &running, now);
            condition::set(
                &mut status.conditions,
                Condition::holds("Running", Category::Advisory, &next_name, running),
                now,
            );
            status.phase = Some(next_name);
            (status, next)
        }
        None => {
            condition::remove(&mut status.conditions, "Running");
            let done = Condition::holds(
                "Succeeded",
                Category::Advisory,
                "Completed",
                "The migration has completed successfully.",
            );
            condition::set(&mut status.conditions, done.durable(), now);
            kstatus::finished(&mut status.conditions, None, now);
            status.phase = Some("Completed".into());
            (status, Next::Finished)
        }
    }
}

fn fail(step: &mut PipelineStep, reason: String) -> Next {
    step.failed = true;
    step.message = Some(reason);
    Next::Finished
}

/// Whether a QuiesceSource reporting `outcome` may have stopped the source: not when it was skipped,
/// nor when it completed without stopping it (`quiescePods: false`), so such a cutover has no downtime.
fn stops_source(outcome: &StepOutcome) -> bool {
    !matches!(
        outcome,
        StepOutcome::Skipped(_)
            | StepOutcome::Warned {
                warning: Warning::NotQuiesced,
                ..
            }
    )
}

/// Opens the downtime window when QuiesceSource first runs and may stop the source; closes it when
/// VerifyDNS completes (or is skipped: then the app is serving from the target as soon as the steps
/// before it are done).
fn record_downtime(status: &mut MigMigrationStatus, index: usize, stops_source: bool, now: &Time) {
    let step = &status.pipeline[index];
    if step.name == DOWNTIME_START && stops_source && status.downtime.is_none() {
        let start = step.started.clone().unwrap_or_else(|| rfc3339(now));
        status.downtime = Some(Downtime {
            start,
            end: None,
            seconds: None,
        });
    }
    if step.name == DOWNTIME_END
        && let Some(end) = step.completed.clone()
        && let Some(window) = status.downtime.as_mut().filter(|w| w.end.is_none())
    {
        window.seconds = seconds_between(&window.start, &end);
        window.end = Some(end);
    }
}

/// Seconds from `start` to `end` (RFC 3339), when both parse.
pub fn seconds_between(start: &str, end: &str) -> Option<f64> {
    let start: Timestamp = start.parse().ok()?;
    let end: Timestamp = end.parse().ok()?;
    Some(end.duration_since(start).as_secs_f64())
}

fn rfc3339(time: &Time) -> String {
    time.0.to_string()
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "engine_model/mod.rs"]
mod model_tests;
