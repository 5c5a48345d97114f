//! Quiesce and unquiesce as data: which fields of which objects change, expressed as RFC 6902 patches
//! per file and document, plus the values they had before (so the target can be started with the
//! source's replica counts and a rollback can restore the source). Pure: no disk, no Git.
//!
//! ```text
//!   Manifests ──plan()──▶ QuiescePlan { edits, recorded }  ──commit──▶ source path
//!   Manifests + recorded ──unquiesce_plan()──▶ edits        ──commit──▶ target path
//! ```

use std::collections::BTreeMap;

use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::Value;

use super::manifests::{Location, Manifests, WorkloadKind};
use crate::{Error, Result};

/// The nodeSelector label that no node carries, used to stop a DaemonSet's pods.
pub const QUIESCE_NODE_SELECTOR: &str = "migration.ferry.dev/quiesced";

/// The changes to one document of one file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FileEdit {
    /// File path relative to the repository root (as named by `manifests::load_at`).
    pub path: String,
    /// 0-based document index in the file.
    pub document: usize,
    /// The operations, applied in order.
    pub patch: Patch,
}

/// A field's value before Ferry changed it, enough to restore it on the target or on rollback.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedValue {
    /// Object kind (`Deployment`, ..., or `Kustomization` for a kustomization `replicas:` entry).
    pub kind: String,
    /// `metadata.namespace` when written; `None` for kustomization entries.
    pub namespace: Option<String>,
    /// Object name (for kustomization entries, the entry's `name`).
    pub name: String,
    /// JSON pointer of the field inside the object (for kustomization entries, inside the entry).
    pub field: String,
    /// The value before quiesce; `None` when the field was not written (Kubernetes' default applied).
    pub previous: Option<Value>,
    /// Whether quiesce changes it (`false` when it already had the quiesced value).
    pub changed: bool,
}

/// The result of planning a quiesce.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuiescePlan {
    /// Patches grouped by file and document; empty when everything is already quiesced.
    pub edits: Vec<FileEdit>,
    /// One entry per quiesced field, in manifest order.
    pub recorded: Vec<RecordedValue>,
}

/// The quiesced value of each field a workload kind is stopped through.
fn quiesced_fields(kind: WorkloadKind, object: &Value) -> Vec<(&'static str, Option<Value>)> {
    match kind {
        WorkloadKind::Deployment
        | WorkloadKind::StatefulSet
        | WorkloadKind::ReplicaSet
        | WorkloadKind::ReplicationController
        | WorkloadKind::DeploymentConfig => vec![("/spec/replicas", Some(Value::from(0)))],
        WorkloadKind::DaemonSet => {
            let mut selector = match &object["spec"]["template"]["spec"]["nodeSelector"] {
                Value::Object(map) => map.clone(),
                _ => serde_json::Map::new(),
            };
            selector.insert(QUIESCE_NODE_SELECTOR.to_string(), Value::from("true"));
            vec![("/spec/template/spec/nodeSelector", Some(Value::Object(selector)))]
        }
        WorkloadKind::Job => vec![("/spec/parallelism", Some(Value::from(0)))],
        WorkloadKind::CronJob => vec![("/spec/suspend", Some(Value::Bool(true)))],
    }
}

/// Plans the quiesce of every workload and kustomization `replicas:` entry in `manifests`.
pub fn plan(manifests: &Manifests) -> QuiescePlan {
    let mut edits = EditBuilder::default();
    let mut recorded = Vec::new();
    for workload in manifests.workloads() {
        for (field, desired) in quiesced_fields(workload.kind, &workload.object) {
            let current = workload.object.pointer(field).cloned();
            let ops = restore_ops(
                &format!("{}{field}", workload.location.pointer),
                current.as_ref(),
                desired.as_ref(),
            );
            recorded.push(RecordedValue {
                kind: format!("{:?}", workload.kind),
                namespace: workload.namespace.clone(),
                name: workload.name.clone(),
                field: field.to_string(),
                previous: current,
                changed: !ops.is_empty(),
            });
            edits.push(&workload.location, ops);
        }
    }
    for entry in manifests.kustomize_replicas() {
        let ops = restore_ops(
            &format!("{}/count", entry.location.pointer),
            entry.count.as_ref(),
            Some(&0.into()),
        );
        recorded.push(RecordedValue {
            kind: "Kustomization".to_string(),
            namespace: None,
            name: entry.name.clone(),
            field: "/count".to_string(),
            previous: entry.count.clone(),
            changed: !ops.is_empty(),
        });
        edits.push(&entry.location, ops);
    }
    QuiescePlan {
        edits: edits.finish(),
        recorded,
    }
}

