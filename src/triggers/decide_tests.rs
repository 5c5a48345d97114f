//! The trigger decision with a pinned clock: schedule fires, skips, catch-up, debounce, follow-ups,
//! idempotence across passes, and no stage after a cutover.

use super::*;

fn at(text: &str) -> Timestamp {
    text.parse().expect("test timestamp")
}

fn idle() -> Activity {
    Activity {
        plan_ready: true,
        ..Activity::default()
    }
}

fn running(name: &str) -> Activity {
    Activity {
        unfinished: vec![name.to_string()],
        plan_ready: true,
        ..Activity::default()
    }
}

fn cut_over() -> Activity {
    Activity {
        cut_over: true,
        plan_ready: true,
        ..Activity::default()
    }
}

const EVERY_5: &str = "*/5 * * * * (UTC)";

fn with_schedule<'a>(
    schedule: &'a Schedule,
    previous: &'a TriggerStatus,
    activity: &'a Activity,
    now: &str,
) -> Inputs<'a> {
    Inputs {
        plan: "shop",
        schedule: Some((schedule, EVERY_5.to_string())),
        on_push: false,
        debounce: Duration::from_secs(10),
        pushed: None,
        previous,
        activity,
        now: at(now),
    }
}

fn checkpointed(at_text: &str) -> TriggerStatus {
    TriggerStatus {
        schedule: Some(EVERY_5.into()),
        schedule_checkpoint: Some(at_text.into()),
        ..TriggerStatus::default()
    }
}

#[test]
fn a_new_schedule_starts_now_without_catching_up_the_past() {
    let schedule = Schedule::parse("*/5 * * * *", None).unwrap();
    let previous = TriggerStatus::default();
    let activity = idle();
    let decision = decide(&with_schedule(
        &schedule,
        &previous,
        &activity,
        "2026-11-22T10:03:10Z",
    ));
    assert_eq!(decision.create, None);
    assert_eq!(
        decision.status.schedule_checkpoint.as_deref(),
        Some("2026-11-22T10:03:10.000Z")
    );
    assert_eq!(
        decision.next_scheduled_stage.as_deref(),
        Some("2026-11-22T10:05:00Z")
    );
    assert_eq!(decision.wake_after, Some(Duration::from_secs(110)));
}

#[test]
fn a_due_fire_creates_one_named_stage_and_moves_the_checkpoint() {
    let schedule = Schedule::parse("*/5 * * * *", None).unwrap();
    let previous = checkpointed("2026-11-22T10:03:10.000Z");
    let activity = idle();
    let decision = decide(&with_schedule(
        &schedule,
        &previous,
        &activity,
        "2026-11-22T10:05:02Z",
    ));
    let fire = at("2026-11-22T10:05:00Z");
    assert_eq!(
        decision.create,
        Some(NewStage {
            name: scheduled_stage_name("shop", fire),
            trigger: Trigger::Schedule
        })
    );
    assert_eq!(
        decision.status.schedule_checkpoint.as_deref(),
        Some("2026-11-22T10:05:00.000Z")
    );
    assert_eq!(
        decision.next_scheduled_stage.as_deref(),
        Some("2026-11-22T10:10:00Z")
    );
    assert_eq!(
        decision.status.last_triggered_stage,
        Some(scheduled_stage_name("shop", fire))
    );

    // The same pass repeated (crash after creating, before the status write) names the same stage,
    // which now exists: nothing is created or skipped.
    let created = running(&scheduled_stage_name("shop", fire));
    let again = decide(&with_schedule(
        &schedule,
        &previous,
        &created,
        "2026-11-22T10:05:03Z",
    ));
    assert_eq!(again.create, None);
    assert!(again.skipped.is_empty());
    // And with the status written, the fire is no longer due.
    let after = decide(&with_schedule(
        &schedule,
        &decision.status,
        &activity,
        "2026-11-22T10:06:00Z",
    ));
    assert_eq!(after.create, None);
}

#[test]
fn a_fire_while_a_migration_runs_is_skipped_and_counted_not_queued() {
    let schedule = Schedule::parse("*/5 * * * *", None).unwrap();
    let previous = checkpointed("2026-11-22T10:00:00.000Z");
    let activity = running("shop-cutover");
    let decision = decide(&with_schedule(
        &schedule,
        &previous,
        &activity,
        "2026-11-22T10:05:01Z",
    ));
    assert_eq!(decision.create, None);
    assert_eq!(decision.skipped, vec![(Skip::Busy, 1)]);
    assert_eq!(decision.status.skipped_scheduled_stages, 1);
    // Once the migration ends, the skipped fire is not run late: the next stage is the next fire.
    let later = decide(&with_schedule(
        &schedule,
        &decision.status,
        &idle(),
        "2026-11-22T10:07:00Z",
    ));
    assert_eq!(later.create, None);
    assert_eq!(
        later.next_scheduled_stage.as_deref(),
        Some("2026-11-22T10:10:00Z")
    );
}

