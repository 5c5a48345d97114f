//! Model-based test of the itinerary engine: random runs of a Stage, a cutover (with and without
//! `quiescePods`) or a rollback, in which steps report every outcome, the controller restarts, dies
//! between a step's work and its status write, and PVCs appear in the plan's discovery. The steps act on
//! a small model of the world (the source's way back and quiesce, the final sync, the target, the plan's
//! cutover record, DNS), and after every event the pipeline's promises are checked against the status as
//! stored (JSON) and that world: nothing stranded, no two live copies, no silent success, nothing run
//! again after the end, a volume set fixed once, a coherent `Running`/`phase`/downtime window.

use proptest::prelude::*;

use super::*;
use crate::pipeline::steps::without_quiesce;

fn at_ms(ms: i64) -> Time {
    Time(Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap())
}

fn volume(n: usize) -> DiscoveredVolume {
    DiscoveredVolume {
        name: format!("data-{n}"),
        namespace: "app".into(),
        uid: Some(format!("uid-{n}")),
        target_name: format!("data-{n}"),
        target_namespace: "app".into(),
        ..Default::default()
    }
}

/// What the migration is and what its plan configures.
#[derive(Clone, Copy, Debug)]
struct Spec {
    itinerary: Itinerary,
    /// `quiescePods` (a Final itinerary only; a rollback follows a quiesced cutover).
    quiesce: bool,
    /// The plan has `spec.dns` records.
    dns: bool,
    /// `verify` is set.
    verify: bool,
    /// Commit mode (RevertCommits has commits to revert) rather than Patch.
    commit: bool,
    /// The PVCs the plan discovers at first.
    volumes: usize,
    /// Rollback: how many steps of the cutover before it completed (the next one did part of its work).
    cut_over_steps: usize,
    /// A step whose every would-be success is a transient error, until the engine gives up.
    flaky: Option<usize>,
}

/// How a step's run ends, before the model makes it realistic for the step (see [`Model::run`]).
#[derive(Clone, Copy, Debug)]
enum Report {
    Done,
    Skipped,
    Warned,
    InProgress,
    Retry,
    Failed,
}

/// How much of its work a step did before it reported (or the controller died).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Effect {
    Nothing,
    Part,
    All,
}

#[derive(Clone, Copy, Debug)]
enum Event {
    /// The current step runs for `took_ms`, doing `effect` of its work (all of it when it succeeds).
    Step {
        report: Report,
        effect: Effect,
        took_ms: u16,
    },
    /// The current step does `effect` of its work, then the controller dies before writing status.
    Crash { effect: Effect, took_ms: u16 },
    /// The controller restarts between steps: it reads the stored status and calls `start` again.
    Restart,
    /// A PVC is created in the plan's namespaces: the plan's discovery lists it from now on.
    PvcAppears,
}

/// The clusters, the plan and DNS as far as the itineraries change them.
#[derive(Clone, Debug, Default, PartialEq)]
struct World {
    way_back_recorded: bool,
    source_quiesced: bool,
    /// QuiesceSource ran for real (not skipped for `quiescePods: false`).
    quiesce_ran: bool,
    /// The volumes this migration's FinalSync copied, with the source stopped.
    final_synced: Option<Vec<String>>,
    /// A FinalSync copied a source that was still serving.
    synced_while_serving: bool,
    cutover_recorded: bool,
    target_live: bool,
    dns_flipped: bool,
}

struct Model {
    spec: Spec,
    world: World,
    clock_ms: i64,
    /// What the plan's discovery lists now.
    discovered: Vec<DiscoveredVolume>,
    /// The status as the API server holds it; every read deserializes it.
    stored: String,
    /// The controller's status between the steps of one reconcile; `None` after a requeue or a restart.
    memory: Option<MigMigrationStatus>,
    /// The status after the previous event.
    previous: MigMigrationStatus,
    /// The volumes the volume-dependent steps acted on.
    acted_on: Option<Vec<DiscoveredVolume>>,
    /// The status and world when the migration finished.
    finished: Option<(MigMigrationStatus, World)>,
}

// === impl Model ===

