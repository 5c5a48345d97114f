//! e2e: MTC's "migrating an application with the MTC API" procedure (`shared/seeds/`), steps 1 to 9
//! with the apiVersion changed to `migration.ferry.dev/v1alpha1`, against two real control planes and
//! the real controller: host MigCluster, remote Secret with a token minted in the remote cluster,
//! remote MigCluster Ready, MigStorage Ready, MigPlan Ready with its PVCs discovered; then step 10's
//! MigMigration is accepted and waits. Also: the API server itself rejects malformed plans, and a
//! Ready plan's status is not rewritten while nothing changes.

#[path = "support/clusters.rs"]
mod support;

use std::time::Duration;

use base64::Engine as _;
use ferry::api::{MigCluster, MigMigration, MigPlan, MigStorage};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::ListParams;
use kube::{Api, Client};
use support::{Clusters, apply, condition, namespace, wait_for};

const WAIT: Duration = Duration::from_secs(60);
const MIGRATION_NS: &str = "openshift-migration";
const CONFIG_NS: &str = "openshift-config";

#[tokio::test]
async fn seed_procedure_steps_1_to_9() {
    let clusters = Clusters::start().await;
    let host = clusters.host_client.clone();
    namespace(&host, MIGRATION_NS).await;
    namespace(&host, CONFIG_NS).await;
    seed_source_app(&clusters.source_client).await;

    // 1. The host MigCluster.
    apply(
        &host,
        MIGRATION_NS,
        &migcluster("host", "  isHostCluster: true\n"),
    )
    .await;
    // 2. The remote cluster's Secret: a real token minted in the remote (source) control plane.
    let token = clusters
        .source
        .mint_token(MIGRATION_NS, "migration-controller", true)
        .unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&token);
    apply(&host, CONFIG_NS, &format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: remote-cluster-secret\n  namespace: {CONFIG_NS}\n\
         type: Opaque\ndata:\n  saToken: {encoded}\n"
    ))
    .await;
    // 3. The remote MigCluster.
    let remote_spec = format!(
        "  exposedRegistryPath: registry.example.com\n  insecure: false\n  isHostCluster: false\n\
         \x20 serviceAccountSecretRef:\n    name: remote-cluster-secret\n    namespace: {CONFIG_NS}\n\
         \x20 url: {}\n  caBundle: {}\n",
        clusters.source.url,
        clusters.source.ca_bundle().unwrap()
    );
    apply(&host, MIGRATION_NS, &migcluster("remote", &remote_spec)).await;
    // 4. Both clusters Ready.
    let clusters_api: Api<MigCluster> = Api::namespaced(host.clone(), MIGRATION_NS);
    for name in ["host", "remote"] {
        let version = wait_for(&clusters_api, name, WAIT, |c| {
            let status = c.status.as_ref()?;
            condition(&status.conditions, "Ready").filter(|r| r.is_true())?;
            status.server_version.clone()
        })
        .await;
        assert!(version.starts_with("v1."), "server version {version}");
    }
    // 5. The replication repository's Secret and 6. the MigStorage.
    apply(&host, CONFIG_NS, &format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: migstorage-creds\n  namespace: {CONFIG_NS}\ntype: Opaque\n\
         data:\n  aws-access-key-id: a2V5LWlk\n  aws-secret-access-key: c2VjcmV0\n"
    ))
    .await;
    apply(&host, MIGRATION_NS, &format!(
        "apiVersion: migration.ferry.dev/v1alpha1\nkind: MigStorage\nmetadata:\n  name: migstorage\n  namespace: {MIGRATION_NS}\n\
         spec:\n  backupStorageConfig:\n    awsBucketName: bucket\n    credsSecretRef:\n      name: migstorage-creds\n\
         \x20     namespace: {CONFIG_NS}\n  backupStorageProvider: aws\n  volumeSnapshotConfig:\n    credsSecretRef:\n\
         \x20     name: migstorage-creds\n      namespace: {CONFIG_NS}\n  volumeSnapshotProvider: aws\n"
    ))
    .await;
    // 7. The MigStorage is Ready.
    let storages: Api<MigStorage> = Api::namespaced(host.clone(), MIGRATION_NS);
    wait_for(&storages, "migstorage", WAIT, |s| {
        condition(&s.status.as_ref()?.conditions, "Ready")
            .filter(|c| c.is_true())
            .map(|_| ())
    })
    .await;
    // 8. The MigPlan (direct transfer: indirect* false).
    apply(&host, MIGRATION_NS, &format!(
        "apiVersion: migration.ferry.dev/v1alpha1\nkind: MigPlan\nmetadata:\n  name: migplan\n  namespace: {MIGRATION_NS}\n\
         spec:\n  destMigClusterRef:\n    name: host\n    namespace: {MIGRATION_NS}\n  indirectImageMigration: false\n\
         \x20 indirectVolumeMigration: false\n  migStorageRef:\n    name: migstorage\n    namespace: {MIGRATION_NS}\n\
         \x20 namespaces:\n    - app1\n    - app2\n    - app3:app3-new\n  srcMigClusterRef:\n    name: remote\n\
         \x20   namespace: {MIGRATION_NS}\n"
    ))
    .await;
    // 9. The MigPlan is Ready, with the source PVCs discovered.
    let plans: Api<MigPlan> = Api::namespaced(host.clone(), MIGRATION_NS);
    let plan = wait_for(&plans, "migplan", WAIT, |p| {
        let status = p.status.as_ref()?;
        condition(&status.conditions, "Ready").filter(|c| c.is_true())?;
        (status.volumes.len() == 3).then(|| p.clone())
    })
    .await;
    let volumes = &plan.status.as_ref().unwrap().volumes;
    let data = volumes
        .iter()
        .find(|v| v.name == "data")
        .expect("app1/data discovered");
    assert_eq!(
        (data.namespace.as_str(), data.size.as_deref()),
        ("app1", Some("1Gi"))
    );
    assert_eq!(data.storage_class.as_deref(), Some("manual"));
    assert_eq!(data.access_modes, ["ReadWriteOnce"]);
    assert!(data.bound, "{data:?}");
    assert_eq!(data.node.as_deref(), Some(support::NODE));
    assert_eq!(data.pods, ["db-0"]);
    let renamed = volumes.iter().find(|v| v.namespace == "app3").unwrap();
    assert_eq!(renamed.target_namespace, "app3-new");
    let unbound = volumes.iter().find(|v| v.name == "pending").unwrap();
    assert!(!unbound.bound);
    let warning = condition(&plan.status.as_ref().unwrap().conditions, "UnboundVolumes").unwrap();
    assert!(warning.message.as_deref().unwrap().contains("app2/pending"));

    // No churn: a Ready plan is not rewritten while nothing changes (resync is 5s in the sandbox).
    let version = plan.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        plans.get("migplan").await.unwrap().metadata.resource_version,
        version,
        "status churn"
    );

    // Events were recorded on the objects.
    let events: Api<Event> = Api::namespaced(host.clone(), MIGRATION_NS);
    let on_remote = events
        .list(&ListParams::default().fields("involvedObject.name=remote"))
        .await
        .unwrap();
    assert!(
        on_remote
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Ready")),
        "{:?}",
        on_remote.items
    );

    // 10. A MigMigration is validated against its plan, accepted, and starts its itinerary (this test has
    // no node agent, so its movers never run: it stays in StageSync; the migrate_* scenarios run it all).
    apply(&host, MIGRATION_NS, &format!(
        "apiVersion: migration.ferry.dev/v1alpha1\nkind: MigMigration\nmetadata:\n  name: migmigration\n\
         \x20 namespace: {MIGRATION_NS}\nspec:\n  migPlanRef:\n    name: migplan\n    namespace: {MIGRATION_NS}\n\
         \x20 quiescePods: true\n  stage: false\n  rollback: false\n"
    ))
    .await;
    let migrations: Api<MigMigration> = Api::namespaced(host.clone(), MIGRATION_NS);
    let migration = wait_for(&migrations, "migmigration", WAIT, |m| {
        let status = m.status.as_ref()?;
        let prepared = status.pipeline.first()?.completed.is_some();
        (prepared && condition(&status.conditions, "Running").is_some()).then(|| m.clone())
    })
    .await;
    let status = migration.status.unwrap();
    assert!(condition(&status.conditions, "Ready").unwrap().is_true());
    assert_eq!(status.itinerary, Some(ferry::api::Itinerary::Final));
    assert_eq!(status.pipeline.first().map(|s| s.name.as_str()), Some("Prepare"));

    // A second migration of the same plan waits for the first.
    apply(
        &host,
        MIGRATION_NS,
        &format!(
            "apiVersion: migration.ferry.dev/v1alpha1\nkind: MigMigration\nmetadata:\n  name: second\n\
         \x20 namespace: {MIGRATION_NS}\nspec:\n  migPlanRef:\n    name: migplan\n  stage: true\n"
        ),
    )
    .await;
    let reason = wait_for(&migrations, "second", WAIT, |m| {
        condition(&m.status.as_ref()?.conditions, "MigrationInProgress").and_then(|c| c.message.clone())
    })
    .await;
    assert!(reason.contains("migmigration"), "{reason}");

    schema_rejects_malformed_plans(&host).await;
    clusters.stop();
}

