//! e2e: the CreateDestinationNamespaces and CreateDestinationPVCs steps against two real control
//! planes — the target gets the mapped namespace and a PVC mirroring the source's (renamed, at least as
//! large, the selection's storage class applied); running the steps again changes nothing; a PVC
//! already in the target that is too small fails the step with the reason and is left untouched.

use std::time::Duration;

use ferry::api::plan::{DiscoveredVolume, PersistentVolume, PvcEntry, Selection};
use ferry::api::{MigMigration, MigMigrationSpec};
use ferry::api::{MigPlan, MigPlanSpec, MigPlanStatus, ResourceRef};
use ferry::pipeline::steps::destination::{ensure_namespaces, ensure_pvcs};
use ferry::pipeline::{StepContext, StepOutcome};
use ferry_sandbox::{ControlPlane, apply_yaml};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;

#[tokio::test]
async fn destination_namespaces_and_pvcs_are_created_once_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (source, target) = std::thread::scope(|s| {
        let a = s.spawn(|| ControlPlane::start("source", &dir.path().join("source"), &[]));
        let b = s.spawn(|| ControlPlane::start("target", &dir.path().join("target"), &[]));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    let (src, dst) = (source.client().await.unwrap(), target.client().await.unwrap());
    apply_yaml(&src, SOURCE_APP, "app").await.unwrap();

    let mut plan = MigPlan::new(
        "shop",
        MigPlanSpec {
            src_mig_cluster_ref: ResourceRef {
                name: "source".into(),
                namespace: None,
            },
            dest_mig_cluster_ref: ResourceRef {
                name: "target".into(),
                namespace: None,
            },
            namespaces: vec!["app:app-new".into()],
            persistent_volumes: vec![PersistentVolume {
                pvc: Some(PvcEntry {
                    name: Some("data:data-v2".into()),
                    ..PvcEntry::default()
                }),
                selection: Some(Selection {
                    storage_class: Some("standard".into()),
                    ..Selection::default()
                }),
                ..PersistentVolume::default()
            }],
            ..MigPlanSpec::default()
        },
    );
    plan.metadata.namespace = Some("ferry".into());
    let volume = |name: &str, target: &str| DiscoveredVolume {
        name: name.into(),
        namespace: "app".into(),
        target_name: target.into(),
        target_namespace: "app-new".into(),
        size: Some("2Gi".into()),
        ..DiscoveredVolume::default()
    };
    // What discovery records for the plan's `persistentVolumes` entry: the rename and the class.
    let data = DiscoveredVolume {
        target_storage_class: Some("standard".into()),
        ..volume("data", "data-v2")
    };
    plan.status = Some(MigPlanStatus {
        volumes: vec![data],
        ..MigPlanStatus::default()
    });
    // A migration that has not started: it moves what the plan discovered.
    let ctx = |plan: &MigPlan| StepContext {
        host: dst.clone(),
        source: src.clone(),
        target: dst.clone(),
        migration: MigMigration::new("m", MigMigrationSpec::of_plan("ferry", "shop")),
        plan: plan.clone(),
        source_pods: None,
        target_pods: None,
    };

    assert_eq!(
        ensure_namespaces(&ctx(&plan)).await.unwrap(),
        StepOutcome::Done("Created namespaces app-new.".into())
    );
    assert_eq!(
        ensure_namespaces(&ctx(&plan)).await.unwrap(),
        StepOutcome::Done("All target namespaces exist.".into())
    );
    assert_eq!(
        ensure_pvcs(&ctx(&plan)).await.unwrap(),
        StepOutcome::Done("1 PVC(s) created, 0 already in place.".into())
    );
    let targets: Api<PersistentVolumeClaim> = Api::namespaced(dst.clone(), "app-new");
    let created = targets.get("data-v2").await.unwrap();
    let version = created.metadata.resource_version.clone();
    let spec = created.spec.unwrap();
    assert_eq!(spec.storage_class_name.as_deref(), Some("standard"));
    assert_eq!(spec.access_modes.unwrap(), ["ReadWriteOnce"]);
    assert_eq!(spec.resources.unwrap().requests.unwrap()["storage"].0, "2Gi");
    assert_eq!(
        ensure_pvcs(&ctx(&plan)).await.unwrap(),
        StepOutcome::Done("0 PVC(s) created, 1 already in place.".into())
    );
    assert_eq!(
        targets.get("data-v2").await.unwrap().metadata.resource_version,
        version,
        "rewritten"
    );

    // A PVC already in the target that is too small: the step fails with the reason, nothing changes.
    apply_yaml(&dst, TOO_SMALL, "app-new").await.unwrap();
    plan.status.as_mut().unwrap().volumes.push(volume("logs", "logs"));
    let before = targets.get("logs").await.unwrap().metadata.resource_version;
    match ensure_pvcs(&ctx(&plan)).await.unwrap() {
        StepOutcome::Failed(why) => assert!(why.contains("smaller than the source's 2Gi"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        targets.get("logs").await.unwrap().metadata.resource_version,
        before
    );

    assert!(source.stop() & target.stop());
}

const SOURCE_APP: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: app}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: app, labels: {app: db}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: fast
  resources: {requests: {storage: 2Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: logs, namespace: app}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 2Gi}}
";

const TOO_SMALL: &str = "\
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: logs, namespace: app-new}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
";
