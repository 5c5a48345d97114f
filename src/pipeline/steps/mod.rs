//! The pipeline's steps: idempotent `ensure_*` ladders that observe the clusters, create what is
//! missing and report a [`StepOutcome`](super::StepOutcome). One file per concern; [`run`] maps a
//! step name of DESIGN.md §3 to its ladder.

pub mod destination;
pub mod dns;
pub mod gitops;
mod mover_endpoints;
pub mod movers;
pub mod prepare;
pub mod workloads;

use super::movers::Pass;
use super::{StepContext, StepOutcome};
use crate::Result;
use crate::api::plan::QuiesceMethod;

/// Runs one step of the current itinerary. Every step is safe to run again after any outcome or a
/// crash: it observes what exists first.
pub async fn run(step: &str, ctx: &StepContext) -> Result<StepOutcome> {
    match step {
        "CreateDestinationNamespaces" => destination::ensure_namespaces(&ctx.target, &ctx.plan).await,
        "CreateDestinationPVCs" => destination::ensure_pvcs(&ctx.source, &ctx.target, &ctx.plan).await,
        "Prepare" => prepare::prepare(ctx).await,
        "LowerDNSTTL" => dns::lower_ttl(ctx).await,
        "FlipDNS" => dns::flip(ctx).await,
        "VerifyDNS" => dns::verify(ctx).await,
        "RestoreDNS" => dns::restore(ctx).await,
        "CleanupMovers" | "Cleanup" => prepare::cleanup(ctx).await,
        "CreateMoverSecrets" => movers::ensure_secrets(ctx).await,
        "CreateMoverEndpoints" => movers::ensure_endpoints(ctx).await,
        "CreateMoverPods" => movers::ensure_pods(ctx, Pass::Stage).await,
        "WaitForTransfer" => movers::wait_for_transfer(ctx, Pass::Stage).await,
        "StageSync" => movers::sync(ctx, Pass::Stage).await,
        "FinalSync" => movers::sync(ctx, Pass::Final).await,
        "Verify" => movers::sync(ctx, Pass::Verify).await,
        "EnsureSourceQuiesced" => workloads::ensure_source_quiesced(ctx).await,
        "EnsureTargetReady" => workloads::ensure_target_ready(ctx).await,
        "QuiesceSource" | "UnquiesceTarget" | "QuiesceTarget" | "UnquiesceSource" | "RevertCommits" => {
            workload_step(step, ctx).await
        }
        other => Ok(StepOutcome::Failed(format!(
            "step {other} is not part of this Ferry build"
        ))),
    }
}

/// The steps whose way depends on the quiesce method: Commit goes through Git, Patch through the
/// clusters. Without a `gitops` section the method is Patch.
async fn workload_step(step: &str, ctx: &StepContext) -> Result<StepOutcome> {
    let commit = ctx
        .plan
        .spec
        .gitops
        .as_ref()
        .is_some_and(|g| g.quiesce.method == QuiesceMethod::Commit);
    match (step, commit) {
        ("QuiesceSource", true) => gitops::quiesce_source(ctx).await,
        ("UnquiesceTarget", true) => gitops::unquiesce_target(ctx).await,
        ("QuiesceTarget", true) => gitops::quiesce_target(ctx).await,
        ("UnquiesceSource", true) => gitops::unquiesce_source(ctx).await,
        ("RevertCommits", true) => gitops::revert_commits(ctx).await,
        ("QuiesceSource", false) => workloads::quiesce_source(ctx).await,
        ("UnquiesceTarget", false) => workloads::unquiesce_target(ctx).await,
        ("QuiesceTarget", false) => workloads::quiesce_target(ctx).await,
        ("UnquiesceSource", false) => workloads::unquiesce_source(ctx).await,
        ("RevertCommits", false) => Ok(StepOutcome::Skipped("Patch mode made no commits".into())),
        (other, _) => Ok(StepOutcome::Failed(format!(
            "step {other} is not part of this itinerary"
        ))),
    }
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
