//! Stage triggers: what makes a stage MigMigration start by itself (DESIGN.md §1, §5).
//!
//! Only the pure parts exist so far: [`push`] matches pushes to plans and debounces bursts; [`schedule`]
//! turns a plan's `spec.schedule` and `spec.timeZone` into fire times (DST-correct, with an injectable
//! clock) and decides which fire is due. The polling fallback, the creator of the stage migrations and
//! the controller's HTTP server are not written yet (see docs/triggers.md).

pub mod push;
pub mod schedule;
