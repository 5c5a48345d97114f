//! The sandbox's Argo CD stand-in (`ferry::sandbox::argocd`) for tests that drive steps directly,
//! with setup failures as panics.

#![allow(dead_code)]

use std::path::PathBuf;

use ferry::git::Credentials;
use kube::Client;

/// Applies the Application CRD and waits until it is served.
pub async fn install_application_crd(host: &Client) {
    ferry::sandbox::argocd::install_application_crd(host)
        .await
        .unwrap();
}

/// Creates an Application deploying `path` of `repo_url` (branch main) into `destination_namespace`.
pub async fn create_application(
    host: &Client,
    namespace: &str,
    name: &str,
    repo_url: &str,
    path: &str,
    destination_namespace: &str,
) {
    ferry::sandbox::argocd::create_application(host, namespace, name, repo_url, path, destination_namespace)
        .await
        .unwrap();
}

/// Starts the applier of Application `namespace/name` deploying to `cluster`.
pub fn spawn_applier(
    host: Client,
    cluster: Client,
    namespace: &str,
    name: &str,
    credentials: Credentials,
    cache_dir: PathBuf,
) -> tokio::task::JoinHandle<()> {
    ferry::sandbox::argocd::spawn_applier(host, cluster, namespace, name, credentials, cache_dir)
}
