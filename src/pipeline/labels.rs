//! Labels and annotations Ferry puts on the objects it creates. Temporary objects (movers, their
//! Secrets and Services) carry the owning migration's UID so cleanup finds every one by label, in both
//! clusters, even after a crash; lasting objects (target namespaces and PVCs) name the plan instead.

use std::collections::BTreeMap;

/// UID of the MigMigration that created a temporary object.
pub const MIGRATION_UID: &str = "migration.ferry.dev/migration-uid";
/// Name of the MigPlan an object belongs to (namespace in [`PLAN_NAMESPACE`]).
pub const PLAN: &str = "migration.ferry.dev/plan";
/// Namespace of that MigPlan.
pub const PLAN_NAMESPACE: &str = "migration.ferry.dev/plan-namespace";
/// Annotation on a target PVC: the source PVC it mirrors, `namespace/name`.
pub const SOURCE_PVC: &str = "migration.ferry.dev/source-pvc";
/// The standard managed-by label, for `kubectl get -l app.kubernetes.io/managed-by=ferry`.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Labels of an object that belongs to plan `namespace/name` and lasts beyond a migration.
pub fn plan_labels(plan_namespace: &str, plan_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), "ferry".to_string()),
        (PLAN.to_string(), plan_name.to_string()),
        (PLAN_NAMESPACE.to_string(), plan_namespace.to_string()),
    ])
}

/// Labels of a temporary object of migration `uid`, removed by [`temporary_selector`] at cleanup.
pub fn temporary_labels(plan_namespace: &str, plan_name: &str, uid: &str) -> BTreeMap<String, String> {
    let mut labels = plan_labels(plan_namespace, plan_name);
    labels.insert(MIGRATION_UID.to_string(), uid.to_string());
    labels
}

/// The label selector matching every temporary object of migration `uid`.
pub fn temporary_selector(uid: &str) -> String {
    format!("{MIGRATION_UID}={uid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_objects_are_found_by_the_migration_uid() {
        let labels = temporary_labels("ferry", "shop", "1234");
        let (key, value) = temporary_selector("1234")
            .split_once('=')
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .unwrap();
        assert_eq!(labels.get(&key), Some(&value));
        assert_eq!(labels.get(PLAN).map(String::as_str), Some("shop"));
    }
}
