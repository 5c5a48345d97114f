//! Pure quiesce and unquiesce merge patches per workload kind. Each patch is idempotent: quiescing a
//! quiesced object keeps the recorded original value, unquiescing an untouched object is a no-op.

use serde_json::{Value, json};

/// Annotation holding the replica count before quiesce.
pub const PRE_REPLICAS: &str = "migration.ferry.dev/pre-quiesce-replicas";
/// Annotation holding a DaemonSet's node selector before quiesce (JSON).
pub const PRE_NODE_SELECTOR: &str = "migration.ferry.dev/pre-quiesce-node-selector";
/// Annotation holding a Job's parallelism before quiesce.
pub const PRE_PARALLELISM: &str = "migration.ferry.dev/pre-quiesce-parallelism";
/// Annotation holding a CronJob's `suspend` before quiesce.
pub const PRE_SUSPEND: &str = "migration.ferry.dev/pre-quiesce-suspend";
/// The node-selector key that keeps a quiesced DaemonSet's pods off every node.
pub const NO_NODE_KEY: &str = "migration.ferry.dev/quiesced";

/// The workload kinds Ferry quiesces, with how each is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `spec.replicas` → 0.
    Deployment,
    /// `spec.replicas` → 0.
    StatefulSet,
    /// `spec.replicas` → 0 (only ReplicaSets no Deployment owns).
    ReplicaSet,
    /// `spec.replicas` → 0 (only ReplicationControllers no DeploymentConfig owns).
    ReplicationController,
    /// OpenShift `apps.openshift.io/v1`: `spec.replicas` → 0.
    DeploymentConfig,
    /// A node selector that matches no node.
    DaemonSet,
    /// `spec.parallelism` → 0.
    Job,
    /// `spec.suspend` → true.
    CronJob,
}

impl Kind {
    /// All kinds, in the order they are quiesced (controllers before what they own).
    pub const ALL: [Kind; 8] = [
        Kind::CronJob,
        Kind::Deployment,
        Kind::DeploymentConfig,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::ReplicaSet,
        Kind::ReplicationController,
        Kind::Job,
    ];

    /// `(group, version, kind, plural)` of the kind's API.
    pub fn api(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Kind::Deployment => ("apps", "v1", "Deployment", "deployments"),
            Kind::StatefulSet => ("apps", "v1", "StatefulSet", "statefulsets"),
            Kind::ReplicaSet => ("apps", "v1", "ReplicaSet", "replicasets"),
            Kind::DaemonSet => ("apps", "v1", "DaemonSet", "daemonsets"),
            Kind::ReplicationController => ("", "v1", "ReplicationController", "replicationcontrollers"),
            Kind::DeploymentConfig => ("apps.openshift.io", "v1", "DeploymentConfig", "deploymentconfigs"),
            Kind::Job => ("batch", "v1", "Job", "jobs"),
            Kind::CronJob => ("batch", "v1", "CronJob", "cronjobs"),
        }
    }

    /// Whether Ferry leaves `object` alone because a controller it quiesces already owns it, or because
    /// it is not the app's but one of Ferry's own temporary objects (a hook's Job, by its migration-UID
    /// label): quiescing it would record it as a workload the target must have.
    pub fn is_owned_elsewhere(self, object: &Value) -> bool {
        if object["metadata"]["labels"][crate::pipeline::labels::MIGRATION_UID].is_string() {
            return true;
        }
        let owner_kinds: &[&str] = match self {
            Kind::ReplicaSet => &["Deployment"],
            Kind::ReplicationController => &["DeploymentConfig"],
            Kind::Job => &["CronJob"],
            _ => return false,
        };
        object["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|owners| {
                owners
                    .iter()
                    .any(|o| owner_kinds.contains(&o["kind"].as_str().unwrap_or("")))
            })
    }
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object["metadata"]["annotations"][key].as_str()
}

