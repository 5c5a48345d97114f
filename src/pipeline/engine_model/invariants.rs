//! The promises the model test checks after every event, against the status as stored and the model
//! world (see the parent module).

use super::*;

impl Model {
    /// Every promise, after every event.
    pub(super) fn check(&mut self) {
        let status = self.stored();
        self.check_world(&status);
        self.check_pipeline(&status);
        self.check_end(&status);
        check_downtime(&status, &self.world);
        // Warnings and the verdict are durable (a reconcile's fold of conditions keeps them) and stay.
        let durable =
            |c: &&Condition| c.category == Category::Warn || ["Succeeded", "Failed"].contains(&&*c.type_);
        for kept in status.conditions.iter().filter(durable) {
            assert!(kept.durable, "{} is not durable", kept.type_);
        }
        for warning in self.previous.conditions.iter().filter(durable) {
            let still = status.conditions.iter().any(|c| c.type_ == warning.type_);
            assert!(still, "the condition {} went away", warning.type_);
        }
        self.previous = status;
    }

    fn check_world(&self, status: &MigMigrationStatus) {
        let world = &self.world;
        // 1. Nothing stranded: the way back is recorded before the source stops.
        assert!(
            !world.source_quiesced || world.way_back_recorded,
            "the source is quiesced without a recorded way back: {world:?}"
        );
        assert!(
            !world.target_live || world.source_quiesced,
            "the app runs on both sides: {world:?}"
        );
        assert!(
            !world.target_live || world.cutover_recorded,
            "the target is live but the plan has no cutover record: {world:?}"
        );
        assert!(
            !world.dns_flipped || world.target_live,
            "DNS points at a stopped target: {world:?}"
        );
        assert!(
            !world.synced_while_serving,
            "a FinalSync copied a source still serving"
        );
        // A failed PreBackup hook stops the cutover with the source app still serving.
        let pre_backup = status.pipeline.iter().find(|s| s.name == Step::PreBackupHooks);
        if self.spec.itinerary == Itinerary::Final && pre_backup.is_some_and(|s| s.failed) {
            assert!(
                !world.source_quiesced && !world.quiesce_ran,
                "the source was stopped after its PreBackup hook failed: {world:?}"
            );
        }
        // 2. DNS is flipped only after this migration's FinalSync copied every one of its volumes with the
        // source stopped, and the requested Verify passed (a rollback starts from an earlier flip).
        if self.spec.itinerary == Itinerary::Final && world.dns_flipped {
            assert!(self.spec.quiesce, "quiescePods: false flipped DNS");
            let final_sync = entry(status, Step::FinalSync);
            assert!(
                final_sync.completed.is_some() && !final_sync.failed,
                "DNS flipped before FinalSync completed: {final_sync:?}"
            );
            let volumes: Vec<String> = status.volumes.iter().flatten().map(|v| v.name.clone()).collect();
            if volumes.is_empty() {
                assert!(final_sync.skipped, "FinalSync of no volumes: {final_sync:?}");
            } else {
                assert!(!final_sync.skipped, "FinalSync skipped with volumes {volumes:?}");
                assert_eq!(
                    world.final_synced.as_ref(),
                    Some(&volumes),
                    "DNS flipped without a final copy of the migration's volumes"
                );
            }
            let verify = entry(status, Step::Verify);
            let verified = verify.completed.is_some() && !verify.failed;
            let requested = self.spec.verify && !volumes.is_empty();
            assert!(
                verified && verify.skipped != requested,
                "DNS flipped with {verify:?}"
            );
        }
    }

