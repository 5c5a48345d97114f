//! `MigMigration` reconciler: admit the migration against its plan ([`admission`]), then run its
//! itinerary one step at a time ([`execute`]), writing status after every step so a controller killed
//! at any point resumes from what the status says. A finished or deleted migration has its temporary
//! objects removed from both clusters before its finalizer is released.
//!
//! ```text
//!  migration (cache if it is our last write, else GET) ─► deleting? ─► cleanup, release finalizer
//!                         ─► finished? ─► cleanup once, release finalizer
//!                         ─► admission ─► not admitted: conditions, look again later
//!                                      └► admitted: finalizer, clients, engine steps ─► status
//! ```

mod admission;
mod execute;

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::{Context, status, stores};
use crate::Result;
use crate::api::MigMigration;
use crate::api::condition::{self, READY};
pub(crate) use admission::{admission, cut_over_refusal, is_finished};

/// Holds a migration until its temporary objects are gone from both clusters.
pub const FINALIZER: &str = "migration.ferry.dev/cleanup";

/// Reconciles one `MigMigration`.
pub async fn reconcile(cached: Arc<MigMigration>, ctx: Arc<Context>) -> Result<Action> {
    use tracing::Instrument as _;
    let own_ns = cached.namespace().unwrap_or_default();
    let plan = &cached.spec.mig_plan_ref;
    // Every log line of this reconcile carries the migration and its plan (JSON logs: `span`).
    let span = tracing::info_span!(
        "reconcile",
        migration = %format!("{own_ns}/{}", cached.name_any()),
        plan = %format!("{}/{}", plan.namespace_or(&own_ns), plan.name),
    );
    reconcile_migration(cached, ctx).instrument(span).await
}

async fn reconcile_migration(cached: Arc<MigMigration>, ctx: Arc<Context>) -> Result<Action> {
    let own_ns = cached.namespace().unwrap_or_default();
    // The watch cache can lag behind this reconciler's own status writes, and a stale status would run
    // a completed step again: use the cached copy only when it is, to the resourceVersion, what this
    // controller wrote last; otherwise read the migration fresh.
    let key = stores::object_key(cached.as_ref());
    let migration = if ctx.written.is_latest(cached.as_ref()) {
        // Woken by its own status write (or the plan's): the step it runs asked for a later look.
        if let Some(wait) = ctx.pacing.remaining(&key) {
            return Ok(Action::requeue(wait));
        }
        (*cached).clone()
    } else if ctx.written.is_superseded(cached.as_ref()) {
        // The cache holds this controller's write before its latest (woken by a mover pod a moment
        // after a status write): the latest one's watch event reconciles it, with no read now.
        return Ok(Action::requeue(std::time::Duration::from_secs(5)));
    } else {
        let api = Api::<MigMigration>::namespaced(ctx.client.clone(), &own_ns);
        match api.get_opt(&cached.name_any()).await? {
            Some(migration) => migration,
            None => return Ok(Action::await_change()),
        }
    };
    ctx.pacing.clear(&key);
    let current = migration.status.clone().unwrap_or_default();
    if migration.metadata.deletion_timestamp.is_some() || is_finished(&current.conditions) {
        execute::release(&migration, &ctx).await?;
        return Ok(Action::await_change());
    }

    // A migration that has not started is admitted against fresh reads (a sibling created a moment
    // ago, or the plan's cutover record, may not be in the watch caches yet); one that runs reads its
    // plan and siblings from the caches, since no rule for new migrations stops it half-way.
    let started = !current.pipeline.is_empty();
    let plan_ref = &migration.spec.mig_plan_ref;
    let plan = ctx
        .plan(plan_ref.namespace_or(&own_ns), &plan_ref.name, started)
        .await?;
    if let Some(why) = plan.as_ref().and_then(|plan| cut_over_refusal(&migration, plan)) {
        return execute::refuse(&migration, current, why, &ctx).await;
    }
    // One migration per plan, whatever namespace the MigMigration was created in.
    let plan_ns = plan_ref.namespace_or(&own_ns);
    let siblings = ctx
        .migrations((plan_ns, &plan_ref.name), None, None, started)
        .await?;
    let verdict = admission(&migration, plan.as_ref(), &siblings);
    let now = status::now();
    let mut desired = current.clone();
    execute::fold_admission(&mut desired.conditions, verdict, &now);
    match condition::unused_fields(&migration.spec.unused_fields()) {
        Some(unused) => condition::set(&mut desired.conditions, unused, &now),
        None => condition::remove(&mut desired.conditions, condition::UNUSED_FIELDS),
    }
    desired.observed_generation = migration.metadata.generation;

    match plan {
        Some(plan) if condition::is_true(&desired.conditions, READY) => {
            if migration.spec.canceled {
                return execute::cancel(&migration, Some(&plan), desired, &ctx).await;
            }
            execute::run(&migration, plan, desired, &ctx).await
        }
        plan => {
            if migration.spec.canceled {
                return execute::cancel(&migration, plan.as_ref(), desired, &ctx).await;
            }
            if desired.pipeline.is_empty() {
                desired.phase = Some("Validating".into());
            }
            execute::write(&ctx, &migration, &current, &desired).await?;
            Ok(Action::requeue(ctx.retry))
        }
    }
}
