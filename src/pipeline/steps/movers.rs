//! CreateMoverSecrets, CreateMoverEndpoints, CreateMoverPods and WaitForTransfer, and the same ladder
//! in one step ([`sync`]) for the cutover's StageSync, FinalSync and Verify. Objects are built by
//! `pipeline::movers`; each function here observes what exists and creates what is missing.
//!
//! The volumes are the migration's own (fixed when it started), and every mover object is named by
//! the volume's id, so a sender can only ever dial its own volume's receiver. A pass is done only
//! when every sender of this pass has Succeeded *and* reported its stats record: a sender that
//! vanished (deleted, evicted, preempted) is started again, never taken for finished.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DynamicObject, ListParams, LogParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use super::mover_endpoints::{
    CHOICE_ANNOTATION, Chosen, addresses, endpoint, patch_receivers, recorded_choice, route_api,
};
use super::{create_if_absent, delete_if_present, held_senders};
use crate::Result;
use crate::api::Step;
use crate::api::plan::{DiscoveredVolume, EndpointType};
use crate::mover::Progress;
use crate::pipeline::engine::Warning;
use crate::pipeline::labels;
use crate::pipeline::movers::{self, MoverSpec, Pass};
use crate::pipeline::transfer::{self, SenderState};
use crate::pipeline::{StepContext, StepOutcome};

const POLL: Duration = Duration::from_secs(1);
/// How often FinalSync and Verify look: they run inside the downtime window, where a second of
/// polling is a second of downtime, and a look is one LIST of the senders.
const DOWNTIME_POLL: Duration = Duration::from_millis(200);

/// The longest interval between two looks at a stage transfer.
const STAGE_POLL_MAX: Duration = Duration::from_secs(5);

/// How often a stage transfer is looked at after running `elapsed`: every second at first, then a
/// fifth of the time it has run, at most every [`STAGE_POLL_MAX`] (from 25 s on). A stage runs while
/// the app does, so a later look only delays the stage's end, by at most a fifth; each look costs a
/// LIST of the senders, a log read per running sender and a status write (and a GET per receiver
/// when a sender is not transferring).
pub(crate) fn stage_poll(elapsed: Duration) -> Duration {
    (elapsed / 5).clamp(POLL, STAGE_POLL_MAX)
}

/// How often a stage transfer is looked at while the controller watches the source's mover pods: a
/// sender that starts, ends, fails or vanishes wakes the migration at once, so the looks in between
/// only refresh the progress in status (a log read and a status write each).
pub(crate) const WATCHED_STAGE_POLL: Duration = Duration::from_secs(30);

/// How often the receivers are looked at, waiting for them to run, while the target's mover pods are
/// watched (a receiver that starts running wakes the migration at once).
const WATCHED_POLL: Duration = Duration::from_secs(5);

/// The passes whose senders can exist when `pass` starts: a migration runs its passes in this order
/// (Stage, Final, Verify), so only an earlier pass's senders are there to be removed.
fn earlier_passes(pass: Pass) -> &'static [Pass] {
    match pass {
        Pass::Stage => &[],
        Pass::Final => &[Pass::Stage],
        Pass::Verify => &[Pass::Stage, Pass::Final],
    }
}

/// Whether the watch's view of this pass's senders (`expected` names) shows a transfer still under
/// way, every sender there, none terminating, each pending (not past `start_limit`) or running:
/// then it is enough for a look. Anything else (one missing, all done, one failed, ended without its
/// stats record, or pending too long) is decided on a fresh LIST: the view may lag.
pub(crate) fn watched_view_suffices(
    expected: &[String],
    seen: &BTreeMap<String, Pod>,
    start_limit: Duration,
) -> bool {
    let mut running = false;
    for name in expected {
        let Some(pod) = seen.get(name) else {
            return false;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return false;
        }
        match transfer::sender_state(pod) {
            SenderState::Running => running = true,
            SenderState::Pending(_) if pending_for(pod).is_some_and(|p| p < start_limit) => running = true,
            SenderState::Succeeded(Some(_)) => {}
            _ => return false,
        }
    }
    running
}

/// How long `pod` has existed.
fn pending_for(pod: &Pod) -> Option<Duration> {
    let created = pod.metadata.creation_timestamp.as_ref()?.0;
    Duration::try_from(k8s_openapi::jiff::Timestamp::now().duration_since(created)).ok()
}

