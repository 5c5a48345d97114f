//! Shared harness of the migration scenarios (`e2e/migrate_*.rs`): the whole sandbox
//! (`ferry_sandbox::Sandbox`: two control planes with a real node each, or the node agent where a test
//! asks for it, git server, BIND9, controller), and
//! in Commit mode Argo CD itself applying Ferry's commits, and
//! helpers to create a MigMigration and follow it to its end, failing with the controller's log.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry::api::plan::QuiesceMethod;
use ferry::api::{MigMigration, MigMigrationSpec, MigPlan};
use ferry_sandbox::world::{FERRY_NAMESPACE, PLAN_NAME};
use ferry_sandbox::{Nodes, Sandbox, SandboxOptions};
use kube::api::PostParams;
use kube::{Api, ResourceExt};

/// How long Argo CD's first sync of both Applications may take (its cluster caches, the repo-server's
/// first clone; a PreSync hook's stage).
pub const FIRST_SYNC: Duration = Duration::from_secs(300);

/// A started sandbox and the temporary directory it lives in.
pub struct Scenario {
    pub sandbox: Sandbox,
    pub dir: tempfile::TempDir,
}

impl Scenario {
    /// Starts the sandbox with the app installed and the plan created; waits until the plan is Ready.
    pub async fn start(quiesce: QuiesceMethod) -> Scenario {
        Self::start_with(quiesce, true).await
    }

    /// [`Scenario::start`], with or without the controller running.
    pub async fn start_with(quiesce: QuiesceMethod, controller: bool) -> Scenario {
        Self::start_on(quiesce, controller, Nodes::Real).await
    }

    /// [`Scenario::start_with`] on real nodes or, where a test needs its stand-ins, the node agent.
    pub async fn start_on(quiesce: QuiesceMethod, controller: bool, nodes: Nodes) -> Scenario {
        let dir = tempfile::Builder::new()
            .prefix("ferry-scenario-")
            .tempdir()
            .unwrap();
        let started = Instant::now();
        let mut sandbox = Sandbox::start(SandboxOptions {
            dir: dir.path().to_path_buf(),
            ferry_binary: PathBuf::from(env!("CARGO_BIN_EXE_ferry")),
            controller,
            nodes,
        })
        .await
        .unwrap_or_else(|err| panic!("the sandbox did not start: {err}"));
        sandbox.install_app().await.unwrap();
        // Commit mode: Argo CD itself applies Ferry's commits (`make argocd`; the stand-in only where
        // a test builds it by hand), and the scenario begins once it has synced both Applications.
        let commit = quiesce == QuiesceMethod::Commit;
        if commit {
            sandbox.use_real_argocd();
        }
        sandbox.create_plan(quiesce).await.unwrap();
        if commit {
            sandbox
                .wait_applications_synced(FIRST_SYNC)
                .await
                .unwrap_or_else(|err| panic!("{err}"));
        }
        eprintln!("sandbox ready in {:.1}s", started.elapsed().as_secs_f64());
        let scenario = Scenario { sandbox, dir };
        if controller {
            scenario.wait_plan_ready().await;
        }
        scenario
    }

    pub fn plans(&self) -> Api<MigPlan> {
        Api::namespaced(self.sandbox.host_client.clone(), FERRY_NAMESPACE)
    }

    pub fn migrations(&self) -> Api<MigMigration> {
        Api::namespaced(self.sandbox.host_client.clone(), FERRY_NAMESPACE)
    }

    pub fn controller_log(&self) -> String {
        std::fs::read_to_string(self.sandbox.controller_log()).unwrap_or_default()
    }

