//! The receivers' addresses as senders dial them, for the mover steps: each receiver Service (or
//! Route) looked up, its address for the plan's endpoint type, and what to report while a load
//! balancer or route has not assigned one yet (waiting, then failing after a limit).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};

use crate::Result;
use crate::api::plan::{DiscoveredVolume, EndpointType};
use crate::pipeline::movers::{self, MoverSpec};
use crate::pipeline::{StepContext, StepOutcome};

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
