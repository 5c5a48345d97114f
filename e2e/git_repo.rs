//! Repository access against a real `git http-backend` server on loopback: clone, incremental fetch,
//! rejected credentials, a damaged cache being re-cloned, and watching for commits that touch paths.

#[path = "support/git.rs"]
mod support;

use ferry::git::{Credentials, Repo};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_then_incremental_fetch_sees_new_commits() {
    let (dir, server) = start_server().await;
    let first = server
        .create_repo("app", &[("apps/source/app.yaml", APP_YAML)])
        .unwrap();
    let cache = dir.path().join("cache/app");

    let repo = Repo::open_or_clone(&cache, &server.url("app"), "main", credentials()).unwrap();
    assert_eq!(repo.remote_tip().unwrap(), first);
    assert_eq!(
        std::fs::read_to_string(repo.workdir().join("apps/source/app.yaml")).unwrap(),
        APP_YAML
    );
    let manifests = repo.load_manifests("apps/source").unwrap();
    let names: Vec<_> = manifests.workloads().into_iter().map(|w| w.name).collect();
    assert_eq!(names, vec!["web", "db"]);
    assert_eq!(manifests.files[0].path, "apps/source/app.yaml");

    // Another developer pushes with the git command line; fetch brings only that in.
    let other = cli_clone(dir.path(), &server.url("app"), "other");
    cli_commit_and_push(&other, "README.md", "# shop\n", "Add readme");
    let tip = repo.fetch().unwrap();
    assert_ne!(tip, first);
    assert_eq!(git(&other, &["rev-parse", "HEAD"]).trim(), tip.to_string());
    assert!(repo.workdir().join("README.md").exists());

    // Opening the existing cache again reuses it (no new clone) and is at the tip.
    drop(repo);
    let marker = cache.join(".git/ferry-marker");
    std::fs::write(&marker, "kept").unwrap();
    let reopened = Repo::open_or_clone(&cache, &server.url("app"), "main", credentials()).unwrap();
    assert_eq!(reopened.remote_tip().unwrap(), tip);
    assert!(marker.exists(), "the cache was re-cloned instead of reused");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_credentials_fail_with_a_clear_error() {
    let (dir, server) = start_server().await;
    server.create_repo("app", &[("a.yaml", "a: 1\n")]).unwrap();
    let wrong = Credentials::UserPassword {
        username: USER.into(),
        password: "wrong".into(),
    };
    let err = Repo::open_or_clone(&dir.path().join("c1"), &server.url("app"), "main", wrong).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ferry::Error::GitAuth(_)), "{err:?}");
    assert!(
        text.contains("authentication failed") && text.contains(&server.url("app")),
        "{text}"
    );
    assert!(
        !text.contains("wrong"),
        "the password leaked into the error: {text}"
    );
    assert!(
        !dir.path().join("c1").exists(),
        "a failed clone left a half cache behind"
    );

    let err = Repo::open_or_clone(
        &dir.path().join("c2"),
        &server.url("app"),
        "main",
        Credentials::None,
    )
    .unwrap_err();
    assert!(matches!(err, ferry::Error::GitAuth(_)), "{err:?}");

    let err = Repo::open_or_clone(
        &dir.path().join("c3"),
        &server.url("app"),
        "no-such-branch",
        credentials(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no-such-branch"), "{err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_cache_is_detected_and_cloned_again() {
    let (dir, server) = start_server().await;
    let first = server.create_repo("app", &[("a.yaml", "a: 1\n")]).unwrap();
    let cache = dir.path().join("cache");
    drop(Repo::open_or_clone(&cache, &server.url("app"), "main", credentials()).unwrap());

    // Truncate every loose object and pack: the repository can no longer be read.
    for entry in walk(&cache.join(".git/objects")) {
        std::fs::write(entry, b"garbage").unwrap();
    }
    let repo = Repo::open_or_clone(&cache, &server.url("app"), "main", credentials()).unwrap();
    assert_eq!(repo.remote_tip().unwrap(), first);
    assert_eq!(
        std::fs::read_to_string(repo.workdir().join("a.yaml")).unwrap(),
        "a: 1\n"
    );

    // A cache whose .git is gone entirely is also replaced.
    drop(repo);
    std::fs::remove_dir_all(cache.join(".git")).unwrap();
    let repo = Repo::open_or_clone(&cache, &server.url("app"), "main", credentials()).unwrap();
    assert_eq!(repo.remote_tip().unwrap(), first);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_reports_commits_that_touch_the_watched_paths() {
    let (dir, server) = start_server().await;
    let first = server
        .create_repo(
            "app",
            &[("apps/source/app.yaml", APP_YAML), ("docs/readme.md", "hi\n")],
        )
        .unwrap();
    let repo = open_app(dir.path(), &server);
    let watched = vec!["apps/source".to_string()];

    let report = repo.poll(Some(first), &watched).unwrap();
    assert!(!report.touched);
    assert_eq!(report.head, first);

    let docs_only = server
        .commit("app", &[("docs/readme.md", "hello\n")], "Docs")
        .unwrap();
    let report = repo.poll(Some(first), &watched).unwrap();
    assert_eq!(report.head, docs_only);
    assert!(!report.touched, "{report:?}");

    let app_change = server
        .commit(
            "app",
            &[(
                "apps/source/app.yaml",
                &APP_YAML.replace("nginx:1.27", "nginx:1.28"),
            )],
            "Bump",
        )
        .unwrap();
    let report = repo.poll(Some(docs_only), &watched).unwrap();
    assert_eq!(report.head, app_change);
    assert!(report.touched);
    assert_eq!(report.changed_paths, vec!["apps/source/app.yaml".to_string()]);
    // Since the first commit, both commits count, but only the watched file is listed.
    let report = repo.changed_since(first, &watched).unwrap();
    assert_eq!(report.changed_paths, vec!["apps/source/app.yaml".to_string()]);

    // On an interval: a background poller sends an event for a new commit touching the path.
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let target = ferry::git::watch::WatchTarget {
        cache_dir: dir.path().join("watch-cache"),
        url: server.url("app"),
        branch: "main".into(),
        credentials: credentials(),
        paths: watched.clone(),
    };
    let poller = ferry::git::watch::spawn_interval(
        target,
        Some(app_change),
        std::time::Duration::from_millis(200),
        tx,
    );
    let pushed = server
        .commit(
            "app",
            &[(
                "apps/source/app.yaml",
                &APP_YAML.replace("replicas: 3", "replicas: 4"),
            )],
            "Scale",
        )
        .unwrap();
    let event = tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.head, pushed);
    assert!(event.touched);
    poller.abort();
    server.stop().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_request_bodies_reach_http_backend_intact() {
    let (dir, server) = start_server().await;
    let tip = server.create_repo("app", &[("a.yaml", "a: 1\n")]).unwrap();
    // Many branches make the clone's "want" list larger than 1 KiB, which git sends gzip-compressed.
    let bare = git2::Repository::open_bare(server.repo_path("app")).unwrap();
    let commit = bare.find_commit(tip).unwrap();
    for i in 0..60 {
        bare.branch(&format!("feature/branch-number-{i:03}"), &commit, false)
            .unwrap();
    }
    for i in 0..60 {
        server
            .commit("app", &[("n.txt", &i.to_string())], &format!("c{i}"))
            .unwrap();
        let head = bare.refname_to_id("refs/heads/main").unwrap();
        bare.branch(&format!("topic-{i:03}"), &bare.find_commit(head).unwrap(), false)
            .unwrap();
    }
    let output = std::process::Command::new("git")
        .args([
            "-c",
            "protocol.version=0",
            "clone",
            "-q",
            "--mirror",
            &url_with_credentials(&server.url("app")),
            "m",
        ])
        .current_dir(dir.path())
        .env("GIT_TRACE_CURL", "1")
        .env("GIT_TRACE_CURL_NO_DATA", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.to_ascii_lowercase().contains("content-encoding: gzip"),
        "no gzip request was sent"
    );
    let refs = git(&dir.path().join("m"), &["for-each-ref", "--format=%(refname)"]);
    assert_eq!(refs.lines().count(), 121, "{refs}");
    server.stop().await;
}
