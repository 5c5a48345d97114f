//! Cron schedules for automatic stage migrations: pure logic, no I/O.
//!
//! A plan's `spec.schedule` (exactly 5 fields) is evaluated in `spec.timeZone` (IANA, UTC when empty) by
//! croner on jiff's zoned times, so DST gaps and overlaps follow croner's rules: a wall-clock time that
//! does not exist on the spring-forward day fires at the first instant after the gap, a time that occurs
//! twice on the fall-back day fires once. The clock is a trait so tests can pin "now".
//!
//! Idempotence comes from the name: a fire at instant `t` always creates `<plan>-scheduled-<unix-minute>`,
//! so two controller passes (or a restarted controller) can never create two stages for one fire.

use std::str::FromStr;

use croner::Cron;
use jiff::{Timestamp, Zoned, tz::TimeZone};

use crate::{Error, Result};

/// Upper bound on fires walked to find the latest missed one (a year of every-minute fires); keeps a
/// pathological schedule after a long downtime from spinning the reconciler.
const MAX_FIRES_WALKED: usize = 600_000;

/// Where "now" comes from; the controller uses [`SystemClock`], tests a fixed instant.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A parsed, validated schedule in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: TimeZone,
}

/// What the trigger should do at one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The fire to act on now, if one is due: the latest fire in `(last, now]`. Older missed fires are
    /// dropped, so a downtime yields at most one catch-up stage.
    pub due: Option<Timestamp>,
    /// How many fires in `(last, now]` were dropped in favour of `due` (missed during downtime).
    pub missed: usize,
    /// The first fire strictly after `now` (for `status.nextScheduledStage`).
    pub next: Option<Timestamp>,
}

impl Schedule {
    /// Parses a 5-field expression and an IANA time zone (`None` or empty means UTC).
    pub fn parse(expression: &str, time_zone: Option<&str>) -> Result<Schedule> {
        let fields = expression.split_whitespace().count();
        if fields != 5 {
            return Err(Error::InvalidSchedule(format!(
                "spec.schedule {expression:?} has {fields} fields; expected 5 (minute hour day month weekday)"
            )));
        }
        let cron = Cron::from_str(expression)
            .map_err(|error| Error::InvalidSchedule(format!("spec.schedule {expression:?}: {error}")))?;
        let zone = match time_zone.map(str::trim).filter(|zone| !zone.is_empty()) {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|error| {
                Error::InvalidSchedule(format!(
                    "spec.timeZone {name:?} is not an IANA time zone: {error}"
                ))
            })?,
        };
        Ok(Schedule { cron, zone })
    }

    /// The first fire strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = Zoned::new(after, self.zone.clone());
        self.cron
            .find_next_occurrence(&start, false)
            .ok()
            .map(|zoned| zoned.timestamp())
    }

    /// Decides what is due at `now`, given the last fire already handled (or, for a plan that never
    /// fired, the instant the schedule was first seen: fires before it are not caught up).
    pub fn evaluate(&self, last: Timestamp, now: Timestamp) -> Evaluation {
        let mut due = None;
        let mut missed = 0;
        let mut cursor = last;
        for _ in 0..MAX_FIRES_WALKED {
            match self.next_after(cursor) {
                Some(fire) if fire <= now => {
                    if due.is_some() {
                        missed += 1;
                    }
                    due = Some(fire);
                    cursor = fire;
                }
                _ => break,
            }
        }
        Evaluation {
            due,
            missed,
            next: self.next_after(now.max(cursor)),
        }
    }
}

/// The stage migration's name for a fire: deterministic, so creating it twice is an AlreadyExists.
pub fn scheduled_stage_name(plan: &str, fire: Timestamp) -> String {
    format!("{plan}-scheduled-{}", fire.as_second().div_euclid(60))
}

