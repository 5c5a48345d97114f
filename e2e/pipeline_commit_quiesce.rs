//! e2e: Commit-mode quiesce through Git on two real control planes, a real Git server over HTTP and an
//! Argo CD stand-in (`ferry_sandbox::argocd`) syncing each cluster's path. QuiesceSource commits exactly
//! the replicas lines once (a rerun commits nothing), records the previous values on the MigPlan and
//! waits until the source runs nothing; UnquiesceTarget gives the target the source's values; the
//! rollback steps restore the source by revert commits, without rewriting history.

#[path = "support/git.rs"]
mod git_support;

use std::time::{Duration, Instant};

use ferry::api::{MigMigration, MigPlan};
use ferry::pipeline::steps::gitops::{self, record::PRE_QUIESCE_COMMIT, record::PreQuiesceRecord};
use ferry::pipeline::{StepContext, StepOutcome};
use ferry_sandbox::{ControlPlane, apply_yaml, argocd, install_crds};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

const HOST_NS: &str = "migrations";
const SOURCE_YAML: &str = "# the shop\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 3 # peak\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: \"nginx:1.27\"}]\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db, namespace: shop}\nspec:\n  replicas: 2\n  serviceName: db\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec:\n      containers: [{name: db, image: \"postgres:17\"}]\n";

fn target_yaml() -> String {
    SOURCE_YAML
        .replace("namespace: shop", "namespace: shop-new")
        .replace("replicas: 3 # peak", "replicas: 0 # started by Ferry")
        .replace("replicas: 2", "replicas: 0")
}

/// Runs a step until it is Done (or Skipped), following its InProgress pauses; panics on Failed.
macro_rules! drive {
    ($step:path, $ctx:expr) => {{
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match $step($ctx).await.expect(stringify!($step)) {
                StepOutcome::Done(message) => break message,
                StepOutcome::InProgress { after, .. } | StepOutcome::Retry { after, .. } => {
                    assert!(
                        Instant::now() < deadline,
                        "{} did not finish in time",
                        stringify!($step)
                    );
                    tokio::time::sleep(after.min(Duration::from_millis(500))).await;
                }
                other => panic!("{}: {other:?}", stringify!($step)),
            }
        }
    }};
}

async fn replicas(client: &Client, ns: &str) -> (Option<i32>, Option<i32>) {
    let web = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("web")
        .await
        .unwrap();
    let db = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .get("db")
        .await
        .unwrap();
    (web.spec.replicas, db.spec.replicas)
}

