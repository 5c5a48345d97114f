//! What a step sees: the migration being run, its plan (with the volumes the plan reconciler
//! discovered), and clients for the host, source and target clusters. Built once per reconcile by
//! the MigMigration reconciler; steps never look anything up that this already holds.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};

use crate::api::plan::DiscoveredVolume;
use crate::api::{MigMigration, MigPlan, Step};
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
    /// The source cluster's mover pods as the controller's watch of them sees them, while that watch
    /// is current (`None`: read the API). A view that may lag: steps use it only to see that a
    /// transfer is still under way, and read the API for anything they decide on.
    pub source_pods: Option<Store<Pod>>,
    /// The same for the target cluster's (the receivers).
    pub target_pods: Option<Store<Pod>>,
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

    /// The volumes this migration moves: the set fixed in its status when it started (a migration
    /// begun by an older Ferry, which did not record one, uses the plan's discovery).
    pub fn volumes(&self) -> &[DiscoveredVolume] {
        match self.migration.status.as_ref().and_then(|s| s.volumes.as_deref()) {
            Some(fixed) => fixed,
            None => self.plan_volumes(),
        }
    }

    /// The volumes the plan reconciler discovers now (may differ from [`Self::volumes`]).
    pub fn plan_volumes(&self) -> &[DiscoveredVolume] {
        self.plan
            .status
            .as_ref()
            .map(|s| s.volumes.as_slice())
            .unwrap_or_default()
    }

    /// How long `step` has been running, from its `started` time in the migration's status (zero
    /// before it first ran): the bound of every wait.
    pub fn elapsed(&self, step: Step) -> Duration {
        let started = self
            .migration
            .status
            .as_ref()
            .and_then(|s| s.pipeline.iter().find(|p| p.name == step))
            .and_then(|p| p.started.as_deref());
        elapsed_since(started, Timestamp::now())
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

/// How long since `started` (RFC 3339) at `now`; zero when unknown or unreadable.
pub fn elapsed_since(started: Option<&str>, now: Timestamp) -> Duration {
    started
        .and_then(|s| s.parse::<Timestamp>().ok())
        .and_then(|start| Duration::try_from(now.duration_since(start)).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_time_comes_from_the_step_start() {
        let now: Timestamp = "2026-11-22T10:10:00Z".parse().unwrap();
        assert_eq!(
            elapsed_since(Some("2026-11-22T10:00:00Z"), now),
            Duration::from_secs(600)
        );
        assert_eq!(elapsed_since(None, now), Duration::ZERO);
        assert_eq!(elapsed_since(Some("garbage"), now), Duration::ZERO);
    }
}
