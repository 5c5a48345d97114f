//! Quiescing the source app (DESIGN.md §4). Patch mode lives here: every workload kind stopped by a
//! single merge patch that records the previous value in a `migration.ferry.dev/pre-quiesce-*`
//! annotation in the same write, so the way back is stored before (atomically with) any change, and
//! unquiesce restores exactly that value. Commit mode edits the manifests in Git (`crate::git::quiesce`).

pub mod patch;
pub mod workloads;

pub use patch::{Kind, quiesce_patch, restore_on_target_patch, unquiesce_patch};
pub use workloads::{Summary, quiesce_namespace, unquiesce_namespace};
