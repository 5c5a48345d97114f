//! Stage triggers: what makes a stage MigMigration start by itself (DESIGN.md §1, §5).
//!
//! Only the pure cron part exists so far: [`schedule`] turns a plan's `spec.schedule` and `spec.timeZone`
//! into fire times (DST-correct, with an injectable clock) and decides which fire is due. The push trigger,
//! the creator of the stage migrations and the controller's HTTP server are not written yet (see
//! docs/triggers.md).

pub mod schedule;