impl Model {
    fn new(spec: Spec) -> Self {
        let mut model = Model {
            spec,
            world: World::default(),
            clock_ms: 0,
            discovered: (0..spec.volumes).map(volume).collect(),
            stored: serde_json::to_string(&MigMigrationStatus::default()).unwrap(),
            memory: None,
            previous: MigMigrationStatus::default(),
            acted_on: None,
            finished: None,
        };
        if spec.itinerary == Itinerary::Rollback {
            // The world a quiesced cutover left when it stopped (failed, or completed) at that step.
            let cutover = Spec {
                itinerary: Itinerary::Final,
                quiesce: true,
                ..spec
            };
            let mut before = Model {
                spec: cutover,
                ..model
            };
            let steps = Itinerary::Final.steps();
            let volumes = before.discovered.clone();
            for (i, step) in steps.iter().enumerate().take(spec.cut_over_steps + 1) {
                let effect = if i < spec.cut_over_steps {
                    Effect::All
                } else {
                    Effect::Part
                };
                if before.skipped(*step, &volumes).is_none() {
                    before.effect(*step, effect, &volumes);
                }
            }
            model = Model { spec, ..before };
        }
        model
    }

    fn stored(&self) -> MigMigrationStatus {
        serde_json::from_str(&self.stored).unwrap()
    }

