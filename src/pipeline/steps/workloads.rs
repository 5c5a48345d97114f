//! The cutover and rollback steps that act on workloads in the clusters: Patch-mode QuiesceSource,
//! UnquiesceTarget, QuiesceTarget and UnquiesceSource (with Argo CD's auto-sync paused or refused
//! first), and the waits of both modes, EnsureSourceQuiesced and EnsureTargetReady.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

use crate::Result;
use crate::api::Step;
use crate::api::plan::NameMapping;
use crate::pipeline::engine::Warning;
use crate::pipeline::quiesce::{self, Kind};
use crate::pipeline::{StepContext, StepOutcome, argocd, quiesced};

/// How long the waits may take before the step fails.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(600);
/// How often EnsureSourceQuiesced and EnsureTargetReady look again: both run inside the cutover's
/// downtime window, where every interval is downtime (half a look's interval on average). A look is a
/// LIST per namespace (and kind); the window lasts seconds, so the API servers see a short burst.
const POLL: Duration = Duration::from_millis(100);

/// `(source, target)` namespace pairs of the plan.
fn mappings(ctx: &StepContext) -> Vec<NameMapping> {
    ctx.plan
        .spec
        .namespaces
        .iter()
        .filter_map(|entry| NameMapping::parse(entry).ok())
        .collect()
}

/// QuiesceSource (Patch): Argo CD first (pause auto-sync or refuse), then every workload of the source
/// namespaces stopped with its previous value recorded in the same write.
pub async fn quiesce_source(ctx: &StepContext) -> Result<StepOutcome> {
    // Both Applications before any change: a refusal changes nothing.
    for side in [Side::Source, Side::Target] {
        if let Some(refusal) = refuse_self_healing(ctx, side).await? {
            return Ok(StepOutcome::Failed(refusal));
        }
    }
    for side in [Side::Source, Side::Target] {
        pause_application(ctx, side).await?;
    }
    let changed = change_all(ctx, Side::Source, Change::Quiesce).await?;
    Ok(done(changed, "Nothing left to scale down.", "Scaled down"))
}

/// UnquiesceSource (rollback, Patch): the recorded values back on the source, and Argo CD's auto-sync
/// resumed if Ferry paused it.
pub async fn unquiesce_source(ctx: &StepContext) -> Result<StepOutcome> {
    let changed = change_all(ctx, Side::Source, Change::Unquiesce).await?;
    resume_application(ctx, Side::Source).await?;
    Ok(done(changed, "Nothing was quiesced on the source.", "Restored"))
}

/// QuiesceTarget (rollback, Patch): the target's workloads stopped, values recorded.
pub async fn quiesce_target(ctx: &StepContext) -> Result<StepOutcome> {
    let changed = change_all(ctx, Side::Target, Change::Quiesce).await?;
    // The target is back at Git's replicas: its Application may heal again.
    resume_application(ctx, Side::Target).await?;
    Ok(done(
        changed,
        "Nothing runs on the target.",
        "Scaled down on the target:",
    ))
}

#[derive(Clone, Copy)]
enum Side {
    Source,
    Target,
}

#[derive(Clone, Copy)]
enum Change {
    Quiesce,
    Unquiesce,
}

/// Quiesces or unquiesces every plan namespace on one side; returns `ns/Kind/name` of what changed.
async fn change_all(ctx: &StepContext, side: Side, change: Change) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    for mapping in mappings(ctx) {
        let (client, namespace) = match side {
            Side::Source => (&ctx.source, &mapping.source),
            Side::Target => (&ctx.target, &mapping.target),
        };
        let summary = match change {
            Change::Quiesce => quiesce::quiesce_namespace(client, namespace).await?,
            Change::Unquiesce => quiesce::unquiesce_namespace(client, namespace).await?,
        };
        changed.extend(summary.changed.iter().map(|w| format!("{namespace}/{w}")));
    }
    Ok(changed)
}

fn done(changed: Vec<String>, nothing: &str, verb: &str) -> StepOutcome {
    StepOutcome::Done(if changed.is_empty() {
        nothing.into()
    } else {
        format!("{verb} {}.", changed.join(", "))
    })
}

