//! `MigCluster` reconciler: connect to the cluster with the configured credentials, check Ferry's
//! permissions there, and report `Ready` or the precise reason it is not.

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::{Context, remote, status};
use crate::Result;
use crate::api::condition::{self, READY};
use crate::api::{Category, Condition, MigCluster, MigClusterStatus};

/// Reconciles one `MigCluster`.
pub async fn reconcile(cluster: Arc<MigCluster>, ctx: Arc<Context>) -> Result<Action> {
    // Always look at the Secret here (max age zero): a rotated or broken token is seen within one
    // resync, and the cached client the other reconcilers use is replaced or dropped with it.
    let outcome = match ctx.clients.get(&ctx.client, &cluster, Duration::ZERO).await {
        Ok(client) => remote::probe(&client).await,
        Err(problem) => Err(problem),
    };
    if outcome.is_err() {
        ctx.clients
            .forget(&cluster.namespace().unwrap_or_default(), &cluster.name_any());
    }
    let (ready, server_version) = match &outcome {
        Ok(version) => (
            Condition::holds(
                READY,
                Category::Required,
                "Ready",
                format!("The cluster is ready ({version})."),
            ),
            Some(version.clone()),
        ),
        Err(problem) => (
            Condition::fails(READY, Category::Critical, problem.reason, problem.message.clone()),
            None,
        ),
    };
    let current = cluster.status.as_ref();
    let current_conditions = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let desired = MigClusterStatus {
        conditions: condition::merge(
            current_conditions,
            std::iter::once(ready)
                .chain(condition::unused_fields(&cluster.spec.unused_fields()))
                .collect(),
            &status::now(),
        ),
        observed_generation: cluster.metadata.generation,
        server_version,
    };
    status::apply(
        &ctx,
        cluster.as_ref(),
        current,
        &desired,
        current_conditions,
        &desired.conditions,
    )
    .await?;
    Ok(Action::requeue(if outcome.is_ok() {
        ctx.resync
    } else {
        ctx.retry
    }))
}
