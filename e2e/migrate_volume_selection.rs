//! Scenario: MTC's `persistentVolumes` list on the whole sandbox. The source namespace has two claims;
//! the plan skips one (`selection.action: skip`) and renames the other (`pvc.name: src:dest`) with a
//! new storage class (`selection.storageClass`). A stage moves only the copied claim, under its new
//! name and class; the skipped one gets nothing on the target (no claim, no data).

#[path = "support/mover.rs"]
mod mover;
#[path = "support/scenario.rs"]
mod scenario;

use std::path::Path;
use std::time::{Duration, Instant};

use ferry::api::plan::QuiesceMethod;
use ferry_sandbox::apply_yaml;
use ferry_sandbox::world::{APP_NAMESPACE, APP_PVC, PLAN_NAME};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;
use kube::api::{Patch, PatchParams};
use scenario::{Scenario, write_files};

const TIMEOUT: Duration = Duration::from_secs(240);
const RENAMED: &str = "db-data-v2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_moves_the_copied_claim_renamed_with_its_new_class_and_skips_the_other() {
    let scenario = Scenario::start(QuiesceMethod::Patch).await;
    let plans = scenario.plans();
    let source_dir = scenario.sandbox.volume_dir(true);
    write_files(&source_dir, &[("db/1", b"rows"), ("db/2", b"more rows")]);
    // A second claim in the source, with data of its own, that the plan skips.
    let volumes = scenario.dir.path().join("volumes");
    let logs_source = volumes.join("source/logs");
    write_files(&logs_source, &[("app.log", b"a log line\n")]);
    apply_yaml(
        &scenario.sandbox.source_client,
        &format!(
            "{}---\n{}",
            scenario::hostpath_volume("shop-logs", APP_NAMESPACE, "logs", &logs_source),
            claim("logs", "local", "shop-logs")
        ),
        "default",
    )
    .await
    .unwrap();
    // The target's storage for the renamed claim, in the new class (a static provisioner's PV).
    let renamed_target = volumes.join("target").join(RENAMED);
    std::fs::create_dir_all(&renamed_target).unwrap();
    let pv = scenario::hostpath_volume("shop-db-data-v2", APP_NAMESPACE, RENAMED, &renamed_target)
        .replace("storageClassName: local", "storageClassName: fast");
    apply_yaml(&scenario.sandbox.host_client, &pv, "default")
        .await
        .unwrap();

    let selection = serde_json::json!({"spec": {"persistentVolumes": [
        {"pvc": {"name": "logs", "namespace": APP_NAMESPACE}, "selection": {"action": "skip"}},
        {"pvc": {"name": format!("{APP_PVC}:{RENAMED}")},
         "selection": {"action": "copy", "storageClass": "fast"}},
    ]}});
    plans
        .patch(PLAN_NAME, &PatchParams::default(), &Patch::Merge(&selection))
        .await
        .unwrap();
    // The plan sees both claims and keeps only the renamed one, with its target class.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = plans.get(PLAN_NAME).await.unwrap().status.unwrap_or_default();
        let seen: Vec<_> = status
            .volumes
            .iter()
            .map(|v| {
                (
                    v.name.as_str(),
                    v.target_name.as_str(),
                    v.target_storage_class.as_deref(),
                )
            })
            .collect();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.is_true());
        if ready && seen == [(APP_PVC, RENAMED, Some("fast"))] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the plan did not apply the selection: {seen:?} {:#?}",
            status.conditions
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    scenario.create_migration("stage", |s| s.stage = true).await;
    let stage = scenario.wait_succeeded("stage", TIMEOUT).await;
    let status = stage.status.unwrap();
    let moved: Vec<String> = status
        .volumes
        .unwrap()
        .iter()
        .map(|v| format!("{} -> {}/{}", v.source_key(), v.target_namespace, v.target_name))
        .collect();
    assert_eq!(moved, [format!("shop/{APP_PVC} -> shop/{RENAMED}")]);

    let target_claims: Api<PersistentVolumeClaim> =
        Api::namespaced(scenario.sandbox.host_client.clone(), APP_NAMESPACE);
    let renamed = target_claims.get(RENAMED).await.unwrap();
    assert_eq!(
        renamed.spec.unwrap().storage_class_name.as_deref(),
        Some("fast"),
        "the target claim's class"
    );
    mover::assert_same_tree(&source_dir, &renamed_target);
    assert!(
        target_claims.get_opt("logs").await.unwrap().is_none(),
        "the skipped claim was created on the target"
    );
    let stray: Vec<_> = walk(&volumes.join("target"))
        .into_iter()
        .filter(|p| p.ends_with("app.log"))
        .collect();
    assert!(
        stray.is_empty(),
        "the skipped claim's data reached the target: {stray:?}"
    );
    scenario.stop().await;
}

/// A claim `name` of class `class` pre-bound to PersistentVolume `volume`.
fn claim(name: &str, class: &str, volume: &str) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}, namespace: {APP_NAMESPACE}}}\n\
         spec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: {class}\n  volumeName: {volume}\n  \
         resources: {{requests: {{storage: 1Gi}}}}\n"
    )
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
