//! One managed pod's life on the agent's node, as a kubelet would live it: resolve volumes, prepare
//! every container, run init containers in order and then all regular containers at once, restart
//! them as `restartPolicy` says (bounded), and write each change to the pod's status subresource.
//!
//! ```text
//! Pending (ContainerCreating) ─► init containers, one by one ─► containers, concurrently ─► Succeeded
//!        │ volume/env/command error                 │ failure (no restart left)          └► Failed
//!        └─────────────► Failed (ContainerCannotRun) ◄┘
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::container::{ProcessSpec, prepare};
use super::process::{log_tail, spawn, termination_message};
use super::sources::ObjectLookup;
use super::status::{ContainerModel, PodModel, State, Terminated, now};
use super::{POD_DIR_ANNOTATION, Shared, volumes};

/// The longest wait between restarts of a failing container.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Which container of the model.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Init(usize),
    Main(usize),
}

/// The pod's model behind a lock, written to the API after every change.
struct StatusWriter {
    api: Api<Pod>,
    name: String,
    uid: String,
    model: tokio::sync::Mutex<PodModel>,
}

impl StatusWriter {
    /// Applies `change` to the model and writes the rendered status (merge patch on `status`, with the
    /// pod's UID as a precondition so a recreated pod of the same name is never written).
    async fn update(&self, change: impl FnOnce(&mut PodModel)) -> PodModel {
        let mut model = self.model.lock().await;
        change(&mut model);
        let patch = serde_json::json!({"metadata": {"uid": self.uid}, "status": model.render()});
        if let Err(err) = self
            .api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(pod = %self.name, "writing pod status failed (pod gone?): {err}");
        }
        model.clone()
    }

    async fn update_container(&self, slot: Slot, change: impl FnOnce(&mut ContainerModel)) {
        self.update(|model| {
            change(match slot {
                Slot::Init(index) => &mut model.init[index],
                Slot::Main(index) => &mut model.main[index],
            })
        })
        .await;
    }
}

/// The directory holding one pod's logs, termination files and fresh volumes.
pub(crate) fn pod_dir(work_dir: &Path, pod: &Pod) -> PathBuf {
    let uid = pod.metadata.uid.as_deref().unwrap_or("no-uid");
    work_dir.join(pod.namespace().unwrap_or_default()).join(format!(
        "{}-{}",
        pod.name_any(),
        &uid[..uid.len().min(8)]
    ))
}

/// Runs `pod` until it is terminal or `cancel` fires (pod deleted or agent stopping), which stops
/// its processes.
pub(crate) async fn run_pod(shared: Arc<Shared>, pod: Pod, cancel: CancellationToken) {
    let namespace = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &namespace);
    let spec = pod.spec.clone().unwrap_or_default();
    let dir = pod_dir(&shared.work_dir, &pod);
    let waiting = |c: &Container, reason| ContainerModel::waiting(&c.name, c.image.as_deref(), reason);
    let writer = StatusWriter {
        api: api.clone(),
        name: pod.name_any(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        model: tokio::sync::Mutex::new(PodModel {
            init: spec
                .init_containers
                .iter()
                .flatten()
                .map(|c| waiting(c, "PodInitializing"))
                .collect(),
            main: spec
                .containers
                .iter()
                .map(|c| waiting(c, "ContainerCreating"))
                .collect(),
            start_time: now(),
            message: None,
        }),
    };
    let annotation = serde_json::json!({"metadata": {"annotations": {POD_DIR_ANNOTATION: dir}}});
    if let Err(err) = api
        .patch(&writer.name, &PatchParams::default(), &Patch::Merge(&annotation))
        .await
    {
        tracing::debug!(pod = %writer.name, "annotating the pod failed: {err}");
    }
    writer.update(|_| {}).await;

    // An image the node does not have: the kubelet reports ErrImagePull and the pod stays Pending.
    let missing: Vec<(usize, String)> = match &shared.options.images {
        Some(images) => spec
            .containers
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let image = c.image.clone().unwrap_or_default();
                let held = images.contains(&image) || super::container::entrypoint(&shared, &image).is_some();
                (!held).then_some((i, image))
            })
            .collect(),
        None => Vec::new(),
    };
    if !missing.is_empty() {
        writer
            .update(|model| {
                for (index, image) in &missing {
                    model.main[*index].state = State::Waiting {
                        reason: "ErrImagePull".into(),
                        message: Some(format!(
                            "failed to pull image \"{image}\": not found (the sandbox node has only its own images)"
                        )),
                    };
                }
            })
            .await;
        cancel.cancelled().await;
        return;
    }

    let prepared = tokio::select! {
        prepared = prepare_all(&shared, &pod, &dir, &cancel) => prepared,
        () = cancel.cancelled() => return,
    };
    let (init_specs, main_specs) = match prepared {
        Ok(specs) => specs,
        Err(message) => {
            tracing::info!(pod = %writer.name, "cannot run the pod: {message}");
            writer.update(|model| cannot_run(model, &message)).await;
            return;
        }
    };
    let grace = Duration::from_secs(spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64)
        .min(shared.options.max_grace);
    let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());
    // Init containers restart on failure unless the pod's policy is Never.
    let init_policy = if policy == "Never" { "Never" } else { "OnFailure" };
    for (index, spec) in init_specs.iter().enumerate() {
        let ok = run_container(
            &shared,
            &writer,
            Slot::Init(index),
            spec,
            init_policy,
            &cancel,
            grace,
        )
        .await;
        if cancel.is_cancelled() {
            return;
        }
        if !ok {
            return explain_failure(&writer, &init_specs, &main_specs).await;
        }
    }
    let runs = main_specs.iter().enumerate().map(|(index, spec)| {
        run_container(&shared, &writer, Slot::Main(index), spec, &policy, &cancel, grace)
    });
    futures::future::join_all(runs).await;
    if !cancel.is_cancelled() {
        explain_failure(&writer, &init_specs, &main_specs).await;
    }
}