/// The pods in `store` in `namespace` whose labels include every one of `labels`.
fn watched(store: &Store<Pod>, namespaces: &[String], labels: &[(&str, &str)]) -> BTreeMap<String, Pod> {
    store
        .state()
        .into_iter()
        .filter(|pod| namespaces.iter().any(|ns| pod.namespace().as_deref() == Some(ns)))
        .filter(|pod| {
            labels
                .iter()
                .all(|(k, v)| pod.labels().get(*k).map(String::as_str) == Some(*v))
        })
        .map(|pod| (pod.name_any(), (*pod).clone()))
        .collect()
}

/// The builders' view of the migration. The endpoint is the plan's as asked (NodePort when unset):
/// [`endpoint`] decides the real one where it matters, before a Service is made or an address read.
fn spec(ctx: &StepContext) -> Result<MoverSpec> {
    let transfer = ctx.plan.spec.transfer.clone().unwrap_or_default();
    // Admission refuses a contradiction before the migration starts; a plan edited since fails here.
    let identity =
        crate::api::mover_identity::resolve(transfer.identity_fields(), ctx.migration.spec.identity_fields())
            .map_err(|problem| crate::Error::InvalidSpec(problem.message))?;
    Ok(MoverSpec {
        uid: ctx.uid(),
        labels: ctx.temporary_labels(),
        image: transfer
            .mover_image
            .clone()
            .unwrap_or_else(|| movers::DEFAULT_IMAGE.into()),
        endpoint: transfer.endpoint_type.unwrap_or(EndpointType::NodePort),
        src_groups: transfer.src_supplemental_groups.clone(),
        target_groups: transfer.target_supplemental_groups.clone(),
        bw_limit: transfer.bw_limit,
        proxy: transfer.proxy.is_some(),
        identity,
        compress: transfer.compress,
        full_passes: transfer.full_passes,
    })
}

