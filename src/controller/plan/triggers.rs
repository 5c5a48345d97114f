//! The plan's triggers, applied (the rules are pure, in `crate::triggers::decide`): observe the plan's
//! migrations, the push the webhook recorded on the plan (any replica may receive it, so it arrives
//! as an annotation) or a poll of the branch when no webhook is configured, decide, create the stage
//! migration, count and publish what happened. Runs on the leader as part of the plan reconcile; the
//! status it returns is written with the rest of the plan's status.

use std::time::Duration;

use jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};

use super::super::migration::is_finished;
use super::super::{Context, metrics};
use crate::api::condition;
use crate::api::migration::{Itinerary, MigMigrationSpec};
use crate::api::plan::{GitOps, PushRecord, TriggerStatus};
use crate::api::{Category, Condition, MigMigration, MigPlan};
use crate::pipeline::repo::{cache_dir, read_credentials};
use crate::triggers::decide::{self, Activity, Inputs, NewStage, format_time};
use crate::triggers::schedule::Schedule;
use crate::{Error, Result};

/// The annotation the webhook endpoint writes on a plan: the newest push (JSON `PushRecord`).
pub const PUSH_ANNOTATION: &str = "migration.ferry.dev/last-push";
/// Label on the stage migrations a trigger created: `schedule` or `push`.
pub const TRIGGER_LABEL: &str = "migration.ferry.dev/trigger";
/// Default seconds between polls of the branch (no webhook).
pub const DEFAULT_POLL_SECONDS: u32 = 60;
/// Default quiet seconds after the last push of a burst.
pub const DEFAULT_DEBOUNCE_SECONDS: u32 = 10;

/// What the triggers contribute to the plan's status and requeue.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub status: Option<TriggerStatus>,
    pub next_scheduled_stage: Option<String>,
    pub observed_revision: Option<String>,
    pub conditions: Vec<Condition>,
    pub wake_after: Option<Duration>,
}

/// Runs the plan's triggers once. `schedule` is the parsed `spec.schedule` (`None` when absent or
/// invalid, the latter already a condition); `ready` is whether the plan is Ready.
pub(super) async fn run(
    ctx: &Context,
    plan: &MigPlan,
    schedule: Option<&Schedule>,
    ready: bool,
) -> Result<Outcome> {
    let previous_status = plan.status.clone().unwrap_or_default();
    let mut outcome = Outcome {
        observed_revision: previous_status.observed_revision.clone(),
        ..Outcome::default()
    };
    let triggers = plan.spec.triggers.clone().unwrap_or_default();
    if schedule.is_none() && !triggers.on_push {
        return Ok(outcome);
    }
    let previous = previous_status.triggers.clone().unwrap_or_default();
    let now = Timestamp::now();
    let mut status_seed = previous.clone();

    let mut pushed = recorded_push(plan);
    // A push recorded since the last pass names the newest revision seen (the poll below may know
    // a newer one); an old record must not undo what a poll observed.
    if let Some(push) = pushed
        .as_ref()
        .filter(|push| is_newer(push, previous.last_push.as_ref()))
    {
        outcome.observed_revision = Some(push.revision.clone());
    }
    let polled = poll_if_due(
        ctx,
        plan,
        &previous,
        previous_status.observed_revision.as_deref(),
        now,
    )
    .await;
    if let Some(at) = polled.at {
        status_seed.last_poll = Some(at);
    }
    if let Some(head) = polled.head {
        outcome.observed_revision = Some(head);
    }
    pushed = newest(pushed, polled.noticed);
    outcome.conditions.extend(polled.problem);

    let activity = activity(ctx, plan, ready).await?;
    let key = schedule_key(plan);
    let decision = decide::decide(&Inputs {
        plan: &plan.name_any(),
        schedule: schedule.map(|s| (s, key)),
        on_push: triggers.on_push,
        debounce: Duration::from_secs(
            triggers
                .debounce_seconds
                .unwrap_or(DEFAULT_DEBOUNCE_SECONDS)
                .into(),
        ),
        pushed,
        previous: &status_seed,
        activity: &activity,
        now,
    });
    for (skip, count) in &decision.skipped {
        ctx.metrics
            .triggered_stages
            .get_or_create(&metrics::TriggerLabels {
                trigger: "schedule".into(),
                result: skip.label().into(),
            })
            .inc_by(*count);
        publish(
            ctx,
            plan,
            EventType::Normal,
            "ScheduledStageSkipped",
            format!(
                "{count} scheduled stage(s) skipped: {}",
                skip.label().trim_start_matches("skipped_").replace('_', " ")
            ),
        )
        .await;
    }
    if let Some(stage) = &decision.create {
        create_stage(ctx, plan, stage).await?;
    }
    if activity.cut_over {
        outcome.conditions.push(Condition::holds(
            "TriggersSuspended",
            Category::Advisory,
            "CutOver",
            "The plan was cut over: scheduled and pushed stages are suspended (they would overwrite the target); a rollback resumes them.",
        ));
    }
    outcome.status = Some(decision.status);
    outcome.next_scheduled_stage = decision.next_scheduled_stage.filter(|_| !activity.cut_over);
    outcome.wake_after = [decision.wake_after, polled.wake].into_iter().flatten().min();
    Ok(outcome)
}

