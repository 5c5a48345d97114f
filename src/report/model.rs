//! What a migration report says, computed purely from a MigPlan and its MigMigrations (plus the two
//! things their statuses only point at: the DNS record sets recorded before the cutover, and the
//! messages of the Git commits whose SHAs the steps name). [`super::html`] renders it.

use std::collections::BTreeMap;

use kube::ResourceExt;

use super::words::{self, Outcome};
use crate::api::migration::Downtime;
use crate::api::{Itinerary, MigMigration, MigPlan, PipelineStep, Step, condition};

/// What the report needs besides the resources.
#[derive(Clone, Debug, Default)]
pub struct Found {
    /// When the report was made (RFC 3339); also "now" for a step still running.
    pub generated: String,
    /// The record sets as they were before the cutover touched them, one line each.
    pub dns_before: Vec<String>,
    /// Commit messages by full SHA, when a clone of the app's repo was given.
    pub commit_messages: BTreeMap<String, String>,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// When it was made (RFC 3339).
    pub generated: String,
    /// The plan.
    pub plan: Plan,
    /// Every stage migration, oldest first.
    pub stages: Vec<Run>,
    /// Every cutover, oldest first.
    pub cutovers: Vec<Run>,
    /// Every rollback, oldest first.
    pub rollbacks: Vec<Run>,
    /// The DNS names the plan flips, their record sets before, and what the DNS steps did.
    pub dns: Dns,
    /// The commits Ferry's steps name.
    pub commits: Vec<Commit>,
    /// The Verify steps of the cutovers.
    pub verifications: Vec<Note>,
    /// Everything that failed, with its message.
    pub failures: Vec<Note>,
}

/// The plan's identity and contents.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// `namespace/name`.
    pub name: String,
    /// The source MigCluster.
    pub source: String,
    /// The target MigCluster.
    pub target: String,
    /// `src` or `src:dest`, as the plan lists them.
    pub namespaces: Vec<String>,
    /// `(source ns/pvc, target ns/pvc, size)` of every discovered volume.
    pub volumes: Vec<(String, String, String)>,
    /// The `Ready` condition: `True`, `False` or `?`.
    pub ready: String,
    /// The cutover that made the target live, `namespace/name at time`.
    pub cut_over: Option<String>,
}

/// One MigMigration.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// `metadata.name`.
    pub name: String,
    /// The itinerary it ran.
    pub itinerary: Itinerary,
    /// How it ended (or `Running`).
    pub outcome: Outcome,
    /// When its first step started (RFC 3339).
    pub started: Option<String>,
    /// First step started to last step ended (or to `generated` while running).
    pub seconds: Option<f64>,
    /// `(bytes of data in the volumes, files transferred)` of its last sync pass.
    pub synced: Option<(u64, u64)>,
    /// How long that pass ran.
    pub sync_seconds: Option<f64>,
    /// The downtime window (cutovers).
    pub downtime: Option<Downtime>,
    /// Every step in order.
    pub steps: Vec<StepRow>,
}

/// One step of a run, placed on its timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct StepRow {
    /// `Step N/M <name>`.
    pub position: String,
    /// The step's name.
    pub name: String,
    /// Where it stands.
    pub state: StepState,
    /// Seconds from the run's first start to this step's start.
    pub offset: Option<f64>,
    /// How long it ran (to `generated` while running).
    pub seconds: Option<f64>,
    /// Its message.
    pub message: String,
}

/// Where a step stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepState {
    /// Completed.
    Done,
    /// Failed.
    Failed,
    /// Skipped (not configured for this plan).
    Skipped,
    /// Started, not ended.
    Running,
    /// Not started.
    NotStarted,
}

/// The DNS part of the report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dns {
    /// The names in `spec.dns.records`.
    pub names: Vec<String>,
    /// The record sets before the cutover, as recorded on the plan.
    pub before: Vec<String>,
    /// What the DNS steps that ran said: LowerDNSTTL, FlipDNS, VerifyDNS, RestoreDNS.
    pub changes: Vec<Note>,
}

/// A commit a step of Ferry's made or waited for.
#[derive(Clone, Debug, PartialEq)]
pub struct Commit {
    /// Full SHA.
    pub sha: String,
    /// The migration and step that name it.
    pub by: String,
    /// The step's message.
    pub step_message: String,
    /// The commit's own message, when a clone was given.
    pub message: Option<String>,
}

/// A line about one step or migration: `(migration, step, message)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    /// The MigMigration.
    pub migration: String,
    /// The step, when the note is about one.
    pub step: Option<String>,
    /// What happened.
    pub message: String,
}

// === impl Report ===

impl Report {
    /// The report of `plan` and `migrations` (the plan's, oldest first).
    pub fn build(plan: &MigPlan, migrations: &[MigMigration], found: Found) -> Report {
        let runs: Vec<Run> = migrations.iter().map(|m| Run::of(m, &found.generated)).collect();
        let of = |itinerary| {
            runs.iter()
                .filter(|r| r.itinerary == itinerary)
                .cloned()
                .collect()
        };
        let mut report = Report {
            generated: found.generated.clone(),
            plan: Plan::of(plan),
            stages: of(Itinerary::Stage),
            cutovers: of(Itinerary::Final),
            rollbacks: of(Itinerary::Rollback),
            dns: Dns {
                names: plan
                    .spec
                    .dns
                    .iter()
                    .flat_map(|d| d.records.iter().map(|r| format!("{} {}", r.fqdn, r.record_type)))
                    .collect(),
                before: found.dns_before.clone(),
                changes: Vec::new(),
            },
            commits: Vec::new(),
            verifications: Vec::new(),
            failures: Vec::new(),
        };
        for (migration, run) in migrations.iter().zip(&runs) {
            report.add_notes(migration, run, &found);
        }
        report
    }

