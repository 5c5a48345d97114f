//! Shared e2e harness: two real control planes (source = the remote cluster, target = the host cluster
//! Ferry runs against, as in MTC's procedure), Ferry's CRDs applied to the host, and the real `ferry
//! controller` process. Plus bounded waiting helpers that fail with what they last saw.

#![allow(dead_code)]

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry_sandbox::{ControlPlane, ControllerProcess, apply_yaml, wait_for_crds};
use kube::api::PostParams;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

/// The name of the fake node pods are bound to in the source cluster.
pub const NODE: &str = "node-a";

/// A running pair of clusters and the controller.
pub struct Clusters {
    /// Source cluster (a remote MigCluster).
    pub source: ControlPlane,
    /// Target cluster, also the host cluster the controller runs against.
    pub host: ControlPlane,
    pub source_client: Client,
    pub host_client: Client,
    pub controller: Option<ControllerProcess>,
    pub dir: tempfile::TempDir,
}

impl Clusters {
    /// Starts both control planes, applies `manifests/crds` to the host, starts the controller.
    pub async fn start() -> Clusters {
        let dir = tempfile::Builder::new().prefix("ferry-e2e-").tempdir().unwrap();
        let started = Instant::now();
        let (source, host) = std::thread::scope(|scope| {
            let source = scope.spawn(|| ControlPlane::start("source", &dir.path().join("source"), &[NODE]));
            let host = scope.spawn(|| ControlPlane::start("host", &dir.path().join("host"), &[NODE]));
            (source.join().unwrap(), host.join().unwrap())
        });
        let (source, host) = (
            source.expect("source control plane"),
            host.expect("host control plane"),
        );
        eprintln!("control planes ready in {:.1}s", started.elapsed().as_secs_f64());
        let source_client = source.client().await.unwrap();
        let host_client = host.client().await.unwrap();
        install_crds(&host_client).await;
        let controller = ControllerProcess::start(
            Path::new(env!("CARGO_BIN_EXE_ferry")),
            &host.kubeconfig,
            &dir.path().join("controller.log"),
        )
        .unwrap();
        Clusters {
            source,
            host,
            source_client,
            host_client,
            controller: Some(controller),
            dir,
        }
    }

    /// The controller's log, for failure messages.
    pub fn controller_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("controller.log")).unwrap_or_default()
    }

    /// Stops everything, checking that each process exits cleanly.
    pub fn stop(mut self) {
        if let Some(controller) = self.controller.take() {
            assert!(
                controller.stop(),
                "the controller did not exit cleanly on SIGTERM"
            );
        }
        assert!(
            self.source.stop(),
            "the source control plane did not exit cleanly"
        );
        assert!(self.host.stop(), "the host control plane did not exit cleanly");
    }
}

/// Applies the committed CRDs and waits until they are served.
pub async fn install_crds(client: &Client) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/crds");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() == "kustomization.yaml" {
            continue;
        }
        let yaml = std::fs::read_to_string(&path).unwrap();
        for object in apply_yaml(client, &yaml, "default").await.unwrap() {
            names.push(object.metadata.name.unwrap());
        }
    }
    wait_for_crds(client, &names, Duration::from_secs(30))
        .await
        .unwrap();
}

/// Applies YAML (server-side apply) into `namespace`.
pub async fn apply(client: &Client, namespace: &str, yaml: &str) {
    if let Err(err) = apply_yaml(client, yaml, namespace).await {
        panic!("applying failed: {err}\n{yaml}");
    }
}

/// Creates a namespace (idempotent).
pub async fn namespace(client: &Client, name: &str) {
    apply(
        client,
        "default",
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"),
    )
    .await;
}

/// Polls `name` until `check` returns `Some`, or panics after `timeout` with the object's last state.
pub async fn wait_for<K, T>(api: &Api<K>, name: &str, timeout: Duration, check: impl Fn(&K) -> Option<T>) -> T
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Ok(Some(object)) = api.get_opt(name).await {
            if let Some(found) = check(&object) {
                return found;
            }
            last = Some(object);
        }
        if Instant::now() > deadline {
            panic!("{name} did not reach the expected state within {timeout:?}; last seen: {last:#?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The condition `type_` of a status condition list, if present.
pub fn condition<'a>(list: &'a [ferry::api::Condition], type_: &str) -> Option<&'a ferry::api::Condition> {
    list.iter().find(|c| c.type_ == type_)
}

/// Creates an object, panicking with the API error.
pub async fn create<K>(api: &Api<K>, object: &K) -> K
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + Debug,
{
    api.create(&PostParams::default(), object)
        .await
        .unwrap_or_else(|err| panic!("create failed: {err}"))
}
