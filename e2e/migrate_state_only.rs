//! Scenario: state-only migration (`migrateState`, the seeds' GitOps procedure): the volumes are
//! synced, nothing about the app changes in either cluster (its manifests are Argo CD's job). Then a
//! final migration with `quiescePods: false` (MTC: copy without stopping the source): before the fix
//! `quiescePods` was never read and it stopped the app; now it copies the data, stops and starts
//! nothing, flips no DNS, records no cutover, and says the copy may be inconsistent.

#[path = "support/mover.rs"]
mod mover;
#[path = "support/scenario.rs"]
mod scenario;

use std::time::Duration;

use ferry::api::plan::QuiesceMethod;
use scenario::{Scenario, replicas, write_files};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_only_moves_data_and_leaves_the_app_alone() {
    let scenario = Scenario::start(QuiesceMethod::Commit).await;
    let source_dir = scenario.sandbox.volume_dir(true);
    write_files(
        &source_dir,
        &[("pgdata/base/1", &[1u8; 100_000]), ("pgdata/PG_VERSION", b"16\n")],
    );
    let source_before = replicas(&scenario.sandbox.source_client).await;
    let target_before = replicas(&scenario.sandbox.host_client).await;
    let head_before = scenario.sandbox.git_head();

    scenario
        .create_migration("state", |s| s.migrate_state = true)
        .await;
    let migration = scenario.wait_succeeded("state", Duration::from_secs(240)).await;
    let status = migration.status.unwrap();
    assert_eq!(status.itinerary, Some(ferry::api::Itinerary::Stage));
    mover::assert_same_tree(&source_dir, &scenario.sandbox.volume_dir(false));
    assert_eq!(replicas(&scenario.sandbox.source_client).await, source_before);
    assert_eq!(replicas(&scenario.sandbox.host_client).await, target_before);
    assert_eq!(
        scenario.sandbox.git_head(),
        head_before,
        "no commit to the app's repo"
    );

    write_files(&source_dir, &[("pgdata/base/2", &[2u8; 50_000])]);
    scenario
        .create_migration("copy-only", |s| s.quiesce_pods = false)
        .await;
    let copy = scenario
        .wait_succeeded("copy-only", Duration::from_secs(240))
        .await;
    let status = copy.status.unwrap();
    scenario::assert_readable(&status);
    assert_eq!(status.itinerary, Some(ferry::api::Itinerary::Final));
    mover::assert_same_tree(&source_dir, &scenario.sandbox.volume_dir(false));
    let warning = ferry::api::condition::find(&status.conditions, "SourceNotQuiesced").expect("the warning");
    assert!(
        warning.message.as_deref().unwrap().contains("inconsistent"),
        "{warning:?}"
    );
    for skipped in ["EnsureSourceQuiesced", "FinalSync", "UnquiesceTarget", "FlipDNS"] {
        let step = status.pipeline.iter().find(|s| s.name == skipped).unwrap();
        assert!(step.skipped, "{skipped} ran: {step:?}");
    }
    assert_eq!(
        replicas(&scenario.sandbox.source_client).await,
        source_before,
        "the source kept running"
    );
    assert_eq!(
        replicas(&scenario.sandbox.host_client).await,
        target_before,
        "nothing started on the target"
    );
    assert_eq!(scenario.sandbox.git_head(), head_before, "no quiesce commit");
    assert_eq!(
        scenario.sandbox.served_app_record().await.unwrap().values,
        [ferry_sandbox::world::SOURCE_ADDRESS],
        "DNS unchanged"
    );
    let plan = scenario
        .plans()
        .get(ferry_sandbox::world::PLAN_NAME)
        .await
        .unwrap();
    assert!(plan.status.unwrap().cutover.is_none(), "no cutover was recorded");
    scenario.stop().await;
}
