//! Scenario: a plan's MigHooks on the real control planes, run as Jobs by the real Job controller, their
//! pods containers on the real nodes. Each hook is a real image (`e2e/images/build.sh hook`: busybox with
//! the test's script as its entrypoint) "pushed" to one cluster only (`Sandbox::install_image`), so a
//! hook run in the wrong cluster cannot pull it. The hooks that work report to a witness on the
//! sandbox's side of the nodes (`support/witness.rs`), as a real hook talks to its database; the flush
//! hook's witness writes the marker into the source volume before it answers, as a flushing database
//! would. In order, on one sandbox:
//! 1. invalid hooks (a missing MigHook, a playbook-only MigHook, an unknown phase): the MigHook and the
//!    plan say so, every problem at once, and a cutover of the plan does not start: no Job, no change;
//! 2. a PreBackup hook that fails (exits non-zero; runs past its activeDeadlineSeconds): the cutover
//!    fails at PreBackupHooks with the hook's log lines, before QuiesceSource; the source keeps running;
//! 3. a PreBackup hook in the source that writes a marker into the volume and a PostRestore hook in the
//!    destination, with the controller SIGKILLed right after it created the PreBackup Job: the cutover
//!    succeeds, the marker arrives on the target (only the final sync can have carried it), the PreBackup
//!    hook ran once, the PostRestore entry reports its Job's success, and Cleanup removes the Jobs.

#[path = "support/scenario.rs"]
mod scenario;
#[path = "support/witness.rs"]
mod witness;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferry::api::plan::QuiesceMethod;
use ferry::api::{Itinerary, MigHook, MigMigration, PipelineStep, Step};
use ferry_sandbox::Addressing;
use ferry_sandbox::world::{APP_NAMESPACE, FERRY_NAMESPACE, PLAN_NAME};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use scenario::{Scenario, assert_readable, replicas, write_files};
use witness::Witness;

