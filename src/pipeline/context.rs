//! What a step sees: the migration being run, its plan (with the volumes the plan reconciler
//! discovered), and clients for the host, source and target clusters. Built once per reconcile by
//! the MigMigration reconciler; steps never look anything up that this already holds.

use std::collections::BTreeMap;

use kube::{Client, ResourceExt};

use crate::api::plan::DiscoveredVolume;
use crate::api::{MigMigration, MigPlan};
use crate::pipeline::labels;

/// Everything a pipeline step needs.
#[derive(Clone)]
pub struct StepContext {
    /// The cluster Ferry runs in (MigPlans, MigMigrations, Secrets they name, Argo CD Applications).
    pub host: Client,
    /// The plan's source cluster.
    pub source: Client,
    /// The plan's target (destination) cluster.
    pub target: Client,
    /// The migration being run.
    pub migration: MigMigration,
    /// Its plan.
    pub plan: MigPlan,
}

impl StepContext {
    /// UID of the migration: the label every temporary object carries.
    pub fn uid(&self) -> String {
        self.migration.uid().unwrap_or_default()
    }

    /// Namespace of the plan (Secrets named by the plan live there).
    pub fn plan_namespace(&self) -> String {
        self.plan.namespace().unwrap_or_default()
    }

    /// The volumes to move, as the plan reconciler discovered them.
    pub fn volumes(&self) -> &[DiscoveredVolume] {
        self.plan
            .status
            .as_ref()
            .map(|s| s.volumes.as_slice())
            .unwrap_or_default()
    }

    /// Labels for a temporary object of this migration (cleanup finds them by the UID).
    pub fn temporary_labels(&self) -> BTreeMap<String, String> {
        labels::temporary_labels(&self.plan_namespace(), &self.plan.name_any(), &self.uid())
    }

    /// Whether the migration asks for a checksum verification (its own flag or the plan's).
    pub fn verify(&self) -> bool {
        self.migration.spec.verify || self.plan.spec.transfer.as_ref().is_some_and(|t| t.verify)
    }

    /// `namespace/name` of the plan, for messages and commit trailers.
    pub fn plan_key(&self) -> String {
        format!("{}/{}", self.plan_namespace(), self.plan.name_any())
    }
}
