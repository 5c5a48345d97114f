//! Attack: a PVC is created in the plan's source namespace while a stage runs. Before the fix the
//! migration re-read the volume list from the plan on every reconcile and named movers by list
//! position, so a new PVC shifted the indexes and a sender could mirror one PVC into another's
//! receiver, with `--delete`. Now the volume set (source PVC UID and name, target namespace and name)
//! is fixed in the migration's status when it starts and movers are named by the volume's id: this
//! stage moves only the volume it started with, says the new one was not moved (Warn condition
//! `VolumesNotMoved`), and no volume receives another's data; the next stage moves both.

#[path = "support/mover.rs"]
mod mover;
#[path = "support/scenario.rs"]
mod scenario;

use std::time::{Duration, Instant};

use ferry::api::condition;
use ferry::api::plan::QuiesceMethod;
use ferry_sandbox::apply_yaml;
use ferry_sandbox::world::{APP_NAMESPACE, PLAN_NAME};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;
use kube::api::{Patch, PatchParams};
use scenario::{Scenario, write_files};

const TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pvc_created_during_a_stage_is_not_moved_by_it_and_receives_nothing_else() {
    let scenario = Scenario::start(QuiesceMethod::Patch).await;
    let plans = scenario.plans();
    let source_dir = scenario.sandbox.volume_dir(true);
    let target_dir = scenario.sandbox.volume_dir(false);
    // 1 MiB/s: the stage runs for a few seconds.
    let slow = serde_json::json!({"spec": {"transfer": {"bwLimit": 1024}}});
    plans
        .patch(PLAN_NAME, &PatchParams::default(), &Patch::Merge(&slow))
        .await
        .unwrap();
    let big: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    write_files(&source_dir, &[("big", &big), ("db/1", b"rows")]);

    scenario.create_migration("stage", |s| s.stage = true).await;
    scenario.wait_for_phase("stage", "WaitForTransfer", TIMEOUT).await;
    // A second claim appears in the source namespace, bound, with data of its own.
    let logs_source = scenario.dir.path().join("volumes/source/logs");
    let logs_target = scenario.dir.path().join("volumes/target/logs");
    write_files(&logs_source, &[("app.log", b"a log line\n")]);
    std::fs::create_dir_all(&logs_target).unwrap();
    apply_yaml(
        &scenario.sandbox.source_client,
        &claim_with_volume(&logs_source),
        "default",
    )
    .await
    .unwrap();
    apply_yaml(
        &scenario.sandbox.host_client,
        &volume_only(&logs_target),
        "default",
    )
    .await
    .unwrap();
    // The plan reconciler discovers it: MTC's `refresh: true` makes it look now rather than at its
    // next resync (60 s).
    let touch = serde_json::json!({"spec": {"refresh": true}});
    plans
        .patch(PLAN_NAME, &PatchParams::default(), &Patch::Merge(&touch))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let plan = plans.get(PLAN_NAME).await.unwrap();
        if plan
            .status
            .unwrap_or_default()
            .volumes
            .iter()
            .any(|v| v.name == "logs")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the plan never discovered the new PVC");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let stage = scenario.wait_succeeded("stage", TIMEOUT).await;
    let status = stage.status.unwrap();
    scenario::assert_readable(&status);
    let moved = scenario::moved_volumes(&status);
    assert_eq!(
        moved,
        [format!("{APP_NAMESPACE}/db-data")],
        "the set fixed at the start"
    );
    let warning = condition::find(&status.conditions, "VolumesNotMoved")
        .unwrap_or_else(|| panic!("the stage does not say it left the new PVC: {status:#?}"));
    assert!(
        warning.message.as_deref().unwrap().contains("shop/logs"),
        "{warning:?}"
    );
    mover::assert_same_tree(&source_dir, &target_dir);
    assert!(
        !target_dir.join("app.log").exists(),
        "another volume's data reached db-data"
    );
    let target_claims: Api<PersistentVolumeClaim> =
        Api::namespaced(scenario.sandbox.host_client.clone(), APP_NAMESPACE);
    assert!(
        target_claims.get_opt("logs").await.unwrap().is_none(),
        "this stage created the new PVC"
    );
    assert!(
        std::fs::read_dir(&logs_target).unwrap().next().is_none(),
        "logs received data"
    );

    // The next stage fixes both volumes and moves each into its own claim.
    scenario.create_migration("stage-2", |s| s.stage = true).await;
    let next = scenario.wait_succeeded("stage-2", TIMEOUT).await;
    assert_eq!(next.status.unwrap().volumes.unwrap().len(), 2);
    mover::assert_same_tree(&source_dir, &target_dir);
    mover::assert_same_tree(&logs_source, &logs_target);

    // A cutover with MTC's keepAnnotations leaves Ferry's bookkeeping annotation on the target PVC it
    // created (without it, Cleanup removes it: migrate_seed_cutover).
    let logs = target_claims.get("logs").await.unwrap();
    let source_pvc = |claim: &PersistentVolumeClaim| {
        claim
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .get(ferry::pipeline::labels::SOURCE_PVC)
            .cloned()
    };
    assert_eq!(source_pvc(&logs).as_deref(), Some("shop/logs"));
    scenario
        .create_migration("cutover", |s| {
            s.quiesce_pods = true;
            s.keep_annotations = Some(true);
        })
        .await;
    scenario.wait_succeeded("cutover", TIMEOUT).await;
    let logs = target_claims.get("logs").await.unwrap();
    assert_eq!(
        source_pvc(&logs).as_deref(),
        Some("shop/logs"),
        "keepAnnotations keeps it"
    );
    scenario.stop().await;
}

/// The claim `logs` in the app namespace and a hostPath PV bound to it (source cluster).
fn claim_with_volume(dir: &std::path::Path) -> String {
    format!(
        "{}---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: logs, namespace: {APP_NAMESPACE}}}\n\
         spec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: local\n  volumeName: {APP_NAMESPACE}-logs\n  \
         resources: {{requests: {{storage: 1Gi}}}}\n",
        volume_only(dir)
    )
}

fn volume_only(dir: &std::path::Path) -> String {
    scenario::hostpath_volume(&format!("{APP_NAMESPACE}-logs"), APP_NAMESPACE, "logs", dir)
}
