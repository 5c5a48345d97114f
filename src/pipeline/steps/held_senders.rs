//! The cutover's held final senders (docs/mover.md, "Held senders"): created when StageSync ends,
//! while the app still runs, and released by FinalSync once EnsureSourceQuiesced has passed, so the
//! downtime window waits for no pod to start. Every path that cannot use them falls back to what
//! FinalSync does without them: it creates its senders itself.
//!
//! What must hold: a final sender sends nothing before FinalSync releases it (the release is only
//! ever written here, by FinalSync); a held sender that died, timed out or was never released
//! (its node does not refresh the release file) is replaced by a fresh final sender, never waited on.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};

use super::create_if_absent;
use super::delete_if_present;
use super::mover_endpoints::{addresses, endpoint};
use crate::Result;
use crate::api::Itinerary;
use crate::pipeline::movers::{MoverSpec, held};
use crate::pipeline::{StepContext, StepOutcome};

/// How long a released sender may still show itself held before it is replaced.
pub(super) const RELEASE_GRACE: Duration = Duration::from_secs(10);

/// After StageSync's pass: the final senders, held, for a cutover whose FinalSync will run. Best
/// effort: when the receivers' addresses are not known, FinalSync starts its senders itself.
pub(super) async fn create(ctx: &StepContext, spec: &MoverSpec) -> Result<()> {
    if Itinerary::for_spec(&ctx.migration.spec) != Itinerary::Final || !ctx.migration.spec.quiesce_pods {
        return Ok(());
    }
    let mut spec = spec.clone();
    if endpoint(ctx, &mut spec).await?.is_err() {
        return Ok(());
    }
    let Ok(addresses) = addresses(ctx, &spec).await? else {
        return Ok(());
    };
    for (volume, address) in &addresses {
        let pods: Api<Pod> = Api::namespaced(ctx.source.clone(), &volume.namespace);
        create_if_absent(&pods, &held::held_send_pod(&spec, volume, address)).await?;
    }
    tracing::info!(
        migration = %ctx.migration.name_any(),
        senders = addresses.len(),
        "final senders created, held until the source is quiesced"
    );
    Ok(())
}

/// In FinalSync, before its senders are followed: every held sender is released (one patch each,
/// once); a held one that ended without a release (it timed out, or failed) is deleted, so the
/// ladder starts a fresh final sender in its place.
pub(super) async fn release(ctx: &StepContext, senders: &mut BTreeMap<String, Pod>) -> Result<()> {
    let now = k8s_openapi::jiff::Timestamp::now();
    for (name, pod) in senders.iter_mut() {
        if !held::is_held(pod) || held::released_at(pod).is_some() {
            continue;
        }
        let namespace = pod.namespace().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(ctx.source.clone(), &namespace);
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            tracing::info!(pod = %name, "held sender ended before its release; starting a fresh one");
            delete_if_present(&pods, name).await?;
            pod.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
            continue;
        }
        match pods
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(held::release_patch(now)),
            )
            .await
        {
            Ok(patched) => *pod = patched,
            // Gone meanwhile: followed as vanished, and started again.
            Err(kube::Error::Api(status)) if status.code == 404 => {
                pod.metadata.deletion_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// A released sender whose log still shows it held `RELEASE_GRACE` after the release: its node did
/// not refresh the release file. FinalSync replaces it; the outcome says why.
pub(super) async fn replace_if_unreleased(
    ctx: &StepContext,
    pod: &Pod,
    still_held: bool,
) -> Result<Option<StepOutcome>> {
    let Some(released) = held::released_at(pod).filter(|_| still_held && held::is_held(pod)) else {
        return Ok(None);
    };
    let since = k8s_openapi::jiff::Timestamp::now().duration_since(released);
    if Duration::try_from(since).unwrap_or_default() < RELEASE_GRACE {
        return Ok(None);
    }
    let (name, namespace) = (pod.name_any(), pod.namespace().unwrap_or_default());
    delete_if_present(&Api::<Pod>::namespaced(ctx.source.clone(), &namespace), &name).await?;
    Ok(Some(StepOutcome::Retry {
        reason: format!(
            "held sender {namespace}/{name} did not start within {}s of its release (its node did not update \
             the release file); starting a fresh final sender",
            RELEASE_GRACE.as_secs()
        ),
        after: Duration::from_millis(200),
    }))
}
