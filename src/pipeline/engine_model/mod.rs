//! Model-based test of the itinerary engine: random runs of a Stage, a cutover (with and without
//! `quiescePods`) or a rollback, in which steps report every outcome, the controller restarts, dies
//! between a step's work and its status write, and PVCs appear in the plan's discovery. The steps act on
//! a small model of the world (the source's way back and quiesce, the final sync, the target, the plan's
//! cutover record, DNS), and after every event the pipeline's promises are checked against the status as
//! stored (JSON) and that world: nothing stranded, no two live copies, no silent success, nothing run
//! again after the end, a volume set fixed once, a coherent `Running`/`phase`/downtime window.

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
    /// The plan has a hook at every phase (else the hook steps skip).
    hooks: bool,
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
            Step::PreBackupHooks | Step::PostBackupHooks | Step::PreRestoreHooks | Step::PostRestoreHooks
                if !spec.hooks =>
            {
                "the plan has no hook at this phase"
            }
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

mod invariants;
mod runs;

use invariants::check_transition;
