//! Pure helpers of the Commit-mode steps: the pre-quiesce record Ferry writes on the MigPlan before it
//! pushes (so a crash between push and status update never loses the source's replica counts), the
//! namespace filter and mapping of manifests, the "is this field applied in the cluster" comparison
//! and the step's wait limit. No I/O here.

use std::time::Duration;

use serde_json::Value;

use crate::api::plan::NameMapping;
use crate::git::manifests::Manifests;
use crate::git::{QuiescePlan, RecordedValue};

/// Annotation on the MigPlan (host cluster) holding the [`PreQuiesceRecord`] as JSON.
pub const PRE_QUIESCE_COMMIT: &str = "migration.ferry.dev/pre-quiesce-commit";

/// How long a Commit-mode step waits for the cluster (and Argo CD) to show its commit.
pub const WAIT_LIMIT: Duration = Duration::from_secs(600);

/// How often a waiting step looks again (QuiesceSource and UnquiesceTarget wait inside the downtime
/// window for Argo CD to report the commit: one GET of the Application a look).
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The values the source manifests had before Ferry's quiesce commit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreQuiesceRecord {
    /// UID of the migration that quiesced.
    pub migration_uid: String,
    /// The branch tip the quiesce edits were computed on.
    pub base_revision: String,
    /// One entry per quiesced field.
    pub workloads: Vec<RecordedWorkload>,
}

/// One field of one workload before quiesce.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecordedWorkload {
    /// `metadata.namespace` as written in the manifest (`None` when the manifest has none).
    pub namespace: Option<String>,
    /// Object kind (`Deployment`, ..., `Kustomization` for a kustomization `replicas:` entry).
    pub kind: String,
    /// Object name.
    pub name: String,
    /// JSON pointer of the field inside the object.
    pub field: String,
    /// The value before quiesce (`None`: not written, Kubernetes' default applied).
    pub value: Option<Value>,
}

impl PreQuiesceRecord {
    /// The record of `plan`, computed on `base_revision` for migration `migration_uid`.
    pub fn from_plan(migration_uid: &str, base_revision: &str, plan: &QuiescePlan) -> Self {
        let workloads = plan
            .recorded
            .iter()
            .map(|r| RecordedWorkload {
                namespace: r.namespace.clone(),
                kind: r.kind.clone(),
                name: r.name.clone(),
                field: r.field.clone(),
                value: r.previous.clone(),
            })
            .collect();
        Self {
            migration_uid: migration_uid.to_string(),
            base_revision: base_revision.to_string(),
            workloads,
        }
    }

    /// The recorded values with source namespaces renamed to the target's, ready for
    /// [`crate::git::quiesce::unquiesce_plan`].
    pub fn for_target(&self, mappings: &[NameMapping]) -> Vec<RecordedValue> {
        self.workloads
            .iter()
            .map(|w| RecordedValue {
                kind: w.kind.clone(),
                namespace: w.namespace.as_deref().map(|ns| map_namespace(ns, mappings)),
                name: w.name.clone(),
                field: w.field.clone(),
                previous: w.value.clone(),
                changed: true,
            })
            .collect()
    }
}

/// The target namespace of source namespace `namespace` (itself when not mapped).
pub fn map_namespace(namespace: &str, mappings: &[NameMapping]) -> String {
    mappings
        .iter()
        .find(|m| m.source == namespace)
        .map(|m| m.target.clone())
        .unwrap_or_else(|| namespace.to_string())
}

/// `manifests` without the objects whose `metadata.namespace` is set and not in `namespaces` (they
/// become `null`, so document and item indices, and thus edit locations, stay valid). Objects
/// without a namespace are kept: Argo CD puts them in the Application's destination namespace.
pub fn only_namespaces(manifests: &Manifests, namespaces: &[String]) -> Manifests {
    let keep = |object: &Value| {
        object["metadata"]["namespace"]
            .as_str()
            .is_none_or(|ns| namespaces.iter().any(|n| n == ns))
    };
    let mut filtered = manifests.clone();
    for file in &mut filtered.files {
        for document in &mut file.documents {
            let is_list = document["kind"].as_str().is_some_and(|k| k.ends_with("List"))
                && document["items"].is_array();
            if is_list {
                for item in document["items"].as_array_mut().into_iter().flatten() {
                    if !keep(item) {
                        *item = Value::Null;
                    }
                }
            } else if document.is_object() && !keep(document) {
                *document = Value::Null;
            }
        }
    }
    filtered
}

/// What a cluster object must show for a manifest to count as applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// Namespace in the cluster.
    pub namespace: String,
    /// Object kind.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// JSON pointer of the field.
    pub field: String,
    /// The value the manifest writes.
    pub value: Value,
}

impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}/{} {}={}",
            self.kind, self.namespace, self.name, self.field, self.value
        )
    }
}

