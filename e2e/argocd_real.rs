//! e2e: Argo CD itself (its application controller and repo-server, `make argocd`; not the stand-in)
//! on the real-node sandbox. Two Applications with automated sync, one per cluster (the source cluster
//! registered as a cluster Secret, the host as in-cluster), apply the example app from the sandbox's
//! git server: each reports Synced at the repo's head and the Deployments carry Argo CD's tracking
//! annotation. Then a commit changing `replicas` is applied once the `argocd.argoproj.io/refresh`
//! annotation asks for it, well before Argo CD's own poll (120 s) would have, and `status.sync.revision`
//! is that commit. And Ferry's Commit-mode cutover (as `migrate_commit_cutover`, which runs it against
//! the stand-in) with Argo CD itself applying both commits; and a Patch-mode cutover with `pauseAutoSync`
//! under two self-healing Applications, where Argo CD, its automated sync paused by Ferry on both sides,
//! sees the scaled-down source and the started target OutOfSync and heals neither (a self-healing target
//! Application would otherwise scale the started target back to Git's zero). Skipped (with a line saying so) when the
//! binary is missing, unless FERRY_REQUIRE_ARGOCD=1. Needs root (real nodes).

#[path = "support/mover.rs"]
mod mover;
#[path = "support/scenario.rs"]
mod scenario;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferry::api::plan::QuiesceMethod;
use ferry::pipeline::argocd::{PRE_AUTOMATED, REFRESH_ANNOTATION};
use ferry_sandbox::argocd_real::{self, NAMESPACE};
use ferry_sandbox::world::{APP_NAMESPACE, REPO};
use ferry_sandbox::{Sandbox, SandboxOptions};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const SOURCE_APP: &str = include_str!("examples/shop/source.yaml");
const TRACKING: &str = "argocd.argoproj.io/tracking-id";
/// The first sync: the controller's cluster caches, the repo-server's first clone, two Applications.
const FIRST_SYNC: Duration = Duration::from_secs(240);
/// Well under Argo CD's own reconciliation period (`timeout.reconciliation`, 120 s by default).
const REFRESHED: Duration = Duration::from_secs(60);

