//! One plan's trigger decision at one instant: given the spec, what the status remembers, the newest
//! push observed and which migrations of the plan are unfinished, decide which stage to create (at
//! most one), which fires are skipped, the new `status.triggers` and when to look again. Pure: the
//! reconciler (`controller::plan::triggers`) observes and applies, so every rule is unit-tested with a
//! pinned clock.
//!
//! ```text
//!  schedule fire due ─┬─ plan idle ────────────▶ create <plan>-scheduled-<minute>
//!                     ├─ that stage exists ────▶ nothing (created on an earlier pass)
//!                     └─ busy / cut over / not ready ▶ skipped, counted
//!  push pending ──────┬─ debounce not over ────▶ wake when it is
//!  (newer than        ├─ plan idle ────────────▶ create <plan>-push-<unix second>  (or ride along
//!   pushHandled)      │                           with a stage created at the same instant)
//!                     ├─ busy / not ready ─────▶ held: one follow-up however many pushes arrive
//!                     └─ cut over ─────────────▶ dropped (a stage would overwrite the target)
//! ```

use std::time::Duration;

use jiff::Timestamp;

use super::schedule::{Schedule, scheduled_stage_name};
use crate::api::plan::{PushRecord, TriggerStatus};

/// How long to wait before looking again while a pushed stage waits for the plan to be free.
pub const BUSY_RECHECK: Duration = Duration::from_secs(10);

/// What the plan's migrations allow right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// Names of the plan's migrations that have not finished.
    pub unfinished: Vec<String>,
    /// The newest successful non-stage migration was a cutover (not a rollback): automatic stages
    /// would overwrite the target's live data, so none run until a rollback.
    pub cut_over: bool,
    /// The plan is Ready (a stage created now could run).
    pub plan_ready: bool,
}

/// Why a scheduled fire started no stage (the metric's `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// Another migration of the plan had not finished.
    Busy,
    /// The controller was down over several fires; only the latest was caught up.
    Missed,
    /// The plan was cut over.
    CutOver,
    /// The plan was not Ready.
    NotReady,
}

impl Skip {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Skip::Busy => "skipped_busy",
            Skip::Missed => "skipped_missed",
            Skip::CutOver => "skipped_cut_over",
            Skip::NotReady => "skipped_not_ready",
        }
    }
}

/// What triggered a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `spec.schedule` fired.
    Schedule,
    /// A push touched the watched paths.
    Push,
}

impl Trigger {
    /// Metric and label value.
    pub fn label(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Push => "push",
        }
    }
}

/// A stage migration to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStage {
    /// Deterministic name: creating it twice is an AlreadyExists, never a second stage.
    pub name: String,
    /// Why it is created.
    pub trigger: Trigger,
}

/// The inputs of one decision.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The plan's name (stage names derive from it).
    pub plan: &'a str,
    /// `spec.schedule`, already validated (an invalid one is a plan condition, passed as `None`).
    pub schedule: Option<(&'a Schedule, String)>,
    /// `spec.triggers.onPush`.
    pub on_push: bool,
    /// Quiet time after the last push of a burst.
    pub debounce: Duration,
    /// The newest push observed this pass (webhook annotation or poll), if any.
    pub pushed: Option<PushRecord>,
    /// `status.triggers` as stored.
    pub previous: &'a TriggerStatus,
    /// The plan's migrations.
    pub activity: &'a Activity,
    /// The instant of this pass.
    pub now: Timestamp,
}

/// The outcome of one decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// The new `status.triggers`.
    pub status: TriggerStatus,
    /// The new `status.nextScheduledStage` (RFC 3339), `None` without a usable schedule.
    pub next_scheduled_stage: Option<String>,
    /// The stage to create now.
    pub create: Option<NewStage>,
    /// Fires skipped at this pass, by reason.
    pub skipped: Vec<(Skip, u64)>,
    /// When to look again (next fire, end of a debounce window, busy re-check).
    pub wake_after: Option<Duration>,
}

/// Decides what the triggers do at `inputs.now`.
pub fn decide(inputs: &Inputs<'_>) -> Decision {
    let mut decision = Decision {
        status: inputs.previous.clone(),
        ..Decision::default()
    };
    decide_schedule(inputs, &mut decision);
    decide_push(inputs, &mut decision);
    if let Some(stage) = &decision.create {
        decision.status.last_triggered_stage = Some(stage.name.clone());
    }
    decision
}

