//! The plan's cutover record (`MigPlan.status.cutover`): written by UnquiesceTarget *before* it starts
//! the app on the target, removed by a rollback only once it has fully succeeded. While it is there
//! the target is the live copy, and admission refuses stages and other cutovers of the plan: rsync
//! `--delete` from the stopped source would erase what the app wrote on the target since.

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};

use crate::Result;
use crate::api::MigPlan;
use crate::api::plan::CutoverRecord;
use crate::pipeline::StepContext;

/// Records this migration as the plan's cutover (idempotent: a rerun finds its own record).
pub async fn record(ctx: &StepContext) -> Result<()> {
    let uid = ctx.uid();
    let ours = |plan: &MigPlan| {
        plan.status
            .as_ref()
            .and_then(|s| s.cutover.as_ref())
            .is_some_and(|c| c.uid == uid)
    };
    // The plan this reconcile read is fresh enough to skip the write once it is done (UnquiesceTarget
    // looks every 0.5 s in Commit mode); only before that is the plan read again, so a rerun keeps
    // the record's first time.
    if ours(&ctx.plan) || ours(&fresh_plan(ctx).await?) {
        return Ok(());
    }
    let record = CutoverRecord {
        migration: format!(
            "{}/{}",
            ctx.migration.namespace().unwrap_or_default(),
            ctx.migration.name_any()
        ),
        uid,
        time: k8s_openapi::jiff::Timestamp::now().to_string(),
    };
    patch(ctx, serde_json::to_value(record)?).await
}

/// Removes the record after a successful rollback (idempotent).
pub async fn clear(ctx: &StepContext) -> Result<()> {
    // Only a cutover writes the record, and none runs beside this rollback: the plan this reconcile
    // read says whether there is one.
    if ctx
        .plan
        .status
        .as_ref()
        .and_then(|s| s.cutover.as_ref())
        .is_none()
    {
        return Ok(());
    }
    patch(ctx, serde_json::Value::Null).await
}

async fn fresh_plan(ctx: &StepContext) -> Result<MigPlan> {
    Ok(plans(ctx).get(&ctx.plan.name_any()).await?)
}

fn plans(ctx: &StepContext) -> Api<MigPlan> {
    Api::namespaced(ctx.host.clone(), &ctx.plan_namespace())
}

/// A merge patch of `status.cutover` alone: the plan reconciler's server-side applies never include
/// the field, so they neither own nor remove it.
async fn patch(ctx: &StepContext, value: serde_json::Value) -> Result<()> {
    let patch = serde_json::json!({"status": {"cutover": value}});
    plans(ctx)
        .patch_status(
            &ctx.plan.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}