/// UnquiesceTarget (Patch): every source workload Ferry quiesced gives its recorded value to the
/// workload of the same kind and name in the mapped target namespace (deployed there at zero by the
/// user or Argo CD). When the target namespaces hold no workloads at all (the app is deployed there
/// later, as in MTC's procedure) the step completes with a warning; when some are there but one is
/// missing, the step fails: a partly deployed app is a mistake to fix, not to start.
pub async fn unquiesce_target(ctx: &StepContext) -> Result<StepOutcome> {
    if !any_workload(ctx, Side::Target).await? {
        let namespaces: Vec<String> = mappings(ctx).into_iter().map(|m| m.target).collect();
        return Ok(StepOutcome::Warned {
            message: format!("Nothing to start: {} hold no workloads.", namespaces.join(", ")),
            warning: Warning::NoTargetWorkloads(namespaces.join(", ")),
        });
    }
    let mut started = Vec::new();
    for mapping in mappings(ctx) {
        for kind in Kind::ALL.iter().rev().copied() {
            let Some(source_api) = workload_api(&ctx.source, &mapping.source, kind).await? else {
                continue;
            };
            for object in source_api.list(&ListParams::default()).await?.items {
                let value = serde_json::to_value(&object)?;
                if kind.is_owned_elsewhere(&value) {
                    continue;
                }
                let Some(patch) = quiesce::restore_on_target_patch(kind, &value) else {
                    continue;
                };
                let name = object.name_any();
                let Some(target_api) = workload_api(&ctx.target, &mapping.target, kind).await? else {
                    return Ok(missing_on_target(kind, &mapping.target, &name));
                };
                if target_api.get_opt(&name).await?.is_none() {
                    return Ok(missing_on_target(kind, &mapping.target, &name));
                }
                target_api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                started.push(format!("{}/{}/{name}", mapping.target, kind.api().2));
            }
        }
    }
    Ok(StepOutcome::Done(format!(
        "Started {} on the target with the source's values.",
        if started.is_empty() {
            "nothing".to_string()
        } else {
            started.join(", ")
        }
    )))
}

