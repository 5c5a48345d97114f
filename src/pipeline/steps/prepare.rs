//! Prepare (every itinerary) and the cleanup steps: the plan still has what the itinerary needs, and
//! no temporary object of another run of the same plan is left in either cluster.

use kube::ResourceExt;

use crate::Result;
use crate::pipeline::cleanup::{delete_temporary, stale_migrations};
use crate::pipeline::{StepContext, StepOutcome};

/// Prepare: the plan has volumes to move (a stage or cutover without any has nothing to do), and
/// movers left behind by other migrations of the plan are removed.
pub async fn prepare(ctx: &StepContext) -> Result<StepOutcome> {
    let mut removed = 0;
    for client in [&ctx.source, &ctx.target] {
        for uid in stale_migrations(client, &ctx.plan_namespace(), &ctx.plan.name_any(), &ctx.uid()).await? {
            removed += delete_temporary(client, &uid).await?;
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
    let removed = delete_temporary(&ctx.source, &uid).await? + delete_temporary(&ctx.target, &uid).await?;
    Ok(StepOutcome::Done(format!(
        "Removed {removed} temporary object(s)."
    )))
}
