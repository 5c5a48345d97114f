//! Running an admitted migration: build the step context (clients for both clusters), run the current
//! step, fold its outcome into status with the pure engine, and write status after every step. Also
//! cancellation and the release of a finished or deleted migration (temporary objects removed from both
//! clusters, then the finalizer dropped).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};

use super::FINALIZER;
use crate::Result;
use crate::api::condition::{self, READY};
use crate::api::{
    Category, Condition, Itinerary, MigMigration, MigMigrationStatus, MigPlan, ResourceRef, Step,
};
use crate::controller::clients::SECRET_RECHECK;
use crate::controller::metrics::MigrationLabels;
use crate::controller::{Context, status, stores};
use crate::pipeline::{self, Next, StepContext, StepOutcome};

/// Condition types admission owns; everything else (Running, Succeeded, Failed, …) belongs to the run.
const ADMISSION_TYPES: &[&str] = &[
    "InvalidPlanRef",
    "PlanNotReady",
    "MigrationInProgress",
    "ClusterUnavailable",
    "PlanClosed",
    READY,
];

/// Steps run back to back in one reconcile before yielding to other objects.
const STEPS_PER_RECONCILE: usize = 32;

/// Replaces the admission conditions in `conditions` with `verdict`, keeping the run's own.
pub(super) fn fold_admission(
    conditions: &mut Vec<Condition>,
    verdict: Vec<Condition>,
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) {
    let stale: Vec<String> = conditions
        .iter()
        .filter(|c| ADMISSION_TYPES.contains(&c.type_.as_str()))
        .filter(|c| !verdict.iter().any(|v| v.type_ == c.type_))
        .map(|c| c.type_.clone())
        .collect();
    for type_ in stale {
        condition::remove(conditions, &type_);
    }
    for wanted in verdict {
        condition::set(conditions, wanted, now);
    }
}

/// Writes `desired` when it differs from `current` (with Events for changed conditions).
pub(super) async fn write(
    ctx: &Context,
    migration: &MigMigration,
    current: &MigMigrationStatus,
    desired: &MigMigrationStatus,
) -> Result<()> {
    status::apply(
        ctx,
        migration,
        Some(current),
        desired,
        &current.conditions,
        &desired.conditions,
    )
    .await
}