/// The merge patch that stops `object`, or `None` when it is already stopped with its original value
/// recorded. The recorded value is only written when no record exists, so a retried quiesce never
/// overwrites the original with the quiesced value.
pub fn quiesce_patch(kind: Kind, object: &Value) -> Option<Value> {
    let spec = &object["spec"];
    match kind {
        Kind::Deployment
        | Kind::StatefulSet
        | Kind::ReplicaSet
        | Kind::ReplicationController
        | Kind::DeploymentConfig => {
            let replicas = spec["replicas"].as_i64().unwrap_or(1);
            record_and_set(
                object,
                PRE_REPLICAS,
                replicas.to_string(),
                replicas == 0,
                json!({"replicas": 0}),
            )
        }
        Kind::Job => {
            let parallelism = spec["parallelism"].as_i64().unwrap_or(1);
            record_and_set(
                object,
                PRE_PARALLELISM,
                parallelism.to_string(),
                parallelism == 0,
                json!({"parallelism": 0}),
            )
        }
        Kind::CronJob => {
            let suspend = spec["suspend"].as_bool().unwrap_or(false);
            record_and_set(
                object,
                PRE_SUSPEND,
                suspend.to_string(),
                suspend,
                json!({"suspend": true}),
            )
        }
        Kind::DaemonSet => {
            let selector = &spec["template"]["spec"]["nodeSelector"];
            let stopped = selector[NO_NODE_KEY].is_string();
            let previous = if selector.is_object() {
                selector.to_string()
            } else {
                "{}".to_string()
            };
            let change = json!({"template": {"spec": {"nodeSelector": {NO_NODE_KEY: "true"}}}});
            record_and_set(object, PRE_NODE_SELECTOR, previous, stopped, change)
        }
    }
}

fn record_and_set(object: &Value, key: &str, current: String, stopped: bool, change: Value) -> Option<Value> {
    let recorded = annotation(object, key).is_some();
    match (recorded, stopped) {
        (true, true) => None,
        (true, false) => Some(json!({"spec": change})),
        (false, _) => Some(json!({"metadata": {"annotations": {key: current}}, "spec": change})),
    }
}

/// The merge patch that restores `object` to its recorded pre-quiesce state and removes the record, or
/// `None` when Ferry never quiesced it.
pub fn unquiesce_patch(kind: Kind, object: &Value) -> Option<Value> {
    let remove = |key: &str| json!({key: null});
    let restore = match kind {
        Kind::Deployment
        | Kind::StatefulSet
        | Kind::ReplicaSet
        | Kind::ReplicationController
        | Kind::DeploymentConfig => {
            let replicas: i64 = annotation(object, PRE_REPLICAS)?.parse().ok()?;
            (PRE_REPLICAS, json!({"replicas": replicas}))
        }
        Kind::Job => {
            let parallelism: i64 = annotation(object, PRE_PARALLELISM)?.parse().ok()?;
            (PRE_PARALLELISM, json!({"parallelism": parallelism}))
        }
        Kind::CronJob => {
            let suspend: bool = annotation(object, PRE_SUSPEND)?.parse().ok()?;
            (PRE_SUSPEND, json!({"suspend": suspend}))
        }
        Kind::DaemonSet => {
            annotation(object, PRE_NODE_SELECTOR)?;
            (
                PRE_NODE_SELECTOR,
                json!({"template": {"spec": {"nodeSelector": {NO_NODE_KEY: null}}}}),
            )
        }
    };
    let (key, spec) = restore;
    Some(json!({"metadata": {"annotations": remove(key)}, "spec": spec}))
}

/// The merge patch that gives the target cluster's copy of a workload the value recorded on the
/// source's `object` (UnquiesceTarget in Patch mode), or `None` when the source carries no record.
pub fn restore_on_target_patch(kind: Kind, source_object: &Value) -> Option<Value> {
    let restore = unquiesce_patch(kind, source_object)?;
    Some(json!({"spec": restore["spec"].clone()}))
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
