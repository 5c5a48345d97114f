//! Scenario: the plan's transfer and Argo CD settings, on the whole sandbox.
//! - `endpointType: Route` on a cluster without OpenShift's API fails the stage with a clear message;
//! - `endpointType: LoadBalancer` while no address comes (the nodes' load-balancer stand-in held) waits
//!   and says so; deleting the migration then removes its temporary objects from both clusters before
//!   the finalizer lets it go;
//! - `endpointType: ClusterIP` between two clusters fails at once saying why; unset, Ferry picks: no
//!   Route API, so a LoadBalancer, which the stand-in addresses within `loadBalancerWaitSeconds`, and
//!   the step message says so (the NodePort fallback: `migrate_seed_cutover`, the stand-in held);
//! - `networkPolicies: true` creates the movers' NetworkPolicies (and the stage still moves the data);
//! - Patch mode under an Argo CD Application that self-heals is refused, and nothing is scaled down.

#[path = "support/mover.rs"]
mod mover;
#[path = "support/scenario.rs"]
mod scenario;

use std::time::{Duration, Instant};

use ferry::api::plan::QuiesceMethod;
use ferry_sandbox::world::{FERRY_NAMESPACE, PLAN_NAME};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use scenario::{Scenario, replicas, write_files};

const TIMEOUT: Duration = Duration::from_secs(240);

