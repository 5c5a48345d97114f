//! `MigPlan` reconciler: validate the spec (its hooks name valid MigHooks), check that both clusters
//! (and the storage, when named) are Ready, that the source namespaces exist, and discover the PVCs to
//! move. Every problem is its own condition; `Ready` holds only when there is no Critical one.

pub(crate) mod discovery;
mod history;
mod hooks;
pub(crate) mod triggers;
mod validate;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};

use super::clients::SECRET_RECHECK;
use super::{Context, status};
use crate::Result;
use crate::api::condition::{self, READY};
use crate::api::plan::{DiscoveredVolume, NameMapping};
use crate::api::{Category, Condition, MigCluster, MigPlan, MigPlanStatus, ResourceRef};

/// Reconciles one `MigPlan`.
pub async fn reconcile(plan: Arc<MigPlan>, ctx: Arc<Context>) -> Result<Action> {
    use tracing::Instrument as _;
    let span = tracing::info_span!(
        "reconcile",
        plan = %format!("{}/{}", plan.namespace().unwrap_or_default(), plan.name_any()),
    );
    reconcile_plan(plan, ctx).instrument(span).await
}

async fn reconcile_plan(plan: Arc<MigPlan>, ctx: Arc<Context>) -> Result<Action> {
    let own_ns = plan.namespace().unwrap_or_default();
    let spec = &plan.spec;
    let mut conditions = validate::unsupported(spec);
    let schedule = validate::schedule(spec).unwrap_or_else(|problem| {
        conditions.push(*problem);
        None
    });
    conditions.extend(validate::triggers(spec));
    conditions.extend(validate::volume_entries(spec));
    conditions.extend(hooks::check(&ctx.client, spec, &own_ns).await?);
    conditions.extend(condition::unused_fields(&spec.unused_fields()));
    let mappings = validate::namespace_mappings(spec).unwrap_or_else(|problems| {
        conditions.extend(problems);
        Vec::new()
    });

    let source = ready_cluster(
        &ctx,
        &spec.src_mig_cluster_ref,
        &own_ns,
        "Source",
        &mut conditions,
    )
    .await?;
    ready_cluster(
        &ctx,
        &spec.dest_mig_cluster_ref,
        &own_ns,
        "Destination",
        &mut conditions,
    )
    .await?;
    if let Some(storage_ref) = &spec.mig_storage_ref {
        check_storage(&ctx, storage_ref, &own_ns, &mut conditions).await?;
    }

    let mut volumes = Vec::new();
    if let Some(source) = source.filter(|_| !mappings.is_empty()) {
        match ctx.clients.get(&ctx.client, &source, SECRET_RECHECK).await {
            Ok(client) => volumes = inspect_source(&client, &mappings, spec, &mut conditions).await?,
            Err(problem) => conditions.push(Condition::holds(
                "SourceClusterNotReady",
                Category::Critical,
                problem.reason,
                problem.message,
            )),
        }
    }

    let critical = conditions
        .iter()
        .filter(|c| c.category == Category::Critical)
        .count();
    conditions.push(if critical == 0 {
        Condition::holds(READY, Category::Required, "Ready", "The migration plan is ready.")
    } else {
        Condition::fails(
            READY,
            Category::Required,
            "NotReady",
            format!("The migration plan has {critical} problem(s); see the other conditions."),
        )
    });

    let ok = critical == 0;
    // A closed plan (MTC's spec.closed) runs no more migrations: admission holds new ones, and its
    // triggers start nothing (their fires count as skipped, as for a plan that is not Ready).
    let closed = spec.closed == Some(true);
    if closed {
        conditions.push(Condition::holds(
            "Closed",
            Category::Advisory,
            "Closed",
            "The plan is closed (spec.closed: true): it runs no more migrations or triggered stages.",
        ));
    }
    let triggered = triggers::run(&ctx, &plan, schedule.as_ref(), ok && !closed).await?;
    conditions.extend(triggered.conditions);

    history::prune(&ctx, &plan).await?;

    // `lastStage` and `cutover` belong to the migration reconciler: never part of this apply, so
    // this manager neither owns them nor writes back a stale copy of them.
    let current = plan.status.as_ref().map(|s| MigPlanStatus {
        last_stage: None,
        cutover: None,
        ..s.clone()
    });
    let current = current.as_ref();
    let current_conditions = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let mut desired = current.cloned().unwrap_or_default();
    desired.conditions = condition::merge(current_conditions, conditions, &status::now());
    desired.volumes = volumes;
    desired.observed_generation = plan.metadata.generation;
    desired.triggers = triggered.status;
    record_next_stage(&ctx, &plan, triggered.next_scheduled_stage.as_deref());
    desired.next_scheduled_stage = triggered.next_scheduled_stage;
    desired.observed_revision = triggered.observed_revision;
    status::apply(
        &ctx,
        plan.as_ref(),
        current,
        &desired,
        current_conditions,
        &desired.conditions,
    )
    .await?;
    let requeue = if ok { ctx.resync } else { ctx.retry };
    // Wake for the next fire or the end of a debounce window; never busier than once a second.
    let requeue = triggered.wake_after.map_or(requeue, |wake| {
        requeue.min(wake.max(std::time::Duration::from_secs(1)))
    });
    Ok(Action::requeue(requeue))
}