/// When the pod ended Failed, sets its message: which containers failed, how, and their last log
/// lines (the containers' own termination messages stay exactly what they wrote).
async fn explain_failure(writer: &StatusWriter, init_specs: &[ProcessSpec], main_specs: &[ProcessSpec]) {
    let model = writer.model.lock().await.clone();
    if model.phase() != "Failed" {
        return;
    }
    let containers = model
        .init
        .iter()
        .zip(init_specs)
        .chain(model.main.iter().zip(main_specs));
    let mut parts = Vec::new();
    for (container, spec) in containers {
        let State::Terminated(ended) = &container.state else {
            continue;
        };
        if ended.exit_code == 0 {
            continue;
        }
        let tail = log_tail(spec, 0, 20, 2048);
        parts.push(format!(
            "container {} exited with code {}; last log lines ({}):\n{}",
            container.name,
            ended.exit_code,
            spec.log.display(),
            if tail.is_empty() { "(no output)" } else { &tail }
        ));
    }
    let message = parts.join("\n");
    writer.update(|model| model.message = Some(message)).await;
}

/// Volumes, then every container's process spec.
async fn prepare_all(
    shared: &Shared,
    pod: &Pod,
    dir: &Path,
    cancel: &CancellationToken,
) -> Result<(Vec<ProcessSpec>, Vec<ProcessSpec>), String> {
    for sub in ["logs", "termination", "volumes"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|err| format!("creating {}: {err}", dir.display()))?;
    }
    let spec = pod.spec.clone().unwrap_or_default();
    let lookup = ObjectLookup::new(&shared.client, &pod.namespace().unwrap_or_default());
    let volumes = volumes::resolve(shared, pod, dir, &lookup, cancel).await?;
    let mut init = Vec::new();
    for container in spec.init_containers.iter().flatten() {
        init.push(prepare(shared, pod, container, &volumes, dir, &lookup).await?);
    }
    let mut main = Vec::new();
    for container in &spec.containers {
        main.push(prepare(shared, pod, container, &volumes, dir, &lookup).await?);
    }
    Ok((init, main))
}

/// Marks every container that has not run as unable to run, making the pod Failed with `message`.
fn cannot_run(model: &mut PodModel, message: &str) {
    let at = now();
    for container in model
        .init
        .iter_mut()
        .chain(model.main.iter_mut())
        .filter(|c| !c.done)
    {
        container.state = State::Terminated(Terminated {
            exit_code: 128,
            signal: None,
            reason: "ContainerCannotRun".into(),
            message: Some(message.to_string()),
            started_at: at.clone(),
            finished_at: at.clone(),
        });
        container.done = true;
    }
    model.message = Some(message.to_string());
}

/// Runs one container, restarting it as `policy` says, until it is done; returns whether it
/// succeeded.
async fn run_container(
    shared: &Shared,
    writer: &StatusWriter,
    slot: Slot,
    spec: &ProcessSpec,
    policy: &str,
    cancel: &CancellationToken,
    grace: Duration,
) -> bool {
    let mut restarts = 0;
    let mut backoff = shared.options.restart_backoff;
    loop {
        let started_at = now();
        let running = match spawn(spec, &shared.processes) {
            Ok(running) => running,
            Err(message) => {
                let failed = Terminated {
                    exit_code: 128,
                    signal: None,
                    reason: "StartError".into(),
                    message: Some(message),
                    started_at: started_at.clone(),
                    finished_at: now(),
                };
                writer
                    .update_container(slot, |c| (c.state, c.done) = (State::Terminated(failed), true))
                    .await;
                return false;
            }
        };
        let (pid, log_offset) = (running.pid(), running.log_offset());
        let started = started_at.clone();
        writer
            .update_container(slot, |c| {
                c.state = State::Running { started_at: started };
                c.container_id = Some(format!("sandbox://{pid}"));
                c.restart_count = restarts;
            })
            .await;
        let exit = running.wait(cancel, grace).await;
        let ended = Terminated {
            exit_code: exit.code,
            signal: exit.signal,
            reason: if exit.code == 0 { "Completed" } else { "Error" }.into(),
            message: termination_message(spec, exit, log_offset),
            started_at,
            finished_at: now(),
        };
        let wants_restart = match policy {
            "Always" => true,
            "OnFailure" => exit.code != 0,
            _ => false,
        };
        if cancel.is_cancelled() || !wants_restart || restarts >= shared.options.max_restarts {
            writer
                .update_container(slot, |c| (c.state, c.done) = (State::Terminated(ended), true))
                .await;
            return exit.code == 0;
        }
        let last = ended.clone();
        writer
            .update_container(slot, |c| {
                c.last_state = Some(last);
                c.state = State::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: None,
                };
            })
            .await;
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = cancel.cancelled() => {
                writer.update_container(slot, |c| (c.state, c.done) = (State::Terminated(ended), true)).await;
                return false;
            }
        }
        restarts += 1;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
