//! Pure PVC discovery: from the PVCs and pods listed in the source namespaces and the plan's volume
//! selection, the volumes the plan will move (with their target names and the node that mounts them)
//! and the conditions describing what is off (a named PVC that does not exist, unbound claims).

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;

use crate::api::plan::{DiscoveredVolume, NameMapping, PersistentVolumes};
use crate::api::{Category, Condition};
use crate::pipeline::quiesced::mounts;

/// The volumes to move and the conditions about them.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Discovery {
    /// Selected PVCs, sorted by namespace and name.
    pub volumes: Vec<DiscoveredVolume>,
    /// Problems (Critical) and warnings found.
    pub conditions: Vec<Condition>,
}

/// Discovers the selected PVCs of the mapped namespaces.
pub(crate) fn discover(
    namespaces: &[NameMapping],
    selection: Option<&PersistentVolumes>,
    pvcs: &[PersistentVolumeClaim],
    pods: &[Pod],
) -> Discovery {
    let default_selection = PersistentVolumes::default();
    let selection = selection.unwrap_or(&default_selection);
    let mut volumes = Vec::new();
    for pvc in pvcs {
        let ns = pvc.namespace().unwrap_or_default();
        let Some(mapping) = namespaces.iter().find(|m| m.source == ns) else {
            continue;
        };
        if !is_selected(selection, pvc) {
            continue;
        }
        volumes.push(describe(pvc, mapping, selection, pods));
    }
    volumes.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));

    let mut conditions = Vec::new();
    let missing: Vec<&str> = selection
        .include
        .iter()
        .chain(selection.overrides.iter().map(|o| &o.pvc))
        .filter(|entry| {
            let (ns, name) = split_entry(entry.split(':').next().unwrap_or(entry));
            !pvcs.iter().any(|pvc| {
                pvc.name_any() == name
                    && ns.is_none_or(|ns| pvc.namespace().as_deref() == Some(ns))
                    && namespaces
                        .iter()
                        .any(|m| Some(&m.source) == pvc.namespace().as_ref())
            })
        })
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        conditions.push(Condition::holds(
            "PersistentVolumeClaimNotFound",
            Category::Critical,
            "PersistentVolumeClaimNotFound",
            format!(
                "spec.persistentVolumes names PVCs that do not exist in the source namespaces: {}.",
                missing.join(", ")
            ),
        ));
    }
    let unbound: Vec<String> = volumes
        .iter()
        .filter(|v| !v.bound)
        .map(|v| format!("{}/{}", v.namespace, v.name))
        .collect();
    if !unbound.is_empty() {
        conditions.push(Condition::holds(
            "UnboundVolumes",
            Category::Warn,
            "PersistentVolumeClaimUnbound",
            format!(
                "These PVCs are not bound and hold no data yet: {}.",
                unbound.join(", ")
            ),
        ));
    }
    Discovery { volumes, conditions }
}

/// Splits `ns/name` or `name` into an optional namespace and a name.
fn split_entry(entry: &str) -> (Option<&str>, &str) {
    match entry.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, entry),
    }
}

fn matches_entry(entry: &str, pvc: &PersistentVolumeClaim) -> bool {
    let (ns, name) = split_entry(entry);
    pvc.name_any() == name && ns.is_none_or(|ns| pvc.namespace().as_deref() == Some(ns))
}

fn is_selected(selection: &PersistentVolumes, pvc: &PersistentVolumeClaim) -> bool {
    let included = selection.include.is_empty() || selection.include.iter().any(|e| matches_entry(e, pvc));
    let excluded = selection.exclude.iter().any(|e| matches_entry(e, pvc));
    let labels = pvc.labels();
    let labelled = selection
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    included && !excluded && labelled
}

