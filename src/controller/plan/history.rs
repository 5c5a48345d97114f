//! Pruning the stage migrations the triggers created: a `*/5` schedule makes 288 MigMigrations a day,
//! and every reconcile lists them. Like a CronJob's history limits, the newest
//! `successfulHistoryLimit` succeeded and `failedHistoryLimit` failed (or canceled) triggered stages
//! of a plan are kept and older ones deleted. Only finished migrations the plan owns (the triggers set
//! the owner reference and the trigger label) are ever deleted: a person's or the CLI's never are.

use kube::api::DeleteParams;
use kube::{Api, ResourceExt};

use super::triggers::TRIGGER_LABEL;
use crate::Result;
use crate::api::MigMigration;
use crate::api::MigPlan;
use crate::api::condition;
use crate::api::plan::DEFAULT_HISTORY_LIMIT;
use crate::controller::Context;

/// Names of the migrations to delete: triggered (owned by `plan_uid`, labelled by a trigger, not the
/// CLI), finished, and beyond the newest `keep_succeeded` / `keep_failed` of their kind.
pub(crate) fn prunable(
    migrations: &[MigMigration],
    plan_uid: &str,
    keep_succeeded: usize,
    keep_failed: usize,
) -> Vec<String> {
    let triggered = |m: &&MigMigration| {
        m.labels().get(TRIGGER_LABEL).is_some_and(|t| t != "cli")
            && m.owner_references().iter().any(|o| o.uid == plan_uid)
    };
    let conditions = |m: &MigMigration| {
        m.status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default()
    };
    fn newest_first(mut list: Vec<&MigMigration>) -> Vec<&MigMigration> {
        list.sort_by_key(|m| std::cmp::Reverse((m.creation_timestamp().map(|t| t.0), m.name_any())));
        list
    }
    let succeeded = newest_first(
        migrations
            .iter()
            .filter(triggered)
            .filter(|m| condition::is_true(&conditions(m), "Succeeded"))
            .collect(),
    );
    let failed = newest_first(
        migrations
            .iter()
            .filter(triggered)
            .filter(|m| {
                let c = conditions(m);
                condition::is_true(&c, "Failed") || condition::is_true(&c, "Canceled")
            })
            .collect(),
    );
    succeeded
        .into_iter()
        .skip(keep_succeeded)
        .chain(failed.into_iter().skip(keep_failed))
        .map(|m| m.name_any())
        .collect()
}

/// Deletes the plan's triggered stage migrations beyond its history limits; returns how many.
pub(super) async fn prune(ctx: &Context, plan: &MigPlan) -> Result<usize> {
    let triggers = plan.spec.triggers.clone().unwrap_or_default();
    let limit = |value: Option<u32>| value.unwrap_or(DEFAULT_HISTORY_LIMIT) as usize;
    let namespace = plan.namespace().unwrap_or_default();
    let api = Api::<MigMigration>::namespaced(ctx.client.clone(), &namespace);
    // From the watch cache: a stale entry only means a DELETE answered 404, or one pass later.
    let migrations = ctx
        .migrations(
            (&namespace, &plan.name_any()),
            Some(&namespace),
            Some(TRIGGER_LABEL),
            true,
        )
        .await?;
    let doomed = prunable(
        &migrations,
        &plan.uid().unwrap_or_default(),
        limit(triggers.successful_history_limit),
        limit(triggers.failed_history_limit),
    );
    for name in &doomed {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => return Err(err.into()),
        }
    }
    if !doomed.is_empty() {
        tracing::info!(plan = %format!("{namespace}/{}", plan.name_any()), deleted = doomed.len(), "pruned triggered stage migrations beyond the history limits");
    }
    Ok(doomed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration(
        name: &str,
        created: i64,
        trigger: Option<&str>,
        owned: bool,
        result: Option<&str>,
    ) -> MigMigration {
        let mut value = serde_json::json!({
            "apiVersion": "migration.ferry.dev/v1alpha1", "kind": "MigMigration",
            "metadata": {"name": name, "namespace": "ferry",
                         "creationTimestamp": k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + created).unwrap().to_string()},
            "spec": {"migPlanRef": {"name": "plan"}, "stage": true},
        });
        if let Some(trigger) = trigger {
            value["metadata"]["labels"] = serde_json::json!({TRIGGER_LABEL: trigger});
        }
        if owned {
            value["metadata"]["ownerReferences"] = serde_json::json!([{
                "apiVersion": "migration.ferry.dev/v1alpha1", "kind": "MigPlan", "name": "plan", "uid": "plan-uid"}]);
        }
        if let Some(result) = result {
            value["status"] = serde_json::json!({"conditions": [{
                "type": result, "status": "True", "category": "Advisory", "durable": true,
                "lastTransitionTime": "2026-12-01T00:00:00Z"}]});
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_newest_triggered_stages_of_each_result_are_kept() {
        let mut all = Vec::new();
        for i in 0..4 {
            all.push(migration(
                &format!("ok-{i}"),
                i,
                Some("schedule"),
                true,
                Some("Succeeded"),
            ));
            all.push(migration(
                &format!("bad-{i}"),
                i,
                Some("push"),
                true,
                Some("Failed"),
            ));
        }
        all.push(migration("running", 10, Some("schedule"), true, None));
        all.push(migration("by-hand", 0, None, false, Some("Succeeded")));
        all.push(migration("cli", 0, Some("cli"), true, Some("Succeeded")));
        all.push(migration(
            "other-plan",
            0,
            Some("schedule"),
            false,
            Some("Succeeded"),
        ));
        let mut doomed = prunable(&all, "plan-uid", 2, 1);
        doomed.sort();
        assert_eq!(doomed, ["bad-0", "bad-1", "bad-2", "ok-0", "ok-1"]);
        assert!(prunable(&all, "plan-uid", 5, 5).is_empty());
    }
}