#[test]
fn downtime_catches_up_once_and_counts_the_missed_fires() {
    let schedule = Schedule::parse("*/5 * * * *", None).unwrap();
    let previous = checkpointed("2026-11-22T10:00:00.000Z");
    let activity = idle();
    let decision = decide(&with_schedule(
        &schedule,
        &previous,
        &activity,
        "2026-11-22T10:21:00Z",
    ));
    assert_eq!(
        decision.create.map(|stage| stage.name),
        Some(scheduled_stage_name("shop", at("2026-11-22T10:20:00Z")))
    );
    assert_eq!(decision.skipped, vec![(Skip::Missed, 3)]);
    assert_eq!(decision.status.skipped_scheduled_stages, 3);
}

#[test]
fn a_changed_schedule_gets_a_fresh_checkpoint() {
    let schedule = Schedule::parse("0 * * * *", None).unwrap();
    let previous = checkpointed("2026-11-22T08:00:00.000Z");
    let activity = idle();
    let mut inputs = with_schedule(&schedule, &previous, &activity, "2026-11-22T12:30:00Z");
    inputs.schedule = Some((&schedule, "0 * * * * (UTC)".into()));
    let decision = decide(&inputs);
    assert_eq!(
        decision.create, None,
        "no catch-up for a schedule that was not in force"
    );
    assert_eq!(decision.status.schedule.as_deref(), Some("0 * * * * (UTC)"));
}

#[test]
fn no_schedule_clears_its_state() {
    let previous = checkpointed("2026-11-22T08:00:00.000Z");
    let activity = idle();
    let decision = decide(&Inputs {
        plan: "shop",
        schedule: None,
        on_push: false,
        debounce: Duration::ZERO,
        pushed: None,
        previous: &previous,
        activity: &activity,
        now: at("2026-11-22T12:30:00Z"),
    });
    assert_eq!(decision.status, TriggerStatus::default());
    assert_eq!((decision.next_scheduled_stage, decision.wake_after), (None, None));
}

fn push(revision: &str, time: &str) -> PushRecord {
    PushRecord {
        revision: revision.into(),
        time: time.into(),
    }
}

fn on_push<'a>(
    previous: &'a TriggerStatus,
    activity: &'a Activity,
    pushed: Option<PushRecord>,
    now: &str,
) -> Inputs<'a> {
    Inputs {
        plan: "shop",
        schedule: None,
        on_push: true,
        debounce: Duration::from_secs(10),
        pushed,
        previous,
        activity,
        now: at(now),
    }
}

/// Runs passes at the given instants, feeding each one's status into the next.
fn passes(
    mut status: TriggerStatus,
    activity: &Activity,
    steps: &[(Option<PushRecord>, &str)],
) -> (TriggerStatus, Vec<NewStage>) {
    let mut created = Vec::new();
    for (pushed, now) in steps {
        let decision = decide(&on_push(&status, activity, pushed.clone(), now));
        created.extend(decision.create.clone());
        status = decision.status;
    }
    (status, created)
}

#[test]
fn a_burst_of_pushes_yields_one_stage_after_the_quiet_window() {
    let activity = idle();
    let (status, created) = passes(
        TriggerStatus::default(),
        &activity,
        &[
            (
                Some(push("a1", "2026-11-22T10:00:00.000Z")),
                "2026-11-22T10:00:00Z",
            ),
            (
                Some(push("a2", "2026-11-22T10:00:03.000Z")),
                "2026-11-22T10:00:03Z",
            ),
            (
                Some(push("a3", "2026-11-22T10:00:06.000Z")),
                "2026-11-22T10:00:06Z",
            ),
            (None, "2026-11-22T10:00:15Z"),
            (None, "2026-11-22T10:00:16Z"),
            (None, "2026-11-22T10:01:00Z"),
        ],
    );
    assert_eq!(
        created,
        vec![NewStage {
            name: push_stage_name("shop", at("2026-11-22T10:00:06Z")),
            trigger: Trigger::Push
        }]
    );
    assert_eq!(status.last_push.unwrap().revision, "a3");
    assert_eq!(status.push_handled.as_deref(), Some("2026-11-22T10:00:06.000Z"));
}

