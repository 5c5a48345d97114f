//! Unit tests of target object construction.

use super::*;

fn source() -> PersistentVolumeClaim {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "data", "namespace": "app", "labels": {"app": "db"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast", "volumeMode": "Filesystem",
                 "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Bound", "capacity": {"storage": "2Gi"}}
    }))
    .unwrap()
}

fn volume() -> DiscoveredVolume {
    DiscoveredVolume {
        name: "data".into(),
        namespace: "app".into(),
        target_name: "data-v2".into(),
        target_namespace: "app-new".into(),
        size: Some("2Gi".into()),
        ..DiscoveredVolume::default()
    }
}

fn spec(pvc: &PersistentVolumeClaim) -> PersistentVolumeClaimSpec {
    pvc.spec.clone().unwrap()
}

#[test]
fn the_target_pvc_mirrors_the_source_under_its_new_name() {
    let pvc = pvc(&source(), &volume(), "ferry", "shop");
    assert_eq!(
        (pvc.name_any(), pvc.namespace().unwrap()),
        ("data-v2".into(), "app-new".into())
    );
    let s = spec(&pvc);
    assert_eq!(s.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(s.access_modes.unwrap(), ["ReadWriteOnce"]);
    assert_eq!(
        s.resources.unwrap().requests.unwrap()["storage"].0,
        "2Gi",
        "the bound capacity, not the request"
    );
    assert_eq!(pvc.labels().get("app").map(String::as_str), Some("db"));
    assert_eq!(
        pvc.annotations().get(labels::SOURCE_PVC).map(String::as_str),
        Some("app/data")
    );
}

#[test]
fn the_selection_sets_class_and_access_mode() {
    let volume = DiscoveredVolume {
        target_storage_class: Some("standard".into()),
        target_access_mode: Some("ReadWriteMany".into()),
        ..volume()
    };
    let s = spec(&pvc(&source(), &volume, "ferry", "shop"));
    assert_eq!(s.storage_class_name.as_deref(), Some("standard"));
    assert_eq!(s.access_modes.unwrap(), ["ReadWriteMany"]);
}

#[test]
fn an_existing_pvc_must_be_large_enough_with_the_same_modes() {
    let wanted = pvc(&source(), &volume(), "ferry", "shop");
    assert_eq!(incompatibility(&wanted, &wanted), None);
    let mut small = wanted.clone();
    small
        .spec
        .as_mut()
        .unwrap()
        .resources
        .as_mut()
        .unwrap()
        .requests
        .as_mut()
        .unwrap()
        .insert("storage".into(), Quantity("1Gi".into()));
    assert!(incompatibility(&small, &wanted).unwrap().contains("smaller"));
    let mut rwx = wanted.clone();
    rwx.spec.as_mut().unwrap().access_modes = Some(vec!["ReadWriteMany".into()]);
    assert!(incompatibility(&rwx, &wanted).unwrap().contains("ReadWriteOnce"));
    let mut block = wanted.clone();
    block.spec.as_mut().unwrap().volume_mode = Some("Block".into());
    assert!(incompatibility(&block, &wanted).unwrap().contains("Block"));
}