    fn check_pipeline(&mut self, status: &MigMigrationStatus) {
        if status.pipeline.is_empty() {
            // Nothing was written yet (a crash in the first step): nothing to say.
            assert_eq!(status, &MigMigrationStatus::default());
            return;
        }
        let steps = self.spec.itinerary.steps();
        let names: Vec<&str> = status.pipeline.iter().map(|s| s.name.as_str()).collect();
        let expected: Vec<&str> = steps.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, expected, "the pipeline is not the itinerary's");
        assert_eq!(status.itinerary, Some(self.spec.itinerary));
        // 6. The volume set is the one the steps acted on, fixed by the first status written.
        let volumes = status
            .volumes
            .clone()
            .expect("a started migration lists its volumes");
        if let Some(before) = &self.previous.volumes {
            assert_eq!(
                &volumes, before,
                "the volume set changed after the migration started"
            );
        }
        if let Some(acted_on) = &self.acted_on {
            assert_eq!(
                &volumes, acted_on,
                "the steps acted on other volumes than the status lists"
            );
        }
        // 5. Retries are bounded; a step's start and completion never change once written.
        for (new, old) in status.pipeline.iter().zip(&self.previous.pipeline) {
            assert!(
                new.retries <= MAX_RETRIES,
                "{} retried {} times",
                new.name,
                new.retries
            );
            if old.started.is_some() {
                assert_eq!(new.started, old.started, "{} started again", new.name);
            }
            if old.completed.is_some() {
                assert_eq!(new.completed, old.completed, "{} completed again", new.name);
            }
        }
        let total = steps.len();
        let running = condition::find(&status.conditions, "Running");
        let succeeded = condition::is_true(&status.conditions, "Succeeded");
        let failed = condition::is_true(&status.conditions, "Failed");
        match current_step(status) {
            Some((index, name)) => {
                for done in &status.pipeline[..index] {
                    assert!(
                        done.completed.is_some() && done.started.is_some() && !done.failed,
                        "{done:?}"
                    );
                }
                for later in &status.pipeline[index + 1..] {
                    let untouched = PipelineStep::not_started(Step::parse(&later.name).unwrap());
                    assert_eq!(later, &untouched, "a step after the current {name} ran");
                }
                let running = running.expect("a running migration has Running");
                assert_eq!(
                    running.message.as_deref(),
                    Some(format!("Step: {}/{total}", index + 1).as_str())
                );
                assert_eq!(running.reason.as_deref(), Some(name.as_str()));
                assert_eq!(status.phase.as_deref(), Some(name.as_str()));
                assert!(
                    !succeeded && !failed,
                    "a running migration has ended: {:?}",
                    status.conditions
                );
            }
            None => {
                assert!(running.is_none(), "a finished migration is Running");
                assert!(succeeded != failed, "neither or both of Succeeded and Failed");
            }
        }
        // 3. No silent success: every step completed, and a skipped one says why.
        if succeeded {
            assert_eq!(status.phase.as_deref(), Some("Completed"));
            assert!(status.errors.is_empty() && !failed);
            for step in &status.pipeline {
                assert!(
                    step.completed.is_some() && !step.failed,
                    "Succeeded with {step:?}"
                );
                if step.skipped {
                    let message = step.message.as_deref().unwrap_or_default();
                    let reason = message.strip_prefix("Skipped: ").unwrap_or_default();
                    assert!(
                        !reason.trim().is_empty(),
                        "{} skipped without a reason: {message:?}",
                        step.name
                    );
                }
            }
        }
        if failed {
            let failed_steps: Vec<&PipelineStep> = status.pipeline.iter().filter(|s| s.failed).collect();
            assert_eq!(failed_steps.len(), 1, "Failed with {failed_steps:?}");
            let cause = format!("{} failed: ", failed_steps[0].name);
            assert!(
                status.errors.iter().any(|e| e.starts_with(&cause)),
                "{:?}",
                status.errors
            );
            assert_eq!(status.phase.as_deref(), Some("Failed"));
        }
    }

    /// 4. A finished migration never runs a step again, and leaves the world as its itinerary promises.
    fn check_end(&mut self, status: &MigMigrationStatus) {
        let ended = ["Succeeded", "Failed"]
            .iter()
            .any(|c| condition::is_true(&status.conditions, c));
        if !ended {
            return;
        }
        assert_eq!(
            current_step(status),
            None,
            "a finished migration has a step to run"
        );
        for outcome in [
            StepOutcome::Done(String::new()),
            StepOutcome::Failed("late".into()),
        ] {
            let after = advance(status, outcome, &at_ms(self.clock_ms), &at_ms(self.clock_ms + 1));
            assert_eq!(
                after,
                (status.clone(), Next::Finished),
                "advance changed a finished migration"
            );
        }
        if let Some((at_end, world)) = &self.finished {
            assert_eq!(status, at_end, "the status of a finished migration changed");
            assert_eq!(&self.world, world, "a finished migration changed the world");
            return;
        }
        self.finished = Some((status.clone(), self.world.clone()));
        if !condition::is_true(&status.conditions, "Succeeded") {
            return;
        }
        let world = &self.world;
        let untouched = !world.source_quiesced && !world.target_live && !world.dns_flipped;
        match (self.spec.itinerary, self.spec.quiesce) {
            (Itinerary::Stage, _) => assert_eq!(world, &World::default(), "a stage changed the app"),
            (Itinerary::Final, true) => {
                assert!(
                    world.source_quiesced && world.target_live && world.cutover_recorded,
                    "{world:?}"
                );
                assert_eq!(world.dns_flipped, self.spec.dns, "{world:?}");
                let volumes: Vec<String> = status.volumes.iter().flatten().map(|v| v.name.clone()).collect();
                if !volumes.is_empty() {
                    assert_eq!(world.final_synced.as_ref(), Some(&volumes));
                }
            }
            (Itinerary::Final, false) => {
                assert!(
                    untouched && !world.cutover_recorded && !world.quiesce_ran,
                    "{world:?}"
                );
                assert!(condition::find(&status.conditions, "SourceNotQuiesced").is_some());
            }
            (Itinerary::Rollback, _) => {
                assert!(untouched && !world.way_back_recorded, "a rollback left {world:?}");
                assert!(!world.cutover_recorded, "a rollback left the cutover record");
            }
        }
    }
}

