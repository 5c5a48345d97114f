//! The pipeline's steps: idempotent `ensure_*` ladders that observe the clusters, create what is
//! missing and report a [`StepOutcome`](super::StepOutcome). One file per concern; [`run`] maps a
//! [`Step`] of DESIGN.md §3 to its ladder.

pub mod cutover;
pub mod destination;
pub mod dns;
pub mod gitops;
mod held_senders;
pub mod hooks;
mod mover_endpoints;
pub mod movers;
pub mod prepare;
pub mod workloads;

use super::engine::Warning;
use super::movers::Pass;
use super::{StepContext, StepOutcome};
use crate::Result;
use crate::api::plan::QuiesceMethod;
use crate::api::{HookPhase, Itinerary, Step};

/// Runs one step of the current itinerary. Every step is safe to run again after any outcome or a
/// crash: it observes what exists first.
pub async fn run(step: Step, ctx: &StepContext) -> Result<StepOutcome> {
    if Itinerary::for_spec(&ctx.migration.spec) == Itinerary::Final
        && !ctx.migration.spec.quiesce_pods
        && let Some(outcome) = without_quiesce(step)
    {
        return Ok(outcome);
    }
    match step {
        Step::Prepare => prepare::prepare(ctx).await,
        Step::CreateDestinationNamespaces => destination::ensure_namespaces(ctx).await,
        Step::CreateDestinationPVCs => destination::ensure_pvcs(ctx).await,
        Step::LowerDNSTTL => dns::lower_ttl(ctx).await,
        Step::FlipDNS => dns::flip(ctx).await,
        Step::VerifyDNS => dns::verify(ctx).await,
        Step::RestoreDNS => dns::restore(ctx).await,
        Step::CleanupMovers => prepare::cleanup(ctx).await,
        Step::Cleanup => prepare::cleanup_cutover(ctx).await,
        Step::CreateMoverSecrets => movers::ensure_secrets(ctx).await,
        Step::CreateMoverEndpoints => movers::ensure_endpoints(ctx).await,
        Step::CreateMoverPods => movers::ensure_pods(ctx, Pass::Stage).await,
        Step::WaitForTransfer => movers::wait_for_transfer(ctx, Pass::Stage).await,
        Step::StageSync => movers::sync(ctx, Pass::Stage).await,
        Step::FinalSync => movers::sync(ctx, Pass::Final).await,
        Step::Verify => movers::sync(ctx, Pass::Verify).await,
        Step::EnsureSourceQuiesced => workloads::ensure_source_quiesced(ctx).await,
        Step::EnsureTargetReady => workloads::ensure_target_ready(ctx).await,
        Step::PreBackupHooks => hooks::run(ctx, HookPhase::PreBackup).await,
        Step::PostBackupHooks => hooks::run(ctx, HookPhase::PostBackup).await,
        Step::PreRestoreHooks => hooks::run(ctx, HookPhase::PreRestore).await,
        Step::PostRestoreHooks => hooks::run(ctx, HookPhase::PostRestore).await,
        Step::QuiesceSource
        | Step::UnquiesceTarget
        | Step::QuiesceTarget
        | Step::UnquiesceSource
        | Step::RevertCommits => workload_step(step, ctx).await,
    }
}

/// A final migration with `quiescePods: false` (MTC: copy without stopping the source app) runs its
/// StageSync only: the source keeps serving, so nothing may start on the target (two live copies of
/// the data) and DNS stays where it is. The outcome of each step it skips; `None` for those it runs.
pub fn without_quiesce(step: Step) -> Option<StepOutcome> {
    const WHY: &str = "quiescePods is false: the source app keeps serving";
    match step {
        Step::QuiesceSource => Some(StepOutcome::Warned {
            message: format!("Skipped: {WHY}; the StageSync copy was taken while it ran."),
            warning: Warning::NotQuiesced,
        }),
        Step::EnsureSourceQuiesced | Step::FinalSync | Step::Verify => Some(StepOutcome::Skipped(format!(
            "{WHY}; the StageSync copy is the final one"
        ))),
        // The hooks frame a final copy with the source stopped and a start on the target: neither happens.
        Step::PreBackupHooks | Step::PostBackupHooks | Step::PreRestoreHooks | Step::PostRestoreHooks => {
            Some(StepOutcome::Skipped(format!(
                "{WHY}: hooks run around a quiesced cutover's final copy and start"
            )))
        }
        Step::LowerDNSTTL
        | Step::UnquiesceTarget
        | Step::EnsureTargetReady
        | Step::FlipDNS
        | Step::VerifyDNS => Some(StepOutcome::Skipped(format!(
            "{WHY}, so nothing starts on the target and DNS is not changed"
        ))),
        _ => None,
    }
}

/// The steps whose way depends on the quiesce method: Commit goes through Git, Patch through the
/// clusters. Without a `gitops` section the method is Patch.
async fn workload_step(step: Step, ctx: &StepContext) -> Result<StepOutcome> {
    let commit = ctx
        .plan
        .spec
        .gitops
        .as_ref()
        .is_some_and(|g| g.quiesce.method == QuiesceMethod::Commit);
    // From here on the target may be live: record it before anything starts there.
    if step == Step::UnquiesceTarget {
        cutover::record(ctx).await?;
    }
    let outcome = match (step, commit) {
        (Step::QuiesceSource, true) => gitops::quiesce_source(ctx).await,
        (Step::UnquiesceTarget, true) => gitops::unquiesce_target(ctx).await,
        (Step::QuiesceTarget, true) => gitops::quiesce_target(ctx).await,
        (Step::UnquiesceSource, true) => gitops::unquiesce_source(ctx).await,
        (Step::RevertCommits, true) => gitops::revert_commits(ctx).await,
        (Step::QuiesceSource, false) => workloads::quiesce_source(ctx).await,
        (Step::UnquiesceTarget, false) => workloads::unquiesce_target(ctx).await,
        (Step::QuiesceTarget, false) => workloads::quiesce_target(ctx).await,
        (Step::UnquiesceSource, false) => workloads::unquiesce_source(ctx).await,
        (Step::RevertCommits, false) => Ok(StepOutcome::Skipped("Patch mode made no commits".into())),
        (other, _) => Ok(StepOutcome::Failed(format!(
            "step {other} is not part of this itinerary"
        ))),
    }?;
    // The rollback's last step: only once it succeeded is the source the live copy again.
    if step == Step::RevertCommits
        && matches!(
            outcome,
            StepOutcome::Done(_) | StepOutcome::Skipped(_) | StepOutcome::Warned { .. }
        )
    {
        cutover::clear(ctx).await?;
    }
    Ok(outcome)
}

/// Creates `object`; one that already exists (409: an earlier run, a concurrent one) counts as created,
/// which keeps every step idempotent.
pub(crate) async fn create_if_absent<K>(api: &kube::Api<K>, object: &K) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&kube::api::PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Deletes `name` in the background; one already gone counts as deleted.
pub(crate) async fn delete_if_present<K>(api: &kube::Api<K>, name: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &kube::api::DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err.into()),
    }
}
