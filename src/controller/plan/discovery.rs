//! Pure PVC discovery: from the PVCs and pods listed in the source namespaces and the plan's volume
//! selection (MTC's `persistentVolumes` list and Ferry's `volumeSelector`), the volumes the plan will
//! move (with their target names, classes and the node that mounts them) and the conditions describing
//! what is off (a listed PVC that does not exist, two PVCs mapped to one target, unbound claims).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;

use super::validate::{INVALID_VOLUME_SELECTION, entry_label};
use crate::api::plan::{Action, DiscoveredVolume, NameMapping, PersistentVolume, VolumeSelector};
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
    entries: &[PersistentVolume],
    selector: Option<&VolumeSelector>,
    pvcs: &[PersistentVolumeClaim],
    pods: &[Pod],
) -> Discovery {
    let mut conditions = Vec::new();
    let in_plan = |pvc: &PersistentVolumeClaim| {
        let ns = pvc.namespace().unwrap_or_default();
        namespaces.iter().find(|m| m.source == ns)
    };
    for (index, entry) in entries.iter().enumerate() {
        let Some(source) = source_of(entry) else { continue };
        let wanted_ns = entry
            .pvc
            .as_ref()
            .and_then(|p| p.namespace.as_deref())
            .filter(|n| !n.is_empty());
        let exists = pvcs.iter().any(|pvc| {
            pvc.name_any() == source.source
                && in_plan(pvc).is_some()
                && wanted_ns.is_none_or(|ns| pvc.namespace().as_deref() == Some(ns))
        });
        if !exists {
            conditions.push(Condition::holds(
                INVALID_VOLUME_SELECTION,
                Category::Critical,
                "PersistentVolumeClaimNotFound",
                format!(
                    "{} names PVC {:?}, which does not exist in the plan's source namespaces.",
                    entry_label(index, entry),
                    source.source
                ),
            ));
        }
    }

    let mut volumes = Vec::new();
    for pvc in pvcs {
        let Some(mapping) = in_plan(pvc) else { continue };
        if !is_labelled(selector, pvc) {
            continue;
        }
        let entry = entry_for(entries, pvc);
        let selection = entry.and_then(|e| e.selection.as_ref());
        if Action::parse(selection.and_then(|s| s.action.as_deref())) == Ok(Action::Skip) {
            continue;
        }
        let mut volume = describe(pvc, mapping, pods);
        if let Some(target) = entry.and_then(source_of) {
            volume.target_name = target.target;
        }
        volume.target_storage_class = selection
            .and_then(|s| s.storage_class.clone())
            .filter(|c| !c.is_empty());
        volume.target_access_mode = selection
            .and_then(|s| s.access_mode.clone())
            .filter(|m| !m.is_empty());
        volumes.push(volume);
    }
    volumes.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));

    let mut targets: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for v in &volumes {
        targets
            .entry((&v.target_namespace, &v.target_name))
            .or_default()
            .push(v.source_key());
    }
    for ((ns, name), sources) in targets.iter().filter(|(_, sources)| sources.len() > 1) {
        conditions.push(Condition::holds(
            INVALID_VOLUME_SELECTION,
            Category::Critical,
            "TargetNameConflict",
            format!(
                "spec.persistentVolumes maps PVCs {} all to {ns}/{name} on the target.",
                sources.join(", ")
            ),
        ));
    }
    let unbound: Vec<String> = volumes
        .iter()
        .filter(|v| !v.bound)
        .map(DiscoveredVolume::source_key)
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

/// The parsed `pvc.name` (`src` or `src:dest`) of an entry, when it has a valid one.
fn source_of(entry: &PersistentVolume) -> Option<NameMapping> {
    let name = entry.pvc.as_ref()?.name.as_deref()?;
    NameMapping::parse(name).ok()
}

/// The first list entry naming `pvc` (by source name, and namespace when the entry gives one).
fn entry_for<'a>(
    entries: &'a [PersistentVolume],
    pvc: &PersistentVolumeClaim,
) -> Option<&'a PersistentVolume> {
    entries.iter().find(|entry| {
        let ns = entry
            .pvc
            .as_ref()
            .and_then(|p| p.namespace.as_deref())
            .filter(|n| !n.is_empty());
        source_of(entry).is_some_and(|m| m.source == pvc.name_any())
            && ns.is_none_or(|ns| pvc.namespace().as_deref() == Some(ns))
    })
}

