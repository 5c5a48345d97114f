//! Scenario: a Patch-mode cutover, then a rollback. The rollback puts the DNS record back as it was
//! (value and TTL), stops the app on the target, starts it on the source with the recorded replica
//! counts, and leaves no record of the cutover behind.

#[path = "support/scenario.rs"]
mod scenario;

use std::time::Duration;

use ferry::api::plan::QuiesceMethod;
use ferry_sandbox::world::{PLAN_NAME, SOURCE_ADDRESS, TARGET_ADDRESS};
use kube::ResourceExt;
use scenario::{Scenario, replicas, write_files};

const TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_after_a_cutover_restores_the_source_and_the_name() {
    let scenario = Scenario::start(QuiesceMethod::Patch).await;
    write_files(&scenario.sandbox.volume_dir(true), &[("data", b"rows")]);
    let source_before = replicas(&scenario.sandbox.source_client).await;
    let target_before = replicas(&scenario.sandbox.host_client).await;
    let read_record = || async { scenario.sandbox.served_app_record().await.unwrap() };
    let record_before = read_record().await;
    assert_eq!(record_before.values, [SOURCE_ADDRESS]);

    scenario
        .create_migration("cutover", |s| s.quiesce_pods = true)
        .await;
    scenario.wait_succeeded("cutover", TIMEOUT).await;
    assert_eq!(read_record().await.values, [TARGET_ADDRESS]);
    let plan = scenario.plans().get(PLAN_NAME).await.unwrap();
    assert!(
        plan.annotations()
            .contains_key("migration.ferry.dev/pre-cutover-dns")
    );

    scenario.create_migration("rollback", |s| s.rollback = true).await;
    let rollback = scenario.wait_succeeded("rollback", TIMEOUT).await;
    let status = rollback.status.unwrap();
    assert_eq!(status.itinerary, Some(ferry::api::Itinerary::Rollback));
    assert_eq!(read_record().await, record_before, "value and TTL restored");
    assert_eq!(replicas(&scenario.sandbox.source_client).await, source_before);
    assert_eq!(replicas(&scenario.sandbox.host_client).await, target_before);
    let plan = scenario.plans().get(PLAN_NAME).await.unwrap();
    assert!(
        !plan
            .annotations()
            .contains_key("migration.ferry.dev/pre-cutover-dns")
    );
    let source_deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(scenario.sandbox.source_client.clone(), "shop");
    for deployment in source_deployments.list(&Default::default()).await.unwrap() {
        assert!(
            !deployment
                .annotations()
                .keys()
                .any(|k| k.starts_with("migration.ferry.dev/pre-quiesce")),
            "the pre-quiesce record is consumed: {:?}",
            deployment.annotations()
        );
    }
    scenario.stop().await;
}
