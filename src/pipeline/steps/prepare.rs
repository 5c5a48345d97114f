//! Prepare (every itinerary) and the cleanup steps: the plan still has what the itinerary needs, and
//! no temporary object of another run of the same plan is left in either cluster.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};

use crate::Result;
use crate::api::Itinerary;
use crate::pipeline::cleanup::{Side, delete_temporary_kinds, kinds_of, stale_migrations};
use crate::pipeline::labels;
use crate::pipeline::{StepContext, StepOutcome};

/// Prepare: the plan has volumes to move (a stage or cutover without any has nothing to do), and
/// movers left behind by other migrations of the plan are removed.
pub async fn prepare(ctx: &StepContext) -> Result<StepOutcome> {
    let mut removed = 0;
    for (client, side) in [(&ctx.source, Side::Source), (&ctx.target, Side::Target)] {
        let (plan_ns, plan) = (ctx.plan_namespace(), ctx.plan.name_any());
        for uid in stale_migrations(client, side, &plan_ns, &plan, &ctx.uid()).await? {
            removed += delete_temporary_kinds(client, &uid, &kinds_of(None, side)).await?;
        }
    }
    let volumes = ctx.volumes().len();
    let mut message = format!("Plan {} has {volumes} volume(s) to move.", ctx.plan_key());
    if removed > 0 {
        message.push_str(&format!(" Removed {removed} object(s) left by earlier runs."));
    }
    Ok(StepOutcome::Done(message))
}

/// CleanupMovers / Cleanup: every temporary object of this migration, in both clusters.
pub async fn cleanup(ctx: &StepContext) -> Result<StepOutcome> {
    let uid = ctx.uid();
    let itinerary = Some(Itinerary::for_spec(&ctx.migration.spec));
    let removed = delete_temporary_kinds(&ctx.source, &uid, &kinds_of(itinerary, Side::Source)).await?
        + delete_temporary_kinds(&ctx.target, &uid, &kinds_of(itinerary, Side::Target)).await?;
    Ok(StepOutcome::Done(format!(
        "Removed {removed} temporary object(s)."
    )))
}

/// Cleanup (the cutover's last step): the temporary objects, then Ferry's bookkeeping annotation on
/// the migrated target PVCs (`migration.ferry.dev/source-pvc`), unless the migration sets MTC's
/// `keepAnnotations`. The source's pre-quiesce records stay: they are a rollback's way back.
pub async fn cleanup_cutover(ctx: &StepContext) -> Result<StepOutcome> {
    let outcome = cleanup(ctx).await?;
    if ctx.migration.spec.keep_annotations == Some(true) {
        return Ok(outcome);
    }
    let remove = serde_json::json!({"metadata": {"annotations": {labels::SOURCE_PVC: null}}});
    let mut cleared = 0;
    for volume in ctx.volumes() {
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(ctx.target.clone(), &volume.target_namespace);
        let Some(claim) = claims.get_opt(&volume.target_name).await? else {
            continue;
        };
        if claim.annotations().contains_key(labels::SOURCE_PVC) {
            claims
                .patch(
                    &volume.target_name,
                    &PatchParams::default(),
                    &Patch::Merge(&remove),
                )
                .await?;
            cleared += 1;
        }
    }
    Ok(match outcome {
        StepOutcome::Done(message) if cleared > 0 => StepOutcome::Done(format!(
            "{message} Removed Ferry's annotation from {cleared} target PVC(s) (keepAnnotations keeps it)."
        )),
        other => other,
    })
}
