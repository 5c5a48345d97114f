//! `ferry demo`: the whole sandbox on this machine. Two real control planes (source and target), the
//! controller against the target (the host cluster), an example app with a PVC in the source, and the
//! MTC-style resources from `e2e/examples/`; it shows the plan become Ready with its volume discovered,
//! then stops everything cleanly. Migrations themselves arrive with the pipeline.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use kube::Api;

use crate::api::{MigCluster, MigPlan, condition};
use crate::sandbox::{self, ControlPlane, ControllerProcess};

const SOURCE_APP: &str = include_str!("../../e2e/examples/demo-source-app.yaml");
const DB_POD: &str = include_str!("../../e2e/examples/demo-db-pod.yaml");
const PLAN: &str = include_str!("../../e2e/examples/demo-plan.yaml");
const DEMO_NS: &str = "ferry-demo";

/// Flags of `ferry demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the sandbox keeps its data and logs (removed afterwards unless --keep).
    #[arg(long, default_value = ".sandbox")]
    dir: PathBuf,
    /// Keep the sandbox running until Ctrl-C (prints the kubeconfigs to use with kubectl).
    #[arg(long)]
    keep: bool,
    /// How long to wait for the plan to become Ready.
    #[arg(long, default_value_t = 120)]
    timeout_seconds: u64,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        dir,
        keep,
        timeout_seconds,
    } = args;
    let started = Instant::now();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;

    step(
        started,
        "starting the source and target control planes (kube-apiserver + etcd + controller-manager)",
    );
    let (source, target) = std::thread::scope(|scope| {
        let source = scope.spawn(|| ControlPlane::start("source", &dir.join("source"), &["node-a"]));
        let target = scope.spawn(|| ControlPlane::start("target", &dir.join("target"), &["node-b"]));
        (
            source.join().expect("source thread"),
            target.join().expect("target thread"),
        )
    });
    let (source, target) = (source?, target?);
    step(
        started,
        &format!("source at {}, target at {}", source.url, target.url),
    );
    let source_client = source.client().await?;
    let host = target.client().await?;

    step(
        started,
        "installing Ferry's CRDs into the target (the host cluster)",
    );
    sandbox::install_crds(&host).await?;
    let ferry = std::env::current_exe().context("locating the ferry binary")?;
    let controller = ControllerProcess::start(&ferry, &target.kubeconfig, &dir.join("controller.log"))?;
    step(
        started,
        &format!(
            "controller running (pid {}, log {})",
            controller.pid(),
            controller.log.display()
        ),
    );

    step(
        started,
        "creating the app in the source: namespace shop, PVC db-data, pod db-0 on node-a",
    );
    sandbox::apply_yaml(&source_client, SOURCE_APP, "default").await?;
    sandbox::wait_for_default_service_account(&source_client, "shop").await?;
    sandbox::apply_yaml(&source_client, DB_POD, "shop").await?;

    step(
        started,
        "registering the clusters and the plan (e2e/examples/demo-plan.yaml)",
    );
    let token = source.mint_token("ferry-system", "ferry-migration", true)?;
    let plan_yaml = PLAN
        .replace("${SOURCE_URL}", &source.url)
        .replace("${SOURCE_CA}", &source.ca_bundle()?)
        .replace(
            "${SA_TOKEN}",
            &base64::engine::general_purpose::STANDARD.encode(token),
        );
    sandbox::apply_yaml(
        &host,
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {DEMO_NS}\n"),
        "default",
    )
    .await?;
    sandbox::apply_yaml(&host, &plan_yaml, DEMO_NS).await?;

    let ready = wait_plan_ready(&host, Duration::from_secs(timeout_seconds), started).await;
    if let Err(err) = &ready {
        eprintln!("ferry demo: {err}; controller log: {}", controller.log.display());
    }
    if ready.is_ok() {
        print_summary(&host).await?;
    }
    if keep && ready.is_ok() {
        println!("\nThe sandbox keeps running; press Ctrl-C to stop it. Try:");
        println!(
            "  kubectl --kubeconfig {} -n {DEMO_NS} get migclusters,migplans",
            target.kubeconfig.display()
        );
        println!(
            "  kubectl --kubeconfig {} -n shop get pvc,pods",
            source.kubeconfig.display()
        );
        tokio::signal::ctrl_c().await.ok();
    }

    step(started, "stopping the controller and both control planes");
    let clean = controller.stop() & source.stop() & target.stop();
    if !keep {
        std::fs::remove_dir_all(&dir).ok();
    }
    ready?;
    if !clean {
        bail!("a sandbox process did not exit cleanly");
    }
    step(started, "done");
    Ok(ExitCode::SUCCESS)
}

fn step(started: Instant, what: &str) {
    println!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
}

async fn wait_plan_ready(host: &kube::Client, timeout: Duration, started: Instant) -> anyhow::Result<()> {
    let plans: Api<MigPlan> = Api::namespaced(host.clone(), DEMO_NS);
    let deadline = Instant::now() + timeout;
    let mut last_message = String::new();
    loop {
        let plan = plans.get("shop").await?;
        let conditions = plan
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        if let Some(ready) = condition::find(conditions, condition::READY) {
            let message = ready.message.clone().unwrap_or_default();
            if message != last_message {
                step(
                    started,
                    &format!("MigPlan shop: Ready={} — {message}", ready.status),
                );
                last_message = message;
            }
            if ready.is_true() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            let problems: Vec<String> = conditions
                .iter()
                .filter(|c| c.type_ != condition::READY)
                .filter_map(|c| c.message.clone())
                .collect();
            bail!(
                "the plan did not become Ready within {timeout:?}: {}",
                problems.join(" ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn print_summary(host: &kube::Client) -> anyhow::Result<()> {
    println!("\nMigClusters:");
    for cluster in Api::<MigCluster>::namespaced(host.clone(), DEMO_NS)
        .list(&Default::default())
        .await?
    {
        let status = cluster.status.unwrap_or_default();
        let ready = condition::find(&status.conditions, condition::READY);
        println!(
            "  {:<8} Ready={:<5} {}",
            cluster.metadata.name.unwrap_or_default(),
            ready.map_or("?", |c| c.status.as_str()),
            ready.and_then(|c| c.message.clone()).unwrap_or_default()
        );
    }
    let plan = Api::<MigPlan>::namespaced(host.clone(), DEMO_NS)
        .get("shop")
        .await?;
    println!("\nMigPlan shop volumes:");
    println!(
        "  {:<20} {:<6} {:<8} {:<16} {:<6} NODE",
        "PVC", "SIZE", "CLASS", "ACCESS", "BOUND"
    );
    for v in plan.status.unwrap_or_default().volumes {
        println!(
            "  {:<20} {:<6} {:<8} {:<16} {:<6} {}",
            format!("{}/{}", v.namespace, v.name),
            v.size.unwrap_or_default(),
            v.storage_class.unwrap_or_default(),
            v.access_modes.join(","),
            v.bound,
            v.node.unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}
