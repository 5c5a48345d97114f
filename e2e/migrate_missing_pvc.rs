//! Scenario: a plan that names a PVC the source does not have. The plan says which one is missing, a
//! migration of it is held back with a clear condition, and nothing is created in either cluster.

#[path = "support/scenario.rs"]
mod scenario;

use std::time::Duration;

use ferry::api::plan::QuiesceMethod;
use ferry_sandbox::world::{APP_NAMESPACE, PLAN_NAME};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use scenario::Scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_pvc_blocks_the_migration_and_nothing_is_created() {
    let scenario = Scenario::start(QuiesceMethod::Patch).await;
    let patch = serde_json::json!({"spec": {"persistentVolumes": [
        {"pvc": {"name": "db-data"}}, {"pvc": {"name": "orders-data"}, "selection": {"action": "copy"}}]}});
    scenario
        .plans()
        .patch(PLAN_NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();

    // The plan names the missing claim.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let message = loop {
        let plan = scenario.plans().get(PLAN_NAME).await.unwrap();
        let conditions = plan.status.unwrap_or_default().conditions;
        if let Some(c) = conditions
            .iter()
            .find(|c| c.reason.as_deref() == Some("PersistentVolumeClaimNotFound"))
        {
            assert!(!conditions.iter().any(|c| c.type_ == "Ready" && c.is_true()));
            break c.message.clone().unwrap_or_default();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no PersistentVolumeClaimNotFound: {conditions:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(message.contains("orders-data"), "{message}");

    // A stage of it is held back, and says why.
    scenario.create_migration("stage-1", |s| s.stage = true).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let m = scenario.migrations().get("stage-1").await.unwrap();
        let status = m.status.unwrap_or_default();
        if status
            .conditions
            .iter()
            .any(|c| c.type_ == "PlanNotReady" && c.is_true())
        {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "not held back: {status:#?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && !c.is_true())
    );
    assert!(status.pipeline.iter().all(|s| s.started.is_none()), "{status:#?}");
    scenario::assert_readable(&status);

    // Nothing was created: no PVC besides the app's own in the target, no mover pods or Secrets.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sandbox = &scenario.sandbox;
    let target_pvcs: Api<PersistentVolumeClaim> = Api::namespaced(sandbox.host_client.clone(), APP_NAMESPACE);
    let names: Vec<String> = target_pvcs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert_eq!(names, ["db-data"], "only the app's own claim from its manifests");
    let left = scenario::temporary_objects(&scenario.sandbox).await;
    assert!(
        left.is_empty(),
        "nothing is created for a plan that cannot run: {left:?}"
    );
    scenario.stop().await;
}