    /// The status the controller works on: its own between steps, else the stored one after `start`
    /// (with the plan's discovery as it is now).
    fn reconcile(&mut self) -> MigMigrationStatus {
        self.memory.take().unwrap_or_else(|| {
            let mut status = self.stored();
            start(
                &mut status,
                self.spec.itinerary,
                &self.discovered,
                &at_ms(self.clock_ms),
            );
            status
        })
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Restart => self.memory = None,
            Event::PvcAppears => self.discovered.push(volume(self.discovered.len())),
            Event::Crash { effect, took_ms } => {
                let status = self.reconcile();
                self.clock_ms += i64::from(took_ms);
                if let Some((index, _)) = current_step(&status) {
                    self.run(&status, index, None, effect);
                }
            }
            Event::Step {
                report,
                effect,
                took_ms,
            } => {
                let status = self.reconcile();
                let Some((index, _)) = current_step(&status) else {
                    return;
                };
                // The start of this run: the engine keeps a step's first start by itself (the reconciler
                // also passes the stored one back).
                let started_at = at_ms(self.clock_ms);
                self.clock_ms += i64::from(took_ms);
                let outcome = self.run(&status, index, Some(report), effect);
                let before = status.pipeline[index].clone();
                let (status, next) = advance(&status, outcome.clone(), &started_at, &at_ms(self.clock_ms));
                check_transition(&outcome, &before, &status, index, &next);
                self.stored = serde_json::to_string(&status).unwrap();
                self.memory = (next == Next::Continue).then_some(status);
            }
        }
    }

    /// Runs step `index` as the real one would, acting on the world; `None` for a run cut short by a
    /// crash after `effect` of its work.
    fn run(
        &mut self,
        status: &MigMigrationStatus,
        index: usize,
        report: Option<Report>,
        effect: Effect,
    ) -> StepOutcome {
        let step = self.spec.itinerary.steps()[index];
        assert_eq!(
            status.pipeline[index].name, step,
            "the pipeline entry is not the itinerary's step"
        );
        // Steps read the volume set from the status (`ctx.volumes()`).
        let volumes = status
            .volumes
            .clone()
            .expect("a started migration lists its volumes");
        if matches!(
            step,
            Step::CreateDestinationPVCs
                | Step::CreateMoverPods
                | Step::WaitForTransfer
                | Step::StageSync
                | Step::FinalSync
                | Step::Verify
        ) {
            let acted_on = self.acted_on.get_or_insert_with(|| volumes.clone());
            assert_eq!(
                *acted_on, volumes,
                "{step} acted on another volume set than the steps before it"
            );
        }
        if let Some(outcome) = self.skipped(step, &volumes) {
            // The rollback's RevertCommits clears the cutover record when it succeeds or is skipped.
            if step == Step::RevertCommits && (report.is_some() || effect == Effect::All) {
                self.world.cutover_recorded = false;
            }
            return outcome;
        }
        if step == Step::QuiesceSource {
            self.world.quiesce_ran = true;
        }
        let report = match report {
            Some(Report::Done | Report::Warned | Report::Skipped) if self.spec.flaky == Some(index) => {
                Report::Retry
            }
            Some(report) => report,
            None => {
                self.effect(step, effect, &volumes);
                return StepOutcome::Done(String::new());
            }
        };
        let unmoved = self.discovered.iter().filter(|v| !volumes.contains(v));
        let unmoved: Vec<String> = unmoved.map(|v| v.name.clone()).collect();
        let syncs = matches!(
            step,
            Step::WaitForTransfer | Step::StageSync | Step::FinalSync | Step::Verify
        );
        let (outcome, effect) = match report {
            // A step that skips only for a reason of its plan (above) cannot skip otherwise.
            Report::Done | Report::Skipped if syncs && !unmoved.is_empty() => (
                StepOutcome::Warned {
                    message: "Synced.".into(),
                    warning: Warning::VolumesNotMoved(unmoved.join(", ")),
                },
                Effect::All,
            ),
            // RevertCommits never warns: `steps::run` clears the cutover record on its Done or Skipped.
            Report::Done | Report::Skipped => (StepOutcome::Done(format!("{step} done.")), Effect::All),
            Report::Warned if step == Step::RevertCommits => {
                (StepOutcome::Done(format!("{step} done.")), Effect::All)
            }
            Report::Warned => {
                let warning = match step {
                    Step::UnquiesceTarget => Warning::NoTargetWorkloads("app".into()),
                    _ => Warning::VolumesNotMoved("app/late".into()),
                };
                let message = format!("{step} done, with a warning.");
                (StepOutcome::Warned { message, warning }, Effect::All)
            }
            Report::InProgress => (
                StepOutcome::InProgress {
                    message: "Working.".into(),
                    progress: vec![format!("{} ms in", self.clock_ms)],
                    after: Duration::from_secs(1),
                },
                effect,
            ),
            Report::Retry => (
                StepOutcome::Retry {
                    reason: "connection reset".into(),
                    after: Duration::from_secs(1),
                },
                effect,
            ),
            Report::Failed => (StepOutcome::Failed("refused".into()), effect),
        };
        // RevertCommits clears the cutover record only after a success.
        let effect = match (step, &outcome) {
            (Step::RevertCommits, StepOutcome::Done(_)) => effect,
            (Step::RevertCommits, _) if effect == Effect::All => Effect::Part,
            _ => effect,
        };
        self.effect(step, effect, &volumes);
        outcome
    }

    /// The outcome of a step that does nothing for this spec and plan, as the real one reports it.
    fn skipped(&self, step: Step, volumes: &[DiscoveredVolume]) -> Option<StepOutcome> {
        let spec = &self.spec;
        if spec.itinerary == Itinerary::Final
            && !spec.quiesce
            && let Some(outcome) = without_quiesce(step)
        {
            return Some(outcome);
        }
        let why = match step {
            Step::LowerDNSTTL | Step::FlipDNS | Step::VerifyDNS | Step::RestoreDNS if !spec.dns => {
                "the plan has no spec.dns records"
            }
            Step::RestoreDNS if !self.world.dns_flipped => {
                "no DNS change was recorded by a cutover of this plan"
            }
            Step::StageSync | Step::FinalSync | Step::Verify if volumes.is_empty() => {
                "the plan has no volumes"
            }
            Step::Verify if !spec.verify => "verification was not requested",
            Step::RevertCommits if !spec.commit => "Patch mode made no commits",
            _ => return None,
        };
        Some(StepOutcome::Skipped(why.into()))
    }

    /// What `effect` of `step`'s work changes. Each write records the way back before the change it
    /// makes (QuiesceSource's annotations, UnquiesceTarget's cutover record), so part of a step's work
    /// is always the record without the change.
    fn effect(&mut self, step: Step, effect: Effect, volumes: &[DiscoveredVolume]) {
        let world = &mut self.world;
        let all = effect == Effect::All;
        match step {
            Step::QuiesceSource if effect != Effect::Nothing => {
                world.way_back_recorded = true;
                world.source_quiesced |= all;
            }
            Step::FinalSync if all && world.source_quiesced => {
                world.final_synced = Some(volumes.iter().map(|v| v.name.clone()).collect())
            }
            Step::FinalSync if all => world.synced_while_serving = true,
            Step::UnquiesceTarget if effect != Effect::Nothing => {
                world.cutover_recorded = true;
                world.target_live |= all;
            }
            Step::FlipDNS if all => world.dns_flipped = true,
            Step::RestoreDNS if all => world.dns_flipped = false,
            Step::QuiesceTarget if all => world.target_live = false,
            Step::UnquiesceSource if all => {
                world.source_quiesced = false;
                world.way_back_recorded = false;
            }
            Step::RevertCommits if all => world.cutover_recorded = false,
            _ => {}
        }
    }
}

// === the invariants ===

