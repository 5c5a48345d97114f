//! Quiesce commits against a real `git http-backend` server: the commit's diff touches only the
//! changed values, re-running makes no commit, a concurrent pusher is not lost, reverts undo Ferry's
//! commits by trailer, and unquiesce brings the source's values to the target path.

#[path = "support/git.rs"]
mod support;

use ferry::git::{CommitRequest, PushOutcome, RevertFilter, Trailers, quiesce};
use support::*;

fn trailers() -> Trailers {
    Trailers {
        plan: "shop/move-shop".into(),
        migration: "cutover-1/0b4f-uid".into(),
    }
}

fn request(edits: Vec<ferry::git::FileEdit>, message: &str) -> CommitRequest {
    CommitRequest {
        edits,
        message: message.into(),
        trailers: trailers(),
        author: None,
        max_attempts: 5,
    }
}

/// The `-`/`+` lines of the diff of `rev` in the bare repository (real `git show`).
fn changed_lines(repo: &std::path::Path, rev: &str) -> Vec<String> {
    let out = git(repo, &["show", "--format=", "--unified=0", rev]);
    out.lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-')) && !l.starts_with("+++") && !l.starts_with("---")
        })
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiesce_commit_changes_only_the_replicas_values_and_is_idempotent() {
    let (dir, server) = start_server().await;
    server
        .create_repo("app", &[("apps/source/app.yaml", APP_YAML)])
        .unwrap();
    let repo = open_app(dir.path(), &server);

    let plan = quiesce::plan(&repo.load_manifests("apps/source").unwrap());
    let previous: Vec<_> = plan
        .recorded
        .iter()
        .map(|r| (r.name.clone(), r.previous.clone()))
        .collect();
    assert_eq!(
        previous,
        vec![("web".into(), Some(3.into())), ("db".into(), Some(1.into()))]
    );
    let outcome = repo
        .commit_and_push(&request(plan.edits.clone(), "Quiesce shop for cutover"))
        .unwrap();
    let PushOutcome::Pushed { commit, attempts: 1 } = outcome else {
        panic!("{outcome:?}")
    };

    let bare = server.repo_path("app");
    assert_eq!(git(&bare, &["rev-parse", "main"]).trim(), commit.to_string());
    assert_eq!(
        changed_lines(&bare, "main"),
        vec![
            "-  replicas: 3 # do not lower",
            "+  replicas: 0 # do not lower",
            "-spec: {replicas: 1, serviceName: db}",
            "+spec: {replicas: 0, serviceName: db}",
        ]
    );
    let message = git(&bare, &["log", "-1", "--format=%an <%ae>%n%B", "main"]);
    assert!(
        message.starts_with("Ferry <ferry@migration.ferry.dev>\nQuiesce shop for cutover\n"),
        "{message}"
    );
    let trailers = git(&bare, &["log", "-1", "--format=%(trailers:only,unfold)", "main"]);
    assert_eq!(
        trailers.trim(),
        "Ferry-Plan: shop/move-shop\nFerry-Migration: cutover-1/0b4f-uid"
    );

    // Running the same quiesce again (same edits) finds nothing to change: no new commit.
    let again = repo
        .commit_and_push(&request(plan.edits, "Quiesce shop for cutover"))
        .unwrap();
    assert_eq!(again, PushOutcome::Unchanged { head: commit });
    let replanned = quiesce::plan(&repo.load_manifests("apps/source").unwrap());
    assert!(replanned.edits.is_empty());
    assert_eq!(git(&bare, &["rev-list", "--count", "main"]).trim(), "2");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_push_is_kept_and_ferrys_edit_lands_on_top() {
    let (dir, server) = start_server().await;
    server
        .create_repo("app", &[("apps/source/app.yaml", APP_YAML)])
        .unwrap();
    let repo = open_app(dir.path(), &server);
    let other = cli_clone(dir.path(), &server.url("app"), "other");
    let plan = quiesce::plan(&repo.load_manifests("apps/source").unwrap());

    // Between Ferry's fetch and its push, another developer pushes an unrelated change to the same file.
    let mut raced = false;
    let outcome = repo
        .commit_and_push_observed(&request(plan.edits, "Quiesce shop"), &mut |attempt| {
            if attempt == 1 {
                let bumped = APP_YAML.replace("nginx:1.27", "nginx:1.28");
                cli_commit_and_push(&other, "apps/source/app.yaml", &bumped, "Bump nginx");
                raced = true;
            }
        })
        .unwrap();
    assert!(raced);
    let PushOutcome::Pushed { commit, attempts } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        attempts, 2,
        "the first push must have been rejected as non-fast-forward"
    );

    let bare = server.repo_path("app");
    let log = git(&bare, &["log", "--format=%s", "main"]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        vec!["Quiesce shop", "Bump nginx", "Initial commit"]
    );
    assert_eq!(git(&bare, &["rev-parse", "main"]).trim(), commit.to_string());
    let content = git(&bare, &["show", "main:apps/source/app.yaml"]);
    assert!(
        content.contains("image: \"nginx:1.28\""),
        "the other push was lost:\n{content}"
    );
    assert!(content.contains("replicas: 0 # do not lower"), "{content}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_undoes_ferry_commits_by_trailer_and_unquiesce_restores_the_target() {
    let (dir, server) = start_server().await;
    let target_yaml = APP_YAML
        .replace("replicas: 3", "replicas: 0")
        .replace("{replicas: 1,", "{replicas: 0,");
    server
        .create_repo(
            "app",
            &[
                ("apps/source/app.yaml", APP_YAML),
                ("apps/target/app.yaml", &target_yaml),
            ],
        )
        .unwrap();
    let repo = open_app(dir.path(), &server);
    let bare = server.repo_path("app");

    let plan = quiesce::plan(&repo.load_manifests("apps/source").unwrap());
    repo.commit_and_push(&request(plan.edits, "Quiesce source"))
        .unwrap();
    // Unquiesce the target path with the values the source had.
    let edits =
        quiesce::unquiesce_plan(&repo.load_manifests("apps/target").unwrap(), &plan.recorded).unwrap();
    repo.commit_and_push(&request(edits, "Start target")).unwrap();
    assert_eq!(git(&bare, &["show", "main:apps/target/app.yaml"]), APP_YAML);
    // Someone else's commit in between must survive the rollback.
    server
        .commit("app", &[("README.md", "shop\n")], "Readme")
        .unwrap();

    let found = repo
        .ferry_commits(&RevertFilter {
            plan: Some("shop/move-shop".into()),
            migration: None,
        })
        .unwrap();
    assert_eq!(found.len(), 2);
    let filter = RevertFilter {
        plan: None,
        migration: Some("cutover-1/0b4f-uid".into()),
    };
    let outcome = repo.revert_ferry_commits(&filter, &trailers(), None, 5).unwrap();
    assert_eq!(outcome.reverted, found);
    assert!(matches!(outcome.push, PushOutcome::Pushed { .. }));
    assert_eq!(git(&bare, &["show", "main:apps/source/app.yaml"]), APP_YAML);
    assert_eq!(git(&bare, &["show", "main:apps/target/app.yaml"]), target_yaml);
    assert_eq!(git(&bare, &["show", "main:README.md"]), "shop\n");
    let subjects = git(&bare, &["log", "-2", "--format=%s", "main"]);
    assert_eq!(subjects, "Revert \"Quiesce source\"\nRevert \"Start target\"\n");
    let body = git(&bare, &["log", "-1", "--format=%B", "main"]);
    assert!(body.contains(&format!("Ferry-Reverts: {}", found[1])), "{body}");

    // A second rollback finds nothing left to revert and makes no commit.
    let again = repo.revert_ferry_commits(&filter, &trailers(), None, 5).unwrap();
    assert!(again.reverted.is_empty());
    assert!(matches!(again.push, PushOutcome::Unchanged { .. }));
    // Other migrations' commits are not touched by a filter for this one.
    let none = repo
        .ferry_commits(&RevertFilter {
            plan: Some("other/plan".into()),
            migration: None,
        })
        .unwrap();
    assert!(none.is_empty());
    server.stop().await;
}
