//! Waiting until a cluster (and, when configured, an Argo CD Application in the host cluster) shows a
//! commit: every quiesce-relevant field the manifests at that commit write is what the cluster has,
//! and the Application reports the commit or a descendant synced and healthy.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;

use super::record::{Expectation, is_applied, wait_outcome};
use crate::Result;
use crate::api::{ResourceRef, Step};
use crate::git::Oid;
use crate::pipeline::repo::RepoAccess;
use crate::pipeline::{StepContext, StepOutcome, argocd};

/// `(group, version, plural)` of a workload kind Ferry quiesces.
fn workload_api(kind: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match kind {
        "Deployment" => ("apps", "v1", "deployments"),
        "StatefulSet" => ("apps", "v1", "statefulsets"),
        "ReplicaSet" => ("apps", "v1", "replicasets"),
        "DaemonSet" => ("apps", "v1", "daemonsets"),
        "ReplicationController" => ("", "v1", "replicationcontrollers"),
        "Job" => ("batch", "v1", "jobs"),
        "CronJob" => ("batch", "v1", "cronjobs"),
        "DeploymentConfig" => ("apps.openshift.io", "v1", "deploymentconfigs"),
        _ => return None,
    })
}

/// The expectations the cluster does not meet yet, as readable lines.
pub async fn pending_in_cluster(cluster: &Client, expected: &[Expectation]) -> Result<Vec<String>> {
    let mut pending = Vec::new();
    for expectation in expected {
        let Some((group, version, plural)) = workload_api(&expectation.kind) else {
            continue;
        };
        let gvk = GroupVersionKind::gvk(group, version, &expectation.kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        let api: Api<DynamicObject> =
            Api::namespaced_with(cluster.clone(), &expectation.namespace, &resource);
        let object = api.get_opt(&expectation.name).await?;
        let object = object.map(serde_json::to_value).transpose()?;
        if !is_applied(expectation, object.as_ref()) {
            pending.push(expectation.to_string());
        }
    }
    Ok(pending)
}

/// `None` when the Application reports `revision` (or a descendant) synced and healthy, else why not.
pub async fn pending_application(
    ctx: &StepContext,
    access: &RepoAccess,
    application: &ResourceRef,
    revision: Oid,
) -> Result<Option<String>> {
    let (group, version, kind, plural) = argocd::APPLICATION_API;
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let namespace = application.namespace_or(&ctx.plan_namespace()).to_string();
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.host.clone(), &namespace, &resource);
    let Some(object) = api.get_opt(&application.name).await? else {
        return Ok(Some(format!(
            "Argo CD Application {namespace}/{} not found",
            application.name
        )));
    };
    let object: Value = serde_json::to_value(object)?;
    let synced = argocd::synced_revision(&object).unwrap_or_default().to_string();
    if synced != revision.to_string()
        && let Some(patch) = argocd::refresh_patch(&object)
    {
        // Without it Argo CD notices the commit at its next poll (3 minutes by default), all of it
        // downtime during a cutover.
        api.patch(&application.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    let describe = || {
        let status = object["status"]["sync"]["status"].as_str().unwrap_or("unknown");
        let synced = if synced.is_empty() {
            "none"
        } else {
            synced.as_str()
        };
        format!(
            "Argo CD Application {namespace}/{} is at revision {synced} ({status}), waiting for {revision}",
            application.name
        )
    };
    if !argocd::has_applied(&object, &synced) {
        return Ok(Some(describe()));
    }
    if synced == revision.to_string() {
        return Ok(None);
    }
    let Ok(synced_oid) = Oid::from_str(&synced) else {
        return Ok(Some(describe()));
    };
    let descends = access
        .with_repo(move |repo| {
            repo.repo
                .graph_descendant_of(synced_oid, revision)
                .map_err(crate::Error::git(format!(
                    "checking {synced_oid} descends from {revision}"
                )))
        })
        .await?;
    Ok((!descends).then(describe))
}

/// The step's outcome given what is pending: see [`super::record::wait_outcome`]; the wait starts at
/// the step's `started` time in the migration status.
pub fn outcome(ctx: &StepContext, step: Step, pending: Vec<String>, done: String) -> StepOutcome {
    wait_outcome(ctx.elapsed(step), pending, done)
}
