//! Attack: a target file changes between FinalSync and Verify (the crash-test step gate holds the
//! cutover after FinalSync's work). Before the fix Verify was a second `--checksum` rsync that
//! repaired what differed and reported success, and FinalSync already checksummed when verify was on,
//! so the data was read twice inside the downtime window. Now FinalSync runs without checksums, and
//! Verify compares without changing anything: the cutover fails at Verify naming the file, and the
//! changed file is left as it was.

#[path = "support/scenario.rs"]
mod scenario;

use std::time::{Duration, Instant};

use ferry::api::Itinerary;
use ferry::api::plan::QuiesceMethod;
use ferry_sandbox::world::APP_NAMESPACE;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use scenario::{Scenario, write_files};

const TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_compares_without_changing_and_names_what_differs() {
    let mut scenario = Scenario::start_with(QuiesceMethod::Patch, false).await;
    let gate = scenario.dir.path().join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    // Every step passes its gate at once except FinalSync.
    for step in Itinerary::Final
        .steps()
        .iter()
        .filter(|s| s.as_str() != "FinalSync")
    {
        std::fs::write(gate.join(format!("{step}.go")), "").unwrap();
    }
    scenario
        .sandbox
        .start_controller_with_env(&[("FERRY_TEST_STEP_GATE", gate.as_os_str())])
        .unwrap();
    scenario.wait_plan_ready().await;
    let source_dir = scenario.sandbox.volume_dir(true);
    let target_dir = scenario.sandbox.volume_dir(false);
    write_files(
        &source_dir,
        &[("orders/1", b"first order"), ("orders/2", &[9u8; 100_000])],
    );

    scenario
        .create_migration("cutover", |s| {
            s.quiesce_pods = true;
            s.verify = true;
        })
        .await;
    let deadline = Instant::now() + TIMEOUT;
    while !gate.join("FinalSync.waiting").exists() {
        assert!(Instant::now() < deadline, "FinalSync never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Held after FinalSync's first run: let its sender finish, then change a target file behind it
    // (same size, same mtime: only a checksum sees it).
    let pods: Api<Pod> = Api::namespaced(scenario.sandbox.source_client.clone(), APP_NAMESPACE);
    let final_sender = loop {
        let list = pods
            .list(&ListParams::default().labels("migration.ferry.dev/pass=final"))
            .await
            .unwrap();
        if let Some(pod) = list
            .items
            .into_iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
        {
            break pod;
        }
        assert!(Instant::now() < deadline, "the final sender did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let env = final_sender.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap_or_default();
    let value = |name: &str| env.iter().find(|e| e.name == name).and_then(|e| e.value.clone());
    assert_eq!(
        value("FERRY_MOVER_VERIFY").as_deref(),
        Some("false"),
        "FinalSync must not verify"
    );
    assert_eq!(
        value("FERRY_MOVER_CHECKSUM"),
        None,
        "FinalSync must not checksum: Verify follows"
    );
    let changed = target_dir.join("orders/1");
    let mtime = std::fs::metadata(&changed).unwrap().modified().unwrap();
    std::fs::write(&changed, b"FIRST ORDER").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&changed)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::fs::write(gate.join("FinalSync.go"), "").unwrap();

    let ended = scenario.wait_finished("cutover", TIMEOUT).await;
    let status = ended.status.unwrap();
    scenario::assert_readable(&status);
    let verify = status.pipeline.iter().find(|s| s.name == "Verify").unwrap();
    assert!(verify.failed, "Verify did not fail: {status:#?}");
    let message = verify.message.clone().unwrap_or_default();
    assert!(
        message.contains("orders/1") && message.contains("differ"),
        "Verify does not name the file: {message}"
    );
    assert!(!message.contains("orders/2"), "{message}");
    assert_eq!(
        std::fs::read(&changed).unwrap(),
        b"FIRST ORDER",
        "Verify changed the target"
    );
    let final_sync = status.pipeline.iter().find(|s| s.name == "FinalSync").unwrap();
    assert!(
        final_sync.completed.is_some() && !final_sync.failed,
        "{final_sync:?}"
    );
    assert!(
        status
            .pipeline
            .iter()
            .find(|s| s.name == "UnquiesceTarget")
            .unwrap()
            .started
            .is_none(),
        "nothing starts on the target after a failed verification"
    );
    scenario.stop().await;
}
