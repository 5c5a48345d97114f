//! Scenario: a stage, writes while the app runs, then a Patch-mode cutover with the DNS flip, on two
//! real control planes with a real node each (the movers and the app as containers), real rsync, real
//! BIND9. Afterwards the target volume equals the source, the app runs on the target with the source's
//! replica counts, the source is at zero with its way back recorded, DNS answers with the target, and no
//! temporary object is left in either cluster.

#[path = "support/mover.rs"]
mod mover;
#[path = "support/scenario.rs"]
mod scenario;

use std::time::Duration;

use ferry::api::plan::QuiesceMethod;
use ferry_sandbox::world::TARGET_ADDRESS;
use scenario::{Scenario, replicas, write_files};

const TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_then_patch_cutover_moves_the_data_the_app_and_the_name() {
    let scenario = Scenario::start(QuiesceMethod::Patch).await;
    let source_dir = scenario.sandbox.volume_dir(true);
    let target_dir = scenario.sandbox.volume_dir(false);
    write_files(
        &source_dir,
        &[
            ("base/1", b"one"),
            ("base/2", &[7u8; 300_000]),
            ("journal", b"a\n"),
        ],
    );

    scenario.create_migration("stage-1", |s| s.stage = true).await;
    let stage = scenario.wait_succeeded("stage-1", TIMEOUT).await;
    let stage_copy = stage.clone();
    mover::assert_same_tree(&source_dir, &target_dir);
    let status = stage.status.unwrap();
    assert_eq!(status.itinerary, Some(ferry::api::Itinerary::Stage));
    assert!(
        status.pipeline.iter().all(|s| s.completed.is_some()),
        "{status:#?}"
    );
    assert_eq!(
        replicas(&scenario.sandbox.source_client).await["db"],
        1,
        "a stage leaves the app running"
    );
    // The first pass has no manifest to trust: a full pass, and it says why.
    assert!(
        pass_of(&status, "WaitForTransfer").contains("full pass: no manifest"),
        "{:?}",
        pass_of(&status, "WaitForTransfer")
    );

    // The app keeps writing; the cutover's syncs carry the changes over.
    write_files(&source_dir, &[("base/3", b"three"), ("journal", b"a\nb\n")]);
    std::fs::remove_file(source_dir.join("base/1")).unwrap();
    let before = replicas(&scenario.sandbox.source_client).await;
    scenario
        .create_migration("cutover", |s| s.quiesce_pods = true)
        .await;
    let cutover = scenario.wait_succeeded("cutover", TIMEOUT).await;
    mover::assert_same_tree(&source_dir, &target_dir);

    eprintln!(
        "stage: {:#?}\ncutover: {:#?}",
        scenario::step_summary(&stage_copy),
        scenario::step_summary(&cutover)
    );
    let status = cutover.status.unwrap();
    // The cutover's syncs follow what changed since the stage: the StageSync trusts the stage's
    // manifest and sends only the changes; the FinalSync, after it, too.
    for step in ["StageSync", "FinalSync"] {
        let pass = pass_of(&status, step);
        assert!(
            pass.contains("delta pass:"),
            "{step} did not run as a delta pass: {pass:?}"
        );
    }
    let downtime = status
        .downtime
        .clone()
        .expect("a cutover records its downtime window");
    assert!(
        downtime.end.is_some() && downtime.seconds.is_some(),
        "{downtime:?}"
    );
    let source_after = replicas(&scenario.sandbox.source_client).await;
    let target_after = replicas(&scenario.sandbox.host_client).await;
    assert!(
        source_after.values().all(|r| *r == 0),
        "source quiesced: {source_after:?}"
    );
    assert_eq!(target_after, before, "target runs what the source ran");

    let served = [scenario.sandbox.served_app_record().await.unwrap()];
    assert_eq!(served[0].values, [TARGET_ADDRESS]);

    scenario::eventually("temporary objects removed", || async {
        scenario::temporary_objects(&scenario.sandbox).await.is_empty()
    })
    .await;
    scenario.stop().await;
}

/// The message of `step` (it ends with how each volume's pass went: `delta pass: …` or `full pass: …`).
fn pass_of(status: &ferry::api::MigMigrationStatus, step: &str) -> String {
    status
        .pipeline
        .iter()
        .find(|s| s.name == step)
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}
