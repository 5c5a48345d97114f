//! Attack: movers that never run. Before the fix nothing bounded them: a mover image that cannot be
//! pulled, or a receiver no node can take, left the migration waiting forever, and since one
//! migration runs per plan, the plan blocked with it. Now a mover that has not started within
//! `transfer.moverStartTimeoutSeconds` fails the step with the pod's own reason: `ErrImagePull` for
//! an image the node does not have (the sandbox node reports it as a kubelet does), `Unschedulable`
//! from the real kube-scheduler for a cordoned node. A migration whose flags are edited while it waits
//! ends with `SpecChanged`. Afterwards the plan is free: a fixed stage runs.

#[path = "support/scenario.rs"]
mod scenario;

use ferry_sandbox::Nodes;

use std::time::Duration;

use ferry::api::condition;
use ferry::api::plan::QuiesceMethod;
use ferry_sandbox::world::{PLAN_NAME, TARGET_NODE};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};
use scenario::Scenario;

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mover_that_does_not_start_fails_the_step_with_its_reason() {
    // Node agent: its ErrImagePull is immediate; a real kubelet is still ContainerCreating when the 3 s
    // moverStartTimeoutSeconds below ends, so the step fails with that reason instead.
    let scenario = Scenario::start_on(QuiesceMethod::Patch, true, Nodes::Agent).await;
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
    patch_plan(
        serde_json::json!({"moverImage": "registry.invalid/ferry:missing", "moverStartTimeoutSeconds": 3}),
    )
    .await;
    scenario.create_migration("bad-image", |s| s.stage = true).await;
    let failure = failed_with(&scenario, "bad-image").await;
    assert!(
        failure.contains("ErrImagePull") && failure.contains("registry.invalid/ferry:missing"),
        "{failure}"
    );
    assert!(
        failure.contains("moverStartTimeoutSeconds"),
        "says what to change: {failure}"
    );

    // The right image, but no node can take the receiver: the scheduler's own words.
    patch_plan(serde_json::json!({"moverImage": null})).await;
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