fn is_labelled(selector: Option<&VolumeSelector>, pvc: &PersistentVolumeClaim) -> bool {
    let labels = pvc.labels();
    selector.is_none_or(|s| s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn describe(pvc: &PersistentVolumeClaim, mapping: &NameMapping, pods: &[Pod]) -> DiscoveredVolume {
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
    let mounting: Vec<&Pod> = pods
        .iter()
        .filter(|pod| pod.namespace().as_deref() == Some(mapping.source.as_str()) && is_live(pod))
        // Ferry's own movers and hook Jobs are not the app: counting them would also rewrite the plan's
        // status each time a mover starts or ends.
        .filter(|pod| !pod.labels().contains_key(crate::pipeline::labels::MIGRATION_UID))
        .filter(|pod| mounts(pod, &name))
        .collect();
    DiscoveredVolume {
        target_name: name.clone(),
        namespace: mapping.source.clone(),
        target_namespace: mapping.target.clone(),
        size,
        storage_class: spec.storage_class_name.clone(),
        access_modes: spec.access_modes.clone().unwrap_or_default(),
        target_storage_class: None,
        target_access_mode: None,
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
    use crate::api::plan::{PvcEntry, Selection};

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
        let found = discover(&[mapping("app:app-new")], &[], None, &pvcs, &pods);
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

    fn entry(name: &str, action: Option<&str>, class: Option<&str>) -> PersistentVolume {
        PersistentVolume {
            pvc: Some(PvcEntry {
                name: Some(name.into()),
                ..PvcEntry::default()
            }),
            selection: Some(Selection {
                action: action.map(str::to_string),
                storage_class: class.map(str::to_string),
                access_mode: class.map(|_| "ReadWriteMany".to_string()),
                ..Selection::default()
            }),
            ..PersistentVolume::default()
        }
    }

    #[test]
    fn the_list_skips_renames_sets_the_class_and_names_missing_pvcs() {
        let pvcs = [
            pvc("app", "data", true),
            pvc("app", "cache", false),
            pvc("app", "logs", true),
        ];
        let entries = [
            entry("logs", Some("skip"), None),
            entry("data:data-v2", Some("copy"), Some("fast")),
            entry("ghost", None, None),
        ];
        let found = discover(&[mapping("app")], &entries, None, &pvcs, &[]);
        let names: Vec<_> = found
            .volumes
            .iter()
            .map(|v| (v.name.as_str(), v.target_name.as_str()))
            .collect();
        assert_eq!(names, [("cache", "cache"), ("data", "data-v2")]);
        let data = &found.volumes[1];
        assert_eq!(
            (
                data.target_storage_class.as_deref(),
                data.target_access_mode.as_deref()
            ),
            (Some("fast"), Some("ReadWriteMany"))
        );
        assert_eq!(found.volumes[0].target_storage_class, None);
        let reasons: Vec<_> = found
            .conditions
            .iter()
            .map(|c| c.reason.as_deref().unwrap())
            .collect();
        assert_eq!(
            reasons,
            ["PersistentVolumeClaimNotFound", "PersistentVolumeClaimUnbound"]
        );
        let message = found.conditions[0].message.as_deref().unwrap();
        assert!(
            message.contains("spec.persistentVolumes[2]") && message.contains("ghost"),
            "{message}"
        );
    }

    #[test]
    fn two_pvcs_mapped_to_one_target_are_a_conflict() {
        let pvcs = [pvc("app", "data", true), pvc("app", "old", true)];
        let entries = [entry("old:data", None, None)];
        let found = discover(&[mapping("app")], &entries, None, &pvcs, &[]);
        assert_eq!(found.conditions.len(), 1);
        assert_eq!(found.conditions[0].reason.as_deref(), Some("TargetNameConflict"));
        assert!(
            found.conditions[0]
                .message
                .as_deref()
                .unwrap()
                .contains("app/data, app/old")
        );
    }

    #[test]
    fn the_volume_selector_keeps_only_labelled_pvcs() {
        let pvcs = [pvc("app", "data", true), pvc("app", "logs", true)];
        let selector = VolumeSelector {
            match_labels: [("app".to_string(), "data".to_string())].into(),
        };
        let found = discover(&[mapping("app")], &[], Some(&selector), &pvcs, &[]);
        assert_eq!(found.volumes.len(), 1);
        assert_eq!(found.volumes[0].name, "data");
    }

    #[test]
    fn ferrys_own_pods_are_not_the_apps() {
        let mut mover = pod("app", "ferry-send-1", "data", "node-b");
        mover
            .metadata
            .labels
            .get_or_insert_default()
            .insert(crate::pipeline::labels::MIGRATION_UID.into(), "uid-1".into());
        let app = pod("app", "db-0", "data", "node-a");
        let found = discover(
            &[mapping("app")],
            &[],
            None,
            &[pvc("app", "data", true)],
            &[mover, app],
        );
        assert_eq!(found.volumes[0].pods, vec!["db-0".to_string()]);
        assert_eq!(found.volumes[0].node.as_deref(), Some("node-a"));
    }

    #[test]
    fn finished_pods_do_not_pin_a_node() {
        let mut done = pod("app", "job-1", "data", "node-b");
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let found = discover(&[mapping("app")], &[], None, &[pvc("app", "data", true)], &[done]);
        assert_eq!(found.volumes[0].node, None);
    }
}