#[test]
fn the_window_restarts_with_each_push_and_says_when_to_wake() {
    let previous = TriggerStatus::default();
    let activity = idle();
    let decision = decide(&on_push(
        &previous,
        &activity,
        Some(push("a1", "2026-11-22T10:00:00.000Z")),
        "2026-11-22T10:00:04Z",
    ));
    assert_eq!(decision.create, None);
    assert_eq!(decision.wake_after, Some(Duration::from_secs(6)));
}

#[test]
fn pushes_during_a_running_stage_give_one_follow_up() {
    let busy = running("shop-stage-1");
    let (status, created) = passes(
        TriggerStatus::default(),
        &busy,
        &[
            (
                Some(push("a1", "2026-11-22T10:00:00.000Z")),
                "2026-11-22T10:00:00Z",
            ),
            (
                Some(push("a2", "2026-11-22T10:00:20.000Z")),
                "2026-11-22T10:00:20Z",
            ),
            (None, "2026-11-22T10:01:00Z"),
        ],
    );
    assert!(created.is_empty(), "held while the plan is busy");
    let held = decide(&on_push(&status, &busy, None, "2026-11-22T10:01:10Z"));
    assert_eq!(held.wake_after, Some(BUSY_RECHECK));
    let (status, created) = passes(
        status,
        &idle(),
        &[(None, "2026-11-22T10:02:00Z"), (None, "2026-11-22T10:03:00Z")],
    );
    assert_eq!(created.len(), 1, "exactly one follow-up: {created:?}");
    assert_eq!(status.last_push.unwrap().revision, "a2");
}

#[test]
fn an_older_push_record_never_replaces_a_newer_one() {
    let previous = TriggerStatus {
        last_push: Some(push("new", "2026-11-22T10:00:10.000Z")),
        ..TriggerStatus::default()
    };
    let activity = idle();
    let decision = decide(&on_push(
        &previous,
        &activity,
        Some(push("old", "2026-11-22T10:00:01.000Z")),
        "2026-11-22T10:00:12Z",
    ));
    assert_eq!(decision.status.last_push.unwrap().revision, "new");
}

#[test]
fn after_a_cutover_pushes_are_dropped_and_fires_skipped() {
    let activity = cut_over();
    let (status, created) = passes(
        TriggerStatus::default(),
        &activity,
        &[
            (
                Some(push("a1", "2026-11-22T10:00:00.000Z")),
                "2026-11-22T10:00:00Z",
            ),
            (None, "2026-11-22T10:00:30Z"),
        ],
    );
    assert!(created.is_empty());
    assert_eq!(
        status.push_handled.as_deref(),
        Some("2026-11-22T10:00:00.000Z"),
        "dropped, not held"
    );

    let schedule = Schedule::parse("*/5 * * * *", None).unwrap();
    let previous = checkpointed("2026-11-22T10:00:00.000Z");
    let decision = decide(&with_schedule(
        &schedule,
        &previous,
        &activity,
        "2026-11-22T10:05:01Z",
    ));
    assert_eq!(
        (decision.create, decision.skipped),
        (None, vec![(Skip::CutOver, 1)])
    );
}

#[test]
fn a_push_due_with_a_scheduled_fire_rides_along_in_one_stage() {
    let schedule = Schedule::parse("*/5 * * * *", None).unwrap();
    let previous = TriggerStatus {
        last_push: Some(push("a1", "2026-11-22T10:04:00.000Z")),
        ..checkpointed("2026-11-22T10:00:00.000Z")
    };
    let activity = idle();
    let mut inputs = with_schedule(&schedule, &previous, &activity, "2026-11-22T10:05:01Z");
    inputs.on_push = true;
    let decision = decide(&inputs);
    assert_eq!(
        decision.create.map(|stage| stage.trigger),
        Some(Trigger::Schedule)
    );
    assert_eq!(
        decision.status.push_handled.as_deref(),
        Some("2026-11-22T10:04:00.000Z")
    );
}

#[test]
fn an_unready_plan_holds_pushes_and_skips_fires() {
    let activity = Activity::default();
    let previous = TriggerStatus {
        last_push: Some(push("a1", "2026-11-22T10:00:00.000Z")),
        ..TriggerStatus::default()
    };
    let decision = decide(&on_push(&previous, &activity, None, "2026-11-22T10:01:00Z"));
    assert_eq!((decision.create, decision.status.push_handled), (None, None));
}