/// Runs steps of an admitted migration until one needs time, the itinerary ends, or the budget of
/// steps per reconcile is spent.
pub(super) async fn run(
    migration: &MigMigration,
    plan: MigPlan,
    mut desired: MigMigrationStatus,
    ctx: &Context,
) -> Result<Action> {
    let mut written = migration.status.clone().unwrap_or_default();
    ensure_finalizer(ctx, migration).await?;
    let step_ctx = match step_context(ctx, migration, plan).await {
        Ok(step_ctx) => step_ctx,
        Err(problem) => {
            let unavailable =
                Condition::holds("ClusterUnavailable", Category::Critical, "Unreachable", problem);
            condition::set(&mut desired.conditions, unavailable, &status::now());
            write(ctx, migration, &written, &desired).await?;
            return Ok(Action::requeue(ctx.retry));
        }
    };
    let itinerary = Itinerary::for_spec(&migration.spec);
    // The spec's flags choose the itinerary; changed after the run began they would restart it from
    // scratch with half the work done. End it instead: the user creates a new MigMigration.
    if let Some(running) = desired
        .itinerary
        .filter(|i| *i != itinerary && !desired.pipeline.is_empty())
    {
        let why = format!(
            "the spec of MigMigration {} was changed after it started as a {running:?} (now a {itinerary:?}); \
             a migration's flags cannot change: create a new MigMigration",
            migration.name_any()
        );
        desired.errors.push(why.clone());
        let changed = Condition::holds("Failed", Category::Critical, "SpecChanged", why);
        return end_early(ctx, migration, &written, desired, changed, "Failed", "failed").await;
    }
    pipeline::start(&mut desired, itinerary, step_ctx.plan_volumes(), &precise_now());
    for _ in 0..STEPS_PER_RECONCILE {
        let Some((index, name)) = pipeline::current_step(&desired) else {
            write(ctx, migration, &written, &desired).await?;
            return Ok(Action::await_change());
        };
        let started_at = desired.pipeline[index]
            .started
            .as_deref()
            .and_then(|s| s.parse().ok())
            .map(Time)
            .unwrap_or_else(precise_now);
        // The downtime window opens when QuiesceSource starts: persist that moment before the step
        // stops anything, so a crash inside it cannot move the window's start later.
        if name == pipeline::engine::DOWNTIME_START && desired.pipeline[index].started.is_none() {
            desired.pipeline[index].started = Some(started_at.0.to_string());
            write(ctx, migration, &written, &desired).await?;
            written = desired.clone();
        }
        let outcome = match Step::parse(&name) {
            None => StepOutcome::Failed(format!(
                "step {name} is not part of this Ferry build; run the migration again with a new MigMigration"
            )),
            Some(step) => match pipeline::steps::run(step, &step_ctx_with(&step_ctx, &desired)).await {
                Ok(outcome) => outcome,
                Err(err) => {
                    tracing::info!(migration = %migration.name_any(), step = %name, error = %err, "step failed; retrying");
                    StepOutcome::Retry {
                        reason: err.to_string(),
                        after: ctx.retry,
                    }
                }
            },
        };
        crash_test_gate(&name).await;
        let (next_status, next) = pipeline::advance(&desired, outcome, &started_at, &precise_now());
        desired = next_status;
        write(ctx, migration, &written, &desired).await?;
        written = desired.clone();
        match next {
            Next::Continue => continue,
            Next::RequeueAfter(after) => {
                tracing::debug!(step = %name, after_ms = after.as_millis() as u64, "next look");
                ctx.pacing.defer(&stores::object_key(migration), after);
                return Ok(Action::requeue(after));
            }
            Next::Finished => {
                record_finished(ctx, itinerary, &desired);
                if itinerary == Itinerary::Stage && condition::is_true(&desired.conditions, "Succeeded") {
                    record_last_stage(ctx, &step_ctx.plan, &desired).await?;
                }
                return Ok(Action::requeue(Duration::from_millis(100)));
            }
        }
    }
    Ok(Action::requeue(Duration::from_millis(100)))
}

/// Now, to the millisecond: step times and the downtime window are measured in seconds and less.
fn precise_now() -> Time {
    let now = k8s_openapi::jiff::Timestamp::now();
    Time(now.round(k8s_openapi::jiff::Unit::Millisecond).unwrap_or(now))
}

/// The step context seeing the status as it is now (steps read when they started, retries, …).
fn step_ctx_with(step_ctx: &StepContext, status: &MigMigrationStatus) -> StepContext {
    let mut step_ctx = step_ctx.clone();
    step_ctx.migration.status = Some(status.clone());
    step_ctx
}

/// Ends a migration that must not run (a stage or cutover of a cut-over plan) before it does anything:
/// durably Failed with reason `PlanCutOver`, so it neither runs later nor blocks the plan's rollback.
pub(super) async fn refuse(
    migration: &MigMigration,
    current: MigMigrationStatus,
    why: String,
    ctx: &Context,
) -> Result<Action> {
    let mut desired = current.clone();
    desired.errors = vec![why.clone()];
    desired.observed_generation = migration.metadata.generation;
    let refused = Condition::holds("Failed", Category::Critical, "PlanCutOver", why);
    end_early(ctx, migration, &current, desired, refused, "Refused", "refused").await
}

/// Marks a migration canceled. Temporary objects go when it is released; a quiesced source stays as
/// it is, with its recorded way back, for a rollback to restore.
pub(super) async fn cancel(
    migration: &MigMigration,
    _plan: Option<&MigPlan>,
    desired: MigMigrationStatus,
    ctx: &Context,
) -> Result<Action> {
    let current = migration.status.clone().unwrap_or_default();
    let at = desired.phase.clone().unwrap_or_else(|| "Validating".into());
    let quiesced = desired
        .pipeline
        .iter()
        .any(|s| s.name == Step::QuiesceSource && s.started.is_some());
    let mut message = format!("Canceled at {at}.");
    if quiesced {
        message.push_str(" The source app may be quiesced; run a rollback to restore it.");
    }
    let canceled = Condition::holds("Canceled", Category::Advisory, "Canceled", message);
    end_early(
        ctx, migration, &current, desired, canceled, "Canceled", "canceled",
    )
    .await
}

