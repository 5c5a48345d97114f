//! Git access: reading the app's manifests, quiesce commits that preserve formatting, reverts, and the
//! push webhook receiver (DESIGN.md §5).

mod yaml;

pub mod manifests;
pub mod quiesce;
