//! The custom resources of `migration.ferry.dev/v1alpha1` (DESIGN.md §2).
//!
//! Kinds and field names follow Red Hat's Migration Toolkit for Containers (MTC) so its documented CLI
//! procedure works with only the `apiVersion` changed; Ferry's own extensions (GitOps, DNS, schedule,
//! transfer tuning) sit beside them. One kind per file; shared status pieces in [`condition`] and [`refs`].
//!
//! ```text
//!  MigCluster ──┐                    MigStorage (compatibility only)
//!  MigCluster ──┼── MigPlan ◄── MigMigration (stage | cutover | rollback)
//!                    └─ spec.hooks ──► MigHook (an image run as a Job at a cutover phase)
//! ```

pub mod cluster;
pub mod condition;
pub mod hook;
pub mod migration;
pub mod mover_identity;
pub mod plan;
pub mod refs;
pub mod step;
pub mod storage;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use cluster::{MigCluster, MigClusterSpec, MigClusterStatus};
pub use condition::{Category, Condition};
pub use hook::{HookPhase, MigHook, MigHookSpec, MigHookStatus};
pub use migration::{Itinerary, MigMigration, MigMigrationSpec, MigMigrationStatus, PipelineStep};
pub use mover_identity::{IdentityFields, IdentityProblem, MoverIdentity};
pub use plan::{MigPlan, MigPlanSpec, MigPlanStatus};
pub use refs::ResourceRef;
pub use step::Step;
pub use storage::{MigStorage, MigStorageSpec, MigStorageStatus};

/// The API group of every Ferry resource.
pub const GROUP: &str = "migration.ferry.dev";

/// Prefix of Ferry's labels and annotations.
pub const LABEL_PREFIX: &str = "migration.ferry.dev/";

/// Every CustomResourceDefinition Ferry serves, in a stable order (`ferry crds` writes them).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        MigCluster::crd(),
        MigStorage::crd(),
        MigPlan::crd(),
        MigMigration::crd(),
        MigHook::crd(),
    ]
}
