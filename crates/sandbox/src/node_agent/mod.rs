//! The e2e node agent: the part of a kubelet the sandbox needs. The control planes have no kubelet and
//! no container runtime, so this agent watches the pods bound to one node and runs the selected ones
//! (Ferry's mover pods) as local processes — their own command, args, env and volumes, with volume
//! mount paths mapped to local directories — and writes their status as a kubelet would. That is what
//! lets e2e tests prove that the pod specs Ferry generates really move bytes. See docs/sandbox.md.
//!
//! ```text
//! watcher(pods, spec.nodeName=N) ─► selected, Pending ─► pod::run_pod task ─► processes, status
//!                                ├► other, Pending    ─► others::mark_running (option)
//!                                └► deleted           ─► stop processes ─► others::confirm_deletion
//! ```

mod container;
mod kube_proxy;
mod kubelet_api;
mod others;
mod paths;
mod pod;
mod process;
mod sources;
mod status;
mod volumes;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::core::{Selector, SelectorExt};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{Error, Result};
use process::ProcessGroups;

/// The annotation the agent puts on every pod it runs: the pod's local directory, holding
/// `logs/<container>.log`, `termination/<container>` and `volumes/<volume>`.
pub const POD_DIR_ANNOTATION: &str = "sandbox.ferry.dev/pod-dir";

/// How the agent behaves.
#[derive(Debug, Clone)]
pub struct NodeAgentOptions {
    /// The pods it runs (default `app.kubernetes.io/managed-by=ferry`).
    pub selector: Selector,
    /// The binary run for a command of `ferry`, `/ferry` or `/usr/local/bin/ferry` (tests pass
    /// `env!("CARGO_BIN_EXE_ferry")`); without it such pods fail.
    pub ferry_binary: Option<PathBuf>,
    /// Report other pods on the node Running and Ready without running anything (and confirm their
    /// deletion), so Deployments and StatefulSets behave.
    pub mark_others_running: bool,
    /// The most restarts of one container under `restartPolicy` OnFailure or Always.
    pub max_restarts: i32,
    /// The first wait before a restart; it doubles each time, up to 5 s.
    pub restart_backoff: Duration,
    /// The longest wait between SIGTERM and SIGKILL (the pod's `terminationGracePeriodSeconds` if shorter).
    pub max_grace: Duration,
    /// How long a pod's PVC may take to be bound before the pod fails.
    pub volume_wait: Duration,
    /// Variables every process gets before the container's own (default: `RUST_LOG`, `RUST_BACKTRACE`
    /// and `LLVM_PROFILE_FILE` when set here).
    pub extra_env: Vec<(String, String)>,
    /// The images this node holds (as if pulled); a selected pod with a container of another image
    /// stays Pending with `ErrImagePull`, as on a node that cannot pull it. `None`: any image runs.
    pub images: Option<Vec<String>>,
    /// Stand-in images: a directory holding, for an image, a shell script named after it (`/`, `:` and
    /// `@` replaced by `_`) that plays its entrypoint. A container of such an image without `command`
    /// runs `sh <script>` with its args, and the node holds the image whatever `images` says. Scripts
    /// may be added while the agent runs (a test "pushes" an image). `None`: no stand-ins.
    pub entrypoints: Option<PathBuf>,
}

impl Default for NodeAgentOptions {
    fn default() -> Self {
        let extra_env = ["RUST_LOG", "RUST_BACKTRACE", "LLVM_PROFILE_FILE"]
            .into_iter()
            .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?)))
            .collect();
        Self {
            selector: Selector::from_iter([("app.kubernetes.io/managed-by", "ferry")]),
            ferry_binary: None,
            mark_others_running: false,
            max_restarts: 5,
            restart_backoff: Duration::from_millis(250),
            max_grace: Duration::from_secs(5),
            volume_wait: Duration::from_secs(30),
            extra_env,
            images: None,
            entrypoints: None,
        }
    }
}

