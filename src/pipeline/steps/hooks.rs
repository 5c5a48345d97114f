//! PreBackupHooks, PostBackupHooks, PreRestoreHooks, PostRestoreHooks: the plan's MigHook at the step's
//! phase runs as a Job in the hook's cluster (`hook_job` builds it and reads its status). The Job is
//! created once per migration and phase and then followed, so a controller restart never runs a hook
//! twice; a failed or timed-out hook fails the step with its last log lines. Cleanup removes the Job.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client, ResourceExt};

use super::{create_if_absent, delete_if_present};
use crate::Result;
use crate::api::hook::TargetCluster;
use crate::api::{HookPhase, MigHook};
use crate::pipeline::hook_job::{self, CONTAINER, Decision, HOOK_PHASE, JobInput};
use crate::pipeline::{StepContext, StepOutcome, labels};

/// How often a running hook is looked at.
const POLL: Duration = Duration::from_secs(1);
/// Beyond the hook's own deadline, how long a Job that never finishes (no pod was ever created) may take.
const GRACE: Duration = Duration::from_secs(120);

/// Runs (or follows) the plan's hook at `phase`; skipped when the plan has none there.
pub async fn run(ctx: &StepContext, phase: HookPhase) -> Result<StepOutcome> {
    let Some(plan_hook) = hook_job::selected(&ctx.plan.spec, phase) else {
        return Ok(StepOutcome::Skipped(format!(
            "the plan has no {} hook",
            phase.as_str()
        )));
    };
    let Some(reference) = plan_hook.reference.as_ref() else {
        return Ok(StepOutcome::Failed(format!(
            "the plan's {} hook has no reference",
            phase.as_str()
        )));
    };
    let hook_key = format!(
        "{}/{}",
        reference.namespace_or(&ctx.plan_namespace()),
        reference.name
    );
    let hooks: Api<MigHook> =
        Api::namespaced(ctx.host.clone(), reference.namespace_or(&ctx.plan_namespace()));
    let Some(hook) = hooks.get_opt(&reference.name).await? else {
        return Ok(StepOutcome::Failed(format!("MigHook {hook_key} does not exist")));
    };
    let problems: Vec<String> = hook
        .spec
        .problems()
        .into_iter()
        .filter_map(|c| c.message)
        .collect();
    if !problems.is_empty() {
        return Ok(StepOutcome::Failed(format!(
            "MigHook {hook_key} cannot run: {}",
            problems.join(" ")
        )));
    }
    let Ok(cluster) = hook.spec.cluster() else {
        return Ok(StepOutcome::Failed(format!(
            "MigHook {hook_key} names no cluster"
        )));
    };
    let client = match cluster {
        TargetCluster::Source => &ctx.source,
        TargetCluster::Destination => &ctx.target,
    };
    let namespace = plan_hook.execution_namespace.clone().unwrap_or_default();
    let uid = ctx.uid();
    let name = hook_job::job_name(phase, &uid);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let what = format!(
        "Hook {} (MigHook {hook_key}), Job {namespace}/{name} in the {} cluster",
        phase.as_str(),
        cluster.as_str()
    );

    let existing = jobs.get_opt(&name).await?;
    let pods = match &existing {
        Some(_) => hook_pods(client, &namespace, &uid, phase).await?,
        None => Vec::new(),
    };
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    Ok(match hook_job::decide(existing.as_ref(), &pods, &now) {
        Decision::Create => {
            let job = hook_job::job(&JobInput {
                phase,
                plan_hook,
                hook: &hook.spec,
                uid: &uid,
                plan_name: &ctx.plan.name_any(),
                namespaces: &ctx.plan.spec.namespaces,
                labels: ctx.temporary_labels(),
            });
            match create_if_absent(&jobs, &job).await {
                Ok(()) => StepOutcome::InProgress {
                    message: format!("{what}: created."),
                    progress: Vec::new(),
                    after: POLL,
                },
                Err(crate::Error::Kube(kube::Error::Api(status))) if status.code == 404 => {
                    StepOutcome::Failed(format!(
                        "{what}: namespace {namespace} does not exist in the {} cluster",
                        cluster.as_str()
                    ))
                }
                Err(err) => return Err(err),
            }
        }
        Decision::Wait { seconds } => {
            let deadline = Duration::from_secs(hook.spec.deadline_seconds().unsigned_abs());
            if ctx.elapsed(phase.step()) > deadline + GRACE {
                delete_if_present(&jobs, &name).await?;
                StepOutcome::Failed(format!(
                    "{what} did not finish within its activeDeadlineSeconds ({}s); the Job was deleted",
                    deadline.as_secs()
                ))
            } else {
                let running = seconds.map(|s| format!(" for {s:.0}s")).unwrap_or_default();
                // The log so far: what a user watching sees, and what a failure quotes when the Job
                // controller deletes the pod at the deadline before its log could be read.
                let progress = match read_log(client, &namespace, &pods).await {
                    Some(tail) if !tail.is_empty() => vec![format!("{}{tail}", hook_job::LOG_PROGRESS)],
                    _ => Vec::new(),
                };
                StepOutcome::InProgress {
                    message: format!("{what}: running{running} (at most {}s).", deadline.as_secs()),
                    progress,
                    after: POLL,
                }
            }
        }
        Decision::Succeeded { seconds } => {
            StepOutcome::Done(format!("{what}: succeeded{}.", hook_job::duration(seconds)))
        }
        Decision::Failed { why, seconds } => {
            let log = match read_log(client, &namespace, &pods).await {
                Some(tail) if !tail.is_empty() => format!("last log lines: {tail}"),
                found => match logged_before(ctx, phase) {
                    Some(before) => format!("last log lines seen while it ran: {before}"),
                    None if found.is_some() => "the hook wrote no log".into(),
                    None => "no log: the hook's pod is gone".into(),
                },
            };
            let after = hook_job::duration(seconds).replacen(" in ", " after ", 1);
            StepOutcome::Failed(format!("{what}: failed{after} ({why}); {log}"))
        }
        Decision::CannotStart { why } => {
            delete_if_present(&jobs, &name).await?;
            StepOutcome::Failed(format!(
                "{what}: its pod cannot start ({why}); the Job was deleted"
            ))
        }
    })
}

