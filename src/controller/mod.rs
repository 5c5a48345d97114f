//! The reconcilers that drive Ferry's custom resources, one file per kind, and the wiring that runs
//! them side by side on kube-runtime.
//!
//! ```text
//!  MigCluster ──► cluster::reconcile   (connect, probe, Ready/reason)
//!  MigStorage ──► storage::reconcile   (credentials Secret present?)
//!  MigHook    ──► hook::reconcile      (a custom image Ferry can run?)
//!  MigPlan    ──► plan::reconcile      (validate, clusters Ready, namespaces, discover PVCs)
//!  MigMigration ► migration::reconcile (validated against its plan, one per plan at a time)
//! ```
//!
//! Each reconciler computes the whole desired status from what it observes and hands it to
//! [`status::apply`], which writes only when something changed and records Events for condition changes.

pub mod cluster;
mod hook;
pub mod http;
pub mod leader;
pub mod metrics;
mod migration;
pub mod plan;
pub mod remote;
mod status;
mod storage;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use crate::api::{MigCluster, MigHook, MigMigration, MigPlan, MigStorage, ResourceRef};
use crate::{Error, Result};

/// What every reconciler shares.
pub struct Context {
    /// Client of the host cluster, the one the controller runs in.
    pub client: Client,
    /// Publishes Kubernetes Events on Ferry's objects.
    pub recorder: Recorder,
    /// How long to wait before looking again when everything is fine (remote state can drift).
    pub resync: Duration,
    /// How long to wait before looking again when something is wrong and may be fixed outside Ferry.
    pub retry: Duration,
    /// Prometheus metrics, served at `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
}

impl Context {
    /// A context for the host cluster `client`.
    pub fn new(client: Client) -> Self {
        let reporter = Reporter {
            controller: "ferry-controller".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            resync: Duration::from_secs(60),
            retry: Duration::from_secs(10),
            metrics: Arc::default(),
        }
    }
}

/// Runs all reconcilers until SIGTERM/SIGINT.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let config = watcher::Config::default();

    let clusters = Controller::new(Api::<MigCluster>::all(client.clone()), config.clone())
        .shutdown_on_signal()
        .run(cluster::reconcile, error_policy, ctx.clone())
        .for_each(log_result);

    let storages = Controller::new(Api::<MigStorage>::all(client.clone()), config.clone())
        .shutdown_on_signal()
        .run(storage::reconcile, error_policy, ctx.clone())
        .for_each(log_result);

    let hooks = Controller::new(Api::<MigHook>::all(client.clone()), config.clone())
        .shutdown_on_signal()
        .run(hook::reconcile, error_policy, ctx.clone())
        .for_each(log_result);

    let plan_controller = Controller::new(Api::<MigPlan>::all(client.clone()), config.clone());
    let plan_store = plan_controller.store();
    let plan_store_for_storage = plan_store.clone();
    let plan_store_for_hooks = plan_store.clone();
    let plans = plan_controller
        .watches(
            Api::<MigCluster>::all(client.clone()),
            config.clone(),
            move |cluster| {
                referring(&plan_store.state(), &cluster, |plan| {
                    vec![&plan.spec.src_mig_cluster_ref, &plan.spec.dest_mig_cluster_ref]
                })
            },
        )
        .watches(
            Api::<MigStorage>::all(client.clone()),
            config.clone(),
            move |storage| {
                referring(&plan_store_for_storage.state(), &storage, |plan| {
                    plan.spec.mig_storage_ref.iter().collect()
                })
            },
        )
        .watches(Api::<MigHook>::all(client.clone()), config.clone(), move |hook| {
            referring(&plan_store_for_hooks.state(), &hook, |plan| {
                plan.spec
                    .hooks
                    .iter()
                    .filter_map(|h| h.reference.as_ref())
                    .collect()
            })
        })
        .shutdown_on_signal()
        .run(plan::reconcile, error_policy, ctx.clone())
        .for_each(log_result);

    let migration_controller = Controller::new(Api::<MigMigration>::all(client.clone()), config.clone());
    let migration_store = migration_controller.store();
    let migrations = migration_controller
        .watches(Api::<MigPlan>::all(client), config, move |plan| {
            referring(&migration_store.state(), &plan, |migration| {
                vec![&migration.spec.mig_plan_ref]
            })
        })
        .shutdown_on_signal()
        .run(migration::reconcile, error_policy, ctx)
        .for_each(log_result);

    tokio::join!(clusters, storages, hooks, plans, migrations);
}

/// The objects in `candidates` that refer to `target` through one of the references `refs` returns.
fn referring<K, T>(
    candidates: &[Arc<K>],
    target: &T,
    refs: impl Fn(&K) -> Vec<&ResourceRef>,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + ResourceExt,
    T: ResourceExt,
{
    let target_ns = target.namespace().unwrap_or_default();
    candidates
        .iter()
        .filter(|candidate| {
            let own_ns = candidate.namespace().unwrap_or_default();
            refs(candidate)
                .iter()
                .any(|r| r.name == target.name_any() && r.namespace_or(&own_ns) == target_ns)
        })
        .map(|candidate| ObjectRef::from_obj(candidate.as_ref()))
        .collect()
}

fn error_policy<K>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action
where
    K: ResourceExt,
{
    let kind = std::any::type_name::<K>().rsplit("::").next().unwrap_or("object");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&metrics::ErrorLabels {
            kind: kind.to_string(),
            reason: error.metric_label().to_string(),
        })
        .inc();
    tracing::warn!(
        kind = std::any::type_name::<K>().rsplit("::").next().unwrap_or("object"),
        object = %format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any()),
        error = %error,
        label = error.metric_label(),
        "reconcile failed; retrying"
    );
    Action::requeue(ctx.retry)
}

async fn log_result<T: std::fmt::Debug, E: std::fmt::Display>(result: Result<T, E>) {
    if let Err(err) = result {
        tracing::debug!(error = %err, "controller stream error");
    }
}