const TIMEOUT: Duration = Duration::from_secs(240);
const FLUSH: &str = "ferry.test/hooks/flush:1";
const BROKEN: &str = "ferry.test/hooks/broken:1";
const WARM: &str = "ferry.test/hooks/warm:1";
const SLOW: &str = "ferry.test/hooks/slow:1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_at_their_phases_once_and_a_failing_one_stops_the_cutover_before_quiesce() {
    let mut scenario = Scenario::start(QuiesceMethod::Patch).await;
    let dir = scenario.dir.path().to_path_buf();
    let source_dir = scenario.sandbox.volume_dir(true);
    let target_dir = scenario.sandbox.volume_dir(false);
    let marker = source_dir.join("hook-marker");
    let witness = Witness::start(move |line| {
        if line.starts_with("flush ") {
            std::fs::write(&marker, "flushed by PreBackup\n").unwrap();
        }
    })
    .await;
    // The hook images: what each image's entrypoint does. A hook reaches the witness at its own node's
    // gateway (the sandbox side) and exits only once it answered.
    let sandbox = &scenario.sandbox;
    let [source_node, target_node] = [0, 1].map(|i| sandbox.nodes()[i].addressing);
    let report = |what: &str, node: Addressing| {
        format!(
            "reply=$(echo \"{what}\" | nc {} {}) && [ \"$reply\" = ok ] || {{ echo 'no answer' >&2; exit 1; }}\n",
            node.host_ip(),
            witness.port
        )
    };
    let flush = format!(
        "echo \"flushing $MIGRATION_NAMESPACES\"\nsleep 1\n{}echo flushed\n",
        report("flush $MIGRATION_NAMESPACES", source_node)
    );
    sandbox.install_image(true, FLUSH, &flush).unwrap();
    let broken =
        "echo 'connecting to the database'\necho 'flush: the database refused the connection' >&2\nexit 3\n";
    sandbox.install_image(true, BROKEN, broken).unwrap();
    let warm = format!(
        "{}echo warmed\n",
        report("warm $MIGRATION_PLAN_NAME $MIGRATION_HOOK_PHASE", target_node)
    );
    sandbox.install_image(false, WARM, &warm).unwrap();
    let slow = "echo 'waiting for the database lock'\nsleep 60\n";
    sandbox.install_image(true, SLOW, slow).unwrap();
    write_files(&source_dir, &[("data/1", b"one"), ("data/2", &[3u8; 100_000])]);
    let host = sandbox.host_client.clone();
    let source = sandbox.source_client.clone();
    let before = replicas(&source).await;

    // 1. Invalid hooks: clear conditions, and nothing runs.
    // Every field of MTC's MigHookSpec: kept by the schema (a pruned one would read back empty).
    let playbook = "custom: false\n  image: quay.io/konveyor/hook-runner:latest\n  playbook: LSBob3N0czogYWxsCg==\n  \
                    targetCluster: source\n  activeDeadlineSeconds: 900";
    create_hook(&host, "ansible", playbook).await;
    create_hook(
        &host,
        "warm",
        &format!("custom: true\n  image: {WARM}\n  targetCluster: destination"),
    )
    .await;
    let ansible = wait_hook_ready(&host, "ansible", false).await;
    assert_eq!(ansible.spec.playbook.as_deref(), Some("LSBob3N0czogYWxsCg=="));
    assert_eq!(ansible.spec.active_deadline_seconds, Some(900));
    assert_eq!(ansible.spec.target_cluster, "source");
    let invalid = ansible.status.unwrap().conditions;
    let playbook_condition = invalid
        .iter()
        .find(|c| c.type_ == "InvalidAnsibleHook")
        .expect("the condition");
    assert_eq!(playbook_condition.reason.as_deref(), Some("PlaybookNotSupported"));
    assert!(
        playbook_condition
            .message
            .as_deref()
            .unwrap()
            .contains("no Ansible runner")
    );
    set_hooks(
        &scenario,
        &[
            ("missing", "PreBackup"),
            ("ansible", "PostBackup"),
            ("warm", "AfterEverything"),
        ],
    )
    .await;
    let conditions = wait_plan(&scenario, |c| c.iter().any(|c| c.type_ == "HookPhaseUnknown")).await;
    let message = |type_: &str| {
        let found = conditions.iter().find(|c| c.type_ == type_);
        found
            .and_then(|c| c.message.clone())
            .unwrap_or_else(|| panic!("no {type_}: {conditions:#?}"))
    };
    assert!(message("InvalidHookRef").contains("MigHook ferry-demo/missing) does not exist"));
    assert!(message("HookNotReady").contains("no Ansible runner"));
    assert!(message("HookPhaseUnknown").contains("\"AfterEverything\""));
    let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert!(!ready.is_true(), "{conditions:#?}");
    scenario.create_migration("held", |s| s.quiesce_pods = true).await;
    wait_migration(&scenario, "held", |m| {
        let conditions = &m.status.as_ref()?.conditions;
        conditions.iter().any(|c| c.type_ == "PlanNotReady").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = scenario.migrations().get("held").await.unwrap();
    assert!(
        held.status.as_ref().is_none_or(|s| s.pipeline.is_empty()),
        "a migration of a plan with invalid hooks started: {held:#?}"
    );
    assert!(hook_jobs(&source).await.is_empty() && hook_jobs(&host).await.is_empty());
    assert_eq!(replicas(&source).await, before, "nothing changed");
    scenario
        .migrations()
        .delete("held", &DeleteParams::default())
        .await
        .unwrap();
    scenario::eventually("the held migration is gone", || async {
        scenario.migrations().get_opt("held").await.unwrap().is_none()
    })
    .await;

    // 2. A failing PreBackup hook stops the cutover before the source is quiesced.
    let custom =
        |image: &str, cluster: &str| format!("custom: true\n  image: {image}\n  targetCluster: {cluster}");
    create_hook(&host, "broken", &custom(BROKEN, "source")).await;
    let flush_hook = format!("{}\n  activeDeadlineSeconds: 60", custom(FLUSH, "source"));
    create_hook(&host, "flush", &flush_hook).await;
    wait_hook_ready(&host, "broken", true).await;
    wait_hook_ready(&host, "flush", true).await;
    set_hooks(&scenario, &[("broken", "PreBackup")]).await;
    wait_plan(&scenario, |c| {
        c.iter().any(|c| c.type_ == "Ready" && c.is_true())
            && !c.iter().any(|c| c.type_.starts_with("InvalidHook"))
    })
    .await;
    scenario
        .create_migration("cutover-1", |s| s.quiesce_pods = true)
        .await;
    let failed = scenario.wait_finished("cutover-1", TIMEOUT).await;
    let status = failed.status.clone().unwrap();
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Failed" && c.is_true()),
        "{status:#?}"
    );
    let pre_backup = entry(&failed, Step::PreBackupHooks);
    assert!(pre_backup.failed, "{status:#?}");
    let why = pre_backup.message.clone().unwrap();
    assert!(
        why.contains("flush: the database refused the connection") && why.contains("its pod failed"),
        "{why}"
    );
    assert!(why.contains("in the source cluster"), "{why}");
    let failed_why = why.clone();
    assert!(
        status
            .errors
            .iter()
            .any(|e| e.starts_with("PreBackupHooks failed: ")),
        "{status:#?}"
    );
    let quiesce = entry(&failed, Step::QuiesceSource);
    assert!(
        quiesce.started.is_none() && quiesce.completed.is_none(),
        "{quiesce:?}"
    );
    assert_eq!(replicas(&source).await, before, "the source app keeps running");
    assert_eq!(status.downtime, None);
    assert_readable(&status);

    // 2b. A hook past its activeDeadlineSeconds: the Job controller kills it; the step quotes the log
    // lines its progress showed (the pod, deleted at the deadline, has none left to read).
    let slow_hook = format!("{}\n  activeDeadlineSeconds: 5", custom(SLOW, "source"));
    create_hook(&host, "slow", &slow_hook).await;
    wait_hook_ready(&host, "slow", true).await;
    set_hooks(&scenario, &[("slow", "PreBackup")]).await;
    wait_plan(&scenario, |c| {
        c.iter().any(|c| c.type_ == "Ready" && c.is_true())
            && !c.iter().any(|c| c.type_.starts_with("InvalidHook"))
    })
    .await;
    scenario
        .create_migration("cutover-late", |s| s.quiesce_pods = true)
        .await;
    let late = scenario.wait_finished("cutover-late", TIMEOUT).await;
    let status = late.status.clone().unwrap();
    let why = entry(&late, Step::PreBackupHooks).message.clone().unwrap();
    assert!(
        entry(&late, Step::PreBackupHooks).failed
            && why.contains("it ran past its activeDeadlineSeconds (5s)")
            && why.contains("waiting for the database lock"),
        "{status:#?}"
    );
    eprintln!("failed hooks: {failed_why}\n{why}");
    assert!(entry(&late, Step::QuiesceSource).started.is_none());
    assert_eq!(replicas(&source).await, before, "the source app keeps running");
    assert_readable(&status);

    // 3. The hooks that work, and a controller killed just after it created the PreBackup Job.
    set_hooks(&scenario, &[("flush", "PreBackup"), ("warm", "PostRestore")]).await;
    wait_plan(&scenario, |c| {
        c.iter().any(|c| c.type_ == "Ready" && c.is_true())
            && !c.iter().any(|c| c.type_.starts_with("InvalidHook"))
    })
    .await;
    let gate = dir.join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    for step in Itinerary::Final
        .steps()
        .iter()
        .filter(|s| **s != Step::PreBackupHooks)
    {
        std::fs::write(gate.join(format!("{step}.go")), "").unwrap();
    }
    let env = [("FERRY_TEST_STEP_GATE", gate.as_os_str())];
    let controller = scenario.sandbox.controller.take().expect("the controller runs");
    assert!(controller.stop(), "the controller did not stop cleanly");
    scenario.sandbox.start_controller_with_env(&env).unwrap();
    let created = scenario
        .create_migration("cutover-2", |s| s.quiesce_pods = true)
        .await;
    let job = format!("ferry-prebackup-{}", created.metadata.uid.unwrap());
    let waiting = gate.join("PreBackupHooks.waiting");
    let deadline = Instant::now() + TIMEOUT;
    while !waiting.exists() {
        assert!(
            Instant::now() < deadline,
            "PreBackupHooks never ran:\n{}",
            scenario.controller_log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    scenario.sandbox.controller.take().unwrap().kill();
    assert!(
        hook_jobs(&source).await.contains(&job),
        "the first run created the Job"
    );
    std::fs::write(gate.join("PreBackupHooks.go"), "").unwrap();
    scenario.sandbox.start_controller_with_env(&env).unwrap();
    let done = scenario.wait_succeeded("cutover-2", TIMEOUT).await;
    eprintln!("cutover: {:#?}", scenario::step_summary(&done));
    let status = done.status.clone().unwrap();
    assert_readable(&status);

    assert_eq!(
        std::fs::read_to_string(target_dir.join("hook-marker")).unwrap(),
        "flushed by PreBackup\n",
        "the marker the PreBackup hook wrote reached the target"
    );
    let reports = witness.reports();
    let ran = |what: &str| {
        reports
            .iter()
            .filter(|r| r.line.starts_with(what))
            .collect::<Vec<_>>()
    };
    let flushes = ran("flush ");
    assert_eq!(
        flushes.len(),
        1,
        "the PreBackup hook ran exactly once: {reports:?}"
    );
    assert_eq!(flushes[0].line, "flush shop", "{reports:?}");
    assert!(in_cluster(flushes[0].from, source_node), "{reports:?}");
    let pre_backup = entry(&done, Step::PreBackupHooks).message.clone().unwrap();
    assert!(
        pre_backup.contains("Job shop/ferry-prebackup-")
            && pre_backup.contains("source cluster: succeeded in"),
        "{pre_backup}"
    );
    let post_restore = entry(&done, Step::PostRestoreHooks).message.clone().unwrap();
    assert!(
        post_restore.contains("MigHook ferry-demo/warm")
            && post_restore.contains("Job shop/ferry-postrestore-")
            && post_restore.contains("destination cluster: succeeded in"),
        "{post_restore}"
    );
    let warmed = ran("warm ");
    assert_eq!(warmed.len(), 1, "{reports:?}");
    assert_eq!(warmed[0].line, "warm shop PostRestore", "{reports:?}");
    assert!(
        in_cluster(warmed[0].from, target_node),
        "the PostRestore hook ran in the destination cluster: {reports:?}"
    );
    for (step, phase) in [
        (Step::PostBackupHooks, "PostBackup"),
        (Step::PreRestoreHooks, "PreRestore"),
    ] {
        let skipped = entry(&done, step);
        assert!(skipped.skipped, "{skipped:?}");
        assert_eq!(
            skipped.message.as_deref(),
            Some(format!("Skipped: the plan has no {phase} hook").as_str())
        );
    }
    assert!(replicas(&source).await.values().all(|r| *r == 0));
    scenario::eventually("the hook Jobs are removed", || async {
        hook_jobs(&source).await.is_empty() && hook_jobs(&host).await.is_empty()
    })
    .await;
    scenario::eventually("temporary objects removed", || async {
        scenario::temporary_objects(&scenario.sandbox).await.is_empty()
    })
    .await;
    scenario.stop().await;
}

/// Whether `ip` is a node or pod address of the cluster of `node` (10.200.N.x or 10.201.N.x).
fn in_cluster(ip: IpAddr, node: Addressing) -> bool {
    matches!(ip, IpAddr::V4(v4) if matches!(v4.octets(), [10, 200 | 201, n, _] if n == node.cluster))
}

/// Creates MigHook `name` in the plan's namespace with `spec` (YAML lines, indented by two).
async fn create_hook(client: &Client, name: &str, spec: &str) {
    let yaml = format!(
        "apiVersion: migration.ferry.dev/v1alpha1\nkind: MigHook\nmetadata:\n  name: {name}\n  \
         namespace: {FERRY_NAMESPACE}\nspec:\n  {spec}\n"
    );
    ferry_sandbox::apply_yaml(client, &yaml, FERRY_NAMESPACE)
        .await
        .unwrap_or_else(|err| panic!("MigHook {name} was refused: {err}\n{yaml}"));
}

/// Waits until MigHook `name` has a `Ready` condition of `ready`; returns it.
async fn wait_hook_ready(client: &Client, name: &str, ready: bool) -> MigHook {
    let hooks: Api<MigHook> = Api::namespaced(client.clone(), FERRY_NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let hook = hooks.get(name).await.unwrap();
        let conditions = hook
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.is_true() == ready)
        {
            return hook;
        }
        assert!(Instant::now() < deadline, "MigHook {name}: {conditions:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sets the plan's `spec.hooks` to `(MigHook, phase)` entries, each run in the app's namespace.
async fn set_hooks(scenario: &Scenario, hooks: &[(&str, &str)]) {
    let hooks: Vec<serde_json::Value> = hooks
        .iter()
        .map(|(name, phase)| {
            serde_json::json!({
                "reference": {"name": name, "namespace": FERRY_NAMESPACE},
                "executionNamespace": APP_NAMESPACE,
                "serviceAccount": "default",
                "phase": phase,
            })
        })
        .collect();
    scenario
        .plans()
        .patch(
            PLAN_NAME,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"hooks": hooks}})),
        )
        .await
        .unwrap();
}