fn start_timeout(ctx: &StepContext) -> Duration {
    ctx.plan
        .spec
        .transfer
        .clone()
        .unwrap_or_default()
        .mover_start_timeout()
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
    let spec = spec(ctx)?;
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
    let secret = |certs: &crate::mover::MoverCerts, ns: &str, name: &str, server: bool| {
        let (cert, key) = if server {
            (&certs.server_cert_pem, &certs.server_key_pem)
        } else {
            (&certs.client_cert_pem, &certs.client_key_pem)
        };
        movers::tls_secret(&spec, name, ns, &certs.ca_pem, cert, key)
    };
    // Usually none exists yet: the set is created from one issue without reading first. The first
    // that exists (a crash, a later pass) sends it to the reading path below, after removing what
    // this call created, so no set ever holds two issues' certificates.
    let certs = crate::mover::issue(&spec.uid, &[movers::SERVER_NAME.to_string()])?;
    let mut created = 0;
    for (client, ns, name, server) in &wanted {
        match api(client, ns)
            .create(
                &kube::api::PostParams::default(),
                &secret(&certs, ns, name, *server),
            )
            .await
        {
            Ok(_) => created += 1,
            Err(kube::Error::Api(status)) if status.code == 409 => break,
            Err(err) => return Err(err.into()),
        }
    }
    if created > 0 && created < wanted.len() {
        for (client, ns, name, _) in &wanted {
            delete_if_present(&api(client, ns), name).await?;
        }
    }
    let mut present = if created == wanted.len() { created } else { 0 };
    let read = present < wanted.len();
    for (client, ns, name, _) in wanted.iter().filter(|_| read) {
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
            create_if_absent(&api(client, ns), &secret(&certs, ns, name, *server)).await?;
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

/// CreateMoverEndpoints: the endpoint type chosen (the plan's, or what works: see
/// `movers::endpoint_choice`), a Service (and a Route when chosen) per receiver, and every endpoint's
/// address once it has one. The message says which type and why.
pub async fn ensure_endpoints(ctx: &StepContext) -> Result<StepOutcome> {
    let mut spec = spec(ctx)?;
    let Chosen { why, once_addressed } = match endpoint(ctx, &mut spec).await? {
        Ok(chosen) => chosen,
        Err(outcome) => return Ok(outcome),
    };
    for volume in ctx.volumes() {
        let services: Api<Service> = Api::namespaced(ctx.target.clone(), &volume.target_namespace);
        let mut service = movers::receive_service(&spec, volume);
        service
            .annotations_mut()
            .insert(CHOICE_ANNOTATION.into(), why.clone());
        create_if_absent(&services, &service).await?;
        if spec.endpoint == EndpointType::Route {
            let Some(routes) = route_api(&ctx.target, &volume.target_namespace).await? else {
                return Ok(StepOutcome::Failed(
                    "transfer.endpointType is Route, but the target cluster does not serve route.openshift.io/v1 \
                     (not OpenShift); use NodePort, LoadBalancer or ClusterIP, or leave it unset"
                        .into(),
                ));
            };
            let route: DynamicObject = serde_json::from_value(movers::receive_route(&spec, volume))?;
            create_if_absent(&routes, &route).await?;
        }
    }
    match addresses(ctx, &spec).await? {
        Ok(addresses) => {
            // A load balancer that answered (in this pass or since): the Services were annotated
            // while it was still being tried; record what happened, for the sync steps' messages.
            let why = once_addressed.unwrap_or(why);
            if spec.endpoint == EndpointType::LoadBalancer && transfer_endpoint_unset(ctx) {
                let patch = serde_json::json!({"metadata": {"annotations": {CHOICE_ANNOTATION: why}}});
                patch_receivers(ctx, &spec, &patch).await?;
            }
            Ok(StepOutcome::Done(format!(
                "{why}; receivers at {}.",
                addresses
                    .iter()
                    .map(|(_, address)| address.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
        Err(waiting) => Ok(waiting),
    }
}

fn transfer_endpoint_unset(ctx: &StepContext) -> bool {
    ctx.plan
        .spec
        .transfer
        .as_ref()
        .is_none_or(|t| t.endpoint_type.is_none())
}

/// Every receiver exists (a deleted one is created again) and runs: `None`, or the outcome to report
/// while one does not (waiting, or failed with the pod's reason once it stayed unstarted too long).
async fn ensure_receivers(ctx: &StepContext, spec: &MoverSpec) -> Result<Option<StepOutcome>> {
    let mut not_running = Vec::new();
    for volume in ctx.volumes() {
        let pods: Api<Pod> = Api::namespaced(ctx.target.clone(), &volume.target_namespace);
        let receiver = movers::receive_pod(spec, volume);
        let name = receiver.name_any();
        // The watch's view is enough to see a receiver running or still starting; one it does not
        // show running is read (or created) fresh.
        let seen = ctx.target_pods.as_ref().and_then(|store| {
            store
                .get(&ObjectRef::new(&name).within(&volume.target_namespace))
                .map(|pod| (*pod).clone())
        });
        let current = match seen {
            Some(pod) if receiver_fine(&pod, start_timeout(ctx)) => pod,
            // Watched but not seen running: most likely not created yet.
            _ if ctx.target_pods.is_some() => match create(&pods, &receiver).await? {
                Some(created) => created,
                None => pods.get(&name).await?,
            },
            _ => match pods.get_opt(&name).await? {
                Some(pod) => pod,
                None => match create(&pods, &receiver).await? {
                    Some(created) => created,
                    None => pods.get(&name).await?,
                },
            },
        };
        let phase = current.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase == Some("Running") && current.metadata.deletion_timestamp.is_none() {
            continue;
        }
        let label = format!("{}/{name}", volume.target_namespace);
        if phase == Some("Pending")
            && let Some(failed) = stuck(ctx, &current, &format!("receiver {label}"))
        {
            return Ok(Some(failed));
        }
        not_running.push(format!("{label} ({})", transfer::pending_reason(&current)));
    }
    Ok((!not_running.is_empty()).then(|| StepOutcome::InProgress {
        message: format!("Waiting for receivers to run: {}.", not_running.join(", ")),
        progress: Vec::new(),
        after: if ctx.target_pods.is_some() {
            WATCHED_POLL
        } else {
            POLL
        },
    }))
}

/// Whether a watched receiver is running, or pending within the start limit, and not terminating.
fn receiver_fine(pod: &Pod, start_limit: Duration) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none()
        && match phase {
            Some("Running") => true,
            Some("Pending") | None => pending_for(pod).is_some_and(|p| p < start_limit),
            _ => false,
        }
}

/// Creates `pod`: `Some` with the created pod, `None` when one of that name exists (read it).
async fn create(pods: &Api<Pod>, pod: &Pod) -> Result<Option<Pod>> {
    match pods.create(&kube::api::PostParams::default(), pod).await {
        Ok(created) => Ok(Some(created)),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// A Failed outcome naming the pod's reason when `pod` has been pending longer than the plan allows.
fn stuck(ctx: &StepContext, pod: &Pod, what: &str) -> Option<StepOutcome> {
    let pending = pending_for(pod)?;
    let limit = start_timeout(ctx);
    (pending > limit).then(|| {
        StepOutcome::Failed(format!(
            "mover {what} did not start within {}s: {}; fix it (or raise transfer.moverStartTimeoutSeconds) \
             and run the migration again",
            limit.as_secs(),
            transfer::pending_reason(pod)
        ))
    })
}

/// The source PVC is still the claim this migration fixed when it started (same UID).
async fn same_source_claim(ctx: &StepContext, volume: &DiscoveredVolume) -> Result<Option<StepOutcome>> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.source.clone(), &volume.namespace);
    let current = claims.get_opt(&volume.name).await?;
    let why = match (&current, &volume.uid) {
        (None, _) => "was deleted".to_string(),
        (Some(pvc), Some(uid)) if pvc.uid().as_ref() != Some(uid) => {
            format!(
                "was replaced by another claim of the same name (UID {uid} is now {})",
                pvc.uid().unwrap_or_default()
            )
        }
        _ => return Ok(None),
    };
    Ok(Some(StepOutcome::Failed(format!(
        "source PVC {} {why} after this migration started; nothing was copied from it. Run a new migration \
         of the plan",
        volume.source_key()
    ))))
}

/// CreateMoverPods: receivers, then (once they run) this pass's senders; senders of other passes are
/// removed first, so a pass never starts behind a stale one.
pub async fn ensure_pods(ctx: &StepContext, pass: Pass) -> Result<StepOutcome> {
    let mut spec = spec(ctx)?;
    if let Err(outcome) = endpoint(ctx, &mut spec).await? {
        return Ok(outcome);
    }
    // Receivers first: waiting for them to run then reads nothing else (in the watch's view, nothing).
    if let Some(waiting) = ensure_receivers(ctx, &spec).await? {
        return Ok(waiting);
    }
    let addresses = match addresses(ctx, &spec).await? {
        Ok(addresses) => addresses,
        Err(waiting) => return Ok(waiting),
    };
    let network_policies = ctx
        .plan
        .spec
        .transfer
        .as_ref()
        .is_some_and(|t| t.network_policies);
    for (volume, address) in &addresses {
        if let Some(changed) = same_source_claim(ctx, volume).await? {
            return Ok(changed);
        }
        let pods: Api<Pod> = Api::namespaced(ctx.source.clone(), &volume.namespace);
        for other in earlier_passes(pass) {
            delete_if_present(&pods, &movers::sender_name(&spec.uid, volume, *other)).await?;
        }
        if network_policies {
            let dial_port = address
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(443);
            let (ingress, egress) = movers::network_policies(&spec, volume, dial_port);
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
        create_if_absent(&pods, &movers::send_pod(&spec, volume, pass, address)).await?;
    }
    Ok(StepOutcome::Done(format!(
        "{n} receiver(s) running, {n} {} sender(s) started.",
        pass.as_str(),
        n = addresses.len(),
    )))
}

/// WaitForTransfer: progress from the senders into status until every one Succeeded with its stats
/// record. A receiver that vanished is created again; a sender that vanished or lost its connection
/// is started again (bounded by the step's retries); a sender that does not start fails the step with
/// its reason after the plan's limit; a data error fails it with rsync's message.
pub async fn wait_for_transfer(ctx: &StepContext, pass: Pass) -> Result<StepOutcome> {
    let spec = spec(ctx)?;
    let senders = senders(ctx, &spec, pass).await?;
    follow(ctx, &spec, pass, senders).await
}

/// This pass's sender pods by name, one LIST per source namespace (the transfer is followed every
/// second: one GET per sender, and the creation ladder on every look, were what it cost before).
async fn senders(ctx: &StepContext, spec: &MoverSpec, pass: Pass) -> Result<BTreeMap<String, Pod>> {
    let selector = format!(
        "{}={},{}={}",
        labels::MIGRATION_UID,
        spec.uid,
        movers::PASS,
        pass.as_str()
    );
    let source_namespaces = namespaces(ctx.volumes(), false);
    if pass == Pass::Stage
        && let Some(store) = &ctx.source_pods
    {
        let seen = watched(
            store,
            &source_namespaces,
            &[
                (labels::MIGRATION_UID, spec.uid.as_str()),
                (movers::PASS, pass.as_str()),
            ],
        );
        let expected: Vec<String> = ctx
            .volumes()
            .iter()
            .map(|v| movers::sender_name(&spec.uid, v, pass))
            .collect();
        if watched_view_suffices(&expected, &seen, start_timeout(ctx)) {
            return Ok(seen);
        }
    }
    let mut found = BTreeMap::new();
    for namespace in source_namespaces {
        let pods: Api<Pod> = Api::namespaced(ctx.source.clone(), &namespace);
        for pod in pods.list(&ListParams::default().labels(&selector)).await?.items {
            found.insert(pod.name_any(), pod);
        }
    }
    Ok(found)
}

/// [`wait_for_transfer`] on the senders already listed.
async fn follow(
    ctx: &StepContext,
    spec: &MoverSpec,
    pass: Pass,
    mut senders: BTreeMap<String, Pod>,
) -> Result<StepOutcome> {
    let volumes = ctx.volumes();
    let (mut records, mut progress, mut unfinished, mut vanished) = (Vec::new(), Vec::new(), 0, Vec::new());
    // The receivers are looked at only when a sender is not yet transferring or is reconnecting (its
    // log's last record is a retry): a sender that reports progress is connected to its receiver.
    let mut check_receivers = false;
    // How each volume's pass went (delta or full, and why), for the step's message.
    let mut passes = Vec::new();
    for volume in volumes {
        let label = volume.source_key();
        let pods: Api<Pod> = Api::namespaced(ctx.source.clone(), &volume.namespace);
        let name = movers::sender_name(&spec.uid, volume, pass);
        let mut finished = |record: Progress| {
            progress.push(transfer::progress_line(&label, &record));
            if let Progress::Stats { pass: Some(how), .. } = &record {
                passes.push(format!("{label}: {how}"));
            }
            records.push(record);
        };
        let pod = match senders.remove(&name) {
            Some(pod) if pod.metadata.deletion_timestamp.is_none() => pod,
            // Deleted, evicted or preempted mid-transfer (or still terminating): started again below.
            _ => {
                vanished.push(format!("{}/{name}", volume.namespace));
                continue;
            }
        };
        match transfer::sender_state(&pod) {
            SenderState::Succeeded(Some(record)) => finished(record),
            SenderState::Succeeded(None) => {
                delete_if_present(&pods, &name).await?;
                return Ok(StepOutcome::Retry {
                    reason: format!(
                        "sender {}/{name} ended without reporting its stats record, so its transfer is not \
                         proven complete; running it again",
                        volume.namespace
                    ),
                    after: Duration::from_secs(2),
                });
            }
            SenderState::Pending(reason) => {
                if let Some(failed) = stuck(ctx, &pod, &format!("sender {}/{name}", volume.namespace)) {
                    return Ok(failed);
                }
                unfinished += 1;
                check_receivers = true;
                progress.push(format!("{label}: waiting to start ({reason})"));
            }
            SenderState::Running => {
                let (line, live) = live_progress(&pods, &name, &label).await;
                if let Live::Finished(record) = live {
                    // Done as far as the data goes: rsync exited 0 and the sender printed its stats
                    // record last. Inside the downtime window the pod's own Succeeded is not awaited.
                    finished(record);
                    continue;
                }
                unfinished += 1;
                if let Some(replaced) =
                    held_senders::replace_if_unreleased(ctx, &pod, live == Live::Held).await?
                {
                    return Ok(replaced);
                }
                check_receivers |= live != Live::Transferring;
                progress.push(line);
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
    if check_receivers && let Some(waiting) = ensure_receivers(ctx, spec).await? {
        return Ok(waiting);
    }
    if !vanished.is_empty() {
        let restarted = ensure_pods(ctx, pass).await?;
        if !matches!(restarted, StepOutcome::Done(_)) {
            return Ok(restarted);
        }
        return Ok(StepOutcome::Retry {
            reason: format!(
                "sender pod(s) {} disappeared before reporting success (deleted, evicted or preempted); started \
                 again",
                vanished.join(", ")
            ),
            after: POLL,
        });
    }
    if unfinished > 0 {
        return Ok(StepOutcome::InProgress {
            message: format!(
                "Transferring {unfinished} of {} volume(s) ({}).",
                volumes.len(),
                pass.as_str()
            ),
            progress,
            after: if pass == Pass::Stage && ctx.source_pods.is_some() {
                WATCHED_STAGE_POLL
            } else if pass == Pass::Stage {
                stage_poll(
                    ctx.elapsed(Step::WaitForTransfer)
                        .max(ctx.elapsed(Step::StageSync)),
                )
            } else {
                DOWNTIME_POLL
            },
        });
    }
    let (bytes, files) = transfer::totals(&records);
    let message = if pass == Pass::Verify {
        format!(
            "Verified {} volume(s): source and target are identical.",
            volumes.len()
        )
    } else {
        let mut done = transfer::done_message(volumes.len(), bytes, files);
        if !passes.is_empty() {
            done = format!("{done} {}.", passes.join("; "));
        }
        // The sync steps make their endpoints inside them: say here which type and why.
        if let Some(why) = recorded_choice(ctx, spec).await {
            done = format!("{done} {why}.");
        }
        done
    };
    Ok(match volumes_not_moved(ctx) {
        Some(pvcs) => StepOutcome::Warned {
            message,
            warning: Warning::VolumesNotMoved(pvcs),
        },
        None => StepOutcome::Done(message),
    })
}

/// PVCs the plan discovers now that this migration does not move (created after it started).
fn volumes_not_moved(ctx: &StepContext) -> Option<String> {
    let moved = ctx.volumes();
    let new: Vec<String> = ctx
        .plan_volumes()
        .iter()
        .filter(|v| !moved.iter().any(|m| m.id() == v.id()))
        .map(DiscoveredVolume::source_key)
        .collect();
    (!new.is_empty()).then(|| new.join(", "))
}

/// The whole ladder as one step (StageSync, FinalSync, Verify): the first unfinished rung's outcome.
pub async fn sync(ctx: &StepContext, pass: Pass) -> Result<StepOutcome> {
    if ctx.volumes().is_empty() {
        return Ok(StepOutcome::Skipped("the plan has no volumes".into()));
    }
    if pass == Pass::Verify && !ctx.verify() {
        return Ok(StepOutcome::Skipped("verification was not requested".into()));
    }
    let spec = spec(ctx)?;
    let mut senders = senders(ctx, &spec, pass).await?;
    if pass == Pass::Final {
        // Started before the quiesce and held until now (StageSync made them): let them go.
        held_senders::release(ctx, &mut senders).await?;
    }
    let all_there = ctx
        .volumes()
        .iter()
        .all(|v| senders.contains_key(&movers::sender_name(&spec.uid, v, pass)));
    // The creation ladder runs until this pass's senders exist (and again when one vanished), not on
    // every look at a running transfer.
    if !all_there {
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
        senders = self::senders(ctx, &spec, pass).await?;
    }
    let outcome = follow(ctx, &spec, pass, senders).await?;
    if pass == Pass::Stage && matches!(outcome, StepOutcome::Done(_) | StepOutcome::Warned { .. }) {
        // The cutover's final senders start now, while the app runs, and wait for FinalSync.
        held_senders::create(ctx, &spec).await?;
    }
    Ok(outcome)
}

#[derive(Clone, Copy)]
enum Rung {
    Secrets,
    Endpoints,
    Pods,
}

/// What a running sender's log tail shows it doing.
#[derive(Clone, Debug, PartialEq)]
enum Live {
    /// Its pass is over and succeeded: the stats record is in its log, the pod not yet Succeeded
    /// (the kubelet notices an exited container within about a second).
    Finished(Progress),
    /// Sending (a progress record last).
    Transferring,
    /// Starting, scanning, or reconnecting after a failed attempt.
    Starting,
    /// Waiting for its release (a held final sender).
    Held,
}

/// The live progress line of a running sender, from its log tail (a running line when the logs
/// cannot be read: progress is informative, never a reason to fail), and what it shows the sender
/// doing.
async fn live_progress(pods: &Api<Pod>, name: &str, label: &str) -> (String, Live) {
    let params = LogParams {
        container: Some("mover".into()),
        tail_lines: Some(20),
        ..LogParams::default()
    };
    match pods.logs(name, &params).await {
        Ok(tail) => match transfer::last_progress(&tail) {
            Some(record) => (
                transfer::progress_line(label, &record),
                match record {
                    Progress::Progress { .. } => Live::Transferring,
                    Progress::Held { .. } => Live::Held,
                    Progress::Stats { success: true, .. } => Live::Finished(record),
                    _ => Live::Starting,
                },
            ),
            None => (format!("{label}: starting"), Live::Starting),
        },
        Err(_) => (format!("{label}: transferring"), Live::Starting),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_transfers_are_looked_at_less_often_as_they_run() {
        assert_eq!(stage_poll(Duration::ZERO), POLL);
        assert_eq!(stage_poll(Duration::from_secs(4)), POLL);
        assert_eq!(stage_poll(Duration::from_secs(15)), Duration::from_secs(3));
        assert_eq!(stage_poll(Duration::from_secs(3600)), STAGE_POLL_MAX);
    }

    fn pod(name: &str, phase: &str, message: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "app",
                         "creationTimestamp": k8s_openapi::jiff::Timestamp::now().to_string()},
            "status": {"phase": phase, "containerStatuses": [{
                "name": "mover", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": match message {
                    Some(m) => serde_json::json!({"terminated": {"exitCode": 0, "message": m}}),
                    None => serde_json::json!({"running": {}}),
                }
            }]}
        }))
        .unwrap()
    }

    fn seen(pods: Vec<Pod>) -> BTreeMap<String, Pod> {
        pods.into_iter().map(|p| (p.name_any(), p)).collect()
    }

    #[test]
    fn the_watched_view_only_says_a_transfer_goes_on_anything_else_is_read_fresh() {
        let expected = vec!["a".to_string(), "b".to_string()];
        let limit = Duration::from_secs(300);
        let stats = serde_json::to_string(&Progress::Stats {
            bytes_sent: 10,
            bytes_received: 5,
            files_transferred: 3,
            files_total: 7,
            total_size: 2048,
            files_deleted: 0,
            duration_secs: 1.5,
            rsync_exit_code: 0,
            attempts: 1,
            success: true,
            pass: None,
        })
        .unwrap();
        let stats = stats.as_str();
        let running = seen(vec![pod("a", "Running", None), pod("b", "Pending", None)]);
        assert!(watched_view_suffices(&expected, &running, limit));
        let one_done = seen(vec![
            pod("a", "Running", None),
            pod("b", "Succeeded", Some(stats)),
        ]);
        assert!(watched_view_suffices(&expected, &one_done, limit));
        let all_done = seen(vec![
            pod("a", "Succeeded", Some(stats)),
            pod("b", "Succeeded", Some(stats)),
        ]);
        assert!(
            !watched_view_suffices(&expected, &all_done, limit),
            "the end is confirmed by a LIST"
        );
        let missing = seen(vec![pod("a", "Running", None)]);
        assert!(
            !watched_view_suffices(&expected, &missing, limit),
            "created a moment ago, or vanished"
        );
        let no_record = seen(vec![pod("a", "Running", None), pod("b", "Succeeded", None)]);
        assert!(!watched_view_suffices(&expected, &no_record, limit));
        let failed = seen(vec![pod("a", "Running", None), pod("b", "Failed", None)]);
        assert!(!watched_view_suffices(&expected, &failed, limit));
        let pending = seen(vec![pod("a", "Pending", None), pod("b", "Pending", None)]);
        assert!(
            !watched_view_suffices(&expected, &pending, Duration::ZERO),
            "pending past the start limit: failed on a fresh read only"
        );
        let mut deleting = running.clone();
        deleting.get_mut("a").unwrap().metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
        );
        assert!(!watched_view_suffices(&expected, &deleting, limit));
    }

    #[test]
    fn a_pass_removes_only_the_senders_of_the_passes_before_it() {
        assert!(earlier_passes(Pass::Stage).is_empty());
        assert_eq!(earlier_passes(Pass::Final), &[Pass::Stage]);
        assert_eq!(earlier_passes(Pass::Verify), &[Pass::Stage, Pass::Final]);
    }

    #[test]
    fn a_watched_receiver_is_fine_running_or_starting_in_time() {
        let limit = Duration::from_secs(300);
        assert!(receiver_fine(&pod("r", "Running", None), limit));
        assert!(receiver_fine(&pod("r", "Pending", None), limit));
        assert!(!receiver_fine(&pod("r", "Pending", None), Duration::ZERO));
        assert!(!receiver_fine(&pod("r", "Failed", None), limit));
    }
}
