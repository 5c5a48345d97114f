//! Following a MigMigration from the command line, purely: what to print when its status changes, when
//! it has ended and with which exit code, and the summary printed at the end (steps with durations,
//! bytes moved, the downtime window). `migrate.rs` and `demo.rs` feed it statuses.

use std::process::ExitCode;

use crate::api::MigMigrationStatus;
use crate::report::words;

/// Exit code when the migration failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code when `--timeout` passed first (the migration keeps running).
pub const EXIT_TIMEOUT: u8 = 3;
/// Exit code when the migration was canceled.
pub const EXIT_CANCELED: u8 = 4;

/// How a followed migration stands (the report's [`Outcome`](crate::report::words::Outcome)).
pub use crate::report::words::Outcome as Verdict;

/// The process exit code for a finished verdict (a running one: the wait timed out).
pub fn exit_code(verdict: &Verdict) -> ExitCode {
    match verdict {
        Verdict::Succeeded => ExitCode::SUCCESS,
        Verdict::Failed(_) => ExitCode::from(EXIT_FAILED),
        Verdict::Canceled(_) => ExitCode::from(EXIT_CANCELED),
        Verdict::Running => ExitCode::from(EXIT_TIMEOUT),
    }
}

/// One line saying where the migration is: `Step 7/8 WaitForTransfer: <progress>` or why it waits.
pub use crate::report::words::status_line;

/// `(completed steps, total)` for a progress bar.
pub fn position(status: &MigMigrationStatus) -> (u64, u64) {
    let done = status.pipeline.iter().filter(|s| s.completed.is_some()).count();
    (done as u64, status.pipeline.len() as u64)
}

/// The end-of-run summary: every step (`Step N/M <name>`) with its duration and message, the data in
/// the volumes, the downtime: the report's words.
pub fn summary(name: &str, status: &MigMigrationStatus) -> String {
    let mut out = format!(
        "{name} ({}):\n",
        words::itinerary(status.itinerary.unwrap_or(crate::api::Itinerary::Stage))
    );
    let total = status.pipeline.len();
    for (index, step) in status.pipeline.iter().enumerate() {
        out.push_str(&format!(
            "  {} {:<38} {:>9}  {}\n",
            words::step_mark(step),
            words::step_position(index, total, &step.name),
            words::step_seconds(step).map(words::duration).unwrap_or_default(),
            step.message.clone().unwrap_or_default()
        ));
    }
    let synced = status.pipeline.iter().rev().find_map(words::synced);
    if let Some((bytes, files)) = synced.filter(|(bytes, _)| *bytes > 0) {
        out.push_str(&format!(
            "  data: {} in the volumes, {files} files sent\n",
            words::bytes(bytes)
        ));
    }
    if let Some(window) = &status.downtime {
        out.push_str(&format!("  downtime: {}\n", words::downtime(window)));
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
        assert_eq!(exit_code(&Verdict::of(&s)), ExitCode::from(EXIT_FAILED));
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
        assert!(
            text.contains("Step 1/2 Prepare") && text.contains("1.50 s"),
            "{text}"
        );
        assert!(text.contains("downtime: 0.75 s (a → b)"), "{text}");
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