/// Waits until the plan's conditions (of its current generation) satisfy `check`; returns them.
async fn wait_plan(
    scenario: &Scenario,
    check: impl Fn(&[ferry::api::Condition]) -> bool,
) -> Vec<ferry::api::Condition> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let plan = scenario.plans().get(PLAN_NAME).await.unwrap();
        let status = plan.status.clone().unwrap_or_default();
        if status.observed_generation == plan.metadata.generation && check(&status.conditions) {
            return status.conditions;
        }
        assert!(Instant::now() < deadline, "plan: {:#?}", status.conditions);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `check` of migration `name` gives something.
async fn wait_migration<T>(scenario: &Scenario, name: &str, check: impl Fn(&MigMigration) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let migration = scenario.migrations().get(name).await.unwrap();
        if let Some(found) = check(&migration) {
            return found;
        }
        assert!(Instant::now() < deadline, "{name}: {:#?}", migration.status);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The pipeline entry of `step`.
fn entry(migration: &MigMigration, step: Step) -> &PipelineStep {
    let status = migration.status.as_ref().expect("a status");
    status.pipeline.iter().find(|s| s.name == step).expect("the step")
}

/// Names of Ferry's hook Jobs in a cluster (any namespace).
async fn hook_jobs(client: &Client) -> Vec<String> {
    let params = ListParams::default().labels(ferry::pipeline::hook_job::HOOK_PHASE);
    let jobs: Api<Job> = Api::all(client.clone());
    let list = jobs.list_metadata(&params).await.unwrap();
    list.items.into_iter().filter_map(|j| j.metadata.name).collect()
}
