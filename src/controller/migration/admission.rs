//! Admission of a `MigMigration`: its plan exists and is Ready, and no older unfinished migration of
//! the same plan exists, in any namespace (one migration per plan runs at a time, oldest first); and
//! the refusal of a stage or cutover of a plan whose target is live since a cutover. Pure, so every
//! rule is unit-tested; the reconciler feeds it what it observed.

use kube::ResourceExt;

use crate::api::condition::{self, READY};
use crate::api::{Category, Condition, Itinerary, MigMigration, MigPlan};

/// Why `migration` must not run at all: a stage or cutover of a plan that was cut over (the target
/// app may have written since, and a sync from the stopped source would erase it). `None` for a
/// rollback, a migration that already started, or the cutover that made the record.
pub(crate) fn cut_over_refusal(migration: &MigMigration, plan: &MigPlan) -> Option<String> {
    let record = plan.status.as_ref()?.cutover.as_ref()?;
    if Itinerary::for_spec(&migration.spec) == Itinerary::Rollback
        || has_started(migration)
        || migration.uid().as_deref() == Some(record.uid.as_str())
    {
        return None;
    }
    Some(format!(
        "MigPlan {}/{} was cut over by MigMigration {} at {}: the target is the live copy, and a {} would \
         overwrite it with the stopped source's data. Run a rollback (ferry rollback) first to migrate again.",
        plan.namespace().unwrap_or_default(),
        plan.name_any(),
        record.migration,
        record.time,
        if migration.spec.stage || migration.spec.migrate_state {
            "stage"
        } else {
            "cutover"
        }
    ))
}

/// Whether the migration's itinerary has begun (a rule for new migrations does not stop it half-way).
fn has_started(migration: &MigMigration) -> bool {
    migration.status.as_ref().is_some_and(|s| !s.pipeline.is_empty())
}

/// Condition types that mark a migration as finished.
pub(crate) const FINISHED: &[&str] = &["Succeeded", "Failed", "Canceled"];

/// Whether these conditions say the migration has finished.
pub(crate) fn is_finished(conditions: &[Condition]) -> bool {
    FINISHED.iter().any(|t| condition::is_true(conditions, t))
}

/// The conditions deciding whether `migration` may run: problems with its plan, an older unfinished
/// migration of the same plan, or `Ready`.
pub(crate) fn admission(
    migration: &MigMigration,
    plan: Option<&MigPlan>,
    siblings: &[MigMigration],
) -> Vec<Condition> {
    let own_ns = migration.namespace().unwrap_or_default();
    let plan_ref = &migration.spec.mig_plan_ref;
    let plan_name = format!("{}/{}", plan_ref.namespace_or(&own_ns), plan_ref.name);
    let mut conditions = Vec::new();
    match plan {
        None => conditions.push(Condition::holds(
            "InvalidPlanRef",
            Category::Critical,
            "NotFound",
            format!("MigPlan {plan_name} does not exist."),
        )),
        Some(plan) => {
            let plan_conditions = plan
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default();
            if plan.spec.closed == Some(true) && !has_started(migration) {
                conditions.push(Condition::holds(
                    "PlanClosed",
                    Category::Critical,
                    "Closed",
                    format!("MigPlan {plan_name} is closed (spec.closed: true) and runs no more migrations; set closed: false to reopen it."),
                ));
            }
            let identity = crate::api::mover_identity::resolve(
                plan.spec
                    .transfer
                    .as_ref()
                    .map(|t| t.identity_fields())
                    .unwrap_or_default(),
                migration.spec.identity_fields(),
            );
            if let (Err(problem), false) = (identity, has_started(migration)) {
                conditions.push(Condition::holds(
                    "InvalidMoverIdentity",
                    Category::Critical,
                    problem.reason,
                    problem.message,
                ));
            }
            if !condition::is_true(plan_conditions, READY) {
                conditions.push(Condition::holds(
                    "PlanNotReady",
                    Category::Critical,
                    "NotReady",
                    format!("MigPlan {plan_name} is not ready; fix the problems its conditions list."),
                ));
            }
        }
    }
    if let Some(older) = older_unfinished(migration, siblings) {
        conditions.push(Condition::holds(
            "MigrationInProgress",
            Category::Critical,
            "AnotherMigrationRunning",
            format!("MigMigration {older} of plan {plan_name} has not finished; this one waits for it."),
        ));
    }
    if conditions.is_empty() {
        conditions.push(Condition::holds(
            READY,
            Category::Required,
            "Ready",
            "The migration is ready.",
        ));
    } else {
        conditions.push(Condition::fails(
            READY,
            Category::Required,
            "NotReady",
            "The migration cannot start; see the other conditions.",
        ));
    }
    conditions
}