fn decide_schedule(inputs: &Inputs<'_>, decision: &mut Decision) {
    let status = &mut decision.status;
    let Some((schedule, key)) = &inputs.schedule else {
        status.schedule = None;
        status.schedule_checkpoint = None;
        return;
    };
    let checkpoint = status
        .schedule_checkpoint
        .as_deref()
        .and_then(|text| text.parse::<Timestamp>().ok())
        .filter(|_| status.schedule.as_deref() == Some(key.as_str()));
    let Some(checkpoint) = checkpoint else {
        // A new or changed schedule starts now: nothing from the past is caught up.
        status.schedule = Some(key.clone());
        status.schedule_checkpoint = Some(format_time(inputs.now));
        set_next(decision, schedule.next_after(inputs.now), inputs.now);
        return;
    };
    let evaluation = schedule.evaluate(checkpoint, inputs.now);
    if let Some(fire) = evaluation.due {
        decision.status.schedule_checkpoint = Some(format_time(fire));
        if evaluation.missed > 0 {
            decision.skipped.push((Skip::Missed, evaluation.missed as u64));
        }
        let name = scheduled_stage_name(inputs.plan, fire);
        match blocked(inputs.activity, &name) {
            Blocked::No => {
                decision.create = Some(NewStage {
                    name,
                    trigger: Trigger::Schedule,
                })
            }
            Blocked::AlreadyCreated => {}
            Blocked::By(skip) => decision.skipped.push((skip, 1)),
        }
        let skipped: u64 = decision.skipped.iter().map(|(_, n)| n).sum();
        decision.status.skipped_scheduled_stages += skipped;
    }
    set_next(decision, evaluation.next, inputs.now);
}

fn decide_push(inputs: &Inputs<'_>, decision: &mut Decision) {
    if !inputs.on_push {
        return;
    }
    let status = &mut decision.status;
    if let Some(pushed) = &inputs.pushed {
        let newer = match &status.last_push {
            None => true,
            Some(last) => parse(&pushed.time) > parse(&last.time),
        };
        if newer {
            status.last_push = Some(pushed.clone());
        }
    }
    let Some(last_push) = status.last_push.clone() else {
        return;
    };
    let Some(pushed_at) = parse(&last_push.time) else {
        return;
    };
    let handled = status.push_handled.as_deref().and_then(parse);
    if handled.is_some_and(|handled| handled >= pushed_at) {
        return;
    }
    let due_at = pushed_at
        .saturating_add(jiff_span(inputs.debounce))
        .unwrap_or(Timestamp::MAX);
    if inputs.now < due_at {
        let wait = due_at.duration_since(inputs.now).unsigned_abs();
        wake(decision, wait);
        return;
    }
    let name = push_stage_name(inputs.plan, pushed_at);
    let riding_along = decision.create.is_some();
    match blocked(inputs.activity, &name) {
        Blocked::By(Skip::CutOver) | Blocked::AlreadyCreated => {}
        Blocked::No if riding_along => {}
        Blocked::No => {
            decision.create = Some(NewStage {
                name,
                trigger: Trigger::Push,
            })
        }
        Blocked::By(_) => {
            wake(decision, BUSY_RECHECK);
            return;
        }
    }
    decision.status.push_handled = Some(last_push.time);
}

enum Blocked {
    No,
    AlreadyCreated,
    By(Skip),
}

fn blocked(activity: &Activity, name: &str) -> Blocked {
    if activity.unfinished.iter().any(|running| running == name) {
        Blocked::AlreadyCreated
    } else if activity.cut_over {
        Blocked::By(Skip::CutOver)
    } else if !activity.plan_ready {
        Blocked::By(Skip::NotReady)
    } else if !activity.unfinished.is_empty() {
        Blocked::By(Skip::Busy)
    } else {
        Blocked::No
    }
}

fn set_next(decision: &mut Decision, next: Option<Timestamp>, now: Timestamp) {
    decision.next_scheduled_stage = next.map(super::schedule::rfc3339);
    if let Some(next) = next {
        wake(decision, next.duration_since(now).unsigned_abs());
    }
}

fn wake(decision: &mut Decision, after: Duration) {
    decision.wake_after = Some(match decision.wake_after {
        Some(current) => current.min(after),
        None => after,
    });
}

/// The stage migration's name for a push noticed at `pushed_at`.
pub fn push_stage_name(plan: &str, pushed_at: Timestamp) -> String {
    let plan: String = plan.chars().take(200).collect();
    format!("{plan}-push-{}", pushed_at.as_second())
}

/// RFC 3339 in UTC with milliseconds: how push times are stored.
pub fn format_time(instant: Timestamp) -> String {
    instant.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn parse(text: &str) -> Option<Timestamp> {
    text.parse().ok()
}

fn jiff_span(duration: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::MAX)
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