/// Whether any workload Ferry quiesces (of any kind, not owned by another) is in the plan's
/// namespaces on `side`.
async fn any_workload(ctx: &StepContext, side: Side) -> Result<bool> {
    for mapping in mappings(ctx) {
        let (client, namespace) = match side {
            Side::Source => (&ctx.source, &mapping.source),
            Side::Target => (&ctx.target, &mapping.target),
        };
        for kind in Kind::ALL.iter().copied() {
            let Some(api) = workload_api(client, namespace, kind).await? else {
                continue;
            };
            for object in api.list(&ListParams::default()).await?.items {
                if !kind.is_owned_elsewhere(&serde_json::to_value(&object)?) {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

fn missing_on_target(kind: Kind, namespace: &str, name: &str) -> StepOutcome {
    StepOutcome::Failed(format!(
        "the target cluster has no {} {namespace}/{name}; deploy the app to the target (scaled to zero) \
         before the cutover",
        kind.api().2
    ))
}

/// EnsureSourceQuiesced: no pod (running or terminating) mounts a moved claim any more.
pub async fn ensure_source_quiesced(ctx: &StepContext) -> Result<StepOutcome> {
    let mut pods = Vec::new();
    for mapping in mappings(ctx) {
        let api: Api<Pod> = Api::namespaced(ctx.source.clone(), &mapping.source);
        pods.extend(api.list(&ListParams::default()).await?.items);
    }
    let holding = quiesced::pods_still_mounting(&pods, ctx.volumes(), &ctx.uid());
    if holding.is_empty() {
        return Ok(StepOutcome::Done("No pod mounts the volumes.".into()));
    }
    wait_or_fail(
        ctx,
        Step::EnsureSourceQuiesced,
        format!("Pods still mount the volumes: {}.", holding.join(", ")),
    )
}

/// EnsureTargetReady: every workload of the target namespaces that should run is available.
pub async fn ensure_target_ready(ctx: &StepContext) -> Result<StepOutcome> {
    let mut waiting = Vec::new();
    for mapping in mappings(ctx) {
        for kind in [
            Kind::Deployment,
            Kind::StatefulSet,
            Kind::ReplicaSet,
            Kind::DaemonSet,
            Kind::DeploymentConfig,
        ] {
            let Some(api) = workload_api(&ctx.target, &mapping.target, kind).await? else {
                continue;
            };
            for object in api.list(&ListParams::default()).await?.items {
                let value = serde_json::to_value(&object)?;
                if !kind.is_owned_elsewhere(&value) && !is_ready(kind, &value) {
                    waiting.push(format!(
                        "{}/{}/{}",
                        mapping.target,
                        kind.api().2,
                        object.name_any()
                    ));
                }
            }
        }
    }
    if waiting.is_empty() {
        return Ok(StepOutcome::Done("The app is ready on the target.".into()));
    }
    wait_or_fail(
        ctx,
        Step::EnsureTargetReady,
        format!("Waiting for {} to be ready.", waiting.join(", ")),
    )
}

/// Whether a workload has all its wanted pods ready.
pub fn is_ready(kind: Kind, object: &Value) -> bool {
    let (spec, status) = (&object["spec"], &object["status"]);
    let count = |v: &Value| v.as_i64().unwrap_or(0);
    match kind {
        Kind::DaemonSet => count(&status["numberReady"]) >= count(&status["desiredNumberScheduled"]),
        Kind::Job | Kind::CronJob => true,
        _ => {
            let wanted = spec["replicas"].as_i64().unwrap_or(1);
            let observed = status["observedGeneration"].as_i64().unwrap_or(0);
            let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
            wanted == 0 || (observed >= generation && count(&status["readyReplicas"]) >= wanted)
        }
    }
}

fn wait_or_fail(ctx: &StepContext, step: Step, message: String) -> Result<StepOutcome> {
    if ctx.elapsed(step) > WAIT_TIMEOUT {
        return Ok(StepOutcome::Failed(format!(
            "{message} Gave up after {}s.",
            WAIT_TIMEOUT.as_secs()
        )));
    }
    Ok(StepOutcome::InProgress {
        message,
        progress: Vec::new(),
        after: POLL,
    })
}

/// The API of `kind` in `namespace`, or `None` when the cluster does not serve it.
async fn workload_api(client: &Client, namespace: &str, kind: Kind) -> Result<Option<Api<DynamicObject>>> {
    let (group, version, kind_name, plural) = kind.api();
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind_name), plural);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(Some(api)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// The source's or the target's Application (host cluster), when the plan names one.
async fn application(ctx: &StepContext, side: Side) -> Result<Option<(Api<DynamicObject>, DynamicObject)>> {
    let argocd = ctx.plan.spec.gitops.as_ref().and_then(|g| g.argocd.as_ref());
    let (reference, field) = match side {
        Side::Source => (
            argocd.and_then(|a| a.source_application.clone()),
            "sourceApplication",
        ),
        Side::Target => (
            argocd.and_then(|a| a.target_application.clone()),
            "targetApplication",
        ),
    };
    let Some(reference) = reference else {
        return Ok(None);
    };
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "applications");
    let namespace = reference.namespace_or(&ctx.plan_namespace()).to_string();
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.host.clone(), &namespace, &resource);
    match api.get_opt(&reference.name).await {
        Ok(Some(app)) => Ok(Some((api, app))),
        Ok(None) => Err(crate::Error::InvalidSpec(format!(
            "Argo CD Application {namespace}/{} named by gitops.argocd.{field} does not exist",
            reference.name
        ))),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(crate::Error::InvalidSpec(
            "gitops.argocd is set but the host cluster does not serve argoproj.io/v1alpha1 Applications"
                .into(),
        )),
        Err(err) => Err(err.into()),
    }
}

/// The refusal when the Application on `side` self-heals and the plan does not allow pausing it.
async fn refuse_self_healing(ctx: &StepContext, side: Side) -> Result<Option<String>> {
    let Some((_, app)) = application(ctx, side).await? else {
        return Ok(None);
    };
    let allowed = ctx.plan.spec.gitops.as_ref().is_some_and(|g| g.pause_auto_sync);
    if allowed || !argocd::self_heals(&serde_json::to_value(&app)?) {
        return Ok(None);
    }
    Ok(Some(match side {
        Side::Source => argocd::refusal(&app.name_any()),
        Side::Target => argocd::target_refusal(&app.name_any()),
    }))
}

/// Pauses the self-healing auto-sync of the Application on `side` (the plan allows it: see
/// [`refuse_self_healing`]), its policy recorded on it. The source's resumes at rollback
/// (UnquiesceSource), the target's when a rollback has stopped the target again (QuiesceTarget);
/// after a successful cutover both stay paused, since Git still says the old replicas on both sides.
async fn pause_application(ctx: &StepContext, side: Side) -> Result<()> {
    let Some((api, app)) = application(ctx, side).await? else {
        return Ok(());
    };
    let value = serde_json::to_value(&app)?;
    if argocd::self_heals(&value)
        && let Some(patch) = argocd::pause_patch(&value)
    {
        api.patch(&app.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

async fn resume_application(ctx: &StepContext, side: Side) -> Result<()> {
    let Some((api, app)) = application(ctx, side).await? else {
        return Ok(());
    };
    if let Some(patch) = argocd::resume_patch(&serde_json::to_value(&app)?) {
        api.patch(&app.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn readiness_per_kind() {
        let deployment = |replicas: i64, ready: i64, observed: i64| {
            json!({"metadata": {"generation": 2}, "spec": {"replicas": replicas},
                   "status": {"readyReplicas": ready, "observedGeneration": observed}})
        };
        assert!(is_ready(Kind::Deployment, &deployment(2, 2, 2)));
        assert!(!is_ready(Kind::Deployment, &deployment(2, 1, 2)));
        assert!(
            !is_ready(Kind::Deployment, &deployment(2, 2, 1)),
            "status of an older spec"
        );
        assert!(
            is_ready(Kind::StatefulSet, &deployment(0, 0, 0)),
            "nothing wanted"
        );
        let ds = json!({"status": {"numberReady": 1, "desiredNumberScheduled": 2}});
        assert!(!is_ready(Kind::DaemonSet, &ds));
        assert!(is_ready(Kind::CronJob, &json!({})));
    }
}
