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
//! Application would otherwise scale the started target back to Git's zero). Needs `make argocd` (the tests fail without
//! it) and root (real nodes).

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
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const SOURCE_APP: &str = include_str!("examples/shop/source.yaml");
const TRACKING: &str = "argocd.argoproj.io/tracking-id";
/// Well under Argo CD's own reconciliation period (`timeout.reconciliation`, 120 s by default).
const REFRESHED: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_cd_syncs_the_example_app_and_applies_a_commit_on_refresh() {
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
    first_sync(&sandbox).await;
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
    if let Err(last) = argocd_real::wait_synced(&sandbox.host_client, "shop-source", &commit, REFRESHED).await
    {
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
    let (mut sandbox, dir) = sandbox_with_app(true).await;
    sandbox.use_real_argocd();
    sandbox.create_plan(QuiesceMethod::Commit).await.unwrap();
    let applications = ferry_sandbox::argocd::applications(&sandbox.host_client, NAMESPACE);
    let head_before = sandbox.git_head();
    first_sync(&sandbox).await;
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
    let (mut sandbox, dir) = sandbox_with_app(true).await;
    sandbox.start_real_argocd().await.unwrap();
    sandbox.create_plan(QuiesceMethod::Patch).await.unwrap();
    let applications = ferry_sandbox::argocd::applications(&sandbox.host_client, NAMESPACE);
    // Both Applications self-heal. Patch mode starts the target by patching it, which the target's
    // Application (Git says zero replicas there) would heal back down: with pauseAutoSync Ferry
    // pauses both before it changes anything, and after the cutover both stay paused.
    first_sync(&sandbox).await;
    let scenario = scenario::Scenario { sandbox, dir };
    let gitops = |pause: bool| {
        json!({"spec": {"gitops": {"pauseAutoSync": pause, "argocd": {
            "sourceApplication": {"name": "shop-source", "namespace": NAMESPACE},
            "targetApplication": {"name": "shop-target", "namespace": NAMESPACE}}}}})
    };
    let plan = ferry_sandbox::world::PLAN_NAME;
    let before = scenario::replicas(&scenario.sandbox.source_client).await;

    // Without pauseAutoSync, Patch mode under self-healing Applications is refused before anything
    // is scaled, with what to do instead; Argo CD's policies are left as they were.
    scenario
        .plans()
        .patch(plan, &PatchParams::default(), &Patch::Merge(&gitops(false)))
        .await
        .unwrap();
    scenario.wait_plan_ready().await;
    scenario
        .create_migration("refused", |s| s.quiesce_pods = true)
        .await;
    let refused = scenario.wait_finished("refused", Duration::from_secs(300)).await;
    let cause = refused.status.as_ref().unwrap().errors.join("; ");
    assert!(
        cause.contains("selfHeal") && cause.contains("pauseAutoSync"),
        "the refusal says why and what to do: {cause}"
    );
    assert_eq!(scenario::replicas(&scenario.sandbox.source_client).await, before);
    for name in ["shop-source", "shop-target"] {
        let spec = applications.get(name).await.unwrap().data["spec"].clone();
        assert_eq!(
            spec["syncPolicy"]["automated"]["selfHeal"], true,
            "{name}: {spec:#}"
        );
    }

    scenario
        .plans()
        .patch(plan, &PatchParams::default(), &Patch::Merge(&gitops(true)))
        .await
        .unwrap();
    scenario.wait_plan_ready().await;

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

    // A rollback resumes both: the source's automated policy at UnquiesceSource, the target's at
    // QuiesceTarget, as they were (selfHeal), the records removed; the app runs on the source again
    // and Argo CD, healing once more, finds both clusters as Git says.
    scenario.create_migration("rollback", |s| s.rollback = true).await;
    let rollback = scenario
        .wait_succeeded("rollback", Duration::from_secs(300))
        .await;
    eprintln!("{:#?}", scenario::step_summary(&rollback));
    for name in ["shop-source", "shop-target"] {
        let application = applications.get(name).await.unwrap();
        let automated = &application.data["spec"]["syncPolicy"]["automated"];
        assert_eq!(automated["selfHeal"], true, "{name} resumed: {automated:#}");
        let annotations = application.metadata.annotations.unwrap_or_default();
        assert!(!annotations.contains_key(PRE_AUTOMATED), "{name}: record removed");
    }
    assert_eq!(scenario::replicas(&scenario.sandbox.source_client).await, before);
    let target = scenario::replicas(&scenario.sandbox.host_client).await;
    assert!(target.values().all(|r| *r == 0), "{target:?}");
    let head = scenario.sandbox.git_head();
    for name in ["shop-source", "shop-target"] {
        let refresh = json!({"metadata": {"annotations": {REFRESH_ANNOTATION: "normal"}}});
        applications
            .patch(name, &PatchParams::default(), &Patch::Merge(&refresh))
            .await
            .unwrap();
        if let Err(last) =
            argocd_real::wait_synced(&scenario.sandbox.host_client, name, &head, REFRESHED).await
        {
            panic!("{name} not back in sync after the rollback: {last:#}");
        }
    }
    scenario.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_cds_presync_hook_stages_before_the_targets_first_sync_and_nothing_once_cut_over() {
    // The hooks of manifests/argocd/ beside the target's manifests, as their kustomization says,
    // before Argo CD first sees the repo.
    let (mut sandbox, dir) = sandbox_with_app(true).await;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/argocd");
    let hooks: Vec<(String, String)> = ["hook-rbac.yaml", "presync-stage.yaml", "syncfail-status.yaml"]
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(examples.join(file)).unwrap();
            (format!("clusters/target/{file}"), text)
        })
        .collect();
    let files: Vec<(&str, &str)> = hooks.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    sandbox
        .git
        .commit(
            REPO,
            &files,
            "Ferry's Argo CD hooks beside the target's manifests",
        )
        .unwrap();
    let (source_dir, target_dir) = (sandbox.volume_dir(true), sandbox.volume_dir(false));
    scenario::write_files(&source_dir, &[("staged/by-the-hook", &[7u8; 40_000])]);

    // The plan, then Argo CD with its two Applications: the target's first sync runs the PreSync
    // hook, whose Job (on the target's real node, as ferry-hook) stages the data and only then
    // lets the sync apply the app.
    sandbox.use_real_argocd();
    sandbox.create_plan(QuiesceMethod::Commit).await.unwrap();
    first_sync(&sandbox).await;
    let scenario = scenario::Scenario { sandbox, dir };
    let applications = ferry_sandbox::argocd::applications(&scenario.sandbox.host_client, NAMESPACE);
    let first = applications.get("shop-target").await.unwrap().data["status"]["operationState"].clone();
    let hook = presync_hook(&first);
    assert_eq!(hook["hookPhase"], "Succeeded", "{first:#}");
    let stages = scenario
        .migrations()
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    assert_eq!(stages.len(), 1, "one stage, the hook's");
    let stage = &stages[0];
    assert!(stage.spec.stage, "{:?}", stage.spec);
    let succeeded = stage
        .status
        .as_ref()
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Succeeded" && c.is_true())
        })
        .unwrap_or_else(|| panic!("the hook's stage did not succeed: {:?}", stage.status));
    // Within the sync: after it started, before it finished (whole seconds: Argo CD's resolution).
    let second = |time: &str| time.parse::<k8s_openapi::jiff::Timestamp>().unwrap().as_second();
    let (started, finished) = (
        second(first["startedAt"].as_str().unwrap()),
        second(first["finishedAt"].as_str().unwrap()),
    );
    let created = stage.metadata.creation_timestamp.as_ref().unwrap().0.as_second();
    let done = succeeded.last_transition_time.as_ref().unwrap().0.as_second();
    assert!(
        started <= created && created <= done && done <= finished,
        "sync {started}..{finished}, stage {created}..{done} (Unix seconds)"
    );
    mover::assert_same_tree(&source_dir, &target_dir);

    // A Commit-mode cutover: its commit starting the target makes Argo CD sync the target again, and
    // the hook runs again; the plan's cutover record is written before that commit, so the hook
    // stages nothing and the sync goes on (a stage there would wait for the cutover, which waits
    // for the sync).
    scenario::write_files(&source_dir, &[("wal/0001", b"last writes before the cutover")]);
    scenario
        .create_migration("cutover", |s| s.quiesce_pods = true)
        .await;
    let cutover = scenario.wait_succeeded("cutover", Duration::from_secs(300)).await;
    eprintln!("{:#?}", scenario::step_summary(&cutover));
    eprintln!(
        "downtime with the hook in the target's sync: {:?}",
        cutover.status.as_ref().and_then(|s| s.downtime.clone())
    );
    mover::assert_same_tree(&source_dir, &target_dir);
    // The Job was made again (its delete policy: BeforeHookCreation) by a sync after the first one.
    let job = hook_job(&scenario.sandbox).await;
    let remade = job.metadata.creation_timestamp.as_ref().unwrap().0.as_second();
    let history = applications.get("shop-target").await.unwrap().data["status"]["history"].clone();
    assert!(remade > finished, "the hook did not run again: {history:#}");
    let log = hook_log(&scenario.sandbox).await;
    assert!(log.contains("nothing is staged"), "{log}\n{history:#}");

    // The app writes on the live target; a later commit to the target's path syncs again: the hook
    // stages nothing, the sync succeeds, the target keeps what the app wrote.
    scenario::write_files(&target_dir, &[("wal/0002", b"written on the live target")]);
    let settings = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop-settings\n  namespace: shop\ndata:\n  \
                    greeting: hello from the target\n";
    let commit = scenario
        .sandbox
        .git
        .commit(
            REPO,
            &[("clusters/target/settings.yaml", settings)],
            "shop: settings",
        )
        .unwrap()
        .to_string();
    let refresh = json!({"metadata": {"annotations": {REFRESH_ANNOTATION: "normal"}}});
    applications
        .patch("shop-target", &PatchParams::default(), &Patch::Merge(&refresh))
        .await
        .unwrap();
    if let Err(last) = argocd_real::wait_synced(
        &scenario.sandbox.host_client,
        "shop-target",
        &commit,
        scenario::FIRST_SYNC,
    )
    .await
    {
        panic!("the target's sync after the cutover: {last:#}");
    }
    let again = hook_job(&scenario.sandbox).await;
    assert_ne!(
        again.metadata.uid, job.metadata.uid,
        "the hook ran on this sync too"
    );
    let log = hook_log(&scenario.sandbox).await;
    assert!(log.contains("nothing is staged"), "{log}");
    assert_eq!(
        std::fs::read(target_dir.join("wal/0002")).unwrap(),
        b"written on the live target"
    );
    let migrations = scenario
        .migrations()
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    assert_eq!(
        migrations.len(),
        2,
        "the hook's stage and the cutover; no stage after it"
    );
    scenario.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_cd_reports_ferrys_health_from_the_lua_checks() {
    // Argo CD's argocd-cm holds manifests/argocd/health/argocd-cm.yaml's scripts (merged as
    // docs/operations.md says); an Application deploys a stage and a plan of a missing MigCluster
    // from Git, and Argo CD, running the scripts in its own Lua, reports their health.
    let (mut sandbox, dir) = sandbox_with_app(true).await;
    sandbox.create_plan(QuiesceMethod::Patch).await.unwrap();
    sandbox.start_real_argocd().await.unwrap();
    let scenario = scenario::Scenario { sandbox, dir };
    scenario.wait_plan_ready().await;
    let ns = ferry_sandbox::world::FERRY_NAMESPACE;
    let plan = ferry_sandbox::world::PLAN_NAME;
    let stage = format!(
        "apiVersion: migration.ferry.dev/v1alpha1\nkind: MigMigration\nmetadata:\n  name: stage-from-git\n  \
         namespace: {ns}\nspec:\n  stage: true\n  migPlanRef: {{name: {plan}, namespace: {ns}}}\n"
    );
    let broken = format!(
        "apiVersion: migration.ferry.dev/v1alpha1\nkind: MigPlan\nmetadata:\n  name: broken\n  namespace: {ns}\n\
         spec:\n  srcMigClusterRef: {{name: nowhere, namespace: {ns}}}\n  destMigClusterRef: {{name: host, \
         namespace: {ns}}}\n  namespaces: [shop]\n"
    );
    let sandbox = &scenario.sandbox;
    let head = sandbox
        .git
        .commit(
            REPO,
            &[("ferry/stage.yaml", &stage), ("ferry/broken-plan.yaml", &broken)],
            "Ferry: a stage and a broken plan",
        )
        .unwrap()
        .to_string();
    let argocd = sandbox.argocd().unwrap();
    let url = sandbox.git.url(REPO);
    argocd
        .create_application(
            &sandbox.host_client,
            "ferry",
            &url,
            "ferry",
            argocd_real::IN_CLUSTER,
            ns,
        )
        .await
        .unwrap();
    let applications = ferry_sandbox::argocd::applications(&sandbox.host_client, NAMESPACE);

    // Progressing while the stage runs, Healthy once it succeeded, with the script's message; the
    // broken plan Degraded with the controller's reason; the Application Degraded for it.
    let deadline = Instant::now() + scenario::FIRST_SYNC;
    let mut seen = Vec::new();
    let (stage_health, plan_health, app_health) = loop {
        let status = applications
            .get("ferry")
            .await
            .map(|a| a.data["status"].clone())
            .unwrap_or_default();
        let health = |kind: &str, name: &str| {
            status["resources"]
                .as_array()
                .and_then(|all| all.iter().find(|r| r["kind"] == kind && r["name"] == name))
                .map(|r| r["health"].clone())
                .unwrap_or_default()
        };
        let (stage_health, plan_health) = (
            health("MigMigration", "stage-from-git"),
            health("MigPlan", "broken"),
        );
        // Missing until Argo CD has created it.
        if let Some(state) = stage_health["status"].as_str()
            && state != "Missing"
            && seen.last().is_none_or(|last| last != state)
        {
            seen.push(state.to_string());
        }
        if stage_health["status"] == "Healthy" && plan_health["status"] == "Degraded" {
            break (stage_health, plan_health, status["health"].clone());
        }
        assert!(
            Instant::now() < deadline,
            "no health from Argo CD at {head}: {status:#}\n{}",
            argocd.log_tails(40)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!("stage-from-git: {seen:?}; {stage_health}; broken: {plan_health}; app: {app_health}");
    assert_eq!(seen.first().map(String::as_str), Some("Progressing"), "{seen:?}");
    let message = stage_health["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("completed") || message.contains("succeeded"),
        "{message}"
    );
    let message = plan_health["message"].as_str().unwrap_or_default();
    assert!(message.contains("nowhere"), "{message}");
    assert_eq!(app_health["status"], "Degraded", "{app_health}");
    scenario.stop().await;
}

/// The target's PreSync hook Job in a sync's result.
fn presync_hook(operation: &Value) -> Value {
    operation["syncResult"]["resources"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|r| r["kind"] == "Job" && r["name"] == "ferry-stage" && r["hookType"] == "PreSync")
        })
        .cloned()
        .unwrap_or_else(|| panic!("no PreSync Job ferry-stage in the sync: {operation:#}"))
}