/// Plans the edits that give the objects in `manifests` (e.g. the target path) the recorded values.
/// Objects match by kind and name, and by namespace when both sides write one (map namespaces in
/// `recorded` first when the plan renames them). A recorded value with no matching object is an error.
pub fn unquiesce_plan(manifests: &Manifests, recorded: &[RecordedValue]) -> Result<Vec<FileEdit>> {
    let mut edits = EditBuilder::default();
    let workloads = manifests.workloads();
    let kustomize = manifests.kustomize_replicas();
    for value in recorded {
        let namespace_matches =
            |ns: &Option<String>| value.namespace.is_none() || ns.is_none() || *ns == value.namespace;
        let (location, object) = if value.kind == "Kustomization" {
            let entry = kustomize.iter().find(|entry| entry.name == value.name);
            let entry = entry.ok_or_else(|| not_found(value))?;
            let object = serde_json::json!({ "count": entry.count });
            (entry.location.clone(), object)
        } else {
            let workload = workloads
                .iter()
                .find(|w| {
                    format!("{:?}", w.kind) == value.kind
                        && w.name == value.name
                        && namespace_matches(&w.namespace)
                })
                .ok_or_else(|| not_found(value))?;
            (workload.location.clone(), workload.object.clone())
        };
        let current = object.pointer(&value.field).filter(|v| !v.is_null());
        let ops = restore_ops(
            &format!("{}{}", location.pointer, value.field),
            current,
            value.previous.as_ref(),
        );
        edits.push(&location, ops);
    }
    Ok(edits.finish())
}

fn not_found(value: &RecordedValue) -> Error {
    Error::InvalidSpec(format!(
        "no {} named {}{} in the target manifests to restore {} on",
        value.kind,
        value
            .namespace
            .as_deref()
            .map(|ns| format!("{ns}/"))
            .unwrap_or_default(),
        value.name,
        value.field
    ))
}

/// The operations turning `current` into `desired` at `pointer`; maps are changed key by key so that
/// unrelated keys (and their formatting) are left alone.
pub(crate) fn restore_ops(
    pointer: &str,
    current: Option<&Value>,
    desired: Option<&Value>,
) -> Vec<PatchOperation> {
    let path = |p: &str| json_patch::jsonptr::PointerBuf::parse(p).expect("pointers built from valid parts");
    match (current, desired) {
        (Some(current), Some(desired)) if current == desired => Vec::new(),
        (Some(Value::Object(current)), Some(Value::Object(desired))) => {
            let mut ops = Vec::new();
            for key in current.keys().filter(|key| !desired.contains_key(*key)) {
                ops.push(PatchOperation::Remove(RemoveOperation {
                    path: path(&child(pointer, key)),
                }));
            }
            for (key, value) in desired {
                ops.extend(restore_ops(&child(pointer, key), current.get(key), Some(value)));
            }
            ops
        }
        (Some(_), Some(desired)) => {
            vec![PatchOperation::Replace(ReplaceOperation {
                path: path(pointer),
                value: desired.clone(),
            })]
        }
        (None, Some(desired)) => {
            vec![PatchOperation::Add(AddOperation {
                path: path(pointer),
                value: desired.clone(),
            })]
        }
        (Some(_), None) => vec![PatchOperation::Remove(RemoveOperation { path: path(pointer) })],
        (None, None) => Vec::new(),
    }
}

fn child(pointer: &str, key: &str) -> String {
    format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// Groups operations by file and document, keeping first-seen order.
#[derive(Default)]
struct EditBuilder {
    edits: BTreeMap<(String, usize), Vec<PatchOperation>>,
    order: Vec<(String, usize)>,
}

impl EditBuilder {
    fn push(&mut self, location: &Location, ops: Vec<PatchOperation>) {
        if ops.is_empty() {
            return;
        }
        let key = (location.file.clone(), location.document);
        if !self.edits.contains_key(&key) {
            self.order.push(key.clone());
        }
        self.edits.entry(key).or_default().extend(ops);
    }

    fn finish(mut self) -> Vec<FileEdit> {
        self.order
            .into_iter()
            .map(|key| {
                let ops = self.edits.remove(&key).unwrap_or_default();
                FileEdit {
                    path: key.0,
                    document: key.1,
                    patch: Patch(ops),
                }
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "quiesce_tests.rs"]
mod tests;
