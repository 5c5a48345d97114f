//! The words people read about a migration, in one place: how a migration stands, `Step N/M <name>`,
//! step durations, bytes and rates, and the downtime window. `ferry status`, `ferry stage|cutover
//! --wait`, the demo and `ferry report` all print through these, so the terminal and the filed report
//! never describe the same migration differently.

use k8s_openapi::jiff::Timestamp;

use crate::api::migration::Downtime;
use crate::api::{Itinerary, MigMigrationStatus, PipelineStep, condition};
use crate::pipeline::transfer;

/// How a migration stands, read from its conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still going (or not started yet).
    Running,
    /// Succeeded.
    Succeeded,
    /// Failed, with the cause (its errors, or the `Failed` condition's message).
    Failed(String),
    /// Canceled, with the message.
    Canceled(String),
}

impl Outcome {
    /// The outcome of `status`.
    pub fn of(status: &MigMigrationStatus) -> Self {
        let conditions = &status.conditions;
        if condition::is_true(conditions, "Succeeded") {
            return Outcome::Succeeded;
        }
        if condition::is_true(conditions, "Failed") {
            let cause = if status.errors.is_empty() {
                condition::find(conditions, "Failed")
                    .and_then(|c| c.message.clone())
                    .unwrap_or_else(|| "the migration failed".into())
            } else {
                status.errors.join("; ")
            };
            return Outcome::Failed(cause);
        }
        if condition::is_true(conditions, "Canceled") {
            let message = condition::find(conditions, "Canceled").and_then(|c| c.message.clone());
            return Outcome::Canceled(message.unwrap_or_default());
        }
        Outcome::Running
    }

    /// One word: `Running`, `Succeeded`, `Failed`, `Canceled`.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Running => "Running",
            Outcome::Succeeded => "Succeeded",
            Outcome::Failed(_) => "Failed",
            Outcome::Canceled(_) => "Canceled",
        }
    }

    /// The word and its cause: `Failed: <cause>`, `Canceled: <message>`, or the word alone.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Failed(cause) => format!("Failed: {cause}"),
            Outcome::Canceled(message) if !message.is_empty() => format!("Canceled: {message}"),
            other => other.word().to_string(),
        }
    }
}

/// An itinerary as the API (and so `kubectl get`) spells it: `Stage`, `Final` (the cutover), `Rollback`.
pub fn itinerary(itinerary: Itinerary) -> &'static str {
    match itinerary {
        Itinerary::Stage => "Stage",
        Itinerary::Final => "Final",
        Itinerary::Rollback => "Rollback",
    }
}

/// `Step 7/8 WaitForTransfer`: step `index` (0-based) of `total`, by name.
pub fn step_position(index: usize, total: usize, name: &str) -> String {
    format!("Step {}/{total} {name}", index + 1)
}

/// One line saying where the migration is: `Step 7/8 WaitForTransfer: <progress>`, `Failed at Step
/// 3/8 CreateDestinationPVCs`, `Completed`, or why it waits.
pub fn status_line(status: &MigMigrationStatus) -> String {
    let total = status.pipeline.len();
    match Outcome::of(status) {
        Outcome::Running => {}
        Outcome::Succeeded => return "Completed".into(),
        Outcome::Canceled(_) => return "Canceled".into(),
        Outcome::Failed(_) => {
            let at = status.pipeline.iter().position(|s| s.failed);
            return match at {
                Some(i) => format!("Failed at {}", step_position(i, total, &status.pipeline[i].name)),
                None => "Failed".into(),
            };
        }
    }
    let current = status
        .pipeline
        .iter()
        .position(|s| s.completed.is_none() && !s.failed);
    match current {
        Some(index) if status.pipeline[index].started.is_some() || index > 0 => {
            let step = &status.pipeline[index];
            let mut line = step_position(index, total, &step.name);
            if !step.progress.is_empty() {
                line.push_str(&format!(": {}", step.progress.join("; ")));
            } else if let Some(message) = step.message.as_deref().filter(|m| *m != "Not started") {
                line.push_str(&format!(": {message}"));
            }
            line
        }
        _ => {
            // Not started: say what holds it (plan not ready, another migration running).
            let holding = status
                .conditions
                .iter()
                .filter(|c| c.is_true() && c.type_ != condition::READY && c.type_ != "Running")
                .filter_map(|c| c.message.clone())
                .collect::<Vec<_>>();
            if holding.is_empty() {
                status.phase.clone().unwrap_or_else(|| "Pending".into())
            } else {
                format!("Waiting: {}", holding.join(" "))
            }
        }
    }
}

/// Seconds from one RFC 3339 time to another (`None` when either does not parse).
pub fn seconds_between(start: &str, end: &str) -> Option<f64> {
    let start: Timestamp = start.parse().ok()?;
    let end: Timestamp = end.parse().ok()?;
    Some(end.duration_since(start).as_secs_f64())
}

/// A length of time as every output shows it: `0.48 s`, `12.30 s`, `2m 5.0s`, `1h 2m`.
pub fn duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    if seconds < 60.0 {
        format!("{seconds:.2} s")
    } else if seconds < 3600.0 {
        format!("{}m {:.1}s", (seconds / 60.0).floor(), seconds % 60.0)
    } else {
        format!(
            "{}h {}m",
            (seconds / 3600.0).floor(),
            ((seconds % 3600.0) / 60.0).floor()
        )
    }
}

