//! Attack: after a successful cutover the app runs on the target and writes there; then exactly what
//! the PreSync hook in `manifests/argocd/` does on the next Argo CD sync of the target app (`ferry
//! stage --wait --skip-if-cut-over`), a Stage migration created by hand, and a second cutover. Before
//! the fix the stage Succeeded and rsync `--delete` mirrored the stopped source over the live target,
//! erasing what the app wrote. Now: the plan records the cutover, the hook stages nothing and exits 0,
//! the stage and the cutover are refused (durably Failed, reason PlanCutOver) and every target file
//! stays; after a rollback the record is gone and stages run again.

#[path = "support/mover.rs"]
mod mover;
#[path = "support/scenario.rs"]
mod scenario;

use std::time::Duration;

use ferry::api::condition;
use ferry::api::plan::QuiesceMethod;
use ferry_sandbox::world::{FERRY_NAMESPACE, PLAN_NAME};
use scenario::{Scenario, write_files};

const TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_cutover_nothing_writes_the_target_from_the_source_until_a_rollback() {
    let scenario = Scenario::start(QuiesceMethod::Patch).await;
    let source_dir = scenario.sandbox.volume_dir(true);
    let target_dir = scenario.sandbox.volume_dir(false);
    write_files(
        &source_dir,
        &[("orders/1", b"first order"), ("orders/2", &[3u8; 200_000])],
    );

    scenario
        .create_migration("cutover", |s| s.quiesce_pods = true)
        .await;
    scenario.wait_succeeded("cutover", TIMEOUT).await;
    mover::assert_same_tree(&source_dir, &target_dir);
    // The cutover's movers go (a pod the kubelet is still stopping is listed until it has), so that
    // whatever is found later was made by the refused migrations.
    scenario::eventually("the cutover's temporary objects removed", || async {
        scenario::temporary_objects(&scenario.sandbox).await.is_empty()
    })
    .await;
    let plan = scenario.plans().get(PLAN_NAME).await.unwrap();
    let record = plan
        .status
        .unwrap()
        .cutover
        .expect("the plan records its cutover");
    assert_eq!(record.migration, format!("{FERRY_NAMESPACE}/cutover"));

    // The app now runs on the target and writes.
    write_files(
        &target_dir,
        &[
            ("orders/3", b"written on the target"),
            ("orders/1", b"edited on target"),
        ],
    );
    let live = snapshot(&target_dir);

    // The PreSync hook's command, as the manifest runs it: stages nothing, and the sync goes on.
    let plan_ref = format!("{FERRY_NAMESPACE}/{PLAN_NAME}");
    let hook = ferry(
        &scenario,
        &[
            "stage",
            "--plan",
            &plan_ref,
            "--wait",
            "--timeout",
            "60s",
            "--skip-if-cut-over",
        ],
    );
    assert!(hook.status.success(), "the hook failed: {}", text(&hook));
    assert!(text(&hook).contains("nothing is staged"), "{}", text(&hook));
    // The same without the flag: a one-line refusal, exit 1.
    let refused = ferry(&scenario, &["stage", "--plan", &plan_ref]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("rollback"), "{stderr}");

    // A Stage migration and a second cutover created directly: refused before they do anything.
    for (name, stage) in [("stage-after-cutover", true), ("cutover-again", false)] {
        scenario
            .create_migration(name, |s| {
                s.stage = stage;
                s.quiesce_pods = !stage;
            })
            .await;
        let ended = scenario.wait_finished(name, TIMEOUT).await;
        let summary = scenario::step_summary(&ended);
        let status = ended.status.unwrap();
        // The promise first: whatever the migration did, the live target kept every file.
        assert_eq!(
            snapshot(&target_dir),
            live,
            "{name} changed the live target: {summary:?}"
        );
        scenario::assert_readable(&status);
        let failed = condition::find(&status.conditions, "Failed").unwrap_or_else(|| panic!("{status:#?}"));
        assert_eq!(failed.reason.as_deref(), Some("PlanCutOver"), "{status:#?}");
        assert!(
            status.pipeline.is_empty(),
            "a refused migration runs no step: {status:#?}"
        );
        assert!(
            failed.message.as_deref().unwrap().contains("rollback"),
            "{failed:?}"
        );
        // kstatus: Stalled, so `kubectl wait` (Flux, Argo CD) sees it will not go on by itself.
        let waited = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&scenario.sandbox.target.kubeconfig)
            .args(["wait", "--for=condition=Stalled", &format!("migmigration/{name}")])
            .args(["-n", FERRY_NAMESPACE, "--timeout=20s"])
            .output()
            .unwrap();
        assert!(
            waited.status.success(),
            "kubectl wait --for=condition=Stalled: {}",
            text(&waited)
        );
    }
    assert_eq!(snapshot(&target_dir), live, "the live target was changed");
    let made = scenario::temporary_objects(&scenario.sandbox).await;
    assert!(made.is_empty(), "a refused migration created movers: {made:?}");

    // A rollback makes the source the live copy again: the record goes and a stage runs.
    scenario.create_migration("rollback", |s| s.rollback = true).await;
    scenario.wait_succeeded("rollback", TIMEOUT).await;
    let plan = scenario.plans().get(PLAN_NAME).await.unwrap();
    assert!(
        plan.status.unwrap().cutover.is_none(),
        "the rollback clears the cutover record"
    );
    scenario
        .create_migration("stage-after-rollback", |s| s.stage = true)
        .await;
    scenario.wait_succeeded("stage-after-rollback", TIMEOUT).await;
    mover::assert_same_tree(&source_dir, &target_dir);
    scenario.stop().await;
}

fn ferry(scenario: &Scenario, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("FERRY_KUBECONFIG", &scenario.sandbox.target.kubeconfig)
        .output()
        .expect("ferry runs")
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every file under `root` with its size and a hash of its contents (readable when it differs).
fn snapshot(root: &std::path::Path) -> Vec<(String, usize, u64)> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap().display().to_string();
                let contents = std::fs::read(&path).unwrap();
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                std::hash::Hash::hash(&contents, &mut hasher);
                files.push((relative, contents.len(), std::hash::Hasher::finish(&hasher)));
            }
        }
    }
    files.sort();
    files
}
