//! Scenario: the controller is SIGKILLed during every step of a cutover and restarted each time; the
//! cutover still completes with the target tree identical to the source, the replicas where they
//! belong and the DNS flipped. On real nodes: the movers and the app are containers that the
//! restarted controllers find (or not) as the killed one left them.
//!
//! Where to die: the controller's `FERRY_TEST_STEP_GATE` hook stops the first run of each step after
//! the step's work is done and before its outcome is written to status — the moment a crash is most
//! dangerous, because the restarted controller must redo a step that already happened. The test waits
//! for `<step>.waiting`, SIGKILLs the process there, lets that step pass from then on, and restarts it.

#[path = "support/mover.rs"]
mod mover;
#[path = "support/scenario.rs"]
mod scenario;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ferry::api::Itinerary;
use ferry::api::plan::QuiesceMethod;
use ferry_sandbox::world::TARGET_ADDRESS;
use scenario::{Scenario, replicas, write_files};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutover_survives_a_kill_in_every_step() {
    let mut scenario = Scenario::start_with(QuiesceMethod::Patch, false).await;
    let gate = scenario.dir.path().join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    let env = [("FERRY_TEST_STEP_GATE", gate.as_os_str())];
    scenario.sandbox.start_controller_with_env(&env).unwrap();
    scenario.wait_plan_ready().await;

    let source_dir = scenario.sandbox.volume_dir(true);
    write_files(
        &source_dir,
        &[("a", b"alpha"), ("dir/b", &[9u8; 200_000]), ("dir/c", b"c")],
    );
    let before = replicas(&scenario.sandbox.source_client).await;
    scenario
        .create_migration("cutover", |s| {
            s.quiesce_pods = true;
            s.verify = true; // so the Verify step runs a checksum pass, and is killed in too
        })
        .await;

    let steps: Vec<&str> = Itinerary::Final.steps().iter().map(|s| s.as_str()).collect();
    let mut killed = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(400);
    while killed.len() < steps.len() {
        assert!(
            Instant::now() < deadline,
            "killed in {killed:?} only; controller log:\n{}",
            scenario::tail(&scenario.controller_log(), 80)
        );
        let waiting = steps
            .iter()
            .find(|step| gate.join(format!("{step}.waiting")).exists() && !killed.contains(**step));
        let Some(step) = waiting else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let controller = scenario.sandbox.controller.take().expect("controller running");
        controller.kill();
        eprintln!("killed the controller in {step}");
        killed.insert(step.to_string());
        std::fs::write(gate.join(format!("{step}.go")), "").unwrap();
        scenario.sandbox.start_controller_with_env(&env).unwrap();
    }
    let cutover = scenario.wait_succeeded("cutover", Duration::from_secs(240)).await;
    assert_eq!(killed.len(), steps.len(), "one kill per step");

    eprintln!("{:#?}", scenario::step_summary(&cutover));
    eprintln!("{}", scenario::tail(&scenario.controller_log(), 200));
    mover::assert_same_tree(&source_dir, &scenario.sandbox.volume_dir(false));
    let source_after = replicas(&scenario.sandbox.source_client).await;
    assert!(source_after.values().all(|r| *r == 0), "{source_after:?}");
    assert_eq!(replicas(&scenario.sandbox.host_client).await, before);
    let served = [scenario.sandbox.served_app_record().await.unwrap()];
    assert_eq!(served[0].values, [TARGET_ADDRESS]);
    let status = cutover.status.unwrap();
    assert!(status.pipeline.iter().all(|s| !s.failed), "{status:#?}");
    scenario.stop().await;
}