/// The schedule's identity in status: expression and zone.
fn schedule_key(plan: &MigPlan) -> String {
    let zone = plan
        .spec
        .time_zone
        .as_deref()
        .map(str::trim)
        .filter(|z| !z.is_empty())
        .unwrap_or("UTC");
    format!(
        "{} ({zone})",
        plan.spec.schedule.as_deref().unwrap_or_default().trim()
    )
}

/// The push the webhook endpoint recorded on the plan, if any (an unreadable record is ignored).
fn recorded_push(plan: &MigPlan) -> Option<PushRecord> {
    let text = plan.annotations().get(PUSH_ANNOTATION)?;
    serde_json::from_str(text)
        .inspect_err(|err| tracing::warn!(plan = %plan.name_any(), error = %err, "unreadable {PUSH_ANNOTATION} annotation ignored"))
        .ok()
}

fn newest(a: Option<PushRecord>, b: Option<PushRecord>) -> Option<PushRecord> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if is_newer(&b, Some(&a)) { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Whether `push` happened after `than` (or there is nothing to compare with).
fn is_newer(push: &PushRecord, than: Option<&PushRecord>) -> bool {
    let time = |record: &PushRecord| record.time.parse::<Timestamp>().ok();
    than.is_none_or(|than| time(push) > time(than))
}

/// What a pass of the polling fallback found.
#[derive(Default)]
struct PollPass {
    /// When it polled (`None`: not due, or no polling for this plan).
    at: Option<String>,
    /// The branch tip it saw.
    head: Option<String>,
    /// A new tip touching the watched paths, as a push noticed now.
    noticed: Option<PushRecord>,
    /// Why the poll failed (a Warn condition; retried next interval).
    problem: Option<Condition>,
    /// When the next poll is due.
    wake: Option<Duration>,
}

/// Polls the branch when the plan watches pushes without a webhook and its interval has passed.
async fn poll_if_due(
    ctx: &Context,
    plan: &MigPlan,
    previous: &TriggerStatus,
    seen: Option<&str>,
    now: Timestamp,
) -> PollPass {
    let triggers = plan.spec.triggers.clone().unwrap_or_default();
    let (true, None, Some(gitops)) = (triggers.on_push, &triggers.webhook_secret_ref, &plan.spec.gitops)
    else {
        return PollPass::default();
    };
    let seconds = triggers
        .poll_interval_seconds
        .unwrap_or(DEFAULT_POLL_SECONDS)
        .max(5);
    let interval = Duration::from_secs(seconds.into());
    let elapsed = previous
        .last_poll
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map(|last| now.duration_since(last).unsigned_abs());
    if let Some(elapsed) = elapsed.filter(|elapsed| *elapsed < interval) {
        return PollPass {
            wake: Some(interval - elapsed),
            ..PollPass::default()
        };
    }
    let mut pass = PollPass {
        at: Some(format_time(now)),
        wake: Some(interval),
        ..PollPass::default()
    };
    match poll(ctx, plan, gitops, seen).await {
        Ok(polled) => {
            pass.noticed = polled.touched.then(|| PushRecord {
                revision: polled.head.clone(),
                time: format_time(now),
            });
            pass.head = Some(polled.head);
        }
        Err(err) => {
            pass.problem = Some(Condition::holds(
                "GitPollFailed",
                Category::Warn,
                "PollFailed",
                format!(
                    "Polling {} for pushes failed (retried every {seconds}s): {err}",
                    gitops.repo.url
                ),
            ))
        }
    }
    pass
}

struct Polled {
    head: String,
    touched: bool,
}

/// Fetches the branch and reports whether commits since `since` touch the watched paths. The first
/// poll only records the tip; Ferry's own commits for this plan never count as a push.
async fn poll(ctx: &Context, plan: &MigPlan, gitops: &GitOps, since: Option<&str>) -> Result<Polled> {
    let namespace = plan.namespace().unwrap_or_default();
    let plan_key = format!("{namespace}/{}", plan.name_any());
    let credentials = read_credentials(&ctx.client, &namespace, gitops).await?;
    let cache = cache_dir(&format!("{plan_key}-watch"), &gitops.repo.url);
    let url = gitops.repo.url.clone();
    let branch = gitops.repo.branch.clone().unwrap_or_else(|| "main".into());
    let paths = watched_paths(gitops);
    let since = since.and_then(|sha| git2::Oid::from_str(sha).ok());
    tokio::task::spawn_blocking(move || {
        if let Some(parent) = cache.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io(format!("creating {}", parent.display())))?;
        }
        let repo = crate::git::Repo::open_or_clone(&cache, &url, &branch, credentials)?;
        // A recorded revision this clone does not know (a webhook's, or history rewritten) counts as
        // no revision: the tip is recorded, nothing is triggered.
        let since = since.filter(|oid| repo.has_commit(*oid));
        let report = repo.report_since(since, &paths)?;
        let touched = since.is_some() && report.touched && !repo.made_by_ferry_for(report.head, &plan_key)?;
        Ok(Polled {
            head: report.head.to_string(),
            touched,
        })
    })
    .await
    .map_err(|err| Error::GitTask(err.to_string()))?
}