/// Exports the plan's next scheduled stage as a gauge (and drops the series of deleted plans).
fn record_next_stage(ctx: &Context, plan: &MigPlan, next: Option<&str>) {
    let at = next
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(|t| t.as_second());
    let labels = super::metrics::PlanLabels {
        namespace: plan.namespace().unwrap_or_default(),
        plan: plan.name_any(),
    };
    ctx.metrics
        .set_next_scheduled_stage(labels, at, |p| ctx.plan_exists(&p.namespace, &p.plan));
}

/// Looks up a referenced MigCluster; records a condition when it is missing or not Ready.
async fn ready_cluster(
    ctx: &Context,
    reference: &ResourceRef,
    own_ns: &str,
    role: &str,
    conditions: &mut Vec<Condition>,
) -> Result<Option<MigCluster>> {
    let ns = reference.namespace_or(own_ns);
    let Some(cluster) = ctx.cluster(ns, &reference.name).await? else {
        conditions.push(Condition::holds(
            &format!("Invalid{role}ClusterRef"),
            Category::Critical,
            "NotFound",
            format!("{role} MigCluster {ns}/{} does not exist.", reference.name),
        ));
        return Ok(None);
    };
    let cluster_conditions = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    if !condition::is_true(cluster_conditions, READY) {
        let why = condition::find(cluster_conditions, READY)
            .and_then(|c| c.message.clone())
            .unwrap_or_else(|| "it has not been checked yet".into());
        conditions.push(Condition::holds(
            &format!("{role}ClusterNotReady"),
            Category::Critical,
            "NotReady",
            format!("{role} MigCluster {ns}/{} is not ready: {why}", reference.name),
        ));
        return Ok(None);
    }
    Ok(Some(cluster))
}

async fn check_storage(
    ctx: &Context,
    reference: &ResourceRef,
    own_ns: &str,
    conditions: &mut Vec<Condition>,
) -> Result<()> {
    let ns = reference.namespace_or(own_ns);
    let storage = ctx.storage(ns, &reference.name).await?;
    let problem = match storage {
        None => Some(format!("MigStorage {ns}/{} does not exist.", reference.name)),
        Some(storage) => {
            let list = storage
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default();
            (!condition::is_true(list, READY))
                .then(|| format!("MigStorage {ns}/{} is not ready.", reference.name))
        }
    };
    if let Some(message) = problem {
        conditions.push(Condition::holds(
            "InvalidStorageRef",
            Category::Critical,
            "NotReady",
            message,
        ));
    }
    Ok(())
}

/// Checks the source namespaces exist and discovers their PVCs.
async fn inspect_source(
    client: &Client,
    mappings: &[NameMapping],
    spec: &crate::api::MigPlanSpec,
    conditions: &mut Vec<Condition>,
) -> Result<Vec<DiscoveredVolume>> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut missing = Vec::new();
    let mut pvcs = Vec::new();
    let mut pods = Vec::new();
    for mapping in mappings {
        if namespaces.get_opt(&mapping.source).await?.is_none() {
            missing.push(mapping.source.clone());
            continue;
        }
        let params = ListParams::default();
        pvcs.extend(
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), &mapping.source)
                .list(&params)
                .await?,
        );
        pods.extend(
            Api::<Pod>::namespaced(client.clone(), &mapping.source)
                .list(&params)
                .await?,
        );
    }
    if !missing.is_empty() {
        conditions.push(Condition::holds(
            "NamespaceNotFoundOnSourceCluster",
            Category::Critical,
            "NotFound",
            format!(
                "Namespaces not found on the source cluster: {}.",
                missing.join(", ")
            ),
        ));
    }
    let found = discovery::discover(
        mappings,
        &spec.persistent_volumes,
        spec.volume_selector.as_ref(),
        &pvcs,
        &pods,
    );
    conditions.extend(found.conditions);
    Ok(found.volumes)
}
