//! The receivers' addresses as senders dial them, for the mover steps: the endpoint type chosen
//! ([`movers::endpoint_choice`] decides, [`endpoint`] observes and acts: a LoadBalancer that got no
//! address in time is turned into a NodePort here), each receiver Service (or Route) looked up, its
//! address for that type, and what to report while a load balancer or route has not assigned one yet
//! (waiting, then failing after a limit).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client, ResourceExt};

use crate::Result;
use crate::api::MigCluster;
use crate::api::plan::{DiscoveredVolume, EndpointType};
use crate::pipeline::movers::endpoint_choice::{self, Choice, Facts, ServicesSeen};
use crate::pipeline::movers::{self, MoverSpec};
use crate::pipeline::{StepContext, StepOutcome};

/// Annotation on each receiver Service: the endpoint choice and why, for the sync step's message.
pub(super) const CHOICE_ANNOTATION: &str = "migration.ferry.dev/endpoint-choice";

/// How long a LoadBalancer may take to get an address before the step fails.
pub const LOAD_BALANCER_TIMEOUT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_secs(1);

/// Every receiver's address (in the order of `ctx.volumes()`), or the outcome to report while one
/// is missing.
pub(super) async fn addresses(
    ctx: &StepContext,
    spec: &MoverSpec,
) -> Result<std::result::Result<Vec<(DiscoveredVolume, String)>, StepOutcome>> {
    let nodes = if spec.endpoint == EndpointType::NodePort {
        Api::<Node>::all(ctx.target.clone())
            .list(&ListParams::default())
            .await?
            .items
    } else {
        Vec::new()
    };
    let mut addresses = Vec::new();
    for volume in ctx.volumes() {
        let name = movers::receiver_name(&spec.uid, volume);
        let services: Api<Service> = Api::namespaced(ctx.target.clone(), &volume.target_namespace);
        let Some(service) = services.get_opt(&name).await? else {
            return Ok(Err(StepOutcome::Retry {
                reason: format!("Service {}/{name} is missing", volume.target_namespace),
                after: POLL,
            }));
        };
        let route_host = if spec.endpoint == EndpointType::Route {
            match route_api(&ctx.target, &volume.target_namespace).await? {
                Some(routes) => routes
                    .get_opt(&name)
                    .await?
                    .and_then(|r| r.data["spec"]["host"].as_str().map(String::from)),
                None => None,
            }
        } else {
            None
        };
        match movers::connect_address(spec.endpoint, &service, &nodes, route_host.as_deref()) {
            Some(address) => addresses.push((volume.clone(), address)),
            None => {
                return Ok(Err(waiting_for_address(
                    ctx,
                    spec.endpoint,
                    &volume.target_namespace,
                    &name,
                )));
            }
        }
    }
    Ok(Ok(addresses))
}

fn waiting_for_address(
    ctx: &StepContext,
    endpoint: EndpointType,
    namespace: &str,
    name: &str,
) -> StepOutcome {
    let step = ctx
        .migration
        .status
        .as_ref()
        .and_then(crate::pipeline::current_step)
        .and_then(|(_, name)| crate::api::Step::parse(&name));
    let what = match endpoint {
        EndpointType::LoadBalancer => "no load balancer has assigned it an address",
        EndpointType::NodePort => "no Ready node has an InternalIP or ExternalIP address",
        EndpointType::Route => "the Route has no host yet",
        EndpointType::ClusterIP => "it has no cluster IP",
    };
    if step.is_some_and(|step| ctx.elapsed(step) > LOAD_BALANCER_TIMEOUT) {
        StepOutcome::Failed(format!(
            "receiver endpoint Service {namespace}/{name} ({endpoint:?}) has no address after {}s: {what}",
            LOAD_BALANCER_TIMEOUT.as_secs()
        ))
    } else {
        StepOutcome::InProgress {
            message: format!("Waiting for an address for Service {namespace}/{name}: {what} yet."),
            progress: Vec::new(),
            after: Duration::from_secs(2),
        }
    }
}