/// What the agent's tasks share.
pub(crate) struct Shared {
    /// Client of the cluster the node belongs to.
    pub(crate) client: Client,
    /// The node whose pods the agent handles.
    pub(crate) node: String,
    /// Where pod directories go.
    pub(crate) work_dir: PathBuf,
    /// Behaviour.
    pub(crate) options: NodeAgentOptions,
    /// Live process groups, killed when the agent is dropped.
    pub(crate) processes: ProcessGroups,
    /// Fires when the agent stops.
    pub(crate) stopping: CancellationToken,
}

/// A running node agent; stops (killing its processes) on drop or [`NodeAgent::stop`].
#[derive(Debug)]
pub struct NodeAgent {
    stopping: CancellationToken,
    task: Option<JoinHandle<()>>,
    processes: ProcessGroups,
    /// Where pod directories go (see [`POD_DIR_ANNOTATION`]).
    pub work_dir: PathBuf,
}

impl NodeAgent {
    /// Starts an agent for `node` on the current tokio runtime (panics outside one), with pod
    /// directories under `work_dir`.
    pub fn start(client: Client, node: &str, work_dir: &Path, options: NodeAgentOptions) -> Result<Self> {
        std::fs::create_dir_all(work_dir).map_err(Error::io(format!("creating {}", work_dir.display())))?;
        let work_dir = work_dir
            .canonicalize()
            .map_err(Error::io(format!("resolving {}", work_dir.display())))?;
        let stopping = CancellationToken::new();
        let processes = ProcessGroups::default();
        let shared = Arc::new(Shared {
            client,
            node: node.to_string(),
            work_dir: work_dir.clone(),
            options,
            processes: processes.clone(),
            stopping: stopping.clone(),
        });
        tokio::spawn(kube_proxy::run(shared.clone()));
        let kubelet = shared.clone();
        tokio::spawn(async move {
            if let Err(err) = kubelet_api::start(kubelet.clone()).await {
                tracing::warn!(node = %kubelet.node, "the kubelet log API is not available: {err}");
            }
        });
        let task = tokio::spawn(watch(shared));
        Ok(Self {
            stopping,
            task: Some(task),
            processes,
            work_dir,
        })
    }

    /// Stops the agent: every process gets SIGTERM (SIGKILL after the grace period) and the call
    /// returns once they are gone. Pod objects are left as they are.
    pub async fn stop(mut self) {
        self.stopping.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// The log file of `container` in `pod`, once the agent has annotated the pod.
    pub fn log_path(pod: &Pod, container: &str) -> Option<PathBuf> {
        let dir = pod.annotations().get(POD_DIR_ANNOTATION)?;
        Some(Path::new(dir).join("logs").join(format!("{container}.log")))
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        self.stopping.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.processes.kill_all();
    }
}

/// A pod the agent has seen.
struct Tracked {
    /// Cancels its task (pod deleted).
    cancel: CancellationToken,
    /// Its task, for pods the agent runs; taken when the pod is deleted.
    task: Option<JoinHandle<()>>,
    /// Deletion seen: processes are being stopped and the deletion confirmed.
    deleting: bool,
    /// A copy, to confirm the deletion of a pod that vanished from a re-list.
    pod: Pod,
}

/// The agent's loop: one watch on the node's pods, dispatching each change.
async fn watch(shared: Arc<Shared>) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let mut config = watcher::Config::default().fields(&format!("spec.nodeName={}", shared.node));
    if !shared.options.mark_others_running {
        config = config.labels_from(&shared.options.selector);
    }
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut pods: HashMap<String, Tracked> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    let mut background = JoinSet::new();
    loop {
        let event = tokio::select! {
            () = shared.stopping.cancelled() => break,
            event = events.next() => event,
        };
        while background.try_join_next().is_some() {}
        match event {
            None => break,
            Some(Err(err)) => tracing::warn!(node = %shared.node, "watching pods: {err}"),
            Some(Ok(watcher::Event::Init)) => listed.clear(),
            Some(Ok(watcher::Event::InitApply(pod))) => {
                listed.insert(pod.uid().unwrap_or_default());
                observe(&shared, &mut pods, &mut background, pod);
            }
            Some(Ok(watcher::Event::InitDone)) => {
                let vanished: Vec<String> = pods
                    .keys()
                    .filter(|uid| !listed.contains(*uid))
                    .cloned()
                    .collect();
                for uid in vanished {
                    gone(&shared, &mut pods, &mut background, &uid);
                }
            }
            Some(Ok(watcher::Event::Apply(pod))) => observe(&shared, &mut pods, &mut background, pod),
            Some(Ok(watcher::Event::Delete(pod))) => {
                gone(
                    &shared,
                    &mut pods,
                    &mut background,
                    &pod.uid().unwrap_or_default(),
                );
            }
        }
    }
    // Stopping: the pod tasks see the cancelled parent token and stop their processes.
    for tracked in pods.into_values() {
        if let Some(task) = tracked.task {
            let _ = task.await;
        }
    }
    while background.join_next().await.is_some() {}
}

