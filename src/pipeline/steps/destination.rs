//! CreateDestinationNamespaces and CreateDestinationPVCs: the lasting objects a plan needs in the target
//! cluster. Both are idempotent: what exists and fits is kept, what is missing is created, and a PVC that
//! exists but cannot take the data fails the step with the reason (nothing is overwritten).

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use kube::{Api, ResourceExt};

use super::create_if_absent;
use crate::Result;
use crate::api::MigPlan;
use crate::pipeline::target;
use crate::pipeline::{StepContext, StepOutcome};

/// Creates the plan's target namespaces that do not exist yet.
pub async fn ensure_namespaces(ctx: &StepContext) -> Result<StepOutcome> {
    let plan = &ctx.plan;
    let api: Api<Namespace> = Api::all(ctx.target.clone());
    let plan_ns = plan.namespace().unwrap_or_default();
    let mut created = Vec::new();
    for mapping in plan_mappings(plan) {
        // Created without a read first: one that exists answers 409 (AlreadyExists) and is kept.
        let namespace = target::namespace(&mapping.target, &plan_ns, &plan.name_any());
        match api.create(&kube::api::PostParams::default(), &namespace).await {
            Ok(_) => created.push(mapping.target),
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(StepOutcome::Done(if created.is_empty() {
        "All target namespaces exist.".into()
    } else {
        format!("Created namespaces {}.", created.join(", "))
    }))
}

/// Creates the target PVC of every volume the migration moves, or checks that the existing one fits.
pub async fn ensure_pvcs(ctx: &StepContext) -> Result<StepOutcome> {
    let (plan, source_cluster, target_cluster) = (&ctx.plan, &ctx.source, &ctx.target);
    let plan_ns = plan.namespace().unwrap_or_default();
    let volumes = ctx.volumes();
    let (mut created, mut kept) = (0, 0);
    for volume in volumes {
        let sources: Api<PersistentVolumeClaim> = Api::namespaced(source_cluster.clone(), &volume.namespace);
        let Some(source) = sources.get_opt(&volume.name).await? else {
            return Ok(StepOutcome::Failed(format!(
                "source PVC {}/{} no longer exists",
                volume.namespace, volume.name
            )));
        };
        let wanted = target::pvc(&source, volume, &plan_ns, &plan.name_any());
        let targets: Api<PersistentVolumeClaim> =
            Api::namespaced(target_cluster.clone(), &volume.target_namespace);
        match targets.get_opt(&volume.target_name).await? {
            Some(existing) => {
                if let Some(why) = target::incompatibility(&existing, &wanted) {
                    return Ok(StepOutcome::Failed(why));
                }
                kept += 1;
            }
            None => {
                create_if_absent(&targets, &wanted).await?;
                created += 1;
            }
        }
    }
    Ok(StepOutcome::Done(format!(
        "{created} PVC(s) created, {kept} already in place."
    )))
}

fn plan_mappings(plan: &MigPlan) -> Vec<crate::api::plan::NameMapping> {
    plan.spec
        .namespaces
        .iter()
        .filter_map(|entry| crate::api::plan::NameMapping::parse(entry).ok())
        .collect()
}