async fn wait_replicas(client: &Client, ns: &str, wanted: (Option<i32>, Option<i32>)) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = tokio::time::timeout(Duration::from_secs(5), async {
            let web = Api::<Deployment>::namespaced(client.clone(), ns)
                .get_opt("web")
                .await
                .ok()
                .flatten();
            let db = Api::<StatefulSet>::namespaced(client.clone(), ns)
                .get_opt("db")
                .await
                .ok()
                .flatten();
            Some((web?.spec.replicas, db?.spec.replicas))
        })
        .await
        .ok()
        .flatten();
        let found: Option<(Option<i32>, Option<i32>)> = found;
        if found == Some(wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ns}: wanted {wanted:?}, found {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn ferry_log(clone: &std::path::Path) -> Vec<String> {
    git_support::git(clone, &["pull", "-q"]);
    git_support::git(clone, &["log", "--format=%H %s"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_mode_quiesces_starts_and_rolls_back_through_git() {
    let dir = tempfile::tempdir().unwrap();
    let (_git_dir, server) = git_support::start_server().await;
    let initial = server
        .create_repo(
            "app",
            &[
                ("apps/source/app.yaml", SOURCE_YAML),
                ("apps/target/app.yaml", &target_yaml()),
            ],
        )
        .unwrap();
    let (source_plane, target_plane) = std::thread::scope(|scope| {
        let source = scope.spawn(|| ControlPlane::start("source", &dir.path().join("source"), &[]));
        let target = scope.spawn(|| ControlPlane::start("target", &dir.path().join("target"), &[]));
        (source.join().unwrap().unwrap(), target.join().unwrap().unwrap())
    });
    let source = source_plane.client().await.unwrap();
    let target = target_plane.client().await.unwrap();
    let host = target.clone();
    install_crds(&host).await.unwrap();
    argocd::install_application_crd(&host).await.unwrap();
    for (client, ns) in [(&source, "shop"), (&target, "shop-new"), (&host, HOST_NS)] {
        let yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n");
        apply_yaml(client, &yaml, ns).await.unwrap();
    }
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: app-repo, namespace: {HOST_NS}}}\nstringData: {{username: {}, password: {}}}\n",
        git_support::USER,
        git_support::PASSWORD
    );
    apply_yaml(&host, &secret, HOST_NS).await.unwrap();
    let url = server.url("app");
    argocd::create_application(&host, HOST_NS, "shop-source", &url, "apps/source", "shop")
        .await
        .unwrap();
    argocd::create_application(&host, HOST_NS, "shop-target", &url, "apps/target", "shop-new")
        .await
        .unwrap();
    let creds = git_support::credentials();
    let appliers = [
        argocd::spawn_applier(
            host.clone(),
            source.clone(),
            HOST_NS,
            "shop-source",
            creds.clone(),
            dir.path().join("a1"),
        ),
        argocd::spawn_applier(
            host.clone(),
            target.clone(),
            HOST_NS,
            "shop-target",
            creds,
            dir.path().join("a2"),
        ),
    ];
    wait_replicas(&source, "shop", (Some(3), Some(2))).await;
    wait_replicas(&target, "shop-new", (Some(0), Some(0))).await;

    let plan: MigPlan = serde_json::from_value(json!({
        "apiVersion": "migration.ferry.dev/v1alpha1", "kind": "MigPlan",
        "metadata": {"name": "shop", "namespace": HOST_NS},
        "spec": {
            "srcMigClusterRef": {"name": "source"}, "destMigClusterRef": {"name": "host"},
            "namespaces": ["shop:shop-new"],
            "gitops": {
                "repo": {"url": url, "branch": "main", "credentialsSecretRef": {"name": "app-repo"}},
                "sourcePath": "apps/source", "targetPath": "apps/target",
                "quiesce": {"method": "Commit"},
                "argocd": {"sourceApplication": {"name": "shop-source"}, "targetApplication": {"name": "shop-target"}}
            }
        }
    }))
    .unwrap();
    let plans: Api<MigPlan> = Api::namespaced(host.clone(), HOST_NS);
    let plan = plans.create(&PostParams::default(), &plan).await.unwrap();
    let mut migration: MigMigration = serde_json::from_value(json!({
        "apiVersion": "migration.ferry.dev/v1alpha1", "kind": "MigMigration",
        "metadata": {"name": "cutover", "namespace": HOST_NS},
        "spec": {"migPlanRef": {"name": "shop"}, "quiescePods": true}
    }))
    .unwrap();
    migration.metadata.uid = Some("3b0c6c1e-0000-4000-8000-00000000c0de".into());
    let ctx = StepContext {
        host: host.clone(),
        source: source.clone(),
        target: target.clone(),
        migration,
        plan,
        source_pods: None,
        target_pods: None,
    };
    let clone = git_support::cli_clone(dir.path(), &url, "watcher");

    // QuiesceSource: one commit, only replicas lines, trailers, source at 0, record on the plan.
    let started = Instant::now();
    let done = drive!(gitops::quiesce_source, &ctx);
    eprintln!(
        "quiesce_source done in {:.1}s: {done}",
        started.elapsed().as_secs_f64()
    );
    let log = ferry_log(&clone);
    assert_eq!(log.len(), 2, "{log:?}");
    let quiesce_commit = log[0].split(' ').next().unwrap().to_string();
    let message = git_support::git(&clone, &["log", "-1", "--format=%B", &quiesce_commit]);
    assert!(message.contains("Ferry-Plan: migrations/shop"), "{message}");
    assert!(
        message.contains("Ferry-Migration: cutover/3b0c6c1e-0000-4000-8000-00000000c0de"),
        "{message}"
    );
    let diff = git_support::git(&clone, &["show", "--format=", "-U0", &quiesce_commit]);
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-')) && !l.starts_with("+++") && !l.starts_with("---")
        })
        .collect();
    let mut sorted = changed.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "+  replicas: 0",
            "+  replicas: 0 # peak",
            "-  replicas: 2",
            "-  replicas: 3 # peak"
        ],
        "exactly the two replicas lines change (comments kept): {diff}"
    );
    assert!(
        diff.contains("apps/source/app.yaml") && !diff.contains("apps/target"),
        "{diff}"
    );
    assert_eq!(replicas(&source, "shop").await, (Some(0), Some(0)));
    let annotated = plans.get("shop").await.unwrap();
    let record: PreQuiesceRecord =
        serde_json::from_str(annotated.annotations().get(PRE_QUIESCE_COMMIT).expect("record")).unwrap();
    assert_eq!(record.migration_uid, "3b0c6c1e-0000-4000-8000-00000000c0de");
    assert_eq!(record.base_revision, initial.to_string());
    let values: Vec<(String, Option<serde_json::Value>)> = record
        .workloads
        .iter()
        .map(|w| (format!("{}/{}", w.kind, w.name), w.value.clone()))
        .collect();
    assert_eq!(
        values,
        [
            ("Deployment/web".to_string(), Some(json!(3))),
            ("StatefulSet/db".to_string(), Some(json!(2)))
        ]
    );

    // A rerun (as after a crash) finds its own commit and commits nothing.
    drive!(gitops::quiesce_source, &ctx);
    assert_eq!(ferry_log(&clone).len(), 2, "no second quiesce commit");

    // UnquiesceTarget: the target gets the source's values, namespaces mapped.
    drive!(gitops::unquiesce_target, &ctx);
    wait_replicas(&target, "shop-new", (Some(3), Some(2))).await;
    assert_eq!(ferry_log(&clone).len(), 3);
    drive!(gitops::unquiesce_target, &ctx);
    assert_eq!(ferry_log(&clone).len(), 3, "no second start commit");

    // Rollback: the target's start is reverted, then the source's quiesce; nothing is left to revert.
    drive!(gitops::quiesce_target, &ctx);
    assert_eq!(replicas(&target, "shop-new").await, (Some(0), Some(0)));
    drive!(gitops::unquiesce_source, &ctx);
    assert_eq!(replicas(&source, "shop").await, (Some(3), Some(2)));
    assert_eq!(drive!(gitops::revert_commits, &ctx), "nothing left to revert");
    let log = ferry_log(&clone);
    assert_eq!(log.len(), 5, "initial, quiesce, start and two reverts: {log:?}");
    assert!(log[0].contains("Revert") && log[1].contains("Revert"), "{log:?}");
    for ancestor in [initial.to_string(), quiesce_commit] {
        git_support::git(&clone, &["merge-base", "--is-ancestor", &ancestor, "HEAD"]);
    }
    let source_file = git_support::git(&clone, &["show", "HEAD:apps/source/app.yaml"]);
    assert_eq!(
        source_file, SOURCE_YAML,
        "the source manifests are byte-for-byte the original"
    );

    // A target path without the recorded workloads fails UnquiesceTarget with the reason.
    let mut wrong = ctx.clone();
    wrong.plan.spec.gitops.as_mut().unwrap().target_path = Some("apps/source".into());
    match gitops::unquiesce_target(&wrong).await.unwrap() {
        StepOutcome::Failed(why) => assert!(why.contains("no Deployment named shop-new/web"), "{why}"),
        other => panic!("expected Failed, got {other:?}"),
    }

    for applier in appliers {
        applier.abort();
    }
    server.stop().await;
}