/// The CRD schema makes the API server reject what it can: a malformed namespace mapping and an
/// unknown quiesce method never get stored.
async fn schema_rejects_malformed_plans(host: &Client) {
    let plans: Api<MigPlan> = Api::namespaced(host.clone(), MIGRATION_NS);
    for (what, extra) in [
        ("namespace mapping", "  namespaces: [\"Bad_Namespace:x\"]\n"),
        ("namespace mapping", "  namespaces: [\"a:b:c\"]\n"),
        (
            "quiesce method",
            "  namespaces: [app1]\n  gitops:\n    repo: {url: file:///r}\n    sourcePath: s\n    quiesce: {method: Scale}\n",
        ),
    ] {
        let yaml = format!(
            "apiVersion: migration.ferry.dev/v1alpha1\nkind: MigPlan\nmetadata:\n  name: malformed\n\
             spec:\n  srcMigClusterRef: {{name: remote}}\n  destMigClusterRef: {{name: host}}\n{extra}"
        );
        let result = ferry_sandbox::apply_yaml(host, &yaml, MIGRATION_NS).await;
        let err = result.expect_err(&format!("a plan with a bad {what} was accepted"));
        assert!(
            err.to_string().contains("Invalid") || err.to_string().contains("422"),
            "{what}: {err}"
        );
    }
    assert!(plans.get_opt("malformed").await.unwrap().is_none());
}

