//! Attack: the cutover's held final senders (docs/mover.md, "Held senders"). They start when
//! StageSync ends, while the app still runs, so FinalSync starts no pod inside the downtime window.
//! The promises tried here, on real nodes (the real kubelet rewrites the release file):
//! 1. a held sender sends nothing before its release: a file the app writes after StageSync, while
//!    the controller is stopped at LowerDNSTTL, is not on the target, however long the sender waits;
//! 2. the released sender is the one that does the final pass: once FinalSync has looked, its pod
//!    (the same pod) carries the release annotation, it succeeds with its log showing `held` then
//!    `released`, and the late file arrived;
//! 3. a held sender deleted before FinalSync (an eviction, a node drain) costs nothing but its start:
//!    the second cutover (after a rollback) still ends with the trees identical.

#[path = "support/mover.rs"]
mod mover;
#[path = "support/scenario.rs"]
mod scenario;

use std::path::Path;
use std::time::{Duration, Instant};

use ferry::api::Itinerary;
use ferry::api::plan::QuiesceMethod;
use ferry::pipeline::movers::{PASS, ROLE, held};
use ferry_sandbox::world::APP_NAMESPACE;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, LogParams};
use kube::{Api, ResourceExt};
use scenario::{Scenario, write_files};

const TIMEOUT: Duration = Duration::from_secs(300);

/// Lets every step of every itinerary pass the gate, except `held_at`.
fn open_gates(gate: &Path, held_at: &[&str]) {
    for itinerary in [Itinerary::Stage, Itinerary::Final, Itinerary::Rollback] {
        for step in itinerary.steps() {
            let go = gate.join(format!("{}.go", step.as_str()));
            if held_at.contains(&step.as_str()) {
                let _ = std::fs::remove_file(&go);
                let _ = std::fs::remove_file(gate.join(format!("{}.waiting", step.as_str())));
            } else {
                std::fs::write(go, "").unwrap();
            }
        }
    }
}