/// The PreSync hook's Job as it is now.
async fn hook_job(sandbox: &Sandbox) -> k8s_openapi::api::batch::v1::Job {
    let jobs: Api<k8s_openapi::api::batch::v1::Job> =
        Api::namespaced(sandbox.host_client.clone(), APP_NAMESPACE);
    jobs.get("ferry-stage").await.unwrap()
}

/// The log of the latest PreSync hook Job's pod.
async fn hook_log(sandbox: &Sandbox) -> String {
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(sandbox.host_client.clone(), APP_NAMESPACE);
    let list = pods
        .list(&kube::api::ListParams::default().labels("job-name=ferry-stage"))
        .await
        .unwrap();
    let Some(pod) = list
        .items
        .iter()
        .max_by_key(|p| p.metadata.creation_timestamp.clone())
    else {
        return "no pod of Job ferry-stage".into();
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    pods.logs(&name, &Default::default())
        .await
        .unwrap_or_else(|err| format!("{name}: {err}"))
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

/// Waits for both Applications' first sync at the repo's head; panics with their status and Argo
/// CD's logs.
async fn first_sync(sandbox: &Sandbox) {
    if let Err(err) = sandbox.wait_applications_synced(scenario::FIRST_SYNC).await {
        panic!("{err}");
    }
}

fn deployments(cluster: &Client) -> Api<Deployment> {
    Api::namespaced(cluster.clone(), APP_NAMESPACE)
}