/// Whether Argo CD is missing (and may be: FERRY_REQUIRE_ARGOCD unset), said on stderr.
fn skipped() -> bool {
    let Err(err) = argocd_real::argocd_binary() else {
        return false;
    };
    assert!(std::env::var("FERRY_REQUIRE_ARGOCD").is_err(), "{err}");
    eprintln!("skipped: {err}");
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_cd_syncs_the_example_app_and_applies_a_commit_on_refresh() {
    if skipped() {
        return;
    }
    let started = Instant::now();
    let (mut sandbox, _dir) = sandbox_with_app(false).await;
    sandbox.start_real_argocd().await.unwrap();
    eprintln!(
        "sandbox and Argo CD up in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let host = sandbox.host_client.clone();
    let applications = ferry_sandbox::argocd::applications(&host, NAMESPACE);
    let logs = |sandbox: &Sandbox| sandbox.argocd().map(|a| a.log_tails(40)).unwrap_or_default();

    let head = sandbox.git_head();
    let synced = Instant::now();
    for name in ["shop-source", "shop-target"] {
        expect_first_sync(&sandbox, &applications, name, &head).await;
    }
    eprintln!(
        "both Applications Synced at {head} after {:.1}s",
        synced.elapsed().as_secs_f64()
    );
    for (cluster, side) in [(&sandbox.source_client, "source"), (&host, "target")] {
        for deployment in ["db", "web"] {
            let annotations = deployments(cluster)
                .get(deployment)
                .await
                .unwrap()
                .metadata
                .annotations;
            let tracking = annotations.unwrap_or_default().remove(TRACKING);
            assert!(
                tracking.is_some_and(|id| id.starts_with(&format!("shop-{side}:"))),
                "{side}/{deployment}"
            );
        }
    }

    // A commit scaling the source's web Deployment from 2 to 1, then a refresh request, as Ferry sends.
    let scaled = SOURCE_APP.replacen("  replicas: 2\n", "  replicas: 1\n", 1);
    assert_ne!(scaled, SOURCE_APP);
    let commit = sandbox
        .git
        .commit(
            REPO,
            &[("clusters/source/shop.yaml", &scaled)],
            "web: one replica",
        )
        .unwrap()
        .to_string();
    let asked = Instant::now();
    let refresh = json!({"metadata": {"annotations": {REFRESH_ANNOTATION: "normal"}}});
    applications
        .patch("shop-source", &PatchParams::default(), &Patch::Merge(&refresh))
        .await
        .unwrap();
    if let Err(last) = wait_synced(&applications, "shop-source", &commit, REFRESHED).await {
        panic!(
            "shop-source not Synced at {commit} within {REFRESHED:?}: {last:#}\n{}",
            logs(&sandbox)
        );
    }
    let web = deployments(&sandbox.source_client).get("web").await.unwrap();
    assert_eq!(web.spec.replicas, Some(1));
    let application = applications.get("shop-source").await.unwrap();
    let annotations = application.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key(REFRESH_ANNOTATION),
        "Argo CD removes the request it served"
    );
    eprintln!(
        "commit {commit} applied {:.1}s after the refresh request",
        asked.elapsed().as_secs_f64()
    );

    assert!(sandbox.stop().await, "a sandbox process did not exit cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_mode_cutover_through_argo_cd() {
    if skipped() {
        return;
    }
    let (mut sandbox, dir) = sandbox_with_app(true).await;
    sandbox.use_real_argocd();
    sandbox.create_plan(QuiesceMethod::Commit).await.unwrap();
    let applications = ferry_sandbox::argocd::applications(&sandbox.host_client, NAMESPACE);
    let head_before = sandbox.git_head();
    for name in ["shop-source", "shop-target"] {
        expect_first_sync(&sandbox, &applications, name, &head_before).await;
    }
    let scenario = scenario::Scenario { sandbox, dir };
    scenario.wait_plan_ready().await;
    let (source_dir, target_dir) = (
        scenario.sandbox.volume_dir(true),
        scenario.sandbox.volume_dir(false),
    );
    scenario::write_files(&source_dir, &[("wal/0001", b"last writes before the cutover")]);
    let before = scenario::replicas(&scenario.sandbox.source_client).await;

    scenario
        .create_migration("cutover", |s| s.quiesce_pods = true)
        .await;
    let cutover = scenario.wait_succeeded("cutover", Duration::from_secs(300)).await;
    eprintln!("{:#?}", scenario::step_summary(&cutover));
    mover::assert_same_tree(&source_dir, &target_dir);
    let source = scenario::replicas(&scenario.sandbox.source_client).await;
    assert!(source.values().all(|r| *r == 0), "{source:?}");
    assert_eq!(scenario::replicas(&scenario.sandbox.host_client).await, before);

    // Argo CD applied Ferry's two commits: the target's Application reports the repo's new head (the
    // commit starting it, the last), the source's a later revision than before (the one stopping it).
    let head = scenario.sandbox.git_head();
    assert_ne!(head, head_before);
    for name in ["shop-source", "shop-target"] {
        let sync = applications.get(name).await.unwrap().data["status"]["sync"].clone();
        assert_eq!(sync["status"], "Synced", "{name}: {sync}");
        assert_ne!(sync["revision"], head_before.as_str(), "{name}: {sync}");
    }
    let target = applications.get("shop-target").await.unwrap();
    assert_eq!(target.data["status"]["sync"]["revision"], head.as_str());
    scenario.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_mode_cutover_pauses_argo_cds_self_heal() {
    if skipped() {
        return;
    }
    let (mut sandbox, dir) = sandbox_with_app(true).await;
    sandbox.start_real_argocd().await.unwrap();
    sandbox.create_plan(QuiesceMethod::Patch).await.unwrap();
    let applications = ferry_sandbox::argocd::applications(&sandbox.host_client, NAMESPACE);
    let head = sandbox.git_head();
    expect_first_sync(&sandbox, &applications, "shop-source", &head).await;
    // Both Applications self-heal. Patch mode starts the target by patching it, which the target's
    // Application (Git says zero replicas there) would heal back down: with pauseAutoSync Ferry
    // pauses both before it changes anything, and after the cutover both stay paused.
    expect_first_sync(&sandbox, &applications, "shop-target", &head).await;
    let scenario = scenario::Scenario { sandbox, dir };
    let gitops = json!({"spec": {"gitops": {"pauseAutoSync": true, "argocd": {
        "sourceApplication": {"name": "shop-source", "namespace": NAMESPACE},
        "targetApplication": {"name": "shop-target", "namespace": NAMESPACE}}}}});
    let plan = ferry_sandbox::world::PLAN_NAME;
    scenario
        .plans()
        .patch(plan, &PatchParams::default(), &Patch::Merge(&gitops))
        .await
        .unwrap();
    scenario.wait_plan_ready().await;
    let before = scenario::replicas(&scenario.sandbox.source_client).await;

    scenario
        .create_migration("cutover", |s| s.quiesce_pods = true)
        .await;
    let cutover = scenario.wait_succeeded("cutover", Duration::from_secs(300)).await;
    eprintln!("{:#?}", scenario::step_summary(&cutover));
    assert_eq!(scenario::replicas(&scenario.sandbox.host_client).await, before);

    // Paused, both: no automated policy, the old one recorded. Asked to refresh, Argo CD compares,
    // reports the scaled-down source and the started target OutOfSync, and heals neither.
    for name in ["shop-source", "shop-target"] {
        let application = applications.get(name).await.unwrap();
        assert!(
            application.data["spec"]["syncPolicy"]["automated"].is_null(),
            "{name}: {:#}",
            application.data["spec"]
        );
        let recorded = application
            .metadata
            .annotations
            .unwrap_or_default()
            .remove(PRE_AUTOMATED);
        assert!(
            recorded.is_some_and(|r| r.contains("selfHeal")),
            "{name}: the previous policy is recorded"
        );
        let refresh = json!({"metadata": {"annotations": {REFRESH_ANNOTATION: "normal"}}});
        applications
            .patch(name, &PatchParams::default(), &Patch::Merge(&refresh))
            .await
            .unwrap();
        let deadline = Instant::now() + REFRESHED;
        loop {
            let status = applications.get(name).await.unwrap().data["status"].clone();
            if status["sync"]["status"] == "OutOfSync" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Argo CD never saw the drift of {name}: {:#}",
                status["sync"]
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let source = scenario::replicas(&scenario.sandbox.source_client).await;
    assert!(
        source.values().all(|r| *r == 0),
        "Argo CD healed the source: {source:?}"
    );
    assert_eq!(
        scenario::replicas(&scenario.sandbox.host_client).await,
        before,
        "Argo CD healed the started target back to Git's replicas"
    );
    scenario.stop().await;
}

/// A real-node sandbox (with or without the controller) in a fresh directory, the example app
/// installed.
async fn sandbox_with_app(controller: bool) -> (Sandbox, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("ferry-argocd-")
        .tempdir()
        .unwrap();
    let options = SandboxOptions {
        controller,
        ..SandboxOptions::new(dir.path(), PathBuf::from(env!("CARGO_BIN_EXE_ferry")))
    };
    let sandbox = Sandbox::start(options).await.unwrap();
    sandbox.install_app().await.unwrap();
    (sandbox, dir)
}

/// Waits for Application `name`'s first sync at `revision`; panics with its status and Argo CD's logs.
async fn expect_first_sync(sandbox: &Sandbox, applications: &Api<DynamicObject>, name: &str, revision: &str) {
    if let Err(last) = wait_synced(applications, name, revision, FIRST_SYNC).await {
        let logs = sandbox.argocd().map(|a| a.log_tails(40)).unwrap_or_default();
        panic!("{name} not Synced at {revision}: {last:#}\n{logs}");
    }
}

fn deployments(cluster: &Client) -> Api<Deployment> {
    Api::namespaced(cluster.clone(), APP_NAMESPACE)
}

/// Waits until Application `name` is Synced at `revision` with its operation (if any) Succeeded and
/// every resource applied; on time-out returns its last status.
async fn wait_synced(
    api: &Api<DynamicObject>,
    name: &str,
    revision: &str,
    timeout: Duration,
) -> Result<(), Value> {
    let deadline = Instant::now() + timeout;
    let mut status = Value::Null;
    while Instant::now() < deadline {
        if let Ok(application) = api.get(name).await {
            status = application.data["status"].clone();
            let sync = &status["sync"];
            let operation = status["operationState"]["phase"].as_str();
            if sync["status"] == "Synced"
                && sync["revision"] == revision
                && operation.is_none_or(|phase| phase == "Succeeded")
            {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(
        json!({"sync": status["sync"], "operationState": status["operationState"],
        "conditions": status["conditions"], "health": status["health"]}),
    )
}