/// The repository paths whose changes concern a plan: its source and target manifests.
pub(crate) fn watched_paths(gitops: &GitOps) -> Vec<String> {
    std::iter::once(gitops.source_path.clone())
        .chain(gitops.target_path.clone())
        .collect()
}

/// Which of the plan's migrations are unfinished, and whether its newest successful cutover or
/// rollback was a cutover. Only migrations in the plan's namespace are considered.
async fn activity(ctx: &Context, plan: &MigPlan, ready: bool) -> Result<Activity> {
    let namespace = plan.namespace().unwrap_or_default();
    // From the watch cache: triggered stages are named after their fire, so a fire decided on a
    // stale view creates nothing twice (409), and admission runs one migration of a plan at a time.
    let name = plan.name_any();
    let migrations = ctx
        .migrations((&namespace, &name), Some(&namespace), None, true)
        .await?;
    let ours: Vec<&MigMigration> = migrations.iter().collect();
    let conditions = |m: &MigMigration| {
        m.status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default()
    };
    let unfinished = ours
        .iter()
        .filter(|m| !is_finished(&conditions(m)))
        .map(|m| m.name_any())
        .collect();
    let newest_switch = ours
        .iter()
        .filter(|m| {
            Itinerary::for_spec(&m.spec) != Itinerary::Stage
                && condition::is_true(&conditions(m), "Succeeded")
        })
        .max_by_key(|m| (m.creation_timestamp().map(|t| t.0), m.name_any()));
    Ok(Activity {
        unfinished,
        // The plan's cutover record is authoritative (it also covers a cutover that failed after
        // starting the target); the history is a backstop for plans cut over by older builds.
        cut_over: plan.status.as_ref().is_some_and(|s| s.cutover.is_some())
            || newest_switch.is_some_and(|m| Itinerary::for_spec(&m.spec) == Itinerary::Final),
        plan_ready: ready,
    })
}

/// Creates the stage migration (AlreadyExists means an earlier pass created it: fine), owned by the
/// plan so deleting the plan removes its automatic stages.
async fn create_stage(ctx: &Context, plan: &MigPlan, stage: &NewStage) -> Result<()> {
    let namespace = plan.namespace().unwrap_or_default();
    let migration = MigMigration {
        metadata: ObjectMeta {
            name: Some(stage.name.clone()),
            namespace: Some(namespace.clone()),
            labels: Some([(TRIGGER_LABEL.to_string(), stage.trigger.label().to_string())].into()),
            owner_references: plan.controller_owner_ref(&()).map(|mut owner| {
                owner.controller = None;
                vec![owner]
            }),
            ..ObjectMeta::default()
        },
        spec: MigMigrationSpec {
            stage: true,
            ..MigMigrationSpec::of_plan(&namespace, &plan.name_any())
        },
        status: None,
    };
    let api = Api::<MigMigration>::namespaced(ctx.client.clone(), &namespace);
    let result = match api.create(&PostParams::default(), &migration).await {
        Ok(_) => "created",
        Err(kube::Error::Api(status)) if status.code == 409 => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    ctx.metrics
        .triggered_stages
        .get_or_create(&metrics::TriggerLabels {
            trigger: stage.trigger.label().into(),
            result: result.into(),
        })
        .inc();
    tracing::info!(plan = %format!("{namespace}/{}", plan.name_any()), migration = %stage.name, trigger = stage.trigger.label(), "stage migration created");
    publish(
        ctx,
        plan,
        EventType::Normal,
        "StageTriggered",
        format!(
            "Stage migration {} created by the {} trigger.",
            stage.name,
            stage.trigger.label()
        ),
    )
    .await;
    Ok(())
}

async fn publish(ctx: &Context, plan: &MigPlan, type_: EventType, reason: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Trigger".into(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &plan.object_ref(&())).await {
        tracing::debug!(error = %err, "publishing an event failed");
    }
}
