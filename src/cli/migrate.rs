//! `ferry stage|cutover|rollback --plan NS/NAME [--wait]` and `ferry status`: create a MigMigration of
//! a plan (MTC's fields: `stage`, `quiescePods`, `rollback`, `migrateState`) and, with `--wait`, follow
//! it to its end — a progress bar on a terminal, one line per change otherwise — and exit with its
//! result. This is what an Argo CD hook Job runs (`ferry stage --plan NS/NAME --wait`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use kube::api::{ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use super::follow::{self, Verdict};
use crate::api::{MigMigration, MigMigrationSpec, MigPlan, condition};
use crate::report::words;

/// Which itinerary to start.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `stage: true`.
    Stage,
    /// `quiescePods: true` (MTC's final migration).
    Cutover,
    /// `rollback: true`.
    Rollback,
}

/// Flags of `ferry stage`, `ferry cutover` and `ferry rollback`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan to run, NAMESPACE/NAME.
    #[arg(long)]
    plan: String,
    /// Follow the migration until it ends; the exit code is its result.
    #[arg(long)]
    wait: bool,
    /// With --wait: give up waiting after this long (e.g. 90s, 30m, 2h); the migration keeps running.
    #[arg(long, default_value = "1h", value_parser = follow::parse_duration)]
    timeout: Duration,
    /// Verify the copied data with checksums (stage and cutover).
    #[arg(long)]
    verify: bool,
    /// State only: sync the volumes and leave the app to Argo CD (stage only).
    #[arg(long)]
    migrate_state: bool,
    /// Stage only: when the plan has been cut over (its target is live), or a cutover or rollback of
    /// it is under way, stage nothing and exit 0 instead of failing or waiting. For hooks that run
    /// on every sync of the target app (PreSync).
    #[arg(long)]
    skip_if_cut_over: bool,
    /// Kubeconfig of the host cluster; in-cluster configuration (or $KUBECONFIG) when absent.
    #[arg(long, env = "FERRY_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

