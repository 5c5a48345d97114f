//! `ferry-sandbox demo`: a whole migration on this machine. It starts the sandbox ([`crate::Sandbox`]:
//! two real control planes, a real node each, a git server with the example app's repo, BIND9, the
//! controller), deploys the app, registers the clusters and the plan, then runs two stages with data
//! written in between, and a cutover, printing a timeline (steps, bytes, durations, which kubelet and
//! container runtime run each pod) and the downtime window. Finally it checks the target's data
//! (contents, owners, modes), replicas and DNS answer, and stops everything.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};

use self::runtime::PodWatch;
use self::tree::{compare_trees, write_data};
use crate::world::{APP_DATA_DIR, APP_NAMESPACE, FERRY_NAMESPACE, PLAN_NAME, TARGET_ADDRESS};
use crate::{Nodes, Sandbox, SandboxOptions};

mod runtime;
mod tree;
use ferry::api::plan::QuiesceMethod;
use ferry::api::{MigMigration, MigMigrationSpec, MigPlan, condition};

/// Flags of `ferry-sandbox demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the sandbox keeps its data and logs (removed afterwards unless --keep).
    #[arg(long, default_value = ".sandbox")]
    dir: PathBuf,
    /// Keep the sandbox running after the migration until Ctrl-C (prints the kubeconfigs).
    #[arg(long)]
    keep: bool,
    /// Quiesce by `Commit` (through Git) or `Patch` (patching the source cluster).
    #[arg(long, default_value = "Commit", value_parser = parse_method)]
    quiesce: QuiesceMethod,
    /// How long each migration may take.
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
    /// The `ferry` binary to run as the controller and in the mover pods (default: the `ferry` next
    /// to this binary, which `cargo build --bins` puts there).
    #[arg(long, env = "FERRY_BINARY")]
    ferry: Option<PathBuf>,
    /// Run the pods with the e2e node agent (movers as host processes) instead of real nodes.
    #[arg(long)]
    agent: bool,
    /// In Commit mode, let the Argo CD stand-in apply Ferry's commits instead of Argo CD itself
    /// (`make argocd`; docs/sandbox.md, "Argo CD").
    #[arg(long)]
    argocd_stand_in: bool,
    /// Also put this many files of 100 bytes (folders of 1,000) into the app's volume before the
    /// first stage, and change 0.1% of them just before the cutover: the downtime on a large tree.
    #[arg(long, default_value_t = 0)]
    files: u64,
    /// Plain rsync passes walking both trees (the plan's `transfer.fullPasses: true`) instead of
    /// delta passes: the baseline for `--files`.
    #[arg(long)]
    full_passes: bool,
}

/// The product binary the demo drives: `--ferry`, else `ferry` beside `ferry-sandbox`.
fn ferry_binary(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(path) => path,
        None => std::env::current_exe()
            .context("locating the ferry-sandbox binary")?
            .with_file_name("ferry"),
    };
    if !path.is_file() {
        bail!(
            "no ferry binary at {}: build it (`cargo build --bins`) or pass --ferry PATH",
            path.display()
        );
    }
    Ok(path)
}

fn parse_method(text: &str) -> Result<QuiesceMethod, String> {
    match text {
        "Commit" | "commit" => Ok(QuiesceMethod::Commit),
        "Patch" | "patch" => Ok(QuiesceMethod::Patch),
        other => Err(format!("{other:?} is not a quiesce method (Commit or Patch)")),
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        dir,
        keep,
        quiesce,
        timeout_seconds,
        ferry,
        agent,
        argocd_stand_in,
        files,
        full_passes,
    } = args;
    let clock = Instant::now();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;

    say(
        clock,
        if agent {
            "starting the sandbox: source and target control planes, node agents, git server, BIND9, controller"
        } else {
            "starting the sandbox: source and target control planes, a real node each (kubelet, containerd), \
             git server, BIND9, controller"
        },
    );
    let mut sandbox = Sandbox::start(SandboxOptions {
        nodes: if agent { Nodes::Agent } else { Nodes::Real },
        ..SandboxOptions::new(dir.clone(), ferry_binary(ferry)?)
    })
    .await?;
    say(
        clock,
        &format!(
            "source at {}, target (host) at {}",
            sandbox.source.url, sandbox.target.url
        ),
    );
    for line in runtime::describe_nodes(&sandbox).await? {
        say(clock, &line);
    }
    if quiesce == QuiesceMethod::Commit && !argocd_stand_in {
        sandbox.use_real_argocd();
    }
    let story = Story {
        quiesce,
        timeout: Duration::from_secs(timeout_seconds),
        files,
        full_passes,
    };
    let outcome = migrate(&mut sandbox, &story, clock).await;
    if let Err(err) = &outcome {
        eprintln!(
            "ferry-sandbox demo: {err:#}\n  controller log: {}",
            sandbox.controller_log().display()
        );
    }
    if keep {
        let enter = nsenter_prefix();
        if enter.is_empty() {
            println!("\nThe sandbox keeps running; press Ctrl-C to stop it. Try:");
        } else {
            // Its 127.0.0.1 is not the caller's: only commands entering its namespace reach it.
            println!(
                "\nThe sandbox keeps running in a network namespace of its own (only loopback, see \
                 docs/sandbox.md); press Ctrl-C to stop it. From another shell, try:"
            );
        }
        println!(
            "  {enter}kubectl --kubeconfig {} -n {FERRY_NAMESPACE} get migplans,migmigrations",
            sandbox.target.kubeconfig.display()
        );
        println!(
            "  {enter}kubectl --kubeconfig {} -n {APP_NAMESPACE} get deploy,pvc",
            sandbox.source.kubeconfig.display()
        );
        if !enter.is_empty() {
            println!("  {enter}bash    # a shell in the sandbox's network");
        }
        tokio::signal::ctrl_c().await.ok();
    }
    say(
        clock,
        "stopping the controller, the nodes, git, BIND9 and both control planes",
    );
    let clean = sandbox.stop().await;
    if !keep && outcome.is_ok() {
        std::fs::remove_dir_all(&dir).ok();
    }
    outcome?;
    if !clean {
        bail!("a sandbox process did not exit cleanly");
    }
    say(clock, "done");
    Ok(ExitCode::SUCCESS)
}