/// The Routes API in `namespace`, or `None` when the cluster does not serve it.
pub(super) async fn route_api(client: &Client, namespace: &str) -> Result<Option<Api<DynamicObject>>> {
    let gvk = GroupVersionKind::gvk("route.openshift.io", "v1", "Route");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "routes");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(Some(api)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// The endpoint chosen: why (`endpoint NodePort: …`), and, when a load balancer is being tried,
/// the line to report instead once every receiver has its address.
pub(super) struct Chosen {
    /// The line for the step message and the Services' annotation.
    pub why: String,
    /// Replaces `why` once the addresses are known (a load balancer that answered).
    pub once_addressed: Option<String>,
}

/// Decides the receivers' endpoint type into `spec.endpoint` and returns why, or the outcome to
/// report instead: a refusal, or a wait for a load-balancer address. When the wait is over, the
/// LoadBalancer Services become NodePorts here (same Services, same node ports).
pub(super) async fn endpoint(
    ctx: &StepContext,
    spec: &mut MoverSpec,
) -> Result<std::result::Result<Chosen, StepOutcome>> {
    let transfer = ctx.plan.spec.transfer.clone().unwrap_or_default();
    let asked = transfer.endpoint_type;
    let same_cluster = match asked {
        None | Some(EndpointType::ClusterIP) => same_cluster(ctx).await?,
        Some(_) => false,
    };
    let route_api = asked.is_none()
        && !same_cluster
        && match ctx.volumes().first() {
            Some(volume) => route_api(&ctx.target, &volume.target_namespace).await?.is_some(),
            None => false,
        };
    let services = if asked.is_none() && !same_cluster && !route_api {
        services_seen(ctx, spec).await?
    } else {
        ServicesSeen::Missing
    };
    let choice = endpoint_choice::choose(&Facts {
        asked,
        same_cluster,
        route_api,
        services,
        load_balancer_wait: transfer.load_balancer_wait(),
    });
    let chosen = |why| {
        Ok(Ok(Chosen {
            why,
            once_addressed: None,
        }))
    };
    match choice {
        Choice::Use { endpoint, why } => {
            spec.endpoint = endpoint;
            chosen(why)
        }
        Choice::TryLoadBalancer { why, once_addressed } => {
            spec.endpoint = EndpointType::LoadBalancer;
            Ok(Ok(Chosen {
                why,
                once_addressed: Some(once_addressed),
            }))
        }
        Choice::WaitForLoadBalancer { why } => Ok(Err(StepOutcome::InProgress {
            message: format!("{why}."),
            progress: Vec::new(),
            after: Duration::from_secs(2),
        })),
        Choice::ConvertToNodePort { why } => {
            let patch = serde_json::json!({
                "metadata": {"annotations": {CHOICE_ANNOTATION: why}},
                "spec": {"type": "NodePort"},
            });
            patch_receivers(ctx, spec, &patch).await?;
            tracing::info!(migration = %ctx.migration.name_any(), %why, "receivers turned into NodePorts");
            spec.endpoint = EndpointType::NodePort;
            chosen(why)
        }
        Choice::Refuse(message) => Ok(Err(StepOutcome::Failed(message))),
    }
}

/// Merge-patches every receiver Service (the same patch again changes nothing).
pub(super) async fn patch_receivers(
    ctx: &StepContext,
    spec: &MoverSpec,
    patch: &serde_json::Value,
) -> Result<()> {
    for volume in ctx.volumes() {
        let services: Api<Service> = Api::namespaced(ctx.target.clone(), &volume.target_namespace);
        services
            .patch(
                &movers::receiver_name(&spec.uid, volume),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await?;
    }
    Ok(())
}

/// Whether the plan's source and target are one cluster: the same MigCluster, or both host clusters.
async fn same_cluster(ctx: &StepContext) -> Result<bool> {
    let plan_ns = ctx.plan_namespace();
    let (src, dest) = (
        &ctx.plan.spec.src_mig_cluster_ref,
        &ctx.plan.spec.dest_mig_cluster_ref,
    );
    let key = |r: &crate::api::ResourceRef| (r.namespace_or(&plan_ns).to_string(), r.name.clone());
    if key(src) == key(dest) {
        return Ok(true);
    }
    Ok(is_host(ctx, src, &plan_ns).await? && is_host(ctx, dest, &plan_ns).await?)
}

async fn is_host(ctx: &StepContext, reference: &crate::api::ResourceRef, plan_ns: &str) -> Result<bool> {
    let clusters: Api<MigCluster> = Api::namespaced(ctx.host.clone(), reference.namespace_or(plan_ns));
    Ok(clusters
        .get_opt(&reference.name)
        .await?
        .is_some_and(|c| c.spec.is_host_cluster))
}

/// The receiver Services as they are, for the chooser.
async fn services_seen(ctx: &StepContext, spec: &MoverSpec) -> Result<ServicesSeen> {
    let (mut all_addressed, mut oldest) = (true, Duration::ZERO);
    for volume in ctx.volumes() {
        let services: Api<Service> = Api::namespaced(ctx.target.clone(), &volume.target_namespace);
        let Some(service) = services
            .get_opt(&movers::receiver_name(&spec.uid, volume))
            .await?
        else {
            return Ok(ServicesSeen::Missing);
        };
        match service.spec.as_ref().and_then(|s| s.type_.as_deref()) {
            Some("NodePort") => return Ok(ServicesSeen::NodePort),
            Some("LoadBalancer") => {}
            _ => return Ok(ServicesSeen::Other),
        }
        let addressed = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .is_some_and(|ingress| ingress.iter().any(|i| i.ip.is_some() || i.hostname.is_some()));
        all_addressed &= addressed;
        if let Some(created) = service.metadata.creation_timestamp.as_ref() {
            let age = k8s_openapi::jiff::Timestamp::now().duration_since(created.0);
            oldest = oldest.max(Duration::try_from(age).unwrap_or_default());
        }
    }
    Ok(ServicesSeen::LoadBalancer {
        addressed: all_addressed,
        age: oldest,
    })
}

/// The endpoint choice recorded on the first receiver Service, for a sync step's final message.
pub(super) async fn recorded_choice(ctx: &StepContext, spec: &MoverSpec) -> Option<String> {
    let volume = ctx.volumes().first()?;
    let services: Api<Service> = Api::namespaced(ctx.target.clone(), &volume.target_namespace);
    let service = services
        .get_opt(&movers::receiver_name(&spec.uid, volume))
        .await
        .ok()??;
    service.annotations().get(CHOICE_ANNOTATION).cloned()
}