/// RFC 3339 text for `status.nextScheduledStage` (UTC, second precision).
pub fn rfc3339(instant: Timestamp) -> String {
    instant.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock pinned to one instant, as the controller would see it.
    struct FixedClock(Timestamp);

    impl Clock for FixedClock {
        fn now(&self) -> Timestamp {
            self.0
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("test timestamp")
    }

    #[test]
    fn rejects_wrong_field_count_bad_fields_and_unknown_zones() {
        for bad in ["* * * *", "0 * * * * *", "61 * * * *", "x y z w v"] {
            let error = Schedule::parse(bad, None).unwrap_err();
            assert!(matches!(error, Error::InvalidSchedule(_)), "{bad}: {error}");
        }
        let error = Schedule::parse("0 2 * * *", Some("Mars/Olympus")).unwrap_err();
        assert!(error.to_string().contains("Mars/Olympus"), "{error}");
        assert!(Schedule::parse("0 2 * * *", Some("")).is_ok());
    }

    #[test]
    fn every_minute_fires_on_the_next_minute_boundary() {
        let schedule = Schedule::parse("* * * * *", None).unwrap();
        let clock = FixedClock(at("2026-11-22T23:50:17Z"));
        assert_eq!(schedule.next_after(clock.now()), Some(at("2026-11-22T23:51:00Z")));
    }

    #[test]
    fn spring_forward_in_berlin_fires_once_just_after_the_gap() {
        // 2026-03-29: clocks jump from 02:00 CET to 03:00 CEST; 02:30 does not exist that day.
        let schedule = Schedule::parse("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let before = at("2026-03-28T12:00:00Z");
        let first = schedule.next_after(before).unwrap();
        assert_eq!(
            first,
            at("2026-03-29T01:00:00Z"),
            "03:00 CEST, the first instant after the gap"
        );
        let second = schedule.next_after(first).unwrap();
        assert_eq!(second, at("2026-03-30T00:30:00Z"), "02:30 CEST the next day");
    }

    #[test]
    fn fall_back_in_berlin_fires_once_for_the_repeated_hour() {
        // 2026-10-25: 02:00-03:00 happens twice (CEST, then CET); the stage must start only once.
        let schedule = Schedule::parse("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let first = schedule.next_after(at("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(first, at("2026-10-25T00:30:00Z"), "the first 02:30 (CEST)");
        let second = schedule.next_after(first).unwrap();
        assert_eq!(
            second,
            at("2026-10-26T01:30:00Z"),
            "next day 02:30 CET, not the repeated 02:30"
        );
    }

    #[test]
    fn downtime_yields_one_catch_up_and_counts_the_rest() {
        let schedule = Schedule::parse("0 * * * *", None).unwrap();
        let evaluation = schedule.evaluate(at("2026-11-22T08:00:00Z"), at("2026-11-22T12:30:00Z"));
        assert_eq!(evaluation.due, Some(at("2026-11-22T12:00:00Z")));
        assert_eq!(evaluation.missed, 3, "09:00, 10:00 and 11:00 are dropped");
        assert_eq!(evaluation.next, Some(at("2026-11-22T13:00:00Z")));
    }

    #[test]
    fn nothing_due_before_the_first_fire_and_reevaluation_is_stable() {
        let schedule = Schedule::parse("*/5 * * * *", None).unwrap();
        let last = at("2026-11-22T10:00:00Z");
        let early = schedule.evaluate(last, at("2026-11-22T10:04:59Z"));
        assert_eq!(early.due, None);
        assert_eq!(early.next, Some(at("2026-11-22T10:05:00Z")));
        // Two passes at the same instant see the same fire, hence the same name: one stage.
        let now = at("2026-11-22T10:05:30Z");
        let (a, b) = (schedule.evaluate(last, now), schedule.evaluate(last, now));
        assert_eq!(a, b);
        let fire = a.due.unwrap();
        assert_eq!(
            scheduled_stage_name("shop", fire),
            scheduled_stage_name("shop", b.due.unwrap())
        );
        assert_eq!(
            scheduled_stage_name("shop", fire),
            format!("shop-scheduled-{}", fire.as_second() / 60)
        );
        // Once that fire is recorded as handled, it is no longer due.
        assert_eq!(schedule.evaluate(fire, now).due, None);
    }

    #[test]
    fn rfc3339_is_utc_with_seconds() {
        assert_eq!(rfc3339(at("2026-03-29T01:00:00Z")), "2026-03-29T01:00:00Z");
    }
}
