//! CreateMoverSecrets, CreateMoverEndpoints, CreateMoverPods and WaitForTransfer, and the same ladder
//! in one step ([`sync`]) for the cutover's StageSync, FinalSync and Verify. Objects are built by
//! `pipeline::movers`; each function here observes what exists and creates what is missing.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DynamicObject, LogParams};
use kube::{Api, Client, ResourceExt};

use super::mover_endpoints::{addresses, route_api};
use super::{create_if_absent, delete_if_present};
use crate::Result;
use crate::api::plan::{DiscoveredVolume, EndpointType};
use crate::pipeline::movers::{self, MoverSpec, Pass};
use crate::pipeline::transfer::{self, SenderState};
use crate::pipeline::{StepContext, StepOutcome};

/// How long a LoadBalancer may take to get an address before the step fails.
pub const LOAD_BALANCER_TIMEOUT: Duration = Duration::from_secs(300);
pub(super) const POLL: Duration = Duration::from_secs(1);

/// The builders' view of the migration.
fn spec(ctx: &StepContext) -> MoverSpec {
    let transfer = ctx.plan.spec.transfer.clone().unwrap_or_default();
    MoverSpec {
        uid: ctx.uid(),
        labels: ctx.temporary_labels(),
        image: transfer
            .mover_image
            .clone()
            .unwrap_or_else(|| movers::DEFAULT_IMAGE.into()),
        endpoint: transfer.endpoint_type.unwrap_or_default(),
        src_groups: transfer.src_supplemental_groups.clone(),
        target_groups: transfer.target_supplemental_groups.clone(),
        bw_limit: transfer.bw_limit,
        proxy: transfer.proxy.is_some(),
        verify: ctx.verify(),
    }
}

