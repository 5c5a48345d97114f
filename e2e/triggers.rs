//! Stage triggers on the whole sandbox (real control planes, git server, rsync, BIND9), with the
//! controller serving its HTTP endpoints on loopback:
//! - push webhook: unsigned and wrongly signed pushes are refused (401) and change nothing; a burst of
//!   three signed pushes touching the app's manifests yields exactly one stage, which succeeds; a push
//!   touching nothing watched is ignored; the metrics count it all;
//! - polling fallback: without a webhook Secret, a commit to the watched path starts one stage;
//! - schedule: an invalid expression is an `InvalidSchedule` condition and starts nothing; `* * * * *`
//!   shows `nextScheduledStage` and runs a stage at the next minute;
//! - history: finished triggered stages beyond the plan's history limits are deleted, newest kept;
//!   a migration the CLI (or a person) created never is.

#[path = "support/http.rs"]
mod http;
#[path = "support/scenario.rs"]
mod scenario;

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use ferry::api::MigMigration;
use ferry::api::plan::QuiesceMethod;
use ferry::git::webhook::{PATH, sign_hex};
use ferry_sandbox::world::{FERRY_NAMESPACE, PLAN_NAME, REPO};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use scenario::{Scenario, eventually, tail};

const SECRET: &str = "webhook-secret-for-tests";
const TRIGGER_LABEL: &str = "migration.ferry.dev/trigger";

/// A sandbox whose controller serves HTTP on a loopback port; returns the scenario and the port.
async fn start() -> (Scenario, u16) {
    let mut scenario = Scenario::start_with(QuiesceMethod::Patch, false).await;
    let port = http::free_port();
    let addr = format!("127.0.0.1:{port}");
    scenario
        .sandbox
        .start_controller_with_env(&[("FERRY_HTTP_ADDR", OsStr::new(&addr))])
        .unwrap();
    scenario.wait_plan_ready().await;
    eventually("the controller's HTTP server answers", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
    })
    .await;
    (scenario, port)
}