/// Creates the migration and, with `--wait`, follows it.
pub async fn run(kind: Kind, args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        plan,
        wait,
        timeout,
        verify,
        migrate_state,
        skip_if_cut_over,
        kubeconfig,
    } = args;
    let (plan_ns, plan_name) = split_plan(&plan)?;
    if migrate_state && !matches!(kind, Kind::Stage) {
        bail!("--migrate-state only applies to `ferry stage`");
    }
    if skip_if_cut_over && !matches!(kind, Kind::Stage) {
        bail!("--skip-if-cut-over only applies to `ferry stage`");
    }
    let client = super::controller::host_client(kubeconfig.as_deref()).await?;
    let plans: Api<MigPlan> = Api::namespaced(client.clone(), &plan_ns);
    let Some(found) = plans.get_opt(&plan_name).await? else {
        bail!("MigPlan {plan} does not exist");
    };
    if let Some(cutover) = found.status.as_ref().and_then(|s| s.cutover.as_ref())
        && !matches!(kind, Kind::Rollback)
    {
        if skip_if_cut_over {
            println!(
                "MigPlan {plan} was cut over by MigMigration {}: its target is live, so nothing is staged",
                cutover.migration
            );
            return Ok(ExitCode::SUCCESS);
        }
        bail!(
            "MigPlan {plan} was cut over by MigMigration {}: a {} would overwrite the live target; run `ferry \
             rollback --plan {plan}` first",
            cutover.migration,
            if matches!(kind, Kind::Stage) {
                "stage"
            } else {
                "cutover"
            }
        );
    }
    if skip_if_cut_over {
        let migrations: Api<MigMigration> = Api::namespaced(client.clone(), &plan_ns);
        let all = migrations.list(&ListParams::default()).await?.items;
        if let Some(under_way) = cutover_under_way(&plan_ns, &plan_name, &all) {
            println!(
                "MigMigration {under_way} of MigPlan {plan} is under way and makes its own final sync: nothing is staged"
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
    let spec = MigMigrationSpec {
        stage: matches!(kind, Kind::Stage),
        quiesce_pods: matches!(kind, Kind::Cutover),
        rollback: matches!(kind, Kind::Rollback),
        migrate_state,
        verify,
        ..MigMigrationSpec::of_plan(&plan_ns, &plan_name)
    };
    let mut migration = MigMigration::new("", spec);
    migration.metadata.name = None;
    migration.metadata.generate_name = Some(format!("{plan_name}-{}-", format!("{kind:?}").to_lowercase()));
    migration
        .labels_mut()
        .insert("migration.ferry.dev/trigger".into(), "cli".into());
    let migrations: Api<MigMigration> = Api::namespaced(client.clone(), &plan_ns);
    let created = migrations
        .create(&PostParams::default(), &migration)
        .await
        .context("creating the MigMigration")?;
    let name = created.name_any();
    println!("migmigration.migration.ferry.dev/{name} created in {plan_ns}");
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    let code = follow_until_done(&client, &plan_ns, &name, timeout).await?;
    // The plan was cut over between the check above and the controller's admission: refused.
    if skip_if_cut_over
        && let Some(ended) = migrations.get_opt(&name).await?
        && ended
            .status
            .as_ref()
            .and_then(|s| condition::find(&s.conditions, "Failed"))
            .is_some_and(|c| c.reason.as_deref() == Some(PLAN_CUT_OVER))
    {
        println!("MigPlan {plan} was cut over: nothing staged");
        return Ok(ExitCode::SUCCESS);
    }
    Ok(code)
}

/// An unfinished cutover or rollback of plan `namespace/name` among `migrations`, for a hook's
/// `--skip-if-cut-over`: a stage now would only wait for it and then be refused, and a PreSync hook
/// waiting would hold the target's sync that the cutover itself waits for (a commit starting or
/// stopping the target).
fn cutover_under_way(namespace: &str, name: &str, migrations: &[MigMigration]) -> Option<String> {
    migrations
        .iter()
        .filter(|m| {
            let own = m.namespace().unwrap_or_default();
            m.spec.mig_plan_ref.name == name && m.spec.mig_plan_ref.namespace_or(&own) == namespace
        })
        .filter(|m| m.spec.quiesce_pods || m.spec.rollback)
        .find(|m| Verdict::of(&m.status.clone().unwrap_or_default()) == Verdict::Running)
        .map(|m| format!("{namespace}/{}", m.name_any()))
}

/// The reason of the `Failed` condition of a migration refused because its plan was cut over.
const PLAN_CUT_OVER: &str = "PlanCutOver";

/// Follows `namespace/name` until it ends, `timeout` passes or the user interrupts.
pub async fn follow_until_done(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let migrations: Api<MigMigration> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher::watcher(migrations, config).boxed();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(1);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    // An Argo CD hook Job being deleted gets SIGTERM: stop waiting, as on Ctrl-C.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_line = String::new();
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            () = tokio::time::sleep_until(deadline) => {
                finish(&bar);
                eprintln!("ferry: timed out after {} waiting for MigMigration {namespace}/{name} (at: {last_line}); it keeps running", words::duration(timeout.as_secs_f64()));
                return Ok(ExitCode::from(follow::EXIT_TIMEOUT));
            }
            _ = interrupted(&mut terminate) => {
                finish(&bar);
                eprintln!("ferry: stopped waiting; MigMigration {namespace}/{name} keeps running (`ferry status` shows it)");
                return Ok(ExitCode::from(130));
            }
        };
        let migration = match event {
            Some(Ok(watcher::Event::Apply(m) | watcher::Event::InitApply(m))) => m,
            Some(Ok(watcher::Event::Delete(_))) => {
                finish(&bar);
                bail!("MigMigration {namespace}/{name} was deleted");
            }
            Some(Ok(_)) => continue,
            Some(Err(err)) => {
                tracing::debug!("watch error (retrying): {err}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            None => bail!("the watch of MigMigration {namespace}/{name} ended"),
        };
        let status = migration.status.clone().unwrap_or_default();
        let line = follow::status_line(&status);
        if line != last_line {
            match &bar {
                Some(bar) => {
                    let (done, total) = follow::position(&status);
                    bar.set_length(total.max(1));
                    bar.set_position(done);
                    bar.set_message(line.clone());
                }
                None => println!("{name}: {line}"),
            }
            last_line = line;
        }
        let verdict = Verdict::of(&status);
        if verdict != Verdict::Running {
            finish(&bar);
            print!("{}", follow::summary(name, &status));
            match &verdict {
                Verdict::Failed(cause) => eprintln!("ferry: MigMigration {namespace}/{name} failed: {cause}"),
                Verdict::Canceled(message) => {
                    eprintln!("ferry: MigMigration {namespace}/{name} was canceled: {message}")
                }
                _ => println!("MigMigration {namespace}/{name} succeeded"),
            }
            return Ok(follow::exit_code(&verdict));
        }
    }
}

/// Ctrl-C (SIGINT) or SIGTERM.
async fn interrupted(terminate: &mut tokio::signal::unix::Signal) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

fn finish(bar: &Option<ProgressBar>) {
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

/// `NAMESPACE/NAME` split.
pub(super) fn split_plan(plan: &str) -> anyhow::Result<(String, String)> {
    match plan.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => bail!("--plan must be NAMESPACE/NAME, got {plan:?}"),
    }
}

/// Flags of `ferry status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Only this plan, NAMESPACE/NAME.
    #[arg(long)]
    plan: Option<String>,
    /// Only this namespace (all namespaces when absent).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// `table` or `json`.
    #[arg(long, short = 'o', default_value = "table")]
    output: String,
    /// Kubeconfig of the host cluster; in-cluster configuration (or $KUBECONFIG) when absent.
    #[arg(long, env = "FERRY_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

/// Prints plans and their migrations.
pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let StatusArgs {
        plan,
        namespace,
        output,
        kubeconfig,
    } = args;
    let client = super::controller::host_client(kubeconfig.as_deref()).await?;
    let (namespace, only) = match &plan {
        Some(plan) => {
            let (ns, name) = split_plan(plan)?;
            (Some(ns), Some(name))
        }
        None => (namespace, None),
    };
    let (plans, migrations): (Api<MigPlan>, Api<MigMigration>) = match &namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client, ns)),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let plans: Vec<MigPlan> = plans
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| only.as_ref().is_none_or(|n| p.name_any() == *n))
        .collect();
    let mut migrations: Vec<MigMigration> = migrations
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|m| {
            plans.iter().any(|p| {
                m.spec.mig_plan_ref.name == p.name_any()
                    && m.spec
                        .mig_plan_ref
                        .namespace_or(&m.namespace().unwrap_or_default())
                        == p.namespace().unwrap_or_default()
            })
        })
        .collect();
    migrations.sort_by_key(|m| m.metadata.creation_timestamp.clone().map(|t| t.0));
    if output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"plans": plans, "migrations": migrations}))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if output != "table" {
        bail!("--output must be table or json, got {output:?}");
    }
    println!(
        "{:<30} {:<6} {:<8} {:<21} LAST STAGE",
        "PLAN", "READY", "VOLUMES", "NEXT SCHEDULED"
    );
    for plan in &plans {
        let status = plan.status.clone().unwrap_or_default();
        let ready = condition::find(&status.conditions, condition::READY).map_or("?", |c| c.status.as_str());
        let last = status
            .last_stage
            .map(|s| format!("{} ({}, {})", s.time, s.duration, words::bytes(s.bytes)))
            .unwrap_or_else(|| "-".into());
        let next = status.next_scheduled_stage.as_deref().unwrap_or("-");
        println!(
            "{:<30} {:<6} {:<8} {next:<21} {last}",
            format!("{}/{}", plan.namespace().unwrap_or_default(), plan.name_any()),
            ready,
            status.volumes.len()
        );
    }
    println!("\n{:<36} {:<10} {:<12} STATUS", "MIGRATION", "ITINERARY", "PHASE");
    for migration in &migrations {
        let status = migration.status.clone().unwrap_or_default();
        let itinerary = status
            .itinerary
            .map(|i| words::itinerary(i).to_string())
            .unwrap_or_else(|| "-".into());
        let phase = status.phase.clone().unwrap_or_else(|| "-".into());
        let mut line = match Verdict::of(&status) {
            Verdict::Running => follow::status_line(&status),
            finished => finished.describe(),
        };
        if let Some(window) = &status.downtime {
            line.push_str(&match window.seconds {
                Some(seconds) => format!("; downtime {}", words::duration(seconds)),
                None => format!("; downtime open since {}", window.start),
            });
        }
        println!(
            "{:<36} {:<10} {:<12} {line}",
            format!(
                "{}/{}",
                migration.namespace().unwrap_or_default(),
                migration.name_any()
            ),
            itinerary,
            phase
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_namespace_slash_name() {
        assert_eq!(split_plan("ferry/shop").unwrap(), ("ferry".into(), "shop".into()));
        for bad in ["shop", "/shop", "ferry/", "a/b/c"] {
            assert!(split_plan(bad).is_err(), "{bad}");
        }
    }

    fn migration(
        name: &str,
        plan: &str,
        set: impl FnOnce(&mut MigMigrationSpec),
        succeeded: bool,
    ) -> MigMigration {
        let mut spec = MigMigrationSpec::of_plan("ferry", plan);
        set(&mut spec);
        let mut migration = MigMigration::new(name, spec);
        migration.metadata.namespace = Some("ferry".into());
        if succeeded {
            let mut status = crate::api::MigMigrationStatus::default();
            status.conditions.push(condition::Condition::holds(
                "Succeeded",
                condition::Category::Advisory,
                "Completed",
                "done",
            ));
            migration.status = Some(status);
        }
        migration
    }

    #[test]
    fn a_hook_skips_while_a_cutover_or_rollback_of_its_plan_is_under_way() {
        let cutover = |m: &mut MigMigrationSpec| m.quiesce_pods = true;
        let rollback = |m: &mut MigMigrationSpec| m.rollback = true;
        let stage = |m: &mut MigMigrationSpec| m.stage = true;
        let done = [
            migration("old-cutover", "shop", cutover, true),
            migration("stage", "shop", stage, false),
            migration("other-plan", "other", cutover, false),
        ];
        assert_eq!(cutover_under_way("ferry", "shop", &done), None);
        let mut running = done.to_vec();
        running.push(migration("cutover", "shop", cutover, false));
        assert_eq!(
            cutover_under_way("ferry", "shop", &running).as_deref(),
            Some("ferry/cutover")
        );
        assert_eq!(cutover_under_way("elsewhere", "shop", &running), None);
        let rolling_back = [migration("back", "shop", rollback, false)];
        assert_eq!(
            cutover_under_way("ferry", "shop", &rolling_back).as_deref(),
            Some("ferry/back")
        );
    }
}