/// Ends a migration outside its itinerary with the durable condition `end` and `phase`, counted as
/// `result` in the migrations metric.
async fn end_early(
    ctx: &Context,
    migration: &MigMigration,
    current: &MigMigrationStatus,
    mut desired: MigMigrationStatus,
    end: Condition,
    phase: &str,
    result: &str,
) -> Result<Action> {
    let now = status::now();
    condition::remove(&mut desired.conditions, "Running");
    let failure = (end.type_ == "Failed").then(|| {
        (
            end.reason.clone().unwrap_or_default(),
            end.message.clone().unwrap_or_default(),
        )
    });
    condition::set(&mut desired.conditions, end.durable(), &now);
    pipeline::kstatus::finished(
        &mut desired.conditions,
        failure
            .as_ref()
            .map(|(reason, cause)| (reason.as_str(), cause.as_str())),
        &now,
    );
    desired.phase = Some(phase.into());
    write(ctx, migration, current, &desired).await?;
    ctx.metrics
        .migrations
        .get_or_create(&MigrationLabels {
            itinerary: format!("{:?}", Itinerary::for_spec(&migration.spec)),
            result: result.into(),
        })
        .inc();
    Ok(Action::requeue(Duration::from_millis(100)))
}

/// Removes the temporary objects of a finished or deleted migration from both clusters, then its
/// finalizer. Without a plan (or reachable clusters) they cannot be found: the finalizer is kept and
/// the attempt repeated, unless the migration is being deleted and the plan is gone for good.
pub(super) async fn release(migration: &MigMigration, ctx: &Context) -> Result<()> {
    if !migration.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let uid = migration.uid().unwrap_or_default();
    if migration.metadata.deletion_timestamp.is_none()
        && migration.status.as_ref().is_some_and(ended_with_cleanup)
    {
        // Its last step removed every temporary object from both clusters, and nothing runs after it:
        // listing every kind in both clusters again would find nothing.
        return remove_finalizer(ctx, migration).await;
    }
    let own_ns = migration.namespace().unwrap_or_default();
    let plan_ref = &migration.spec.mig_plan_ref;
    let plan = Api::<MigPlan>::namespaced(ctx.client.clone(), plan_ref.namespace_or(&own_ns))
        .get_opt(&plan_ref.name)
        .await?;
    match plan {
        Some(plan) => {
            let (source, target) = clusters(ctx, &plan).await.map_err(crate::Error::InvalidSpec)?;
            let mut removed = pipeline::cleanup::delete_temporary(&source, &uid).await?;
            removed += pipeline::cleanup::delete_temporary(&target, &uid).await?;
            tracing::info!(migration = %migration.name_any(), removed, "temporary objects removed");
        }
        None => tracing::warn!(
            migration = %migration.name_any(),
            selector = %pipeline::labels::temporary_selector(&uid),
            "the plan is gone, so the clusters holding this migration's temporary objects are unknown; \
             delete them by label"
        ),
    }
    remove_finalizer(ctx, migration).await?;
    if migration.metadata.deletion_timestamp.is_some() {
        // Gone once the finalizer is: nothing to compare a cached copy with any more.
        ctx.written.record(migration, None);
    }
    Ok(())
}

/// Whether a migration succeeded with its itinerary's cleanup step (CleanupMovers, Cleanup) as the
/// last one, done: then no temporary object of it is left.
fn ended_with_cleanup(status: &MigMigrationStatus) -> bool {
    let last = status.pipeline.last();
    condition::is_true(&status.conditions, "Succeeded")
        && last.is_some_and(|step| {
            matches!(Step::parse(&step.name), Some(Step::CleanupMovers | Step::Cleanup))
                && step.completed.is_some()
                && !step.failed
                && !step.skipped
        })
}