async fn patch_plan_spec(scenario: &Scenario, spec: serde_json::Value) {
    scenario
        .plans()
        .patch(
            PLAN_NAME,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

async fn triggered(scenario: &Scenario, trigger: &str) -> Vec<MigMigration> {
    let params = ListParams::default().labels(&format!("{TRIGGER_LABEL}={trigger}"));
    scenario.migrations().list(&params).await.unwrap().items
}

/// Waits until exactly one migration with the trigger label exists besides those in `before`;
/// returns its name.
async fn wait_new_triggered(
    scenario: &Scenario,
    trigger: &str,
    before: &[String],
    timeout: Duration,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let found = triggered(scenario, trigger).await;
        let new: Vec<&MigMigration> = found.iter().filter(|m| !before.contains(&m.name_any())).collect();
        assert!(
            new.len() <= 1,
            "more than one new {trigger} stage: {:?}",
            names(&found)
        );
        if let Some(migration) = new.first() {
            assert!(migration.spec.stage, "a triggered migration is a stage");
            return migration.name_any();
        }
        if Instant::now() > deadline {
            let plan = scenario.plans().get(PLAN_NAME).await.unwrap();
            panic!(
                "no new {trigger} stage within {timeout:?}; plan status: {:#?}\ncontroller log:\n{}",
                plan.status,
                tail(&scenario.controller_log(), 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn names(migrations: &[MigMigration]) -> Vec<String> {
    migrations.iter().map(|m| m.name_any()).collect()
}

fn github_push(repo_url: &str, after: &str, files: &[&str]) -> Vec<u8> {
    serde_json::json!({
        "ref": "refs/heads/main",
        "after": after,
        "repository": {"clone_url": repo_url},
        "commits": [{"added": [], "modified": files, "removed": []}]
    })
    .to_string()
    .into_bytes()
}

async fn send_push(port: u16, body: &[u8], key: Option<&[u8]>) -> String {
    let signature = key.map(|key| format!("sha256={}", sign_hex(key, body)));
    let mut headers = vec![("X-GitHub-Event", "push")];
    if let Some(signature) = &signature {
        headers.push(("X-Hub-Signature-256", signature));
    }
    http::post(port, PATH, &headers, body).await
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_signed_pushes_or_a_polled_commit_starts_one_stage() {
    let (scenario, port) = start().await;
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "shop-webhook", "namespace": FERRY_NAMESPACE},
        "stringData": {"secret": SECRET}
    }))
    .unwrap();
    Api::<Secret>::namespaced(scenario.sandbox.host_client.clone(), FERRY_NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    patch_plan_spec(
        &scenario,
        serde_json::json!({"triggers": {"onPush": true, "webhookSecretRef": {"name": "shop-webhook"}, "debounceSeconds": 3}}),
    )
    .await;
    let url = scenario.sandbox.git.url(REPO);
    let touching = github_push(&url, &"1".repeat(40), &["clusters/source/shop.yaml"]);

    // Refused: no signature, a wrong key. Nothing is recorded.
    let unsigned = send_push(port, &touching, None).await;
    assert_eq!(http::status(&unsigned), 401, "{unsigned}");
    let forged = send_push(port, &touching, Some(b"not-the-secret")).await;
    assert_eq!(http::status(&forged), 401, "{forged}");
    // Ignored: a signed push that touches no watched path.
    let readme = github_push(&url, &"2".repeat(40), &["README.md"]);
    let ignored = send_push(port, &readme, Some(SECRET.as_bytes())).await;
    assert_eq!(http::status(&ignored), 202, "{ignored}");
    assert!(ignored.ends_with("ignored\n"), "{ignored}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        triggered(&scenario, "push").await.is_empty(),
        "refused or ignored pushes started a stage"
    );

    // A burst of three signed pushes: one stage.
    for n in 3..6 {
        let body = github_push(&url, &n.to_string().repeat(40), &["clusters/source/shop.yaml"]);
        let reply = send_push(port, &body, Some(SECRET.as_bytes())).await;
        assert_eq!(http::status(&reply), 202, "{reply}");
        assert!(reply.ends_with("accepted\n"), "{reply}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stage = wait_new_triggered(&scenario, "push", &[], Duration::from_secs(60)).await;
    scenario.wait_succeeded(&stage, Duration::from_secs(120)).await;
    // The debounce window is long over and the stage finished: still exactly one.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        names(&triggered(&scenario, "push").await),
        std::slice::from_ref(&stage)
    );
    let plan = scenario.plans().get(PLAN_NAME).await.unwrap();
    let status = plan.status.unwrap().triggers.unwrap();
    assert_eq!(status.last_push.unwrap().revision, "5".repeat(40));
    assert_eq!(status.last_triggered_stage.as_deref(), Some(stage.as_str()));

    let metrics = http::get(port, "/metrics").await;
    assert_eq!(
        metric(&metrics, "ferry_webhook_requests_total{result=\"unauthorized\"}"),
        2,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "ferry_webhook_requests_total{result=\"accepted\"}"),
        3,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "ferry_webhook_requests_total{result=\"ignored\"}"),
        1,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "ferry_triggered_stages_total{trigger=\"push\",result=\"created\"}"
        ),
        1,
        "{metrics}"
    );

    // Polling fallback: no webhook Secret; a commit to the watched path starts one more stage.
    patch_plan_spec(
        &scenario,
        serde_json::json!({"triggers": {"onPush": true, "webhookSecretRef": null, "pollIntervalSeconds": 5, "debounceSeconds": 1}}),
    )
    .await;
    eventually("the first poll records the branch tip", || async {
        let plan = scenario.plans().get(PLAN_NAME).await.unwrap();
        plan.status.and_then(|s| s.observed_revision) == Some(scenario.sandbox.git_head())
    })
    .await;
    let before = names(&triggered(&scenario, "push").await);
    scenario
        .sandbox
        .git
        .commit(
            REPO,
            &[("clusters/source/config.yaml", "# changed by the test\n")],
            "app: change a watched file",
        )
        .unwrap();
    let polled = wait_new_triggered(&scenario, "push", &before, Duration::from_secs(60)).await;
    scenario.wait_succeeded(&polled, Duration::from_secs(120)).await;
    let plan = scenario.plans().get(PLAN_NAME).await.unwrap();
    assert_eq!(
        plan.status.unwrap().observed_revision,
        Some(scenario.sandbox.git_head())
    );
    scenario.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_shows_its_next_fire_and_runs_a_stage_on_time() {
    let (scenario, _port) = start().await;

    // Invalid: a clear condition, the plan not Ready, nothing started.
    patch_plan_spec(&scenario, serde_json::json!({"schedule": "61 * * * *"})).await;
    eventually("InvalidSchedule is reported", || async {
        let plan = scenario.plans().get(PLAN_NAME).await.unwrap();
        let conditions = plan.status.map(|s| s.conditions).unwrap_or_default();
        conditions.iter().any(|c| {
            c.type_ == "InvalidSchedule"
                && c.is_true()
                && c.message.as_deref().unwrap_or("").contains("spec.schedule")
        }) && conditions.iter().any(|c| c.type_ == "Ready" && !c.is_true())
    })
    .await;

    // Every minute, in a DST-observing zone.
    patch_plan_spec(
        &scenario,
        serde_json::json!({"schedule": "* * * * *", "timeZone": "Europe/Berlin"}),
    )
    .await;
    scenario.wait_plan_ready().await;
    let mut next = None;
    eventually("nextScheduledStage is shown", || async {
        let plan = scenario.plans().get(PLAN_NAME).await.unwrap();
        plan.status.and_then(|s| s.next_scheduled_stage).is_some()
    })
    .await;
    if let Some(status) = scenario.plans().get(PLAN_NAME).await.unwrap().status {
        next = status.next_scheduled_stage;
    }
    let next: jiff::Timestamp = next.unwrap().parse().unwrap();
    let until = next.duration_since(jiff::Timestamp::now());
    assert!(
        until <= jiff::SignedDuration::from_secs(61),
        "the next fire of * * * * * is within a minute: {next}"
    );
    let stage = wait_new_triggered(&scenario, "schedule", &[], Duration::from_secs(100)).await;
    // The fire shown, or the one just before it when it was read right after a fire.
    let minute = next.as_second() / 60;
    let expected = [minute, minute - 1].map(|m| format!("{PLAN_NAME}-scheduled-{m}"));
    assert!(expected.contains(&stage), "{stage} is not one of {expected:?}");
    scenario.wait_succeeded(&stage, Duration::from_secs(120)).await;

    // History: three finished (canceled) triggered stages owned by the plan, and one from the CLI.
    patch_plan_spec(&scenario, serde_json::json!({"schedule": null, "timeZone": null})).await;
    let plan = scenario.plans().get(PLAN_NAME).await.unwrap();
    let owner = serde_json::json!([{"apiVersion": "migration.ferry.dev/v1alpha1", "kind": "MigPlan",
        "name": PLAN_NAME, "uid": plan.metadata.uid.clone().unwrap()}]);
    let mut old = Vec::new();
    for (i, trigger) in ["schedule", "push", "schedule", "cli"].iter().enumerate() {
        let name = format!("old-{i}-{trigger}");
        let migration: MigMigration = serde_json::from_value(serde_json::json!({
            "apiVersion": "migration.ferry.dev/v1alpha1", "kind": "MigMigration",
            "metadata": {"name": name, "namespace": FERRY_NAMESPACE,
                         "labels": {TRIGGER_LABEL: trigger}, "ownerReferences": owner},
            "spec": {"migPlanRef": {"name": PLAN_NAME}, "stage": true, "canceled": true}
        }))
        .unwrap();
        scenario
            .migrations()
            .create(&PostParams::default(), &migration)
            .await
            .unwrap();
        scenario.wait_finished(&name, Duration::from_secs(60)).await;
        old.push(name);
        // Creation times are in seconds: keep them ordered.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    patch_plan_spec(
        &scenario,
        serde_json::json!({"triggers": {"successfulHistoryLimit": 0, "failedHistoryLimit": 1}}),
    )
    .await;
    let all = || async {
        names(
            &scenario
                .migrations()
                .list(&ListParams::default())
                .await
                .unwrap()
                .items,
        )
    };
    eventually("the history beyond the limits is deleted", || async {
        let left = all().await;
        !left.contains(&stage) && !left.contains(&old[0]) && !left.contains(&old[1])
    })
    .await;
    let left = all().await;
    assert!(left.contains(&old[2]), "the newest failed one is kept: {left:?}");
    assert!(left.contains(&old[3]), "the CLI's is never pruned: {left:?}");
    scenario.stop().await;
}