/// The quiesce-relevant fields the manifests write, as cluster expectations. Kustomization entries
/// and fields the manifest leaves unset are not checked (the cluster's value comes from elsewhere);
/// objects without a namespace are expected in `default_namespace`.
pub fn expectations(plan: &QuiescePlan, default_namespace: &str) -> Vec<Expectation> {
    plan.recorded
        .iter()
        .filter(|r| r.kind != "Kustomization")
        .filter_map(|r| {
            Some(Expectation {
                namespace: r
                    .namespace
                    .clone()
                    .unwrap_or_else(|| default_namespace.to_string()),
                kind: r.kind.clone(),
                name: r.name.clone(),
                field: r.field.clone(),
                value: r.previous.clone()?,
            })
        })
        .collect()
}

/// Whether the cluster object shows the expected value (`None`: the object does not exist).
pub fn is_applied(expectation: &Expectation, object: Option<&Value>) -> bool {
    object.is_some_and(|object| object.pointer(&expectation.field) == Some(&expectation.value))
}

/// The outcome of a wait: Done with `done` when nothing is pending, Failed naming what is pending once
/// `elapsed` reaches [`WAIT_LIMIT`], InProgress otherwise.
pub fn wait_outcome(elapsed: Duration, pending: Vec<String>, done: String) -> crate::pipeline::StepOutcome {
    use crate::pipeline::StepOutcome;
    if pending.is_empty() {
        return StepOutcome::Done(done);
    }
    if elapsed >= WAIT_LIMIT {
        return StepOutcome::Failed(format!(
            "not applied after {} minutes: {}",
            WAIT_LIMIT.as_secs() / 60,
            pending.join("; ")
        ));
    }
    StepOutcome::InProgress {
        message: format!("waiting for the commit to be applied: {}", pending.join("; ")),
        progress: pending,
        after: POLL_INTERVAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::manifests::parse_file;
    use crate::git::quiesce;

    fn manifests(text: &str) -> Manifests {
        Manifests {
            files: vec![parse_file("apps/source/app.yaml", text).unwrap()],
        }
    }

    const APP: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 3\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n  namespace: other\nspec:\n  replicas: 2\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: api\n  spec:\n    replicas: 4\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: skip\n    namespace: other\n  spec:\n    replicas: 5\n";

    #[test]
    fn only_the_plan_namespaces_are_quiesced_and_locations_survive() {
        let all = manifests(APP);
        let filtered = only_namespaces(&all, &["shop".to_string()]);
        let plan = quiesce::plan(&filtered);
        let names: Vec<&str> = plan.recorded.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["web", "api"]);
        let documents: Vec<usize> = plan.edits.iter().map(|e| e.document).collect();
        assert_eq!(
            documents,
            [0, 2],
            "document indices are those of the original file"
        );
    }

    #[test]
    fn the_record_round_trips_and_maps_namespaces() {
        let plan = quiesce::plan(&only_namespaces(&manifests(APP), &["shop".to_string()]));
        let record = PreQuiesceRecord::from_plan("uid-1", "abc", &plan);
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains("\"migrationUid\":\"uid-1\""), "{json}");
        let back: PreQuiesceRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record);
        let mapping = vec![NameMapping::parse("shop:shop-new").unwrap()];
        let recorded = back.for_target(&mapping);
        assert_eq!(recorded[0].namespace.as_deref(), Some("shop-new"));
        assert_eq!(recorded[0].previous, Some(Value::from(3)));
        assert_eq!(recorded[1].namespace, None, "no namespace stays none");
    }

    #[test]
    fn expectations_compare_the_written_fields() {
        let plan = quiesce::plan(&only_namespaces(&manifests(APP), &["shop".to_string()]));
        let expected = expectations(&plan, "shop");
        assert_eq!(expected.len(), 2);
        assert_eq!(
            expected[1].namespace, "shop",
            "unnamespaced objects use the default"
        );
        let running = serde_json::json!({"spec": {"replicas": 3}});
        let stopped = serde_json::json!({"spec": {"replicas": 0}});
        assert!(is_applied(&expected[0], Some(&running)));
        assert!(!is_applied(&expected[0], Some(&stopped)));
        assert!(!is_applied(&expected[0], None));
        assert_eq!(expected[0].to_string(), "Deployment shop/web /spec/replicas=3");
    }

    #[test]
    fn waiting_ends_done_or_failed_after_ten_minutes() {
        use crate::pipeline::StepOutcome;
        let pending = || vec!["Deployment shop/web /spec/replicas=0".to_string()];
        assert_eq!(
            wait_outcome(WAIT_LIMIT, vec![], "ok".into()),
            StepOutcome::Done("ok".into())
        );
        match wait_outcome(Duration::from_secs(30), pending(), "ok".into()) {
            StepOutcome::InProgress { after, progress, .. } => {
                assert_eq!(after, POLL_INTERVAL);
                assert_eq!(progress, pending());
            }
            other => panic!("{other:?}"),
        }
        match wait_outcome(WAIT_LIMIT, pending(), "ok".into()) {
            StepOutcome::Failed(why) => {
                assert!(why.contains("after 10 minutes: Deployment shop/web"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }
}