async fn ensure_finalizer(ctx: &Context, migration: &MigMigration) -> Result<()> {
    if migration.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let mut finalizers = migration.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    patch_finalizers(ctx, migration, finalizers).await
}

async fn remove_finalizer(ctx: &Context, migration: &MigMigration) -> Result<()> {
    let finalizers: Vec<String> = migration
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    patch_finalizers(ctx, migration, finalizers).await
}

/// Sets the finalizer list, guarded by the resourceVersion read, so a concurrent change is not lost.
async fn patch_finalizers(ctx: &Context, migration: &MigMigration, finalizers: Vec<String>) -> Result<()> {
    let api = Api::<MigMigration>::namespaced(ctx.client.clone(), &migration.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": migration.resource_version()}
    });
    let patched = api
        .patch(
            &migration.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    ctx.written.record(migration, patched.resource_version());
    Ok(())
}

async fn step_context(
    ctx: &Context,
    migration: &MigMigration,
    plan: MigPlan,
) -> std::result::Result<StepContext, String> {
    let plan_ns = plan.namespace().unwrap_or_default();
    let (source_key, source) = cluster_client(ctx, &plan.spec.src_mig_cluster_ref, &plan_ns).await?;
    let (target_key, target) = cluster_client(ctx, &plan.spec.dest_mig_cluster_ref, &plan_ns).await?;
    Ok(StepContext {
        host: ctx.client.clone(),
        source_pods: ctx.mover_watches.store(&source_key, &source),
        target_pods: ctx.mover_watches.store(&target_key, &target),
        source,
        target,
        migration: migration.clone(),
        plan,
    })
}

/// Clients for the plan's source and target clusters, or why they cannot be had.
async fn clusters(ctx: &Context, plan: &MigPlan) -> std::result::Result<(Client, Client), String> {
    let plan_ns = plan.namespace().unwrap_or_default();
    let (_, source) = cluster_client(ctx, &plan.spec.src_mig_cluster_ref, &plan_ns).await?;
    let (_, target) = cluster_client(ctx, &plan.spec.dest_mig_cluster_ref, &plan_ns).await?;
    Ok((source, target))
}

/// The client of the cluster `reference` names, with the key its mover watch is kept under (the
/// host's own for every host MigCluster: one cluster, one watch).
async fn cluster_client(
    ctx: &Context,
    reference: &ResourceRef,
    plan_ns: &str,
) -> std::result::Result<(String, Client), String> {
    let namespace = reference.namespace_or(plan_ns);
    let label = format!("MigCluster {namespace}/{}", reference.name);
    let cluster = ctx
        .cluster(namespace, &reference.name)
        .await
        .map_err(|err| format!("{label}: {err}"))?
        .ok_or_else(|| format!("{label} does not exist"))?;
    let key = if cluster.spec.is_host_cluster {
        String::new()
    } else {
        format!("{namespace}/{}", reference.name)
    };
    let client = ctx
        .clients
        .get(&ctx.client, &cluster, SECRET_RECHECK)
        .await
        .map_err(|problem| format!("{label}: {} ({})", problem.message, problem.reason))?;
    Ok((key, client))
}