fn describe(
    pvc: &PersistentVolumeClaim,
    mapping: &NameMapping,
    selection: &PersistentVolumes,
    pods: &[Pod],
) -> DiscoveredVolume {
    let name = pvc.name_any();
    let spec = pvc.spec.clone().unwrap_or_default();
    let status = pvc.status.clone().unwrap_or_default();
    let bound = status.phase.as_deref() == Some("Bound");
    let size = status
        .capacity
        .as_ref()
        .filter(|_| bound)
        .and_then(|c| c.get("storage"))
        .or_else(|| spec.resources.as_ref()?.requests.as_ref()?.get("storage"))
        .map(|q| q.0.clone());
    let target_name = selection
        .overrides
        .iter()
        .filter(|o| o.namespace.as_deref().is_none_or(|ns| ns == mapping.source))
        .filter_map(|o| NameMapping::parse(&o.pvc).ok())
        .find(|m| m.source == name)
        .map_or_else(|| name.clone(), |m| m.target);
    let mounting: Vec<&Pod> = pods
        .iter()
        .filter(|pod| pod.namespace().as_deref() == Some(mapping.source.as_str()) && is_live(pod))
        .filter(|pod| mounts(pod, &name))
        .collect();
    DiscoveredVolume {
        target_name,
        namespace: mapping.source.clone(),
        target_namespace: mapping.target.clone(),
        size,
        storage_class: spec.storage_class_name.clone(),
        access_modes: spec.access_modes.clone().unwrap_or_default(),
        bound,
        volume_name: spec.volume_name.clone().filter(|v| !v.is_empty()),
        node: mounting
            .iter()
            .find_map(|pod| pod.spec.as_ref()?.node_name.clone()),
        pods: mounting.iter().map(|pod| pod.name_any()).collect(),
        uid: pvc.uid(),
        name,
    }
}

fn is_live(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded") | Some("Failed")) && pod.metadata.deletion_timestamp.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::plan::VolumeOverride;

    fn pvc(ns: &str, name: &str, bound: bool) -> PersistentVolumeClaim {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                     "resources": {"requests": {"storage": "1Gi"}}, "volumeName": if bound { "pv-1" } else { "" }},
            "status": if bound { serde_json::json!({"phase": "Bound", "capacity": {"storage": "2Gi"}}) }
                      else { serde_json::json!({"phase": "Pending"}) }
        }))
        .unwrap()
    }

    fn pod(ns: &str, name: &str, claim: &str, node: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": node, "containers": [{"name": "c"}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]},
            "status": {"phase": "Running"}
        }))
        .unwrap()
    }

    fn mapping(text: &str) -> NameMapping {
        NameMapping::parse(text).unwrap()
    }

    #[test]
    fn discovers_size_class_modes_node_and_target_names() {
        let pvcs = [pvc("app", "data", true), pvc("other", "x", true)];
        let pods = [pod("app", "db-0", "data", "node-a")];
        let found = discover(&[mapping("app:app-new")], None, &pvcs, &pods);
        assert_eq!(found.volumes.len(), 1);
        let v = &found.volumes[0];
        assert_eq!(
            (v.size.as_deref(), v.storage_class.as_deref()),
            (Some("2Gi"), Some("standard"))
        );
        assert_eq!(v.access_modes, ["ReadWriteOnce"]);
        assert_eq!(
            (v.node.as_deref(), v.pods.as_slice()),
            (Some("node-a"), &["db-0".to_string()][..])
        );
        assert_eq!(
            (v.target_namespace.as_str(), v.target_name.as_str()),
            ("app-new", "data")
        );
        assert!(found.conditions.is_empty());
    }

    #[test]
    fn selection_renames_and_missing_names() {
        let pvcs = [
            pvc("app", "data", true),
            pvc("app", "cache", false),
            pvc("app", "logs", true),
        ];
        let selection = PersistentVolumes {
            exclude: vec!["app/logs".into()],
            overrides: vec![VolumeOverride {
                pvc: "data:data-v2".into(),
                ..VolumeOverride::default()
            }],
            include: vec!["data".into(), "cache".into(), "ghost".into()],
            ..PersistentVolumes::default()
        };
        let found = discover(&[mapping("app")], Some(&selection), &pvcs, &[]);
        let names: Vec<_> = found
            .volumes
            .iter()
            .map(|v| (v.name.as_str(), v.target_name.as_str()))
            .collect();
        assert_eq!(names, [("cache", "cache"), ("data", "data-v2")]);
        let types: Vec<_> = found.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["PersistentVolumeClaimNotFound", "UnboundVolumes"]);
        assert!(found.conditions[0].message.as_deref().unwrap().contains("ghost"));
    }

    #[test]
    fn finished_pods_do_not_pin_a_node() {
        let mut done = pod("app", "job-1", "data", "node-b");
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let found = discover(&[mapping("app")], None, &[pvc("app", "data", true)], &[done]);
        assert_eq!(found.volumes[0].node, None);
    }
}
