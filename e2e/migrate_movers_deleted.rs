//! Attack: mover pods deleted in the middle of a transfer, as an eviction, a preemption or a node
//! drain does. Before the fix a deleted sender made WaitForTransfer report `Done("... sender(s)
//! started")`: the stage Succeeded while the new sender had only just begun (a 1.7 GiB stage ended
//! with 214 MiB on the target). Now a vanished sender is started again and a pass is done only when
//! every sender of this pass Succeeded with its stats record; a vanished receiver is created again and
//! its sender reconnects. A stage loses its sender, a cutover loses its receiver: both end with trees
//! identical to the source.

#[path = "support/mover.rs"]
mod mover;
#[path = "support/scenario.rs"]
mod scenario;

use std::time::{Duration, Instant};

use ferry::api::plan::QuiesceMethod;
use ferry_sandbox::world::{APP_NAMESPACE, PLAN_NAME};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use scenario::{Scenario, write_files};

const TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_movers_are_started_again_and_the_transfer_completes() {
    let scenario = Scenario::start(QuiesceMethod::Patch).await;
    let source_dir = scenario.sandbox.volume_dir(true);
    let target_dir = scenario.sandbox.volume_dir(false);
    // Slow the movers down (1 MiB/s) so there is a "mid-transfer" to delete them in.
    let slow = serde_json::json!({"spec": {"transfer": {"bwLimit": 1024}}});
    scenario
        .plans()
        .patch(PLAN_NAME, &PatchParams::default(), &Patch::Merge(&slow))
        .await
        .unwrap();
    let big: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    write_files(&source_dir, &[("big", &big), ("small", b"s")]);

    // A stage whose sender is deleted once it has moved some data.
    scenario.create_migration("stage", |s| s.stage = true).await;
    let sender = delete_mid_transfer(&scenario, "send", &target_dir.join("big")).await;
    let stage = scenario.wait_succeeded("stage", TIMEOUT).await;
    mover::assert_same_tree(&source_dir, &target_dir);
    let status = stage.status.unwrap();
    scenario::assert_readable(&status);
    let wait = status
        .pipeline
        .iter()
        .find(|s| s.name == "WaitForTransfer")
        .unwrap();
    assert!(
        wait.retries >= 1,
        "the lost sender {sender} was not noticed: {wait:?}"
    );

    // A cutover whose receiver is deleted during the final sync: the app's last writes land after
    // the cutover's StageSync (while LowerDNSTTL waits out the old TTL), so FinalSync has them to move.
    scenario
        .create_migration("cutover", |s| s.quiesce_pods = true)
        .await;
    scenario.wait_for_phase("cutover", "LowerDNSTTL", TIMEOUT).await;
    let more: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 241) as u8).collect();
    write_files(&source_dir, &[("big", &more), ("new", b"n")]);
    let receiver = delete_mid_transfer(&scenario, "receive", &target_dir.join("big")).await;
    let cutover = scenario.wait_succeeded("cutover", TIMEOUT).await;
    mover::assert_same_tree(&source_dir, &target_dir);
    scenario::assert_readable(&cutover.status.unwrap());
    eprintln!("deleted sender {sender} and receiver {receiver}");

    scenario::eventually("temporary objects removed", || async {
        scenario::temporary_objects(&scenario.sandbox).await.is_empty()
    })
    .await;
    scenario.stop().await;
}

/// Waits until a `role` mover runs and the transfer is under way (rsync's temporary file or the
/// destination file has grown), deletes that pod, and returns its name.
async fn delete_mid_transfer(scenario: &Scenario, role: &str, growing: &std::path::Path) -> String {
    let client = if role == "send" {
        &scenario.sandbox.source_client
    } else {
        &scenario.sandbox.host_client
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), APP_NAMESPACE);
    let selector = ListParams::default().labels(&format!("{}={role}", ferry::pipeline::movers::ROLE));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no {role} mover ran a transfer");
        let running = pods.list(&selector).await.unwrap().items.into_iter().find(|p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && p.metadata.deletion_timestamp.is_none()
        });
        if let Some(pod) = running
            && transferred(growing) > 512 * 1024
        {
            pods.delete(&pod.name_any(), &DeleteParams::default())
                .await
                .unwrap();
            return pod.name_any();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Bytes written so far for `file`: the file itself, or rsync's temporary `.file.XXXXXX` beside it.
fn transferred(file: &std::path::Path) -> u64 {
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    std::fs::read_dir(file.parent().unwrap())
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    n.starts_with(&format!(".{name}."))
                })
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}