async fn wait_for_gate(scenario: &Scenario, gate: &Path, step: &str) {
    let deadline = Instant::now() + TIMEOUT;
    while !gate.join(format!("{step}.waiting")).exists() {
        assert!(
            Instant::now() < deadline,
            "the controller never reached {step}; log:\n{}",
            scenario::tail(&scenario.controller_log(), 60)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The final senders in the app's namespace.
async fn final_senders(scenario: &Scenario) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(scenario.sandbox.source_client.clone(), APP_NAMESPACE);
    pods.list(&ListParams::default().labels(&format!("{ROLE}=send,{PASS}=final")))
        .await
        .unwrap()
        .items
}

async fn log_of(scenario: &Scenario, pod: &Pod) -> String {
    let pods: Api<Pod> = Api::namespaced(scenario.sandbox.source_client.clone(), APP_NAMESPACE);
    pods.logs(&pod.name_any(), &LogParams::default())
        .await
        .unwrap_or_default()
}

/// Waits until the one final sender runs and its log says it is held; returns it.
async fn held_sender_running(scenario: &Scenario) -> Pod {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let senders = final_senders(scenario).await;
        if let [pod] = senders.as_slice() {
            let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            if running && log_of(scenario, pod).await.contains(r#""type":"held""#) {
                return pod.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no held final sender running: {:?}",
            senders
                .iter()
                .map(|p| (p.name_any(), p.status.clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_final_senders_send_nothing_until_released_and_a_lost_one_is_replaced() {
    let mut scenario = Scenario::start_with(QuiesceMethod::Patch, false).await;
    let gate = scenario.dir.path().join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    open_gates(&gate, &["LowerDNSTTL", "FinalSync"]);
    let env = [("FERRY_TEST_STEP_GATE", gate.as_os_str())];
    scenario.sandbox.start_controller_with_env(&env).unwrap();
    scenario.wait_plan_ready().await;
    let (source_dir, target_dir) = (
        scenario.sandbox.volume_dir(true),
        scenario.sandbox.volume_dir(false),
    );
    write_files(&source_dir, &[("early", b"before the cutover")]);

    // 1. Held: StageSync is over, the controller waits at LowerDNSTTL, the sender at its release.
    scenario
        .create_migration("cutover", |s| s.quiesce_pods = true)
        .await;
    wait_for_gate(&scenario, &gate, "LowerDNSTTL").await;
    let sender = held_sender_running(&scenario).await;
    assert!(held::is_held(&sender), "{:?}", sender.annotations());
    assert_eq!(held::released_at(&sender), None);
    assert!(
        target_dir.join("early").exists(),
        "StageSync copied the early file"
    );
    write_files(&source_dir, &[("late", b"written while the sender was held")]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !target_dir.join("late").exists(),
        "a held sender sent a file before its release"
    );
    let log = log_of(&scenario, &sender).await;
    assert!(
        !log.contains(r#""type":"released""#) && !log.contains(r#""type":"mode""#),
        "{log}"
    );

    // 2. Released: at FinalSync's end the sender that did the pass is the held one.
    std::fs::write(gate.join("LowerDNSTTL.go"), "").unwrap();
    wait_for_gate(&scenario, &gate, "FinalSync").await;
    let senders = final_senders(&scenario).await;
    let [done] = senders.as_slice() else {
        panic!("one final sender expected: {senders:?}");
    };
    assert_eq!(done.uid(), sender.uid(), "FinalSync used the held sender");
    assert!(held::released_at(done).is_some(), "{:?}", done.annotations());
    // The gate stops FinalSync's first look (the release written): the sender goes on by itself.
    let pods: Api<Pod> = Api::namespaced(scenario.sandbox.source_client.clone(), APP_NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(90);
    let done = loop {
        let pod = pods.get(&done.name_any()).await.unwrap();
        match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
            Some("Succeeded") => break pod,
            phase => assert!(
                Instant::now() < deadline && phase != Some("Failed"),
                "the released sender did not succeed: {:?}",
                pod.status
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = log_of(&scenario, &done).await;
    let (held_at, released_at) = (log.find(r#""type":"held""#), log.find(r#""type":"released""#));
    assert!(
        matches!((held_at, released_at), (Some(h), Some(r)) if h < r),
        "held, then released: {log}"
    );
    std::fs::write(gate.join("FinalSync.go"), "").unwrap();
    scenario.wait_succeeded("cutover", TIMEOUT).await;
    mover::assert_same_tree(&source_dir, &target_dir);
    assert!(target_dir.join("late").exists());

    // 3. Lost: after a rollback, a second cutover whose held sender is deleted before FinalSync.
    scenario.create_migration("rollback", |s| s.rollback = true).await;
    scenario.wait_succeeded("rollback", TIMEOUT).await;
    open_gates(&gate, &["LowerDNSTTL"]);
    scenario
        .create_migration("cutover-2", |s| s.quiesce_pods = true)
        .await;
    wait_for_gate(&scenario, &gate, "LowerDNSTTL").await;
    let sender = held_sender_running(&scenario).await;
    write_files(
        &source_dir,
        &[("later", b"written before the held sender was lost")],
    );
    let pods: Api<Pod> = Api::namespaced(scenario.sandbox.source_client.clone(), APP_NAMESPACE);
    pods.delete(&sender.name_any(), &DeleteParams::default())
        .await
        .unwrap();
    std::fs::write(gate.join("LowerDNSTTL.go"), "").unwrap();
    let cutover = scenario.wait_succeeded("cutover-2", TIMEOUT).await;
    mover::assert_same_tree(&source_dir, &target_dir);
    assert!(target_dir.join("later").exists());
    let status = cutover.status.unwrap();
    assert!(status.pipeline.iter().all(|s| !s.failed), "{status:#?}");
    scenario.stop().await;
}
