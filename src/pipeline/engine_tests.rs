//! Unit tests of the pure itinerary engine.

use super::*;

fn at(secs: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + secs).unwrap())
}

fn started(itinerary: Itinerary) -> MigMigrationStatus {
    let mut status = MigMigrationStatus::default();
    start(&mut status, itinerary, &[], &at(0));
    status
}

fn done() -> StepOutcome {
    StepOutcome::Done(String::new())
}

fn running(status: &MigMigrationStatus) -> Option<String> {
    condition::find(&status.conditions, "Running").and_then(|c| c.message.clone())
}

#[test]
fn a_stage_walks_every_step_and_succeeds() {
    let mut status = started(Itinerary::Stage);
    let total = Itinerary::Stage.steps().len();
    assert_eq!(current_step(&status).map(|(_, n)| n).as_deref(), Some("Prepare"));
    for i in 0..total {
        let (next_status, next) = advance(&status, done(), &at(i as i64), &at(i as i64 + 1));
        status = next_status;
        if i + 1 < total {
            assert_eq!(next, Next::Continue);
            assert_eq!(running(&status), Some(format!("Step: {}/{total}", i + 2)));
        } else {
            assert_eq!(next, Next::Finished);
        }
    }
    assert!(condition::is_true(&status.conditions, "Succeeded"));
    assert!(condition::find(&status.conditions, "Running").is_none());
    assert_eq!(status.phase.as_deref(), Some("Completed"));
    assert!(
        status
            .pipeline
            .iter()
            .all(|s| s.completed.is_some() && s.started.is_some())
    );
}

#[test]
fn in_progress_keeps_the_step_and_its_progress() {
    let status = started(Itinerary::Stage);
    let outcome = StepOutcome::InProgress {
        message: "Transferring".into(),
        progress: vec!["1.0 GiB of 2.0 GiB".into()],
        after: Duration::from_secs(2),
    };
    let (status, next) = advance(&status, outcome, &at(1), &at(2));
    assert_eq!(next, Next::RequeueAfter(Duration::from_secs(2)));
    assert_eq!(current_step(&status).unwrap().0, 0);
    assert_eq!(status.pipeline[0].progress, ["1.0 GiB of 2.0 GiB"]);
    assert_eq!(
        status.pipeline[0].started.as_deref(),
        Some(at(1).0.to_string().as_str())
    );
    // A later report keeps the first start time.
    let (status, _) = advance(&status, done(), &at(5), &at(6));
    assert_eq!(
        status.pipeline[0].started.as_deref(),
        Some(at(1).0.to_string().as_str())
    );
}

#[test]
fn retries_are_bounded_then_fail_the_migration() {
    let mut status = started(Itinerary::Stage);
    let retry = || StepOutcome::Retry {
        reason: "connection reset".into(),
        after: Duration::from_secs(1),
    };
    for attempt in 1..=MAX_RETRIES {
        let (next_status, next) = advance(&status, retry(), &at(0), &at(1));
        status = next_status;
        assert_eq!(next, Next::RequeueAfter(Duration::from_secs(1)));
        assert_eq!(status.pipeline[0].retries, attempt);
    }
    let (status, next) = advance(&status, retry(), &at(0), &at(1));
    assert_eq!(next, Next::Finished);
    let failed = condition::find(&status.conditions, "Failed").unwrap();
    assert!(failed.durable && failed.message.as_deref().unwrap().contains("gave up"));
    assert_eq!(current_step(&status), None);
}

#[test]
fn a_permanent_failure_stops_at_that_step_with_the_cause() {
    let mut status = started(Itinerary::Final);
    // Prepare, CreateDestinationNamespaces, CreateDestinationPVCs.
    for i in 0..3 {
        status = advance(&status, done(), &at(i), &at(i + 1)).0;
    }
    let (status, next) = advance(
        &status,
        StepOutcome::Failed("rsync exited 23".into()),
        &at(3),
        &at(4),
    );
    assert_eq!(next, Next::Finished);
    assert!(status.pipeline[3].failed);
    assert_eq!(status.errors, ["StageSync failed: rsync exited 23"]);
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    // Advancing a finished migration changes nothing.
    let (again, next) = advance(&status, done(), &at(3), &at(4));
    assert_eq!((again, next), (status, Next::Finished));
}

#[test]
fn the_downtime_window_runs_from_quiesce_to_dns_verification() {
    let mut status = started(Itinerary::Final);
    let mut clock = 0;
    while let Some((_, name)) = current_step(&status) {
        let outcome = if name == "Verify" {
            StepOutcome::Skipped("verify is off".into())
        } else {
            done()
        };
        let took = if name == "FinalSync" { 7 } else { 1 };
        status = advance(&status, outcome, &at(clock), &at(clock + took)).0;
        clock += took;
    }
    let window = status.downtime.unwrap();
    // QuiesceSource starts at t=6 (after Prepare, the two destination steps, StageSync, LowerDNSTTL,
    // PreBackupHooks); VerifyDNS ends at t=23 (the other three hook steps are inside the window).
    assert_eq!(window.start, at(6).0.to_string());
    assert_eq!(window.seconds, Some(17.0));
    assert!(
        status
            .pipeline
            .iter()
            .find(|s| s.name == "Verify")
            .unwrap()
            .skipped
    );
}

#[test]
fn a_skipped_dns_verification_still_closes_the_window() {
    let mut status = started(Itinerary::Final);
    let mut clock = 0;
    while let Some((_, name)) = current_step(&status) {
        let dns = ["LowerDNSTTL", "FlipDNS", "VerifyDNS"].contains(&name.as_str());
        let outcome = if dns {
            StepOutcome::Skipped("no dns configured".into())
        } else {
            done()
        };
        status = advance(&status, outcome, &at(clock), &at(clock + 1)).0;
        clock += 1;
    }
    assert!(status.downtime.unwrap().seconds.is_some());
}

#[test]
fn start_is_idempotent_so_a_restarted_controller_resumes() {
    let status = started(Itinerary::Rollback);
    let (mut status, _) = advance(&status, done(), &at(0), &at(1));
    let before = status.clone();
    start(&mut status, Itinerary::Rollback, &[], &at(50));
    assert_eq!(status, before);
    assert_eq!(current_step(&status).unwrap().1, "RestoreDNS");
}

#[test]
fn a_warning_completes_the_step_and_leaves_a_durable_warn_condition() {
    let status = started(Itinerary::Stage);
    let (status, next) = advance(
        &status,
        StepOutcome::Warned {
            message: "Nothing to start.".into(),
            warning: Warning::NoTargetWorkloads("app".into()),
        },
        &at(0),
        &at(1),
    );
    assert_eq!(next, Next::Continue);
    assert!(status.pipeline[0].completed.is_some() && !status.pipeline[0].failed);
    let warning = condition::find(&status.conditions, "NoTargetWorkloads").expect("the warning");
    assert_eq!(warning.category, Category::Warn);
    assert!(warning.durable);
}

#[test]
fn the_volume_set_is_fixed_when_the_migration_starts() {
    let volume = |name: &str| crate::api::plan::DiscoveredVolume {
        name: name.into(),
        namespace: "app".into(),
        uid: Some(format!("uid-{name}")),
        ..Default::default()
    };
    let mut status = MigMigrationStatus::default();
    start(&mut status, Itinerary::Stage, &[volume("a")], &at(0));
    // A PVC appears: a restarted controller calls start again with the plan's new discovery.
    start(&mut status, Itinerary::Stage, &[volume("a"), volume("b")], &at(5));
    assert_eq!(status.volumes, Some(vec![volume("a")]));
}