fn migcluster(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: migration.ferry.dev/v1alpha1\nkind: MigCluster\nmetadata:\n  name: {name}\n  namespace: {MIGRATION_NS}\nspec:\n{spec}"
    )
}

/// The application in the source cluster: three namespaces, PVs bound to PVCs, a pod on the node.
async fn seed_source_app(source: &Client) {
    for ns in ["app1", "app2", "app3"] {
        namespace(source, ns).await;
    }
    for (ns, pvc, pv) in [
        ("app1", "data", Some("pv-data")),
        ("app2", "pending", None),
        ("app3", "files", Some("pv-files")),
    ] {
        if let Some(pv) = pv {
            apply(source, ns, &format!(
                "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {pv}\nspec:\n  capacity: {{storage: 1Gi}}\n\
                 \x20 accessModes: [ReadWriteOnce]\n  storageClassName: manual\n  hostPath: {{path: /tmp/{pv}}}\n\
                 \x20 claimRef: {{namespace: {ns}, name: {pvc}}}\n"
            ))
            .await;
        }
        let class = if pv.is_some() { "manual" } else { "slow" };
        apply(source, ns, &format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {pvc}\n  namespace: {ns}\nspec:\n\
             \x20 accessModes: [ReadWriteOnce]\n  storageClassName: {class}\n  resources: {{requests: {{storage: 1Gi}}}}\n"
        ))
        .await;
    }
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: db-0\n  namespace: app1\nspec:\n  nodeName: {}\n\
         \x20 automountServiceAccountToken: false\n  containers: [{{name: db, image: postgres}}]\n\
         \x20 volumes: [{{name: data, persistentVolumeClaim: {{claimName: data}}}}]\n",
        support::NODE
    );
    // The ServiceAccount admission plugin refuses pods until the namespace's default SA exists.
    for attempt in 0.. {
        match ferry_sandbox::apply_yaml(source, &pod, "app1").await {
            Ok(_) => break,
            Err(err) if attempt < 40 => {
                eprintln!("pod not admitted yet: {err}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(err) => panic!("pod db-0: {err}"),
        }
    }
    let pods: Api<Pod> = Api::namespaced(source.clone(), "app1");
    assert!(pods.get_opt("db-0").await.unwrap().is_some());
}