/// The unfinished migration of the same plan that must finish before `migration` may start: one
/// that has started (whatever its age), else the oldest created before it (ties broken by name).
/// `None` for a migration that has started itself: nothing stops it half-way.
///
/// Both rules are needed because the reconciler decides from its cache: two migrations created
/// within moments (an Argo CD PreSync hook's `ferry stage` and a user's) can each be admitted before
/// the cache shows the other. Once one has started, an older one seen later waits for it, instead of
/// both running (two receivers on one target PVC) or the running one being stopped half-way.
fn older_unfinished(migration: &MigMigration, siblings: &[MigMigration]) -> Option<String> {
    if has_started(migration) {
        return None;
    }
    let key = |m: &MigMigration| (m.metadata.creation_timestamp.clone().map(|t| t.0), m.name_any());
    // Each migration's plan reference defaults to its own namespace.
    let plan_of = |m: &MigMigration| {
        let ns = m.namespace().unwrap_or_default();
        (
            m.spec.mig_plan_ref.namespace_or(&ns).to_string(),
            m.spec.mig_plan_ref.name.clone(),
        )
    };
    let same_plan = |m: &MigMigration| plan_of(m) == plan_of(migration);
    siblings
        .iter()
        .filter(|m| m.uid() != migration.uid() && same_plan(m))
        .filter(|m| {
            !is_finished(
                m.status
                    .as_ref()
                    .map(|s| s.conditions.as_slice())
                    .unwrap_or_default(),
            )
        })
        .filter(|m| has_started(m) || key(m) < key(migration))
        .min_by_key(|m| (!has_started(m), key(m)))
        .map(|m| format!("{}/{}", m.namespace().unwrap_or_default(), m.name_any()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MigMigrationStatus;

    fn migration(name: &str, created: i64, finished: bool) -> MigMigration {
        migration_in(
            "ferry",
            name,
            created,
            finished,
            serde_json::json!({"name": "plan"}),
        )
    }

    fn migration_in(
        ns: &str,
        name: &str,
        created: i64,
        finished: bool,
        plan_ref: serde_json::Value,
    ) -> MigMigration {
        let mut m: MigMigration = serde_json::from_value(serde_json::json!({
            "apiVersion": "migration.ferry.dev/v1alpha1", "kind": "MigMigration",
            "metadata": {"name": name, "namespace": ns, "uid": name,
                         "creationTimestamp": k8s_openapi::jiff::Timestamp::from_second(created).unwrap().to_string()},
            "spec": {"migPlanRef": plan_ref}
        }))
        .unwrap();
        if finished {
            let done = Condition::holds("Succeeded", Category::Advisory, "Completed", "done").durable();
            m.status = Some(MigMigrationStatus {
                conditions: vec![done],
                ..Default::default()
            });
        }
        m
    }

    fn plan(ready: bool) -> MigPlan {
        let mut plan = MigPlan::new("plan", Default::default());
        let condition = if ready {
            Condition::holds(READY, Category::Required, "Ready", "ok")
        } else {
            Condition::fails(READY, Category::Required, "NotReady", "no")
        };
        plan.status = Some(crate::api::MigPlanStatus {
            conditions: vec![condition],
            ..Default::default()
        });
        plan
    }

    fn types(conditions: &[Condition]) -> Vec<(&str, bool)> {
        conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.is_true()))
            .collect()
    }

    #[test]
    fn a_ready_plan_accepts_the_migration() {
        let m = migration("a", 10, false);
        assert_eq!(
            types(&admission(&m, Some(&plan(true)), std::slice::from_ref(&m))),
            [("Ready", true)]
        );
    }

    #[test]
    fn a_missing_or_unready_plan_blocks() {
        let m = migration("a", 10, false);
        assert_eq!(
            types(&admission(&m, None, &[])),
            [("InvalidPlanRef", true), ("Ready", false)]
        );
        assert_eq!(
            types(&admission(&m, Some(&plan(false)), &[])),
            [("PlanNotReady", true), ("Ready", false)]
        );
    }

    #[test]
    fn only_the_oldest_unfinished_migration_of_a_plan_runs() {
        let (old, new, done) = (
            migration("old", 10, false),
            migration("new", 20, false),
            migration("done", 5, true),
        );
        let all = [old.clone(), new.clone(), done];
        assert_eq!(
            types(&admission(&old, Some(&plan(true)), &all))[0],
            ("Ready", true)
        );
        let blocked = admission(&new, Some(&plan(true)), &all);
        assert_eq!(types(&blocked), [("MigrationInProgress", true), ("Ready", false)]);
        assert!(blocked[0].message.as_deref().unwrap().contains("ferry/old"));
    }

    #[test]
    fn a_migration_that_started_first_runs_on_and_an_older_one_seen_later_waits() {
        // The race: `new` was admitted and started before the cache showed `old`.
        let (old, mut new) = (migration("old", 10, false), migration("new", 20, false));
        new.status = Some(MigMigrationStatus {
            pipeline: vec![crate::api::PipelineStep {
                name: "Prepare".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let all = [old.clone(), new.clone()];
        assert_eq!(
            types(&admission(&new, Some(&plan(true)), &all))[0],
            ("Ready", true),
            "a started migration is never stopped half-way"
        );
        let blocked = admission(&old, Some(&plan(true)), &all);
        assert_eq!(types(&blocked), [("MigrationInProgress", true), ("Ready", false)]);
        assert!(blocked[0].message.as_deref().unwrap().contains("ferry/new"));
    }

    #[test]
    fn a_closed_plan_runs_no_new_migration_and_lets_a_running_one_finish() {
        let mut closed = plan(true);
        closed.spec.closed = Some(true);
        let new = migration("new", 10, false);
        assert_eq!(
            types(&admission(&new, Some(&closed), &[])),
            [("PlanClosed", true), ("Ready", false)]
        );
        let mut running = new.clone();
        running.status = Some(crate::api::MigMigrationStatus {
            pipeline: vec![crate::api::PipelineStep::not_started(crate::api::Step::Prepare)],
            ..Default::default()
        });
        assert_eq!(types(&admission(&running, Some(&closed), &[])), [("Ready", true)]);
    }

    #[test]
    fn a_contradicting_mover_identity_is_a_condition_not_a_crash() {
        let mut m = migration("a", 10, false);
        m.spec.run_as_root = Some(true);
        m.spec.run_as_user = Some(999);
        let verdict = admission(&m, Some(&plan(true)), &[]);
        assert_eq!(
            types(&verdict),
            [("InvalidMoverIdentity", true), ("Ready", false)]
        );
        assert_eq!(verdict[0].reason.as_deref(), Some("RootWithUser"));
        let message = verdict[0].message.as_deref().unwrap();
        assert!(
            message.contains("runAsUser: 999") && !message.contains('\n'),
            "{message}"
        );
        // The plan's restricted default is fine, and a migration's runAsRoot replaces it.
        let mut restricted = plan(true);
        restricted.spec.transfer = Some(crate::api::plan::Transfer {
            run_as_root: Some(false),
            run_as_user: Some(1000),
            ..Default::default()
        });
        let mut root = migration("b", 10, false);
        root.spec.run_as_root = Some(true);
        assert_eq!(
            types(&admission(&root, Some(&restricted), &[])),
            [("Ready", true)]
        );
    }

    #[test]
    fn one_migration_per_plan_whatever_namespace_it_is_in() {
        let here = migration("here", 20, false);
        let elsewhere = migration_in(
            "team",
            "elsewhere",
            10,
            false,
            serde_json::json!({"name": "plan", "namespace": "ferry"}),
        );
        let other_plan = migration_in("team", "other", 5, false, serde_json::json!({"name": "plan"}));
        let all = [here.clone(), elsewhere, other_plan];
        let blocked = admission(&here, Some(&plan(true)), &all);
        assert_eq!(types(&blocked), [("MigrationInProgress", true), ("Ready", false)]);
        assert!(blocked[0].message.as_deref().unwrap().contains("team/elsewhere"));
    }

    #[test]
    fn a_cut_over_plan_refuses_stages_and_cutovers_until_a_rollback() {
        let mut cut = plan(true);
        cut.metadata.namespace = Some("ferry".into());
        cut.status.as_mut().unwrap().cutover = Some(crate::api::plan::CutoverRecord {
            migration: "ferry/cutover".into(),
            uid: "cutover".into(),
            time: "2026-12-01T10:00:00Z".into(),
        });
        let with = |name: &str, set: fn(&mut crate::api::MigMigrationSpec)| {
            let mut m = migration(name, 30, false);
            set(&mut m.spec);
            m
        };
        let stage = with("stage", |s| s.stage = true);
        let refusal = cut_over_refusal(&stage, &cut).expect("a stage is refused");
        assert!(
            refusal.contains("ferry/cutover") && refusal.contains("rollback"),
            "{refusal}"
        );
        assert!(cut_over_refusal(&with("again", |s| s.quiesce_pods = true), &cut).is_some());
        assert!(cut_over_refusal(&with("back", |s| s.rollback = true), &cut).is_none());
        assert!(
            cut_over_refusal(&with("cutover", |s| s.quiesce_pods = true), &cut).is_none(),
            "its own"
        );
        assert!(cut_over_refusal(&stage, &plan(true)).is_none(), "not cut over");
    }
}