/// How long a step ran, once it completed (or failed with both times recorded).
pub fn step_seconds(step: &PipelineStep) -> Option<f64> {
    seconds_between(step.started.as_deref()?, step.completed.as_deref()?)
}

/// The mark of a step in a summary: `✓` completed, `✗` failed, `-` skipped, blank not done.
pub fn step_mark(step: &PipelineStep) -> &'static str {
    if step.failed {
        "✗"
    } else if step.skipped {
        "-"
    } else if step.completed.is_some() {
        "✓"
    } else {
        " "
    }
}

/// `1.5 MiB` style sizes (the movers' progress lines use the same).
pub fn bytes(bytes: u64) -> String {
    transfer::human_bytes(bytes)
}

/// `(bytes of data in the volumes, files transferred)` of a pass, from the step message it ended with.
pub fn synced(step: &PipelineStep) -> Option<(u64, u64)> {
    transfer::totals_from_message(step.message.as_deref()?)
}

/// `2.0 MiB/s`: `bytes` over `seconds`; `-` when no time passed.
pub fn rate(bytes: u64, seconds: f64) -> String {
    if seconds <= 0.0 {
        return "-".into();
    }
    format!("{}/s", transfer::human_bytes((bytes as f64 / seconds) as u64))
}

/// The downtime window: `0.75 s (<start> → <end>)`, or `open since <start> (...)` while the source is
/// stopped and DNS not yet verified.
pub fn downtime(window: &Downtime) -> String {
    match (&window.end, window.seconds) {
        (Some(end), Some(seconds)) => format!("{} ({} → {end})", duration(seconds), window.start),
        _ => format!(
            "open since {} (the app is stopped on the source; a rollback restores it)",
            window.start
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Category, Condition};

    fn step(name: &str, started: Option<&str>, completed: Option<&str>) -> PipelineStep {
        PipelineStep {
            name: name.into(),
            started: started.map(Into::into),
            completed: completed.map(Into::into),
            ..PipelineStep::default()
        }
    }

    #[test]
    fn positions_durations_and_rates() {
        assert_eq!(step_position(6, 8, "WaitForTransfer"), "Step 7/8 WaitForTransfer");
        for i in [Itinerary::Stage, Itinerary::Final, Itinerary::Rollback] {
            assert_eq!(serde_json::json!(i), itinerary(i), "the words kubectl shows");
        }
        assert_eq!(duration(0.481), "0.48 s");
        assert_eq!(duration(125.0), "2m 5.0s");
        assert_eq!(duration(3725.0), "1h 2m");
        assert_eq!(
            duration(-1.0),
            "0.00 s",
            "clock skew never prints a negative time"
        );
        let done = step(
            "Prepare",
            Some("2026-01-01T00:00:00Z"),
            Some("2026-01-01T00:00:01.5Z"),
        );
        assert_eq!(step_seconds(&done), Some(1.5));
        assert_eq!(
            step_seconds(&step("Prepare", Some("2026-01-01T00:00:00Z"), None)),
            None
        );
        assert_eq!(
            step_seconds(&step("Prepare", Some("yesterday"), Some("today"))),
            None
        );
        assert_eq!(rate(4 << 20, 2.0), "2.0 MiB/s");
        assert_eq!(rate(4 << 20, 0.0), "-");
    }

    #[test]
    fn the_downtime_reads_the_same_open_or_closed() {
        let mut window = Downtime {
            start: "2026-01-01T00:00:00Z".into(),
            end: None,
            seconds: None,
        };
        assert!(downtime(&window).starts_with("open since 2026-01-01T00:00:00Z"));
        window.end = Some("2026-01-01T00:00:00.75Z".into());
        window.seconds = Some(0.75);
        assert_eq!(
            downtime(&window),
            "0.75 s (2026-01-01T00:00:00Z → 2026-01-01T00:00:00.75Z)"
        );
    }

    #[test]
    fn outcomes_name_their_cause() {
        let mut status = MigMigrationStatus::default();
        assert_eq!(Outcome::of(&status), Outcome::Running);
        status
            .conditions
            .push(Condition::holds("Failed", Category::Critical, "FinalSync", "from condition").durable());
        assert_eq!(Outcome::of(&status).describe(), "Failed: from condition");
        status
            .errors
            .push("FinalSync failed: rsync exited with code 23".into());
        assert_eq!(
            Outcome::of(&status),
            Outcome::Failed("FinalSync failed: rsync exited with code 23".into())
        );
        let canceled = MigMigrationStatus {
            conditions: vec![Condition::holds("Canceled", Category::Advisory, "Canceled", "")],
            ..MigMigrationStatus::default()
        };
        assert_eq!(Outcome::of(&canceled).describe(), "Canceled");
    }

    #[test]
    fn a_failed_line_names_the_step_as_progress_does() {
        let mut failed = step("CreateDestinationPVCs", Some("2026-01-01T00:00:00Z"), None);
        failed.failed = true;
        let status = MigMigrationStatus {
            pipeline: vec![
                step(
                    "Prepare",
                    Some("2026-01-01T00:00:00Z"),
                    Some("2026-01-01T00:00:00Z"),
                ),
                failed,
            ],
            conditions: vec![Condition::holds("Failed", Category::Critical, "X", "boom").durable()],
            ..MigMigrationStatus::default()
        };
        assert_eq!(status_line(&status), "Failed at Step 2/2 CreateDestinationPVCs");
    }
}
