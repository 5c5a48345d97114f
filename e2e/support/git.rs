//! Shared helpers for the git e2e tests: a real `git http-backend` server on loopback with basic auth,
//! credentials for it, and the git command line for "another user" who clones and pushes.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use ferry::git::Credentials;
use ferry_sandbox::git_server::GitServer;

pub const USER: &str = "ferry-test";
pub const PASSWORD: &str = "s3cret-pass";

/// A Deployment manifest with comments and a kustomization, as an app repo would hold them.
pub const APP_YAML: &str = "# Shop front end\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  # tuned for Black Friday\n  replicas: 3 # do not lower\n  template:\n    spec:\n      containers:\n      - name: web\n        image: \"nginx:1.27\"\n---\n# the database\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db, namespace: shop}\nspec: {replicas: 1, serviceName: db}\n";

/// Starts a server over a fresh temp dir; keep the `TempDir` alive as long as the server.
pub async fn start_server() -> (tempfile::TempDir, GitServer) {
    let dir = tempfile::tempdir().unwrap();
    let server = GitServer::start(dir.path().join("repos"), USER, PASSWORD)
        .await
        .unwrap();
    (dir, server)
}

/// The credentials as they would come from the plan's Secret.
/// Ferry's cached clone (in `dir/cache`) of the server's `app` repository, branch `main`.
pub fn open_app(dir: &Path, server: &GitServer) -> ferry::git::Repo {
    ferry::git::Repo::open_or_clone(&dir.join("cache"), &server.url("app"), "main", credentials()).unwrap()
}

pub fn credentials() -> Credentials {
    let data: BTreeMap<String, Vec<u8>> = [("username", USER), ("password", PASSWORD)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    Credentials::from_secret_data(&data).unwrap()
}

/// `url` with the test user's credentials embedded, for the git command line.
pub fn url_with_credentials(url: &str) -> String {
    url.replacen("http://", &format!("http://{USER}:{PASSWORD}@"), 1)
}

/// Runs git in `dir`, panicking with its output on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=Other Dev",
            "-c",
            "user.email=dev@example.test",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Clones `url` with the CLI into `dir/name`, returning the clone path.
pub fn cli_clone(dir: &Path, url: &str, name: &str) -> std::path::PathBuf {
    git(dir, &["clone", "-q", &url_with_credentials(url), name]);
    dir.join(name)
}

/// Writes a file in a CLI clone, commits and pushes it.
pub fn cli_commit_and_push(clone: &Path, file: &str, content: &str, message: &str) {
    let path = clone.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    git(clone, &["add", file]);
    git(clone, &["commit", "-q", "-m", message]);
    git(clone, &["push", "-q", "origin", "HEAD:main"]);
}