/// Handles a pod that was added or changed.
fn observe(
    shared: &Arc<Shared>,
    pods: &mut HashMap<String, Tracked>,
    background: &mut JoinSet<()>,
    pod: Pod,
) {
    let uid = pod.uid().unwrap_or_default();
    let selected = shared.options.selector.matches(pod.labels());
    if pod.metadata.deletion_timestamp.is_some() {
        let tracked = pods.entry(uid).or_insert_with(|| Tracked {
            cancel: CancellationToken::new(),
            task: None,
            deleting: false,
            pod: pod.clone(),
        });
        if !tracked.deleting {
            tracked.deleting = true;
            finish(shared, tracked, background, true);
        }
        return;
    }
    if let Some(tracked) = pods.get_mut(&uid) {
        // A running pod's labels or annotations changed: its downward-API files follow.
        if tracked.task.is_some()
            && (tracked.pod.annotations() != pod.annotations() || tracked.pod.labels() != pod.labels())
            && let Some(dir) = pod.annotations().get(POD_DIR_ANNOTATION)
            && let Err(err) = volumes::refresh_downward(&pod, Path::new(dir))
        {
            tracing::warn!(pod = %pod.name_any(), %err, "downward-API volume not refreshed");
        }
        tracked.pod = pod;
        return;
    }
    let pending = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        None | Some("Pending")
    );
    let cancel = shared.stopping.child_token();
    let task = if selected && pending {
        tracing::info!(pod = %pod.name_any(), namespace = ?pod.namespace(), "running pod");
        Some(tokio::spawn(pod::run_pod(
            shared.clone(),
            pod.clone(),
            cancel.clone(),
        )))
    } else {
        if !selected && pending {
            let (shared, pod) = (shared.clone(), pod.clone());
            background.spawn(async move { others::mark_running(&shared.client, &pod).await });
        } else if selected {
            tracing::info!(pod = %pod.name_any(), "not adopting a pod that is already past Pending");
        }
        None
    };
    pods.insert(
        uid,
        Tracked {
            cancel,
            task,
            deleting: false,
            pod,
        },
    );
}

/// Handles a pod that no longer exists.
fn gone(shared: &Arc<Shared>, pods: &mut HashMap<String, Tracked>, background: &mut JoinSet<()>, uid: &str) {
    if let Some(mut tracked) = pods.remove(uid)
        && !tracked.deleting
    {
        finish(shared, &mut tracked, background, false);
    }
}

/// Stops a pod's processes in the background, then (if the object still exists) confirms its deletion.
fn finish(shared: &Arc<Shared>, tracked: &mut Tracked, background: &mut JoinSet<()>, confirm: bool) {
    tracked.cancel.cancel();
    let task = tracked.task.take();
    let (shared, pod) = (shared.clone(), tracked.pod.clone());
    background.spawn(async move {
        if let Some(task) = task {
            let _ = task.await;
        }
        if confirm && !shared.stopping.is_cancelled() {
            others::confirm_deletion(&shared.client, &pod).await;
        }
    });
}
