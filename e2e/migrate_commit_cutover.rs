//! Scenario (the GitOps way): two stages with writes in between, then a Commit-mode cutover with the
//! DNS flip. Ferry stops the source and starts the target by committing to the app's repo (a real git
//! server over HTTP), Argo CD itself (`make argocd`) applies the commits, and Ferry waits for each
//! Application to report the revision. Afterwards: identical trees, the replicas in Git and in the clusters where
//! they belong, the commits carrying Ferry's trailers, and DNS answering with the target. Ferry asked
//! each Application to refresh (`argocd.argoproj.io/refresh`) rather than wait for Argo CD's poll.

#[path = "support/mover.rs"]
mod mover;
#[path = "support/scenario.rs"]
mod scenario;

use std::time::Duration;

use ferry::api::plan::QuiesceMethod;
use ferry_sandbox::world::{REPO, TARGET_ADDRESS};
use scenario::{Scenario, replicas, write_files};

const TIMEOUT: Duration = Duration::from_secs(240);

fn git(repo: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stages_then_a_commit_mode_cutover_through_git() {
    let scenario = Scenario::start(QuiesceMethod::Commit).await;
    let source_dir = scenario.sandbox.volume_dir(true);
    let target_dir = scenario.sandbox.volume_dir(false);
    let head_before = scenario.sandbox.git_head();

    write_files(&source_dir, &[("base/1", &[1u8; 50_000]), ("base/2", b"two")]);
    scenario.create_migration("stage-1", |s| s.stage = true).await;
    scenario.wait_succeeded("stage-1", TIMEOUT).await;
    mover::assert_same_tree(&source_dir, &target_dir);

    write_files(&source_dir, &[("base/3", b"three"), ("base/2", b"two, changed")]);
    scenario.create_migration("stage-2", |s| s.stage = true).await;
    scenario.wait_succeeded("stage-2", TIMEOUT).await;
    mover::assert_same_tree(&source_dir, &target_dir);
    assert_eq!(scenario.sandbox.git_head(), head_before, "stages commit nothing");

    write_files(&source_dir, &[("wal/0001", b"last writes before the cutover")]);
    let before = replicas(&scenario.sandbox.source_client).await;
    scenario
        .create_migration("cutover", |s| s.quiesce_pods = true)
        .await;
    let cutover = scenario.wait_succeeded("cutover", TIMEOUT).await;
    eprintln!("{:#?}", scenario::step_summary(&cutover));
    mover::assert_same_tree(&source_dir, &target_dir);

    assert!(
        replicas(&scenario.sandbox.source_client)
            .await
            .values()
            .all(|r| *r == 0)
    );
    assert_eq!(replicas(&scenario.sandbox.host_client).await, before);

    // The repo says so too: one commit stopping the source, one starting the target, with trailers,
    // changing only replicas lines; nothing force-pushed (the old head is an ancestor).
    let repo = scenario.sandbox.git.repo_path(REPO);
    let log = git(
        &repo,
        &["log", "--format=%H%n%B%n--end--", &format!("{head_before}..main")],
    );
    let commits: Vec<&str> = log.split("--end--").filter(|c| !c.trim().is_empty()).collect();
    assert_eq!(commits.len(), 2, "{log}");
    assert!(
        commits
            .iter()
            .all(|c| c.contains("Ferry-Plan: ferry-demo/shop") && c.contains("Ferry-Migration:")),
        "{log}"
    );
    let diff = git(&repo, &["diff", "-U0", &head_before, "main"]);
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-')) && !l.starts_with("+++") && !l.starts_with("---")
        })
        .collect();
    assert!(
        changed.iter().all(|l| l.contains("replicas:")),
        "only replicas lines change: {diff}"
    );
    git(&repo, &["merge-base", "--is-ancestor", &head_before, "main"]);

    let served = [scenario.sandbox.served_app_record().await.unwrap()];
    assert_eq!(served[0].values, [TARGET_ADDRESS]);
    let downtime = cutover.status.unwrap().downtime.unwrap();
    eprintln!("downtime: {:?} s", downtime.seconds);
    assert!(downtime.seconds.is_some());
    // Argo CD itself (its own poll set to an hour in the sandbox) picked up each commit because
    // Ferry asked: its application controller served a refresh request of each Application.
    let argocd = scenario
        .sandbox
        .argocd()
        .expect("Commit mode runs Argo CD itself");
    for side in ["source", "target"] {
        let name = format!("{}-{side}", ferry_sandbox::world::APP_NAMESPACE);
        assert!(
            argocd.refreshes_served(&name) >= 1,
            "Ferry never asked Application {name} to refresh"
        );
    }
    scenario.stop().await;
}
