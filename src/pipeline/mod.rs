//! The migration pipeline's engine: itineraries as resumable state machines persisted in
//! `MigMigration.status` (DESIGN.md §3).
//!
//! ```text
//!   reconcile ─► engine::current_step(status) ─► step (ensure_* ladder, I/O) ─► StepOutcome
//!        ▲                                                                         │
//!        └──────── status written ◄── engine::advance(status, outcome, now) ◄──────┘
//! ```
//!
//! Steps do the work and report a [`StepOutcome`]; [`engine::advance`] is the only place that turns an
//! outcome into status (pipeline entries, `Running` with `Step: N/M`, `Succeeded`/`Failed`, the
//! downtime window) and into the next requeue. It is pure, so every transition is unit-tested and a
//! controller killed at any point resumes from what status says.

pub mod argocd;
pub mod cleanup;
pub mod context;
pub mod engine;
pub mod hook_job;
pub mod kstatus;
pub mod labels;
pub mod movers;
pub mod quantity;
pub mod quiesce;
pub mod quiesced;
pub mod repo;
pub mod steps;
pub mod target;
pub mod transfer;

pub use context::StepContext;
pub use engine::{Next, StepOutcome, advance, current_step, start};