/// What the demo migrates, and how.
struct Story {
    quiesce: QuiesceMethod,
    /// How long each migration may take.
    timeout: Duration,
    /// `--files`: a large tree of small files besides the app's own data.
    files: u64,
    /// `--full-passes`: plain rsync passes.
    full_passes: bool,
}

/// The story: app, plan, stage, writes, stage, writes, cutover, checks.
async fn migrate(sandbox: &mut Sandbox, story: &Story, clock: Instant) -> anyhow::Result<()> {
    let &Story {
        quiesce,
        timeout,
        files,
        full_passes,
    } = story;
    say(
        clock,
        "deploying the example app (repo \"shop\": clusters/source, clusters/target at replicas 0)",
    );
    sandbox.install_app().await?;
    let mut pods = PodWatch::default();
    for line in pods.started(sandbox).await? {
        say(clock, &format!("  {line}"));
    }
    let source_dir = sandbox.volume_dir(true).join(APP_DATA_DIR);
    let written = write_data(&source_dir, 0, 400, 64 << 10)?;
    say(
        clock,
        &format!("the app wrote {written} into its volume (shop/db-data, {APP_DATA_DIR}/: uid 999, 0700)"),
    );
    if files > 0 {
        let written = tree::write_many(&source_dir, files)?;
        say(clock, &format!("and {written}"));
    }

    say(
        clock,
        &format!("registering the clusters and the plan (quiesce method {quiesce:?})"),
    );
    sandbox.create_plan(quiesce).await?;
    if full_passes {
        let plans: Api<MigPlan> = Api::namespaced(sandbox.host_client.clone(), FERRY_NAMESPACE);
        let patch = serde_json::json!({"spec": {"transfer": {"fullPasses": true}}});
        plans
            .patch(PLAN_NAME, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        say(
            clock,
            "transfer.fullPasses: true (plain rsync passes, no delta passes)",
        );
    }
    if sandbox.argocd().is_some() {
        say(
            clock,
            &format!(
                "Argo CD itself applies the commits: application controller and repo-server {} \
                 (Applications argocd/shop-source, argocd/shop-target, automated sync with selfHeal)",
                crate::argocd_real::version()
            ),
        );
    }
    wait_plan_ready(&sandbox.host_client, timeout, clock).await?;

    let stage1 = run_migration(sandbox, &mut pods, "stage-1", |s| s.stage = true, timeout, clock).await?;
    let written = write_data(&source_dir, 400, 100, 16 << 10)?;
    say(clock, &format!("the app keeps running and writes {written} more"));
    let stage2 = run_migration(sandbox, &mut pods, "stage-2", |s| s.stage = true, timeout, clock).await?;
    let written = write_data(&source_dir, 500, 20, 0)?;
    say(
        clock,
        &format!("the app writes {written} more before the cutover"),
    );
    if files > 0 {
        let changed = tree::change_many(&source_dir, files, 1)?;
        say(clock, &format!("and changes {changed}"));
    }
    let cutover = run_migration(
        sandbox,
        &mut pods,
        "cutover",
        |s| s.quiesce_pods = true,
        timeout,
        clock,
    )
    .await?;

    if !sandbox.nodes().is_empty() {
        // The target's app, started by the cutover, on the target's node.
        crate::world::wait_target_app(sandbox).await?;
    }
    for line in pods.started(sandbox).await? {
        say(clock, &format!("  {line}"));
    }
    println!();
    for migration in [&stage1, &stage2, &cutover] {
        print!(
            "{}",
            ferry::cli::follow::summary(
                &migration.name_any(),
                &migration.status.clone().unwrap_or_default()
            )
        );
    }
    check_result(sandbox).await?;
    Ok(())
}

async fn run_migration(
    sandbox: &Sandbox,
    pods: &mut PodWatch,
    name: &str,
    set: impl FnOnce(&mut MigMigrationSpec),
    timeout: Duration,
    clock: Instant,
) -> anyhow::Result<MigMigration> {
    let mut spec = MigMigrationSpec::of_plan(FERRY_NAMESPACE, PLAN_NAME);
    set(&mut spec);
    let what = if spec.stage { "stage" } else { "cutover" };
    say(clock, &format!("MigMigration {name}: {what}"));
    let api: Api<MigMigration> = Api::namespaced(sandbox.host_client.clone(), FERRY_NAMESPACE);
    api.create(&PostParams::default(), &MigMigration::new(name, spec))
        .await?;
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let migration = api.get(name).await?;
        let status = migration.status.clone().unwrap_or_default();
        let line = ferry::cli::follow::status_line(&status);
        if line != last && !line.is_empty() {
            say(clock, &format!("  {name}: {line}"));
            last = line;
        }
        for line in pods.started(sandbox).await? {
            say(clock, &format!("  {line}"));
        }
        if condition::is_true(&status.conditions, "Succeeded") {
            return Ok(migration);
        }
        if condition::is_true(&status.conditions, "Failed") {
            bail!("MigMigration {name} failed: {}", status.errors.join("; "));
        }
        if Instant::now() > deadline {
            bail!(
                "MigMigration {name} did not finish within {} s (at {last})",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The target has the source's data, the app runs there and not in the source, DNS points at it.
async fn check_result(sandbox: &Sandbox) -> anyhow::Result<()> {
    let differences = compare_trees(&sandbox.volume_dir(true), &sandbox.volume_dir(false))?;
    if !differences.is_empty() {
        bail!(
            "the target volume differs from the source: {}",
            differences.join(", ")
        );
    }
    println!("\nChecks:");
    println!(
        "  target volume identical to the source volume (every file's contents, owner and mode compared)"
    );
    for (cluster, client) in [
        ("source", &sandbox.source_client),
        ("target", &sandbox.host_client),
    ] {
        let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(client.clone(), APP_NAMESPACE);
        let replicas: Vec<String> = deployments
            .list(&Default::default())
            .await?
            .items
            .iter()
            .map(|d| format!("{}={}", d.name_any(), d.spec.replicas.unwrap_or(1)))
            .collect();
        println!("  {cluster} replicas: {}", replicas.join(" "));
    }
    let values = sandbox.served_app_record().await?.values.join(",");
    println!("  {} A {values} (served by BIND9)", sandbox.app_fqdn());
    if values != TARGET_ADDRESS {
        bail!("DNS serves {values}, expected {TARGET_ADDRESS}");
    }
    Ok(())
}

/// What runs a command of another shell in this process's network namespace, where the sandbox
/// listens: under `e2e/isolated.sh` (`make demo`) 127.0.0.1 here is not the caller's 127.0.0.1.
/// Empty when not isolated.
fn nsenter_prefix() -> String {
    let set = |name: &str| std::env::var(name).as_deref() == Ok("1");
    let pid = std::process::id();
    if !set("FERRY_ISOLATED") {
        String::new()
    } else if set("FERRY_ISOLATED_USERNS") {
        format!("nsenter --target {pid} --user --net --preserve-credentials ")
    } else {
        format!("nsenter --net=/proc/{pid}/ns/net ")
    }
}

fn say(clock: Instant, what: &str) {
    println!("[{:>6.1}s] {what}", clock.elapsed().as_secs_f64());
}

async fn wait_plan_ready(host: &kube::Client, timeout: Duration, clock: Instant) -> anyhow::Result<()> {
    let plans: Api<MigPlan> = Api::namespaced(host.clone(), FERRY_NAMESPACE);
    let deadline = Instant::now() + timeout;
    loop {
        let status = plans.get(PLAN_NAME).await?.status.unwrap_or_default();
        if condition::is_true(&status.conditions, condition::READY) && !status.volumes.is_empty() {
            for v in &status.volumes {
                say(
                    clock,
                    &format!(
                        "MigPlan {PLAN_NAME} Ready: volume {}/{} {} {} on {}",
                        v.namespace,
                        v.name,
                        v.size.clone().unwrap_or_default(),
                        v.access_modes.join(","),
                        v.node.clone().unwrap_or_else(|| "-".into())
                    ),
                );
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            let problems: Vec<String> = status
                .conditions
                .iter()
                .filter_map(|c| c.message.clone())
                .collect();
            bail!(
                "the plan did not become Ready within {} s: {}",
                timeout.as_secs(),
                problems.join(" ")
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
