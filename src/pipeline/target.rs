//! Pure construction of the objects a plan needs in the target cluster — namespaces and PVCs — and the
//! check that a PVC already there (created by an earlier run, by Argo CD or by hand) can take the data.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Namespace, PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::labels;
use super::quantity;
use crate::api::plan::DiscoveredVolume;

/// The target namespace `name`, labelled for the plan.
pub fn namespace(name: &str, plan_namespace: &str, plan_name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels::plan_labels(plan_namespace, plan_name)),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The target PVC for `volume`: its target name and namespace, the source's size (at least), access
/// modes, volume mode and labels, with the storage class and access mode the plan's
/// `persistentVolumes[].selection` chose (recorded on the volume by discovery) applied.
pub fn pvc(
    source: &PersistentVolumeClaim,
    volume: &DiscoveredVolume,
    plan_namespace: &str,
    plan_name: &str,
) -> PersistentVolumeClaim {
    let source_spec = source.spec.clone().unwrap_or_default();
    let storage_class = volume
        .target_storage_class
        .clone()
        .or_else(|| source_spec.storage_class_name.clone());
    let access_modes = volume
        .target_access_mode
        .clone()
        .map(|mode| vec![mode])
        .or_else(|| source_spec.access_modes.clone());
    let mut labels: BTreeMap<String, String> = source.labels().clone();
    labels.extend(labels::plan_labels(plan_namespace, plan_name));
    let size = volume.size.clone().unwrap_or_else(|| "1Gi".to_string());
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(volume.target_name.clone()),
            namespace: Some(volume.target_namespace.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                labels::SOURCE_PVC.to_string(),
                format!("{}/{}", volume.namespace, volume.name),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes,
            storage_class_name: storage_class,
            volume_mode: source_spec.volume_mode.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

/// Why an existing target PVC cannot receive the data of `wanted`, if it cannot.
pub fn incompatibility(existing: &PersistentVolumeClaim, wanted: &PersistentVolumeClaim) -> Option<String> {
    let name = format!(
        "{}/{}",
        existing.namespace().unwrap_or_default(),
        existing.name_any()
    );
    let request = |pvc: &PersistentVolumeClaim| {
        pvc.spec
            .as_ref()?
            .resources
            .as_ref()?
            .requests
            .as_ref()?
            .get("storage")
            .map(|q| q.0.clone())
    };
    let capacity = existing
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref()?.get("storage").map(|q| q.0.clone()))
        .or_else(|| request(existing));
    let (have, need) = (capacity.unwrap_or_default(), request(wanted).unwrap_or_default());
    match (quantity::bytes(&have), quantity::bytes(&need)) {
        (Some(h), Some(n)) if h < n => {
            return Some(format!(
                "target PVC {name} exists with {have}, smaller than the source's {need}"
            ));
        }
        (None, _) => {
            return Some(format!(
                "target PVC {name} has no readable size ({})",
                if have.is_empty() { "none" } else { have.as_str() }
            ));
        }
        _ => {}
    }
    let modes = |pvc: &PersistentVolumeClaim| {
        pvc.spec
            .as_ref()
            .and_then(|s| s.access_modes.clone())
            .unwrap_or_default()
    };
    let missing: Vec<String> = modes(wanted)
        .into_iter()
        .filter(|m| !modes(existing).contains(m))
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "target PVC {name} exists without access mode(s) {}",
            missing.join(", ")
        ));
    }
    let mode = |pvc: &PersistentVolumeClaim| {
        pvc.spec
            .as_ref()
            .and_then(|s| s.volume_mode.clone())
            .unwrap_or_else(|| "Filesystem".into())
    };
    if mode(existing) != mode(wanted) {
        return Some(format!(
            "target PVC {name} is a {} volume, the source a {}",
            mode(existing),
            mode(wanted)
        ));
    }
    None
}

#[cfg(test)]
#[path = "target_tests.rs"]
mod tests;
