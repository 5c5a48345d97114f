//! Stage triggers: what makes a stage MigMigration start by itself (DESIGN.md §1, §5).
//!
//! Pure logic only: [`schedule`] turns `spec.schedule` and `spec.timeZone` into fire times
//! (DST-correct); [`push`] matches pushes to plans; [`decide`] combines both with what the plan's
//! status remembers into one decision per pass. The controller side (reading the webhook's record,
//! polling the branch, creating the stage) is `controller::plan::triggers`; the webhook endpoint is
//! `controller::webhook`.

pub mod decide;
pub mod push;
pub mod schedule;