impl Model {
    /// Every promise, after every event.
    fn check(&mut self) {
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
fn check_transition(
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

// === the generators ===

fn spec() -> impl Strategy<Value = Spec> {
    let itinerary = prop_oneof![
        1 => Just(Itinerary::Stage),
        2 => Just(Itinerary::Final),
        1 => Just(Itinerary::Rollback),
    ];
    let flags = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>());
    let sizes = (0usize..3, 0..=Itinerary::Final.steps().len());
    let flaky = prop::option::weighted(0.15, 0..Itinerary::Final.steps().len());
    (itinerary, flags, sizes, flaky).prop_map(
        |(itinerary, (quiesce, dns, verify, commit), (volumes, cut_over_steps), flaky)| Spec {
            itinerary,
            quiesce: quiesce || itinerary == Itinerary::Rollback,
            dns,
            verify,
            commit,
            volumes,
            cut_over_steps,
            flaky,
        },
    )
}

fn event() -> impl Strategy<Value = Event> {
    let report = prop_oneof![
        20 => Just(Report::Done),
        2 => Just(Report::InProgress),
        3 => Just(Report::Retry),
        1 => Just(Report::Skipped),
        1 => Just(Report::Warned),
        1 => Just(Report::Failed),
    ];
    let effect = || prop_oneof![Just(Effect::Nothing), Just(Effect::Part), Just(Effect::All)];
    let took_ms = || prop_oneof![Just(0u16), 1u16..5000];
    prop_oneof![
        28 => (report, effect(), took_ms()).prop_map(|(report, effect, took_ms)| Event::Step {
            report,
            effect,
            took_ms
        }),
        2 => (effect(), took_ms()).prop_map(|(effect, took_ms)| Event::Crash { effect, took_ms }),
        2 => Just(Event::Restart),
        1 => Just(Event::PvcAppears),
    ]
}

/// Plays `events` on a new migration of `spec`, checking every promise before and after each.
fn play(spec: Spec, events: impl IntoIterator<Item = Event>) -> Model {
    let mut model = Model::new(spec);
    model.check();
    for event in events {
        model.apply(event);
        model.check();
    }
    model
}

proptest! {
    // Findings become deterministic tests below, so no seeds file is written into the source tree.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_run_keeps_the_pipelines_promises(
        spec in spec(),
        events in prop::collection::vec(event(), 1..120),
    ) {
        play(spec, events);
    }
}

// === findings, as deterministic runs ===

fn done(took_ms: u16) -> Event {
    Event::Step {
        report: Report::Done,
        effect: Effect::All,
        took_ms,
    }
}

fn cutover(quiesce: bool, volumes: usize) -> Spec {
    Spec {
        itinerary: Itinerary::Final,
        quiesce,
        dns: true,
        verify: true,
        commit: false,
        volumes,
        cut_over_steps: 0,
        flaky: None,
    }
}

/// `quiescePods: false` stops nothing, so the cutover has no downtime: its QuiesceSource (completed with
/// the NotQuiesced warning) used to open a window that VerifyDNS (skipped) closed, and a cutover that
/// never stopped the app reported a downtime and fed `ferry_cutover_downtime_seconds`.
#[test]
fn a_cutover_without_quiesce_has_no_downtime_window() {
    let model = play(cutover(false, 1), (0..20).map(|_| done(700)));
    let status = model.stored();
    assert!(condition::is_true(&status.conditions, "Succeeded"));
    assert!(condition::find(&status.conditions, "SourceNotQuiesced").is_some());
    assert_eq!(status.downtime, None);
    assert!(!model.world.quiesce_ran && !model.world.dns_flipped);
    // With quiescePods the same run has its window.
    let model = play(cutover(true, 1), (0..20).map(|_| done(700)));
    assert!(model.stored().downtime.is_some_and(|w| w.seconds.is_some()));
}

/// The volume set is fixed by the first status the API server holds: a controller that dies in Prepare
/// (before that write) starts again with the discovery of then, a PVC that appears after it does not
/// join, and the syncs tell about it (the durable VolumesNotMoved warning, there at the end).
#[test]
fn the_volume_set_is_the_first_written_one_and_a_later_pvc_is_reported() {
    let crash = Event::Crash {
        effect: Effect::All,
        took_ms: 10,
    };
    let events = [
        crash,
        Event::PvcAppears,
        done(10),
        Event::PvcAppears,
        Event::Restart,
    ]
    .into_iter()
    .chain((0..20).map(|_| done(10)));
    let model = play(cutover(true, 1), events);
    let status = model.stored();
    assert!(condition::is_true(&status.conditions, "Succeeded"));
    assert_eq!(status.volumes, Some(vec![volume(0), volume(1)]));
    assert_eq!(
        model.world.final_synced,
        Some(vec!["data-0".into(), "data-1".into()])
    );
    let warning = condition::find(&status.conditions, "VolumesNotMoved").expect("the warning");
    assert!(
        warning.message.as_deref().unwrap().contains("data-2"),
        "{warning:?}"
    );
}