/// Test hook for the crash-safety scenario: with `FERRY_TEST_STEP_GATE=<dir>` set, the first run of
/// each step stops after the step's work is done and before its outcome is written (the most
/// dangerous moment to die), announces itself with `<dir>/<step>.waiting`, and waits for
/// `<dir>/<step>.go`. The test SIGKILLs the controller there, restarts it, and lets it pass.
/// Compiled only with the `test-hooks` feature (test builds); a release binary ignores the variable.
#[cfg(feature = "test-hooks")]
async fn crash_test_gate(step: &str) {
    let Some(dir) = std::env::var_os("FERRY_TEST_STEP_GATE").map(std::path::PathBuf::from) else {
        return;
    };
    let go = dir.join(format!("{step}.go"));
    if go.exists() {
        return;
    }
    let _ = std::fs::write(
        dir.join(format!("{step}.waiting")),
        std::process::id().to_string(),
    );
    while !go.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Without the `test-hooks` feature there is no gate.
#[cfg(not(feature = "test-hooks"))]
async fn crash_test_gate(_step: &str) {}

/// Writes the plan's `status.lastStage` (time, duration, bytes) after a successful stage, under its own
/// field manager so the plan reconciler's status writes leave it alone.
async fn record_last_stage(ctx: &Context, plan: &MigPlan, status: &MigMigrationStatus) -> Result<()> {
    let end = status
        .pipeline
        .iter()
        .filter_map(|s| s.completed.clone())
        .next_back()
        .unwrap_or_default();
    let seconds = status
        .start_timestamp
        .as_deref()
        .and_then(|start| pipeline::engine::seconds_between(start, &end))
        .unwrap_or_default();
    let bytes = status
        .pipeline
        .iter()
        .filter_map(|s| pipeline::transfer::totals_from_message(s.message.as_deref()?))
        .map(|(bytes, _)| bytes)
        .max()
        .unwrap_or(0);
    let patch = serde_json::json!({
        "apiVersion": "migration.ferry.dev/v1alpha1",
        "kind": "MigPlan",
        "status": {"lastStage": {"time": end, "duration": format!("{seconds:.1}s"), "bytes": bytes}},
    });
    let api = Api::<MigPlan>::namespaced(ctx.client.clone(), &plan.namespace().unwrap_or_default());
    api.patch_status(
        &plan.name_any(),
        &PatchParams::apply("ferry-migration-controller").force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Counts a finished migration: by itinerary and result, and for a success its data, its stage
/// duration or its cutover downtime.
fn record_finished(ctx: &Context, itinerary: Itinerary, status: &MigMigrationStatus) {
    let succeeded = condition::is_true(&status.conditions, "Succeeded");
    let metrics = &ctx.metrics;
    metrics
        .migrations
        .get_or_create(&MigrationLabels {
            itinerary: format!("{itinerary:?}"),
            result: if succeeded { "succeeded" } else { "failed" }.into(),
        })
        .inc();
    if !succeeded {
        return;
    }
    let synced: u64 = status
        .pipeline
        .iter()
        .filter_map(|s| pipeline::transfer::totals_from_message(s.message.as_deref()?))
        .map(|(bytes, _)| bytes)
        .sum();
    metrics.bytes.inc_by(synced);
    match itinerary {
        Itinerary::Stage => {
            let end = status
                .pipeline
                .iter()
                .filter_map(|s| s.completed.clone())
                .next_back();
            let seconds = status
                .start_timestamp
                .as_deref()
                .zip(end.as_deref())
                .and_then(|(start, end)| pipeline::engine::seconds_between(start, end));
            if let Some(seconds) = seconds {
                metrics.stage_duration.observe(seconds);
            }
        }
        Itinerary::Final => {
            if let Some(seconds) = status.downtime.as_ref().and_then(|d| d.seconds) {
                metrics.downtime.observe(seconds);
            }
        }
        Itinerary::Rollback => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PipelineStep;

    fn status(last: &str, succeeded: bool, completed: bool) -> MigMigrationStatus {
        let mut status = MigMigrationStatus::default();
        if succeeded {
            status.conditions.push(Condition::holds(
                "Succeeded",
                Category::Advisory,
                "Completed",
                "done",
            ));
        }
        status.pipeline.push(PipelineStep {
            name: last.into(),
            completed: completed.then(|| "2026-12-01T00:00:00Z".into()),
            ..PipelineStep::default()
        });
        status
    }

    #[test]
    fn only_a_success_ending_in_a_done_cleanup_skips_the_release_sweep() {
        assert!(ended_with_cleanup(&status("CleanupMovers", true, true)));
        assert!(ended_with_cleanup(&status("Cleanup", true, true)));
        assert!(
            !ended_with_cleanup(&status("Cleanup", false, true)),
            "failed or canceled"
        );
        assert!(!ended_with_cleanup(&status("CleanupMovers", true, false)));
        assert!(!ended_with_cleanup(&status("RevertCommits", true, true)));
    }
}
