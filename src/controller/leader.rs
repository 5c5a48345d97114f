//! Leader election: with two or more controller replicas only the holder of a coordination.k8s.io
//! Lease runs the reconcilers (kube-lease-manager, server-side apply on the Lease). The others wait;
//! when the leader dies its Lease expires after `duration` and one of them takes over, resuming every
//! migration from its status (every step is idempotent). A leader that loses the Lease exits at once,
//! so two controllers never act together; its restart rejoins as a follower.

use std::sync::Arc;
use std::time::Duration;

use kube_lease_manager::{LeaseCreateMode, LeaseManagerBuilder};

use super::Context;
use crate::{Error, Result};

/// How to take part in the election.
#[derive(Clone, Debug)]
pub struct Election {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (the pod name in a cluster).
    pub identity: String,
    /// How long a Lease lasts without renewal.
    pub duration: Duration,
}

/// Waits for the Lease, runs the reconcilers while holding it, and releases it on a clean shutdown.
/// Returns when the reconcilers stop (SIGTERM/SIGINT); exits the process if the Lease is lost.
pub async fn run_when_leading(ctx: Arc<Context>, election: Election) -> Result<()> {
    let lease_error = |e: kube_lease_manager::LeaseManagerError| Error::LeaderElection(e.to_string());
    let seconds = election.duration.as_secs().max(2);
    let manager = LeaseManagerBuilder::new(ctx.client.clone(), &election.name)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(seconds)
        .with_grace((seconds / 3).max(1))
        .with_create_mode(LeaseCreateMode::AutoCreate)
        .with_field_manager("ferry-controller")
        .build()
        .await
        .map_err(lease_error)?;
    let (mut leading, task) = manager.watch().await;
    tracing::info!(identity = %election.identity, lease = %format!("{}/{}", election.namespace, election.name), "waiting for leadership");
    while !*leading.borrow_and_update() {
        tokio::select! {
            changed = leading.changed() => {
                if changed.is_err() {
                    return Err(Error::LeaderElection("the lease manager stopped".into()));
                }
            }
            () = shutdown() => return Ok(()),
        }
    }
    tracing::info!(identity = %election.identity, "leading: running the reconcilers");
    tokio::select! {
        () = super::run(ctx) => {}
        () = lost(&mut leading) => {
            tracing::error!(identity = %election.identity, "lost the lease; exiting so that only the new leader acts");
            std::process::exit(1);
        }
    }
    drop(leading);
    if let Ok(Ok(manager)) = task.await {
        let _ = manager.release().await;
    }
    Ok(())
}

/// Resolves when the channel says this replica no longer leads.
async fn lost(leading: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if leading.changed().await.is_err() || !*leading.borrow_and_update() {
            return;
        }
    }
}

/// SIGINT or SIGTERM, whichever comes first.
async fn shutdown() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