async fn set_transfer(scenario: &Scenario, transfer: serde_json::Value) {
    let patch = serde_json::json!({"spec": {"transfer": transfer}});
    scenario
        .plans()
        .patch(PLAN_NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// The cause a user reads, checked to be free of debug dumps.
fn failure(migration: &ferry::api::MigMigration) -> String {
    let status = migration.status.as_ref().unwrap();
    scenario::assert_readable(status);
    status.errors.join("; ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_policies_and_argocd_refusal() {
    let scenario = Scenario::start(QuiesceMethod::Patch).await;
    let sandbox = &scenario.sandbox;
    write_files(&sandbox.volume_dir(true), &[("data", b"rows")]);
    let labelled = ListParams::default().labels("migration.ferry.dev/migration-uid");

    // Route without the Route API: a clear failure.
    set_transfer(&scenario, serde_json::json!({"endpointType": "Route"})).await;
    scenario.create_migration("via-route", |s| s.stage = true).await;
    let failed = scenario.wait_finished("via-route", TIMEOUT).await;
    let cause = failure(&failed);
    assert!(
        cause.contains("CreateMoverEndpoints failed") && cause.contains("route.openshift.io"),
        "{cause}"
    );

    // LoadBalancer without an address (the nodes' load-balancer stand-in held, as a cloud load
    // balancer still provisioning): waits, says why.
    let hold = |held: bool| {
        sandbox
            .nodes()
            .iter()
            .for_each(|node| node.hold_load_balancer(held))
    };
    hold(true);
    set_transfer(&scenario, serde_json::json!({"endpointType": "LoadBalancer"})).await;
    scenario.create_migration("via-lb", |s| s.stage = true).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = scenario.migrations().get("via-lb").await.unwrap();
        let message = m
            .status
            .as_ref()
            .and_then(|s| s.pipeline.iter().find(|p| p.name == "CreateMoverEndpoints"))
            .and_then(|p| p.message.clone())
            .unwrap_or_default();
        if message.contains("no load balancer has assigned it an address") {
            break;
        }
        assert!(Instant::now() < deadline, "no waiting message: {:#?}", m.status);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let services = Api::<Service>::all(sandbox.host_client.clone());
    assert!(
        !services.list(&labelled).await.unwrap().items.is_empty(),
        "its Service exists meanwhile"
    );
    // Deleting it: the finalizer holds it until both clusters are clean.
    scenario
        .migrations()
        .delete("via-lb", &DeleteParams::default())
        .await
        .unwrap();
    scenario::eventually("the deleted migration is gone", || async {
        scenario.migrations().get_opt("via-lb").await.unwrap().is_none()
    })
    .await;
    let left = scenario::temporary_objects(sandbox).await;
    assert!(left.is_empty(), "left after deletion: {left:?}");
    hold(false);

    // ClusterIP asked across two clusters: refused at once, with the reason.
    set_transfer(&scenario, serde_json::json!({"endpointType": "ClusterIP"})).await;
    scenario
        .create_migration("via-cluster-ip", |s| s.stage = true)
        .await;
    let cause = failure(&scenario.wait_finished("via-cluster-ip", TIMEOUT).await);
    assert!(
        cause.contains("CreateMoverEndpoints failed") && cause.contains("different clusters"),
        "{cause}"
    );

    // Unset: no Route API here, so a LoadBalancer; on the sandbox's real nodes the load-balancer
    // stand-in gives it an address from the target's 10.203.N.0/24 within the bound, the step says
    // which and why, and the data moves through that address. (Without an address the same Services
    // become NodePorts: `migrate_seed_cutover` proves that fallback with the stand-in held.)
    set_transfer(
        &scenario,
        serde_json::json!({"endpointType": null, "loadBalancerWaitSeconds": 30}),
    )
    .await;
    scenario.create_migration("picked", |s| s.stage = true).await;
    let picked = scenario.wait_succeeded("picked", TIMEOUT).await;
    let endpoints = picked
        .status
        .as_ref()
        .unwrap()
        .pipeline
        .iter()
        .find(|p| p.name == "CreateMoverEndpoints")
        .and_then(|p| p.message.clone())
        .unwrap_or_default();
    assert!(
        endpoints.starts_with(
            "endpoint LoadBalancer: no Route API; the load balancer assigned an address; receivers at 10.203."
        ),
        "{endpoints}"
    );
    mover::assert_same_tree(&sandbox.volume_dir(true), &sandbox.volume_dir(false));

    // NetworkPolicies: created for the movers, the data still moves, and they go at cleanup.
    set_transfer(
        &scenario,
        serde_json::json!({"endpointType": "NodePort", "networkPolicies": true}),
    )
    .await;
    scenario
        .create_migration("with-policies", |s| s.stage = true)
        .await;
    let policies_seen = tokio::spawn({
        let (source, target) = (sandbox.source_client.clone(), sandbox.host_client.clone());
        let labelled = labelled.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let ingress = Api::<NetworkPolicy>::all(target.clone())
                    .list(&labelled)
                    .await
                    .unwrap()
                    .items;
                let egress = Api::<NetworkPolicy>::all(source.clone())
                    .list(&labelled)
                    .await
                    .unwrap()
                    .items;
                if !ingress.is_empty() && !egress.is_empty() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        }
    });
    let stage = scenario.wait_succeeded("with-policies", TIMEOUT).await;
    assert!(
        policies_seen.await.unwrap(),
        "no NetworkPolicies seen in both clusters"
    );
    mover::assert_same_tree(&sandbox.volume_dir(true), &sandbox.volume_dir(false));
    let cleanup = stage
        .status
        .unwrap()
        .pipeline
        .last()
        .unwrap()
        .message
        .clone()
        .unwrap();
    assert!(
        cleanup.contains("Removed 7 temporary object(s)"),
        "pods, service, secrets, policies: {cleanup}"
    );

    // Argo CD self-heals the source app: Patch mode is refused and nothing is scaled down.
    ferry_sandbox::argocd::install_application_crd(&sandbox.host_client)
        .await
        .unwrap();
    ferry_sandbox::argocd::create_application(
        &sandbox.host_client,
        FERRY_NAMESPACE,
        "shop-source",
        &sandbox.git.url("shop"),
        "clusters/source",
        "shop",
    )
    .await
    .unwrap();
    let patch = serde_json::json!({"spec": {"gitops": {"argocd": {
        "sourceApplication": {"name": "shop-source", "namespace": FERRY_NAMESPACE}}}}});
    scenario
        .plans()
        .patch(PLAN_NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let before = replicas(&sandbox.source_client).await;
    scenario
        .create_migration("refused", |s| s.quiesce_pods = true)
        .await;
    let refused = scenario.wait_finished("refused", TIMEOUT).await;
    let cause = failure(&refused);
    assert!(
        cause.contains("QuiesceSource failed") && cause.contains("selfHeal"),
        "{cause}"
    );
    assert!(
        cause.contains("Commit") && cause.contains("pauseAutoSync"),
        "says what to do: {cause}"
    );
    assert_eq!(
        replicas(&sandbox.source_client).await,
        before,
        "nothing scaled down"
    );
    scenario.stop().await;
}