/// The pods of this migration's hook Job at `phase`.
async fn hook_pods(client: &Client, namespace: &str, uid: &str, phase: HookPhase) -> Result<Vec<Pod>> {
    let selector = format!(
        "{},{HOOK_PHASE}={}",
        labels::temporary_selector(uid),
        phase.as_str()
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    Ok(pods.list(&ListParams::default().labels(&selector)).await?.items)
}

/// The log lines the step's progress showed while the hook ran.
fn logged_before(ctx: &StepContext, phase: HookPhase) -> Option<String> {
    let status = ctx.migration.status.as_ref()?;
    let entry = status.pipeline.iter().find(|p| p.name == phase.step())?;
    hook_job::logged_before(&entry.progress).map(str::to_string)
}

/// The last lines of the hook pod's log on one line (empty: it wrote none), or `None` when there is
/// no pod (one killed at its deadline is deleted) or its log cannot be read.
async fn read_log(client: &Client, namespace: &str, pods: &[Pod]) -> Option<String> {
    let pod = pods.last()?;
    let params = LogParams {
        container: Some(CONTAINER.into()),
        tail_lines: Some(hook_job::LOG_LINES as i64 * 4),
        ..LogParams::default()
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match pods.logs(&pod.name_any(), &params).await {
        Ok(log) => Some(hook_job::log_tail(&log)),
        Err(err) => {
            tracing::debug!(pod = %pod.name_any(), error = %err, "reading a hook's log failed");
            None
        }
    }
}
