//! Argo CD stand-in for the sandbox (there is no Argo CD here): the Application CRD
//! (e2e/fixtures/argocd) on the host control plane, and an applier task that plays Argo CD's automated
//! sync for one Application: it fetches the real repo over HTTP (Ferry's own `git::Repo`),
//! server-side applies every document under the Application's path to its cluster, then writes
//! `status.sync.{revision,status}`, `status.health` and `status.operationState.phase` like Argo CD does.
//! Like Argo CD it re-reads the repo by itself only now and then (every [`APPLIER_POLL`]) and at once
//! when the Application carries the `argocd.argoproj.io/refresh` annotation, which it then removes.
//! Commit-mode quiesce is tested and demonstrated against it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Result;
use crate::{apply_yaml, wait_for_crds};
use ferry::git::Credentials;
use ferry::pipeline::argocd::REFRESH_ANNOTATION;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const CRD: &str = include_str!("../../../e2e/fixtures/argocd/application-crd.yaml");

/// How often the applier re-reads the repo by itself (Argo CD polls every 3 minutes; tests cannot wait
/// that long, but it stays slow enough that a missing refresh request shows in step durations).
pub const APPLIER_POLL: Duration = Duration::from_secs(5);
/// Annotation the applier keeps on its Application: how many refresh requests it has served (tests
/// check Ferry asked instead of waiting for the poll).
pub const REFRESHES_SERVED: &str = "sandbox.ferry.dev/refreshes-served";
/// How often the applier looks for a refresh request on its Application (Argo CD reacts to the
/// annotation within moments).
pub const REFRESH_CHECK: Duration = Duration::from_millis(200);

fn resource() -> ApiResource {
    let (group, version, kind, plural) = ferry::pipeline::argocd::APPLICATION_API;
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// The Applications of `namespace` in `host`.
pub fn applications(host: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(host.clone(), namespace, &resource())
}

/// Applies the Application CRD and waits until it is served.
pub async fn install_application_crd(host: &Client) -> Result<()> {
    apply_yaml(host, CRD, "default").await?;
    wait_for_crds(
        host,
        &["applications.argoproj.io".to_string()],
        Duration::from_secs(30),
    )
    .await
}

/// Creates an Application deploying `path` of `repo_url` (branch main) into `destination_namespace`.
pub async fn create_application(
    host: &Client,
    namespace: &str,
    name: &str,
    repo_url: &str,
    path: &str,
    destination_namespace: &str,
) -> Result<()> {
    let yaml = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  project: default\n  source: {{repoURL: \"{repo_url}\", path: {path}, targetRevision: main}}\n  destination: {{server: https://kubernetes.default.svc, namespace: {destination_namespace}}}\n  syncPolicy: {{automated: {{prune: false, selfHeal: true}}}}\n"
    );
    apply_yaml(host, &yaml, namespace).await?;
    Ok(())
}

/// Starts the applier of Application `namespace/name` (in `host`) deploying to `cluster`; it stops
/// when the returned handle is aborted or dropped with the runtime.
pub fn spawn_applier(
    host: Client,
    cluster: Client,
    namespace: &str,
    name: &str,
    credentials: Credentials,
    cache_dir: PathBuf,
) -> tokio::task::JoinHandle<()> {
    let (namespace, name) = (namespace.to_string(), name.to_string());
    tokio::spawn(async move {
        let api = applications(&host, &namespace);
        let mut applied: Option<String> = None;
        let mut last_sync: Option<tokio::time::Instant> = None;
        let mut served = 0u32;
        loop {
            tokio::time::sleep(REFRESH_CHECK).await;
            let refresh = refresh_requested(&api, &name).await;
            if !refresh && last_sync.is_some_and(|at| at.elapsed() < APPLIER_POLL) {
                continue;
            }
            last_sync = Some(tokio::time::Instant::now());
            let synced = sync_once(
                &api,
                &cluster,
                &name,
                &credentials,
                &cache_dir,
                applied.as_deref(),
            )
            .await;
            match synced {
                Ok(revision) => applied = Some(revision),
                Err(err) => tracing::debug!(application = %format!("{namespace}/{name}"), "applier: {err}"),
            }
            if refresh {
                // Argo CD removes the annotation once it has refreshed.
                served += 1;
                let patch = json!({"metadata": {"annotations": {
                    REFRESH_ANNOTATION: null,
                    REFRESHES_SERVED: served.to_string(),
                }}});
                let cleared = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
                if let Err(err) = cleared {
                    tracing::debug!("applier: clearing the refresh request: {err}");
                }
            }
        }
    })
}

/// Whether the Application carries Argo CD's refresh annotation.
async fn refresh_requested(api: &Api<DynamicObject>, name: &str) -> bool {
    api.get_opt(name).await.ok().flatten().is_some_and(|app| {
        app.metadata
            .annotations
            .unwrap_or_default()
            .contains_key(REFRESH_ANNOTATION)
    })
}

/// One sync: fetch, apply when the tip is new, report. Returns the applied revision.
async fn sync_once(
    api: &Api<DynamicObject>,
    cluster: &Client,
    name: &str,
    credentials: &Credentials,
    cache_dir: &Path,
    last: Option<&str>,
) -> Result<String, String> {
    let application = api.get(name).await.map_err(|e| e.to_string())?;
    let application = serde_json::to_value(application).map_err(|e| e.to_string())?;
    let source = &application["spec"]["source"];
    let url = source["repoURL"].as_str().unwrap_or_default().to_string();
    let path = source["path"].as_str().unwrap_or_default().to_string();
    let branch = source["targetRevision"].as_str().unwrap_or("main").to_string();
    let destination = application["spec"]["destination"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let (credentials, cache_dir) = (credentials.clone(), cache_dir.to_path_buf());
    let (tip, documents) = tokio::task::spawn_blocking(move || -> Result<(String, Vec<String>), String> {
        let repo = ferry::git::Repo::open_or_clone(&cache_dir, &url, &branch, credentials)
            .map_err(|e| e.to_string())?;
        let tip = repo.remote_tip().map_err(|e| e.to_string())?.to_string();
        let mut files = Vec::new();
        yaml_files(&repo.workdir().join(&path), &mut files);
        files.sort();
        let texts = files
            .iter()
            .map(|f| std::fs::read_to_string(f).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        Ok((tip, texts))
    })
    .await
    .map_err(|e| e.to_string())??;
    if last == Some(tip.as_str()) && synced_to(&application, &tip) {
        return Ok(tip);
    }
    for text in &documents {
        if let Err(err) = apply_yaml(cluster, text, &destination).await {
            report(
                api,
                name,
                json!({"operationState": {"phase": "Failed", "message": err.to_string()}}),
            )
            .await?;
            return Err(err.to_string());
        }
    }
    report(
        api,
        name,
        json!({
            "sync": {"revision": tip, "status": "Synced"},
            "health": {"status": "Healthy"},
            "operationState": {"phase": "Succeeded", "syncResult": {"revision": tip}},
        }),
    )
    .await?;
    Ok(tip)
}

fn synced_to(application: &Value, revision: &str) -> bool {
    application["status"]["sync"]["revision"].as_str() == Some(revision)
}

async fn report(api: &Api<DynamicObject>, name: &str, status: Value) -> Result<(), String> {
    let patch = json!({"status": status});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}
