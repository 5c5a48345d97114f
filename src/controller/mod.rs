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

mod backoff;
pub mod clients;
pub mod cluster;
mod hook;
pub mod http;
pub mod leader;
pub mod metrics;
mod migration;
pub mod mover_watch;
mod pacing;
pub mod plan;
pub mod remote;
mod status;
mod storage;
mod stores;
pub mod webhook;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{self as runtime_controller, Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use crate::api::{MigCluster, MigHook, MigMigration, MigPlan, MigStorage, ResourceRef};
use crate::{Error, Result};

/// Objects of one kind reconciled at once, unless `--max-concurrent-reconciles` says otherwise.
pub const DEFAULT_CONCURRENCY: u16 = 16;

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
    /// At most this many objects of one kind are reconciled at once (0: no bound).
    pub concurrency: u16,
    /// Clients of remote clusters, reused across reconciles.
    pub clients: clients::RemoteClients,
    /// The controllers' watch caches, set by [`run`] (until then, lookups read the API).
    pub stores: OnceLock<stores::Stores>,
    /// The resourceVersion of each status this controller wrote last.
    pub written: stores::Written,
    /// Consecutive failures per object, for the retry delay.
    pub backoff: backoff::Backoff,
    /// When each running migration is next due for a look.
    pub pacing: pacing::Pacing,
    /// Watches of the mover pods in the clusters migrations run in, shared by the migrations.
    pub mover_watches: mover_watch::MoverWatches,
    /// The UIDs of migrations whose mover pods changed, taken by [`run`] to wake them.
    woken: std::sync::Mutex<Option<futures::channel::mpsc::UnboundedReceiver<String>>>,
}

impl Context {
    /// A context for the host cluster `client`.
    pub fn new(client: Client) -> Self {
        let reporter = Reporter {
            controller: "ferry-controller".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let (wake, woken) = futures::channel::mpsc::unbounded();
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            resync: Duration::from_secs(60),
            retry: Duration::from_secs(10),
            metrics: Arc::default(),
            concurrency: DEFAULT_CONCURRENCY,
            clients: clients::RemoteClients::default(),
            stores: OnceLock::new(),
            written: stores::Written::default(),
            backoff: backoff::Backoff::default(),
            pacing: pacing::Pacing::default(),
            mover_watches: mover_watch::MoverWatches::new(wake),
            woken: std::sync::Mutex::new(Some(woken)),
        }
    }
}

/// Runs all reconcilers until SIGTERM/SIGINT.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let config = watcher::Config::default();
    let bound = runtime_controller::Config::default().concurrency(ctx.concurrency);

    let cluster_controller =
        Controller::new(Api::<MigCluster>::all(client.clone()), config.clone()).with_config(bound.clone());
    let storage_controller =
        Controller::new(Api::<MigStorage>::all(client.clone()), config.clone()).with_config(bound.clone());
    let hook_controller =
        Controller::new(Api::<MigHook>::all(client.clone()), config.clone()).with_config(bound.clone());
    let plan_controller =
        Controller::new(Api::<MigPlan>::all(client.clone()), config.clone()).with_config(bound.clone());
    let migration_controller =
        Controller::new(Api::<MigMigration>::all(client.clone()), config.clone()).with_config(bound);
    let plan_store = plan_controller.store();
    let migration_store = migration_controller.store();
    // The reconcilers look objects up in these caches instead of reading the API (stores.rs).
    let _ = ctx.stores.set(stores::Stores {
        clusters: cluster_controller.store(),
        storages: storage_controller.store(),
        plans: plan_store.clone(),
        migrations: migration_store.clone(),
    });

    let clusters = cluster_controller
        .shutdown_on_signal()
        .run(
            |object, ctx| tracked(object, ctx, cluster::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(log_result);

    let storages = storage_controller
        .shutdown_on_signal()
        .run(
            |object, ctx| tracked(object, ctx, storage::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(log_result);

    let hooks = hook_controller
        .shutdown_on_signal()
        .run(
            |object, ctx| tracked(object, ctx, hook::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(log_result);

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
        .run(
            |object, ctx| tracked(object, ctx, plan::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(log_result);

    // A mover pod event wakes its migration now, whenever its next look was due.
    let woken = ctx
        .woken
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .map(|woken| woken.boxed())
        .unwrap_or_else(|| futures::stream::empty().boxed());
    let (wake_store, wake_ctx) = (migration_store.clone(), ctx.clone());
    let woken = woken.filter_map(move |uid| {
        let found = wake_store
            .state()
            .into_iter()
            .find(|m| m.uid().as_deref() == Some(uid.as_str()));
        let found = found.map(|m| {
            wake_ctx.pacing.clear(&stores::object_key(m.as_ref()));
            ObjectRef::from_obj(m.as_ref())
        });
        std::future::ready(found)
    });
    let migrations = migration_controller
        .reconcile_on(woken)
        .watches(Api::<MigPlan>::all(client), config, move |plan| {
            referring(&migration_store.state(), &plan, |migration| {
                vec![&migration.spec.mig_plan_ref]
            })
        })
        .shutdown_on_signal()
        .run(
            |object, ctx| tracked(object, ctx, migration::reconcile),
            error_policy,
            ctx,
        )
        .for_each(log_result);

    tokio::join!(clusters, storages, hooks, plans, migrations);
}

/// Runs `reconcile` and, when it succeeds, resets the object's failure count (see [`error_policy`]).
async fn tracked<K, F, Fut>(object: Arc<K>, ctx: Arc<Context>, reconcile: F) -> Result<Action>
where
    K: Resource<DynamicType = ()>,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action>>,
{
    let key = stores::object_key(object.as_ref());
    let result = reconcile(object, ctx.clone()).await;
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    result
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

/// Counts the failure and retries after an exponential, jittered delay (backoff.rs).
fn error_policy<K>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()> + ResourceExt,
{
    let after = ctx
        .backoff
        .failed(&stores::object_key(object.as_ref()), ctx.retry);
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
        retry_in_ms = after.as_millis() as u64,
        "reconcile failed; retrying"
    );
    Action::requeue(after)
}

async fn log_result<T: std::fmt::Debug, E: std::fmt::Display>(result: Result<T, E>) {
    if let Err(err) = result {
        tracing::debug!(error = %err, "controller stream error");
    }
}
