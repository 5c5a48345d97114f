//! `ferry report`: a migration report people can read and file, as one self-contained HTML page.
//!
//! ```text
//!  MigPlan + its MigMigrations ──▶ model::Report::build (pure) ──▶ html::render (pure) ──▶ report.html
//!                                        ▲ words: the wording shared with `ferry status` and `--wait`
//! ```
//!
//! Nothing here does I/O: `cli/report.rs` reads the resources (and, optionally, commit messages from a
//! local clone) and writes the file. It imports `api` and, for sizes and the `Synced … bytes` step
//! message, the pure `pipeline::transfer` that writes them, so there is one wording of each.

pub mod html;
pub mod model;
mod timeline;
pub mod words;

pub use model::{Found, Report};

/// The page for `plan` and its `migrations` (oldest first).
pub fn page(plan: &crate::api::MigPlan, migrations: &[crate::api::MigMigration], found: Found) -> String {
    html::render(&Report::build(plan, migrations, found))
}

#[cfg(test)]
mod tests;
