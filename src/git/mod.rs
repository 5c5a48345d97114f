//! Git access: reading the app's manifests, quiesce commits that preserve formatting, reverts, and the
//! push webhook receiver (DESIGN.md §5).
//!
//! ```text
//!   Repo::open_or_clone ─▶ fetch ─▶ load_manifests(path) ─▶ quiesce::plan ─▶ commit_and_push
//!                                                        └▶ quiesce::unquiesce_plan(recorded)
//!   revert_ferry_commits(filter)      changed_since / poll / watch::spawn_interval
//!   webhook::router(config, tx) ─▶ PushEvent on an mpsc channel
//! ```
//! libgit2 calls block: run `Repo` methods inside `tokio::task::spawn_blocking`.

mod commit;
mod credentials;
pub mod manifests;
pub mod quiesce;
mod repo;
mod revert;
pub mod watch;
pub mod webhook;
mod yaml;

pub use commit::{
    Author, CommitRequest, DEFAULT_AUTHOR, PushOutcome, TRAILER_MIGRATION, TRAILER_PLAN, TRAILER_REVERTS,
    Trailers, message_with_trailers, parse_trailers,
};
pub use credentials::Credentials;
pub use git2::Oid;
pub use manifests::Manifests;
pub use quiesce::{FileEdit, QuiescePlan, RecordedValue};
pub use repo::Repo;
pub use revert::{RevertFilter, RevertOutcome};
pub use watch::WatchReport;
