//! The two kubelet duties the agent performs without running anything: confirming a pod's deletion
//! (delete with grace 0 once its processes are gone) and, for ordinary app pods it does not run,
//! reporting them Running and Ready so Deployments and StatefulSets roll out and scale down.

use std::sync::atomic::{AtomicU32, Ordering};

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, HostIP, Pod,
    PodCondition, PodIP, PodStatus,
};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client, ResourceExt};

use super::status::{LOOPBACK, now};

/// Confirms the deletion of `pod` as a kubelet does once its containers are stopped.
pub(crate) async fn confirm_deletion(client: &Client, pod: &Pod) {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&pod.name_any(), &params).await {
        Ok(_) => tracing::debug!(pod = %pod.name_any(), "deletion confirmed"),
        // Gone already (the control plane's reaper is quick) or replaced by a new pod of that name.
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
        Err(err) => tracing::warn!(pod = %pod.name_any(), "confirming the deletion failed: {err}"),
    }
}

/// Pod IPs for pods the agent only marks Running: from 10.244.0.0/16, like a pod network's, since
/// nothing listens for them (loopback would claim something does).
static NEXT_IP: AtomicU32 = AtomicU32::new(0);

/// Reports `pod` Running and Ready with every container running (init containers completed).
pub(crate) async fn mark_running(client: &Client, pod: &Pod) {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let at = now();
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
    let ip = format!("10.244.{}.{}", (n / 250) % 250, n % 250 + 2);
    let spec = pod.spec.clone().unwrap_or_default();
    let condition = |type_: &str| PodCondition {
        type_: type_.to_string(),
        status: "True".into(),
        last_transition_time: Some(at.clone()),
        ..PodCondition::default()
    };
    let status = |name: &str, image: &Option<String>, state: ContainerState, ready: bool| ContainerStatus {
        name: name.to_string(),
        image: image.clone().unwrap_or_default(),
        image_id: String::new(),
        ready,
        started: Some(ready),
        restart_count: 0,
        state: Some(state),
        ..ContainerStatus::default()
    };
    let running = ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(at.clone()),
        }),
        ..ContainerState::default()
    };
    let completed = ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: 0,
            reason: Some("Completed".into()),
            started_at: Some(at.clone()),
            finished_at: Some(at.clone()),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    };
    let init: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| status(&c.name, &c.image, completed.clone(), false))
        .collect();
    let pod_status = PodStatus {
        phase: Some("Running".into()),
        conditions: Some(
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            ]
            .into_iter()
            .map(condition)
            .collect(),
        ),
        host_ip: Some(LOOPBACK.into()),
        host_ips: Some(vec![HostIP { ip: LOOPBACK.into() }]),
        pod_ip: Some(ip.clone()),
        pod_ips: Some(vec![PodIP { ip }]),
        start_time: Some(at.clone()),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(
            spec.containers
                .iter()
                .map(|c| status(&c.name, &c.image, running.clone(), true))
                .collect(),
        ),
        ..PodStatus::default()
    };
    let patch = serde_json::json!({"metadata": {"uid": pod.metadata.uid}, "status": pod_status});
    if let Err(err) = api
        .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::debug!(pod = %pod.name_any(), "marking the pod Running failed: {err}");
    }
}
