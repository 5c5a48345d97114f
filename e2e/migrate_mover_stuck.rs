//! Attack: movers that never run. Before the fix nothing bounded them: a mover image that cannot be
//! pulled, or a receiver no node can take, left the migration waiting forever, and since one
//! migration runs per plan, the plan blocked with it. Now a mover that has not started within
//! `transfer.moverStartTimeoutSeconds` fails the step with the pod's own reason, on real nodes:
//! the real kubelet's `ErrImagePull`/`ImagePullBackOff` for an image the node does not have (its pull
//! fails at once: the sandbox has no registry), `Unschedulable` from the real kube-scheduler for a
//! cordoned node. A migration whose flags are edited while it waits
//! ends with `SpecChanged`. Afterwards the plan is free: a fixed stage runs.

#[path = "support/scenario.rs"]
mod scenario;

use std::time::Duration;

use ferry::api::condition;
use ferry::api::plan::QuiesceMethod;
use ferry_sandbox::world::{PLAN_NAME, TARGET_NODE};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};
use scenario::Scenario;

const TIMEOUT: Duration = Duration::from_secs(120);
/// The start bound for the missing image: the pull fails within a second of the pod's sandbox, which on
/// a busy 2-core machine can take several seconds to create.
const PULL_BOUND_SECONDS: u64 = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mover_that_does_not_start_fails_the_step_with_its_reason() {
    let scenario = Scenario::start(QuiesceMethod::Patch).await;
    let patch_plan = |transfer: serde_json::Value| {
        let plans = scenario.plans();
        async move {
            plans
                .patch(
                    PLAN_NAME,
                    &PatchParams::default(),
                    &Patch::Merge(&serde_json::json!({"spec": {"transfer": transfer}})),
                )
                .await
                .unwrap();
        }
    };
    // The kubelet pulls (the tag is not `latest` and movers set no imagePullPolicy: IfNotPresent) and the
    // pull fails at once on the node (no registry: containerd's hosts point at the node's own loopback).
    // The bound leaves the kubelet time to create the pod's sandbox and try, so the step fails with the
    // kubelet's reason (ErrImagePull, or ImagePullBackOff between retries), not ContainerCreating.
    patch_plan(serde_json::json!({
        "moverImage": "registry.invalid/ferry:missing",
        "moverStartTimeoutSeconds": PULL_BOUND_SECONDS,
    }))
    .await;
    scenario.create_migration("bad-image", |s| s.stage = true).await;
    let failure = failed_with(&scenario, "bad-image").await;
    assert!(
        (failure.contains("ErrImagePull") || failure.contains("ImagePullBackOff"))
            && failure.contains("registry.invalid/ferry:missing"),
        "{failure}"
    );
    assert!(
        failure.contains("moverStartTimeoutSeconds"),
        "says what to change: {failure}"
    );

    // The right image, but no node can take the receiver: the scheduler's own words.
    patch_plan(serde_json::json!({"moverImage": null, "moverStartTimeoutSeconds": 3})).await;
    let nodes: Api<Node> = Api::all(scenario.sandbox.host_client.clone());
    let cordon = |on: bool| serde_json::json!({"spec": {"unschedulable": on}});
    nodes
        .patch(TARGET_NODE, &PatchParams::default(), &Patch::Merge(&cordon(true)))
        .await
        .unwrap();
    scenario
        .create_migration("unschedulable", |s| s.stage = true)
        .await;
    let failure = failed_with(&scenario, "unschedulable").await;
    assert!(
        failure.contains("Unschedulable") && failure.contains("unschedulable"),
        "{failure}"
    );

    // A migration's flags edited after it started (stage into rollback, while its receiver waits for
    // a node): it ends with SpecChanged instead of restarting as another itinerary.
    patch_plan(serde_json::json!({"moverStartTimeoutSeconds": 120})).await;
    scenario.create_migration("edited", |s| s.stage = true).await;
    scenario
        .wait_for_phase("edited", "CreateMoverPods", TIMEOUT)
        .await;
    let edit = serde_json::json!({"spec": {"stage": false, "rollback": true}});
    scenario
        .migrations()
        .patch("edited", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    let ended = scenario.wait_finished("edited", TIMEOUT).await;
    let status = ended.status.unwrap();
    scenario::assert_readable(&status);
    let failed = condition::find(&status.conditions, "Failed").unwrap_or_else(|| panic!("{status:#?}"));
    assert_eq!(failed.reason.as_deref(), Some("SpecChanged"), "{status:#?}");
    assert_eq!(
        status.itinerary,
        Some(ferry::api::Itinerary::Stage),
        "not restarted as a rollback"
    );

    // Nothing is left blocking the plan.
    nodes
        .patch(
            TARGET_NODE,
            &PatchParams::default(),
            &Patch::Merge(&cordon(false)),
        )
        .await
        .unwrap();
    scenario.create_migration("fixed", |s| s.stage = true).await;
    scenario.wait_succeeded("fixed", TIMEOUT).await;
    scenario::eventually("temporary objects removed", || async {
        scenario::temporary_objects(&scenario.sandbox).await.is_empty()
    })
    .await;
    scenario.stop().await;
}

/// Waits for `name` to fail and returns its cause (checked to be one readable line).
async fn failed_with(scenario: &Scenario, name: &str) -> String {
    let ended = scenario.wait_finished(name, TIMEOUT).await;
    let status = ended.status.unwrap();
    scenario::assert_readable(&status);
    assert!(condition::is_true(&status.conditions, "Failed"), "{status:#?}");
    status.errors.join("; ")
}