    fn add_notes(&mut self, migration: &MigMigration, run: &Run, found: &Found) {
        let note = |step: &StepRow| Note {
            migration: run.name.clone(),
            step: Some(step.name.clone()),
            message: step.message.clone(),
        };
        let ran = |s: &StepRow| matches!(s.state, StepState::Done | StepState::Failed);
        for step in &run.steps {
            let known = Step::parse(&step.name);
            match known {
                Some(Step::LowerDNSTTL | Step::FlipDNS | Step::VerifyDNS | Step::RestoreDNS) if ran(step) => {
                    self.dns.changes.push(note(step))
                }
                Some(Step::Verify) if step.state != StepState::NotStarted => {
                    self.verifications.push(note(step))
                }
                _ => {}
            }
            if ran(step) {
                for sha in shas(&step.message) {
                    if self.commits.iter().any(|c| c.sha == sha) {
                        continue;
                    }
                    self.commits.push(Commit {
                        message: found.commit_messages.get(&sha).cloned(),
                        sha,
                        by: format!("{} {}", run.name, step.name),
                        step_message: step.message.clone(),
                    });
                }
            }
            if step.state == StepState::Failed {
                self.failures.push(note(step));
            }
        }
        let status = migration.status.clone().unwrap_or_default();
        for error in &status.errors {
            if !self
                .failures
                .iter()
                .any(|f| f.migration == run.name && f.message == *error)
            {
                self.failures.push(Note {
                    migration: run.name.clone(),
                    step: None,
                    message: error.clone(),
                });
            }
        }
        for retried in status.pipeline.iter().filter(|s| s.retries > 0) {
            self.failures.push(Note {
                migration: run.name.clone(),
                step: Some(retried.name.clone()),
                message: format!("retried {} time(s) after transient failures", retried.retries),
            });
        }
    }
}

/// Every 40-hex-digit word of `text` (a full Git SHA as Ferry's step messages print them).
fn shas(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .filter(|word| word.len() == 40)
        .map(str::to_ascii_lowercase)
        .collect()
}

// === impl Plan ===

impl Plan {
    fn of(plan: &MigPlan) -> Plan {
        let status = plan.status.clone().unwrap_or_default();
        Plan {
            name: format!("{}/{}", plan.namespace().unwrap_or_default(), plan.name_any()),
            source: plan.spec.src_mig_cluster_ref.name.clone(),
            target: plan.spec.dest_mig_cluster_ref.name.clone(),
            namespaces: plan.spec.namespaces.clone(),
            volumes: status
                .volumes
                .iter()
                .map(|v| {
                    (
                        v.source_key(),
                        format!("{}/{}", v.target_namespace, v.target_name),
                        v.size.clone().unwrap_or_else(|| "-".into()),
                    )
                })
                .collect(),
            ready: condition::find(&status.conditions, condition::READY)
                .map_or("?".into(), |c| c.status.clone()),
            cut_over: status.cutover.map(|c| format!("{} at {}", c.migration, c.time)),
        }
    }
}

// === impl Run ===

impl Run {
    fn of(migration: &MigMigration, now: &str) -> Run {
        let status = migration.status.clone().unwrap_or_default();
        let itinerary = status
            .itinerary
            .unwrap_or_else(|| Itinerary::for_spec(&migration.spec));
        let started = status.pipeline.iter().find_map(|s| s.started.clone());
        let total = status.pipeline.len();
        let since_start = |time: &str| started.as_deref().and_then(|t0| words::seconds_between(t0, time));
        let steps: Vec<StepRow> = status
            .pipeline
            .iter()
            .enumerate()
            .map(|(index, step)| StepRow::of(index, total, step, now, since_start))
            .collect();
        let end = status.pipeline.iter().rev().find_map(|s| s.completed.clone());
        let outcome = Outcome::of(&status);
        let seconds = match outcome {
            Outcome::Running => since_start(now),
            _ => end.as_deref().and_then(since_start),
        };
        // The last pass that moved data: WaitForTransfer (stage) or FinalSync (cutover).
        let pass = status.pipeline.iter().rev().find(|s| words::synced(s).is_some());
        Run {
            name: migration.name_any(),
            itinerary,
            outcome,
            started,
            seconds,
            synced: pass.and_then(words::synced),
            sync_seconds: pass.and_then(words::step_seconds),
            downtime: status.downtime.clone(),
            steps,
        }
    }
}

impl StepRow {
    fn of(
        index: usize,
        total: usize,
        step: &PipelineStep,
        now: &str,
        since_start: impl Fn(&str) -> Option<f64>,
    ) -> StepRow {
        let state = if step.failed {
            StepState::Failed
        } else if step.skipped {
            StepState::Skipped
        } else if step.completed.is_some() {
            StepState::Done
        } else if step.started.is_some() {
            StepState::Running
        } else {
            StepState::NotStarted
        };
        let seconds = match state {
            StepState::Running => words::seconds_between(step.started.as_deref().unwrap_or(now), now),
            _ => words::step_seconds(step),
        };
        let mut message = step.message.clone().unwrap_or_default();
        if state == StepState::Running && !step.progress.is_empty() {
            message = format!("{message} {}", step.progress.join("; "));
        }
        StepRow {
            position: words::step_position(index, total, &step.name),
            name: step.name.clone(),
            state,
            offset: step.started.as_deref().and_then(since_start),
            seconds,
            message: message.trim().to_string(),
        }
    }
}