    /// Waits until the plan is Ready with its volume discovered.
    pub async fn wait_plan_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let plan = self.plans().get(PLAN_NAME).await.unwrap();
            let status = plan.status.clone().unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.is_true());
            if ready && !status.volumes.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "plan not Ready: {:#?}\ncontroller log:\n{}",
                    status.conditions,
                    self.controller_log()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Creates a migration of the plan named `name` with `spec` flags.
    pub async fn create_migration(
        &self,
        name: &str,
        set: impl FnOnce(&mut MigMigrationSpec),
    ) -> MigMigration {
        let mut spec = MigMigrationSpec::of_plan(FERRY_NAMESPACE, PLAN_NAME);
        set(&mut spec);
        let migration = MigMigration::new(name, spec);
        self.migrations()
            .create(&PostParams::default(), &migration)
            .await
            .unwrap()
    }

    /// Waits until migration `name` has Succeeded (panics with its status and the controller log if
    /// it Failed or `timeout` passed). Returns it.
    pub async fn wait_succeeded(&self, name: &str, timeout: Duration) -> MigMigration {
        let migration = self.wait_finished(name, timeout).await;
        let status = migration.status.clone().unwrap_or_default();
        if !status
            .conditions
            .iter()
            .any(|c| c.type_ == "Succeeded" && c.is_true())
        {
            panic!(
                "migration {name} did not succeed: {:#?}\ncontroller log (tail):\n{}",
                status,
                tail(&self.controller_log(), 60)
            );
        }
        migration
    }

    /// Waits until migration `name` has Succeeded, Failed or been Canceled.
    pub async fn wait_finished(&self, name: &str, timeout: Duration) -> MigMigration {
        let deadline = Instant::now() + timeout;
        loop {
            let migration = self.migrations().get(name).await.unwrap();
            let status = migration.status.clone().unwrap_or_default();
            let finished = status
                .conditions
                .iter()
                .any(|c| ["Succeeded", "Failed", "Canceled"].contains(&c.type_.as_str()) && c.is_true());
            if finished {
                return migration;
            }
            if Instant::now() > deadline {
                panic!(
                    "migration {name} did not finish within {timeout:?}: {:#?}\ncontroller log (tail):\n{}",
                    status,
                    tail(&self.controller_log(), 60)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until migration `name` shows `phase` (the step it runs), panicking after `timeout`.
    pub async fn wait_for_phase(&self, name: &str, phase: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let migration = self.migrations().get(name).await.unwrap();
            if migration.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(phase) {
                return;
            }
            assert!(Instant::now() < deadline, "{name} never reached {phase}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops everything, checking every process exits cleanly.
    pub async fn stop(self) {
        let Scenario { sandbox, dir } = self;
        assert!(sandbox.stop().await, "a sandbox process did not exit cleanly");
        drop(dir);
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `name → (durations in seconds)` of the pipeline steps, for logs.
pub fn step_summary(migration: &MigMigration) -> BTreeMap<String, String> {
    migration
        .status
        .iter()
        .flat_map(|s| s.pipeline.iter())
        .map(|step| {
            (
                step.name.clone(),
                format!(
                    "{} {}",
                    step.message.clone().unwrap_or_default(),
                    if step.skipped { "(skipped)" } else { "" }
                ),
            )
        })
        .collect()
}

/// Writes `files` (relative path → contents) under `root`, creating folders.
pub fn write_files(root: &Path, files: &[(&str, &[u8])]) {
    for (path, contents) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
    }
}

/// Replica counts of the Deployments in the app namespace of a cluster.
pub async fn replicas(client: &kube::Client) -> BTreeMap<String, i32> {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), ferry_sandbox::world::APP_NAMESPACE);
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| (d.name_any(), d.spec.replicas.unwrap_or(1)))
        .collect()
}

/// Polls `check` until it holds, panicking after 30 s.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Ferry's temporary objects left in either cluster (mover Pods, Services, Secrets and NetworkPolicies,
/// found by their migration-UID label), as `source|target Kind ns/name`.
pub async fn temporary_objects(sandbox: &Sandbox) -> Vec<String> {
    use k8s_openapi::api::core::v1::{Pod, Secret, Service};
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    let mut found = Vec::new();
    for (side, client) in [
        ("source", &sandbox.source_client),
        ("target", &sandbox.host_client),
    ] {
        found.extend(labelled::<Pod>(client, side).await);
        found.extend(labelled::<Service>(client, side).await);
        found.extend(labelled::<Secret>(client, side).await);
        found.extend(labelled::<NetworkPolicy>(client, side).await);
    }
    found
}

async fn labelled<K>(client: &kube::Client, side: &str) -> Vec<String>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = kube::api::ListParams::default().labels(ferry::pipeline::labels::MIGRATION_UID);
    Api::<K>::all(client.clone())
        .list_metadata(&params)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| {
            format!(
                "{side} {} {}/{}",
                K::kind(&()),
                o.namespace().unwrap_or_default(),
                o.name_any()
            )
        })
        .collect()
}

/// Fails when a message a user reads (conditions, errors, step messages and progress) carries a Rust
/// `Debug` dump of a library error instead of one readable line.
pub fn assert_readable(status: &ferry::api::MigMigrationStatus) {
    let mut texts: Vec<String> = status
        .conditions
        .iter()
        .filter_map(|c| c.message.clone())
        .chain(status.errors.iter().cloned())
        .collect();
    for step in &status.pipeline {
        texts.extend(step.message.clone());
        texts.extend(step.progress.iter().cloned());
    }
    for text in texts {
        for debug in [
            "Some(",
            "None)",
            "Status {",
            "ApiError",
            "ErrorResponse",
            " { status:",
            "\\n",
        ] {
            assert!(
                !text.contains(debug),
                "a debug dump reached the user ({debug:?}): {text}"
            );
        }
        assert!(!text.contains('\n'), "a message of several lines: {text:?}");
    }
}

/// A hostPath PersistentVolume `name` at `dir`, storage class `local`, pre-bound to claim
/// `namespace/claim` (the sandbox has no provisioner).
pub fn hostpath_volume(name: &str, namespace: &str, claim: &str, dir: &Path) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {name}}}\n\
         spec:\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  storageClassName: local\n  \
         persistentVolumeReclaimPolicy: Retain\n  hostPath: {{path: {path}}}\n  \
         claimRef: {{namespace: {namespace}, name: {claim}}}\n",
        path = dir.display()
    )
}

/// `namespace/name` of the source PVCs a migration fixed in its status (in order).
pub fn moved_volumes(status: &ferry::api::MigMigrationStatus) -> Vec<String> {
    status.volumes.iter().flatten().map(|v| v.source_key()).collect()
}