fn namespaces(volumes: &[DiscoveredVolume], target: bool) -> Vec<String> {
    let mut names: Vec<String> = volumes
        .iter()
        .map(|v| {
            if target {
                v.target_namespace.clone()
            } else {
                v.namespace.clone()
            }
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// CreateMoverSecrets: a fresh per-migration CA with server and client certificates, in Secrets in
/// both clusters. The CA key is discarded, so a partial set (a crash between creations) is deleted
/// and issued again whole: two issues' certificates never meet.
pub async fn ensure_secrets(ctx: &StepContext) -> Result<StepOutcome> {
    let spec = spec(ctx);
    let volumes = ctx.volumes();
    // (cluster, namespace, name, server side?)
    let mut wanted: Vec<(&Client, String, String, bool)> = Vec::new();
    for ns in namespaces(volumes, true) {
        wanted.push((&ctx.target, ns, movers::server_secret_name(&spec.uid), true));
    }
    for ns in namespaces(volumes, false) {
        wanted.push((&ctx.source, ns, movers::client_secret_name(&spec.uid), false));
    }
    let api = |client: &Client, ns: &str| Api::<Secret>::namespaced(client.clone(), ns);
    let mut present = 0;
    for (client, ns, name, _) in &wanted {
        if api(client, ns).get_opt(name).await?.is_some() {
            present += 1;
        }
    }
    if present < wanted.len() {
        if present > 0 {
            for (client, ns, name, _) in &wanted {
                delete_if_present(&api(client, ns), name).await?;
            }
        }
        let certs = crate::mover::issue(&spec.uid, &[movers::SERVER_NAME.to_string()])?;
        for (client, ns, name, server) in &wanted {
            let (cert, key) = if *server {
                (&certs.server_cert_pem, &certs.server_key_pem)
            } else {
                (&certs.client_cert_pem, &certs.client_key_pem)
            };
            let secret = movers::tls_secret(&spec, name, ns, &certs.ca_pem, cert, key);
            create_if_absent(&api(client, ns), &secret).await?;
        }
    }
    if let Some(url) = ctx.plan.spec.transfer.as_ref().and_then(|t| t.proxy.clone()) {
        for ns in namespaces(volumes, false) {
            create_if_absent(&api(&ctx.source, &ns), &movers::proxy_secret(&spec, &ns, &url)).await?;
        }
    }
    Ok(StepOutcome::Done(format!(
        "Mover certificates in {} Secret(s).",
        wanted.len()
    )))
}

/// CreateMoverEndpoints: a Service (and a Route when asked for) per receiver, and every endpoint's
/// address once it has one.
pub async fn ensure_endpoints(ctx: &StepContext) -> Result<StepOutcome> {
    let spec = spec(ctx);
    for (index, volume) in ctx.volumes().iter().enumerate() {
        let services: Api<Service> = Api::namespaced(ctx.target.clone(), &volume.target_namespace);
        create_if_absent(&services, &movers::receive_service(&spec, index, volume)).await?;
        if spec.endpoint == EndpointType::Route {
            let Some(routes) = route_api(&ctx.target, &volume.target_namespace).await? else {
                return Ok(StepOutcome::Failed(
                    "transfer.endpointType is Route, but the target cluster does not serve route.openshift.io/v1 \
                     (not OpenShift); use NodePort, LoadBalancer or ClusterIP"
                        .into(),
                ));
            };
            let route: DynamicObject = serde_json::from_value(movers::receive_route(&spec, index, volume))?;
            create_if_absent(&routes, &route).await?;
        }
    }
    match addresses(ctx, &spec).await? {
        Ok(addresses) => Ok(StepOutcome::Done(format!(
            "Receivers at {}.",
            addresses.join(", ")
        ))),
        Err(waiting) => Ok(waiting),
    }
}

/// CreateMoverPods: receivers, then (once they run) this pass's senders; senders of other passes are
/// removed first, so a pass never starts behind a stale one.
pub async fn ensure_pods(ctx: &StepContext, pass: Pass) -> Result<StepOutcome> {
    let spec = spec(ctx);
    let volumes = ctx.volumes();
    let addresses = match addresses(ctx, &spec).await? {
        Ok(addresses) => addresses,
        Err(waiting) => return Ok(waiting),
    };
    let mut not_running = Vec::new();
    for (index, volume) in volumes.iter().enumerate() {
        let pods: Api<Pod> = Api::namespaced(ctx.target.clone(), &volume.target_namespace);
        let receiver = movers::receive_pod(&spec, index, volume);
        let name = receiver.name_any();
        let current = match pods.get_opt(&name).await? {
            Some(pod) => pod,
            None => {
                create_if_absent(&pods, &receiver).await?;
                pods.get(&name).await?
            }
        };
        if current.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running") {
            not_running.push(format!("{}/{name}", volume.target_namespace));
        }
    }
    if !not_running.is_empty() {
        return Ok(StepOutcome::InProgress {
            message: format!("Waiting for receivers to run: {}.", not_running.join(", ")),
            progress: Vec::new(),
            after: POLL,
        });
    }
    for (index, volume) in volumes.iter().enumerate() {
        let pods: Api<Pod> = Api::namespaced(ctx.source.clone(), &volume.namespace);
        for other in [Pass::Stage, Pass::Final, Pass::Verify]
            .into_iter()
            .filter(|p| *p != pass)
        {
            delete_if_present(&pods, &movers::sender_name(&spec.uid, index, other)).await?;
        }
        if ctx
            .plan
            .spec
            .transfer
            .as_ref()
            .is_some_and(|t| t.network_policies)
        {
            let dial_port = addresses[index]
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(443);
            let (ingress, egress) = movers::network_policies(&spec, index, volume, dial_port);
            create_if_absent(
                &Api::<NetworkPolicy>::namespaced(ctx.target.clone(), &volume.target_namespace),
                &ingress,
            )
            .await?;
            create_if_absent(
                &Api::<NetworkPolicy>::namespaced(ctx.source.clone(), &volume.namespace),
                &egress,
            )
            .await?;
        }
        create_if_absent(
            &pods,
            &movers::send_pod(&spec, index, volume, pass, &addresses[index]),
        )
        .await?;
    }
    Ok(StepOutcome::Done(format!(
        "{} receiver(s) running, {} {} sender(s) started.",
        volumes.len(),
        volumes.len(),
        pass.as_str()
    )))
}

/// WaitForTransfer: progress from the senders into status until all succeed; a lost connection
/// recreates that sender (bounded by the step's retries), a data error fails the step with rsync's
/// message.
pub async fn wait_for_transfer(ctx: &StepContext, pass: Pass) -> Result<StepOutcome> {
    let spec = spec(ctx);
    let volumes = ctx.volumes();
    let (mut records, mut progress, mut running) = (Vec::new(), Vec::new(), 0);
    for (index, volume) in volumes.iter().enumerate() {
        let label = format!("{}/{}", volume.namespace, volume.name);
        let pods: Api<Pod> = Api::namespaced(ctx.source.clone(), &volume.namespace);
        let name = movers::sender_name(&spec.uid, index, pass);
        let Some(pod) = pods.get_opt(&name).await? else {
            // Removed after a lost connection: the ladder starts it again.
            return ensure_pods(ctx, pass).await;
        };
        match transfer::sender_state(&pod) {
            SenderState::Succeeded(record) => {
                if let Some(record) = record {
                    progress.push(transfer::progress_line(&label, &record));
                    records.push(record);
                }
            }
            SenderState::Running => {
                running += 1;
                progress.push(live_progress(&pods, &name, &label).await);
            }
            SenderState::Failed {
                retryable: false,
                message,
            } => return Ok(StepOutcome::Failed(message)),
            SenderState::Failed {
                retryable: true,
                message,
            } => {
                delete_if_present(&pods, &name).await?;
                return Ok(StepOutcome::Retry {
                    reason: message,
                    after: Duration::from_secs(2),
                });
            }
        }
    }
    if running > 0 {
        return Ok(StepOutcome::InProgress {
            message: format!(
                "Transferring {running} of {} volume(s) ({}).",
                volumes.len(),
                pass.as_str()
            ),
            progress,
            after: POLL,
        });
    }
    let (bytes, files) = transfer::totals(&records);
    Ok(StepOutcome::Done(transfer::done_message(
        volumes.len(),
        bytes,
        files,
    )))
}

/// The whole ladder as one step (StageSync, FinalSync, Verify): the first unfinished rung's outcome.
pub async fn sync(ctx: &StepContext, pass: Pass) -> Result<StepOutcome> {
    if ctx.volumes().is_empty() {
        return Ok(StepOutcome::Skipped("the plan has no volumes".into()));
    }
    if pass == Pass::Verify && !ctx.verify() {
        return Ok(StepOutcome::Skipped("verification was not requested".into()));
    }
    for rung in [Rung::Secrets, Rung::Endpoints, Rung::Pods] {
        let outcome = match rung {
            Rung::Secrets => ensure_secrets(ctx).await?,
            Rung::Endpoints => ensure_endpoints(ctx).await?,
            Rung::Pods => ensure_pods(ctx, pass).await?,
        };
        if !matches!(outcome, StepOutcome::Done(_)) {
            return Ok(outcome);
        }
    }
    wait_for_transfer(ctx, pass).await
}

#[derive(Clone, Copy)]
enum Rung {
    Secrets,
    Endpoints,
    Pods,
}

/// The live progress line of a running sender, from its log tail (a running line when the logs
/// cannot be read: progress is informative, never a reason to fail).
async fn live_progress(pods: &Api<Pod>, name: &str, label: &str) -> String {
    let params = LogParams {
        container: Some("mover".into()),
        tail_lines: Some(20),
        ..LogParams::default()
    };
    match pods.logs(name, &params).await {
        Ok(tail) => transfer::last_progress(&tail)
            .map(|record| transfer::progress_line(label, &record))
            .unwrap_or_else(|| format!("{label}: starting")),
        Err(_) => format!("{label}: transferring"),
    }
}
