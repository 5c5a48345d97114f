//! Helpers for the node agent e2e test: namespaces, hostPath PV/PVC pairs, mover-labelled pod YAML,
//! bounded waits, and process checks through /proc.

use std::path::Path;
use std::time::{Duration, Instant};

use ferry_sandbox::wait_for_default_service_account;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use kube::{Api, Client};

use crate::support::{namespace, wait_for};

/// The node the agent serves.
pub const NODE: &str = "node-a";
/// The longest wait for a pod state.
pub const WAIT: Duration = Duration::from_secs(60);

/// A namespace whose default ServiceAccount exists, so pods are admitted.
pub async fn fresh_namespace(client: &Client, name: &str) -> Api<Pod> {
    namespace(client, name).await;
    wait_for_default_service_account(client, name).await.unwrap();
    Api::namespaced(client.clone(), name)
}

/// A hostPath PV for `path` and a claim bound to it by name.
pub fn volume_yaml(ns: &str, name: &str, path: &Path) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {ns}-{name}\nspec:\n  capacity:\n    storage: 1Gi\n\
         \x20 accessModes: [ReadWriteOnce]\n  storageClassName: manual\n  hostPath:\n    path: {}\n---\n\
         apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n\
         \x20 accessModes: [ReadWriteOnce]\n  storageClassName: manual\n  volumeName: {ns}-{name}\n\
         \x20 resources:\n    requests:\n      storage: 1Gi\n",
        path.display()
    )
}

/// A mover-labelled pod on the node running `sh -c SCRIPT`; `extra` is appended to the container
/// (indented 4) and `volumes` to the pod spec (indented 2).
pub fn mover_pod(
    ns: &str,
    name: &str,
    restart: &str,
    script: &str,
    container_extra: &str,
    volumes: &str,
) -> String {
    let script = serde_json::to_string(script).unwrap();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n\
         \x20   app.kubernetes.io/component: mover\n    app.kubernetes.io/managed-by: ferry\nspec:\n\
         \x20 nodeName: {NODE}\n  restartPolicy: {restart}\n  containers:\n  - name: mover\n\
         \x20   image: quay.io/ferry/mover:test\n    command: [sh, -c]\n    args: [{script}]\n{container_extra}{volumes}"
    )
}

pub fn terminated(status: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    status.state.as_ref()?.terminated.as_ref()
}

/// The pod once it is Succeeded or Failed.
pub async fn wait_terminal(pods: &Api<Pod>, name: &str) -> Pod {
    wait_for(pods, name, WAIT, |p| {
        let phase = p.status.as_ref()?.phase.as_deref()?;
        matches!(phase, "Succeeded" | "Failed").then(|| p.clone())
    })
    .await
}

pub fn main_status(pod: &Pod) -> ContainerStatus {
    pod.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0].clone()
}

pub async fn wait_for_pids(dir: &Path) -> Vec<u32> {
    let deadline = Instant::now() + WAIT;
    loop {
        let read = |file| {
            std::fs::read_to_string(dir.join(file))
                .ok()?
                .trim()
                .parse::<u32>()
                .ok()
        };
        if let (Some(sh), Some(sleep)) = (read("sh.pid"), read("sleep.pid")) {
            return vec![sh, sleep];
        }
        assert!(Instant::now() < deadline, "the pod never wrote its pids");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Processes whose environment mentions `dir` (every agent-run process gets its mount map there).
pub fn processes_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let path = entry.path();
        let Ok(environ) = std::fs::read(path.join("environ")) else {
            continue;
        };
        if String::from_utf8_lossy(&environ).contains(&needle) {
            let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{}: {}",
                entry.file_name().to_string_lossy(),
                String::from_utf8_lossy(&cmdline)
            ));
        }
    }
    found
}

/// Whether `pid` is a live process. Zombies count as dead: this machine's PID 1 reaps orphans only
/// every second or two, so a killed process's parentless children linger as zombies for a while.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(')')?.1.trim_start().chars().next()? != 'Z'))
        .unwrap_or(false)
}
