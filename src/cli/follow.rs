//! Following a MigMigration from the command line, purely: what to print when its status changes, when
//! it has ended and with which exit code, and the summary printed at the end (steps with durations,
//! bytes moved, the downtime window). `migrate.rs` and `demo.rs` feed it statuses.

use std::process::ExitCode;

use crate::api::{MigMigrationStatus, condition};
use crate::pipeline::transfer;

/// Exit code when the migration failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code when `--timeout` passed first (the migration keeps running).
pub const EXIT_TIMEOUT: u8 = 3;
/// Exit code when the migration was canceled.
pub const EXIT_CANCELED: u8 = 4;

/// How a followed migration stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Still going.
    Running,
    /// Succeeded.
    Succeeded,
    /// Failed, with the cause.
    Failed(String),
    /// Canceled, with the message.
    Canceled(String),
}

impl Verdict {
    /// The verdict of `status`.
    pub fn of(status: &MigMigrationStatus) -> Self {
        let conditions = &status.conditions;
        if condition::is_true(conditions, "Succeeded") {
            return Verdict::Succeeded;
        }
        if condition::is_true(conditions, "Failed") {
            let cause = if status.errors.is_empty() {
                condition::find(conditions, "Failed")
                    .and_then(|c| c.message.clone())
                    .unwrap_or_else(|| "the migration failed".into())
            } else {
                status.errors.join("; ")
            };
            return Verdict::Failed(cause);
        }
        if condition::is_true(conditions, "Canceled") {
            let message = condition::find(conditions, "Canceled").and_then(|c| c.message.clone());
            return Verdict::Canceled(message.unwrap_or_default());
        }
        Verdict::Running
    }

    /// The process exit code for a finished verdict.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Verdict::Succeeded => ExitCode::SUCCESS,
            Verdict::Failed(_) => ExitCode::from(EXIT_FAILED),
            Verdict::Canceled(_) => ExitCode::from(EXIT_CANCELED),
            Verdict::Running => ExitCode::from(EXIT_TIMEOUT),
        }
    }
}

/// One line saying where the migration is: `Step 7/8 WaitForTransfer: <progress>` or why it waits.
pub fn status_line(status: &MigMigrationStatus) -> String {
    let total = status.pipeline.len();
    match Verdict::of(status) {
        Verdict::Running => {}
        Verdict::Succeeded => return "Completed".into(),
        Verdict::Canceled(_) => return "Canceled".into(),
        Verdict::Failed(_) => {
            let at = status.pipeline.iter().position(|s| s.failed);
            return match at {
                Some(i) => format!("Failed at step {}/{total} {}", i + 1, status.pipeline[i].name),
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
            let mut line = format!("Step {}/{total} {}", index + 1, step.name);
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

/// `(completed steps, total)` for a progress bar.
pub fn position(status: &MigMigrationStatus) -> (u64, u64) {
    let done = status.pipeline.iter().filter(|s| s.completed.is_some()).count();
    (done as u64, status.pipeline.len() as u64)
}

/// The end-of-run summary: every step with its duration and message, bytes moved, the downtime.
pub fn summary(name: &str, status: &MigMigrationStatus) -> String {
    let mut out = format!(
        "{name} ({:?}):\n",
        status.itinerary.unwrap_or(crate::api::Itinerary::Stage)
    );
    for step in &status.pipeline {
        let seconds = match (&step.started, &step.completed) {
            (Some(a), Some(b)) => crate::pipeline::engine::seconds_between(a, b).map(|s| format!("{s:.2}s")),
            _ => None,
        };
        let mark = if step.failed {
            "✗"
        } else if step.skipped {
            "-"
        } else if step.completed.is_some() {
            "✓"
        } else {
            " "
        };
        out.push_str(&format!(
            "  {mark} {:<28} {:>8}  {}\n",
            step.name,
            seconds.unwrap_or_default(),
            step.message.clone().unwrap_or_default()
        ));
    }
    let moved: u64 = status
        .pipeline
        .iter()
        .filter_map(|s| transfer::totals_from_message(s.message.as_deref()?))
        .map(|(bytes, _)| bytes)
        .max()
        .unwrap_or(0);
    if moved > 0 {
        out.push_str(&format!(
            "  data: {} in the volumes\n",
            transfer::human_bytes(moved)
        ));
    }
    if let Some(window) = &status.downtime {
        match (&window.end, window.seconds) {
            (Some(end), Some(seconds)) => out.push_str(&format!(
                "  downtime: {seconds:.2} s ({} → {end})\n",
                window.start
            )),
            _ => out.push_str(&format!(
                "  downtime: open since {} (the app is stopped on the source; a rollback restores it)\n",
                window.start
            )),
        }
    }
    out
}

/// Parses `30s`, `10m`, `1h`, `1h30m` or plain seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{text:?} is not a duration (examples: 90s, 10m, 1h30m)");
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(seconds));
    }
    let (mut total, mut number) = (0u64, String::new());
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        let value: u64 = number.parse().map_err(|_| bad())?;
        total += value * unit;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Category, Condition, PipelineStep};

    fn status() -> MigMigrationStatus {
        MigMigrationStatus {
            pipeline: vec![
                PipelineStep {
                    name: "Prepare".into(),
                    started: Some("2026-01-01T00:00:00Z".into()),
                    completed: Some("2026-01-01T00:00:01.5Z".into()),
                    message: Some("ok".into()),
                    ..PipelineStep::default()
                },
                PipelineStep {
                    name: "WaitForTransfer".into(),
                    started: Some("2026-01-01T00:00:02Z".into()),
                    progress: vec!["shop/db: 1.0 MiB of 2.0 MiB (50%)".into()],
                    ..PipelineStep::default()
                },
            ],
            ..MigMigrationStatus::default()
        }
    }

    #[test]
    fn the_line_names_the_step_and_its_progress() {
        assert_eq!(
            status_line(&status()),
            "Step 2/2 WaitForTransfer: shop/db: 1.0 MiB of 2.0 MiB (50%)"
        );
        assert_eq!(position(&status()), (1, 2));
        let mut waiting = MigMigrationStatus::default();
        waiting.conditions.push(Condition::holds(
            "PlanNotReady",
            Category::Critical,
            "NotReady",
            "MigPlan a/b is not ready.",
        ));
        assert_eq!(status_line(&waiting), "Waiting: MigPlan a/b is not ready.");
    }

    #[test]
    fn verdicts_and_exit_codes() {
        let mut s = status();
        assert_eq!(Verdict::of(&s), Verdict::Running);
        s.errors
            .push("FinalSync failed: rsync exited with code 23".into());
        s.conditions
            .push(Condition::holds("Failed", Category::Critical, "FinalSync", "x").durable());
        assert_eq!(
            Verdict::of(&s),
            Verdict::Failed("FinalSync failed: rsync exited with code 23".into())
        );
        assert_eq!(Verdict::of(&s).exit_code(), ExitCode::from(EXIT_FAILED));
    }

    #[test]
    fn the_summary_has_durations_and_the_downtime() {
        let mut s = status();
        s.downtime = Some(crate::api::migration::Downtime {
            start: "a".into(),
            end: Some("b".into()),
            seconds: Some(0.75),
        });
        let text = summary("m", &s);
        assert!(text.contains("Prepare") && text.contains("1.50s"), "{text}");
        assert!(text.contains("downtime: 0.75 s"), "{text}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("10m").unwrap().as_secs(), 600);
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
    }
}