/// The step's entry and the next action are what `outcome` says.
pub(super) fn check_transition(
    outcome: &StepOutcome,
    before: &PipelineStep,
    status: &MigMigrationStatus,
    index: usize,
    next: &Next,
) {
    let after = &status.pipeline[index];
    let last = index + 1 == status.pipeline.len();
    let holds = match outcome {
        StepOutcome::Done(_) | StepOutcome::Warned { .. } | StepOutcome::Skipped(_) => {
            let skipped = matches!(outcome, StepOutcome::Skipped(_));
            let next_ok = *next == if last { Next::Finished } else { Next::Continue };
            after.completed.is_some() && !after.failed && after.skipped == skipped && next_ok
        }
        StepOutcome::InProgress { after: wait, .. } => {
            after.completed.is_none() && !after.failed && *next == Next::RequeueAfter(*wait)
        }
        StepOutcome::Retry { after: wait, .. } if before.retries < MAX_RETRIES => {
            after.retries == before.retries + 1 && !after.failed && *next == Next::RequeueAfter(*wait)
        }
        StepOutcome::Retry { .. } | StepOutcome::Failed(_) => after.failed && *next == Next::Finished,
    };
    assert!(holds, "{outcome:?} on {before:?} made {after:?}, {next:?}");
    assert!(after.started.is_some(), "{} ran but has no start", after.name);
}

/// 7. The downtime window: a cutover's, opened by a QuiesceSource that ran, closed by VerifyDNS.
fn check_downtime(status: &MigMigrationStatus, world: &World) {
    let Some(window) = &status.downtime else {
        return;
    };
    assert_eq!(
        status.itinerary,
        Some(Itinerary::Final),
        "downtime outside a cutover"
    );
    assert!(
        world.quiesce_ran,
        "a downtime window, but the source was never stopped: {window:?}"
    );
    let quiesce = entry(status, Step::QuiesceSource);
    assert_eq!(
        quiesce.started.as_ref(),
        Some(&window.start),
        "the window opens when QuiesceSource starts"
    );
    let start: Timestamp = window.start.parse().unwrap();
    match &window.end {
        None => assert_eq!(window.seconds, None, "{window:?}"),
        Some(end) => {
            assert_eq!(entry(status, Step::VerifyDNS).completed.as_ref(), Some(end));
            let end: Timestamp = end.parse().unwrap();
            assert!(end >= start, "the window ends before it starts: {window:?}");
            let seconds = window.seconds.expect("a closed window has its length");
            let expected = end.duration_since(start).as_secs_f64();
            assert!(seconds >= 0.0 && (seconds - expected).abs() < 1e-6, "{window:?}");
        }
    }
}

fn entry(status: &MigMigrationStatus, step: Step) -> &PipelineStep {
    status.pipeline.iter().find(|s| s.name == step).unwrap()
}
