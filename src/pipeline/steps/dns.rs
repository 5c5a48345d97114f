//! LowerDNSTTL, FlipDNS, VerifyDNS and RestoreDNS: the cutover's DNS flip through `crate::dns`.
//!
//! The record sets as they were before Ferry touched them are the way back, so they are recorded once,
//! before the first change, in an annotation on the MigPlan (host cluster), and only removed by the
//! rollback that restores them. A rerun of any step (crash, retry, second cutover) finds them there and
//! never records Ferry's own values as "the original". The TSIG Secret and a DNSEndpoint are read and
//! written in the host cluster.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::api::{MigPlan, Step};
use crate::dns::{self, Configured, DnsSpec, Provider, RecordKey, RecordSet};
use crate::pipeline::{StepContext, StepOutcome};

/// Annotation on the MigPlan holding the record sets as they were before the cutover.
pub const PRE_CUTOVER_DNS: &str = "migration.ferry.dev/pre-cutover-dns";
/// The longest LowerDNSTTL waits for caches to drop the old TTL.
pub const MAX_TTL_WAIT: Duration = Duration::from_secs(600);
/// How long VerifyDNS waits for the server to answer with the new values.
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(120);
/// One verification attempt inside a reconcile; the step reports progress between attempts.
const VERIFY_ATTEMPT: Duration = Duration::from_secs(5);

/// What the annotation holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    /// UID of the migration that recorded them.
    pub migration: String,
    /// The record sets, in the order of `spec.dns.records`.
    pub record_sets: Vec<RecordSet>,
}

/// The recorded sets stored on `plan`, if any (an unreadable annotation is an error: it is the way back).
pub fn recorded(plan: &MigPlan) -> Result<Option<Recorded>> {
    plan.annotations()
        .get(PRE_CUTOVER_DNS)
        .map(|text| {
            serde_json::from_str(text).map_err(|err| {
                crate::Error::InvalidSpec(format!(
                    "annotation {PRE_CUTOVER_DNS} on MigPlan {} is not readable: {err}",
                    plan.name_any()
                ))
            })
        })
        .transpose()
}

/// How long to keep waiting after lowering TTLs from `recorded`, `elapsed` after the step started:
/// caches may hold the old answers for the old (largest) TTL, capped at [`MAX_TTL_WAIT`].
pub fn ttl_wait_left(recorded: &[RecordSet], lowered_to: u32, elapsed: Duration) -> Duration {
    let old = recorded
        .iter()
        .filter(|s| s.exists() && s.ttl > lowered_to)
        .map(|s| s.ttl)
        .max()
        .unwrap_or(0);
    Duration::from_secs(u64::from(old))
        .min(MAX_TTL_WAIT)
        .saturating_sub(elapsed)
}

/// LowerDNSTTL: record the current sets, lower their TTL to `preCutoverTTL`, and wait out the old TTL.
pub async fn lower_ttl(ctx: &StepContext) -> Result<StepOutcome> {
    let Some(spec) = dns_spec(ctx) else {
        return Ok(skipped_without_dns());
    };
    let Some(ttl) = spec.pre_cutover_ttl else {
        return Ok(StepOutcome::Skipped("spec.dns.preCutoverTTL is not set".into()));
    };
    let provider = connect(ctx, spec).await?;
    let recorded = ensure_recorded(ctx, spec, &provider).await?;
    let lowered = dns::lowered_ttl_sets(&recorded, ttl);
    provider.replace(&lowered).await?;
    let left = ttl_wait_left(&recorded, ttl, ctx.elapsed(Step::LowerDNSTTL));
    if left.is_zero() {
        return Ok(StepOutcome::Done(format!(
            "TTL lowered to {ttl}s on {} record set(s).",
            lowered.len()
        )));
    }
    Ok(StepOutcome::InProgress {
        message: format!(
            "TTL lowered to {ttl}s; waiting {}s more for caches to drop the old TTL.",
            left.as_secs()
        ),
        progress: Vec::new(),
        after: left.min(Duration::from_secs(5)),
    })
}

/// FlipDNS: write the target values (the source's sets are recorded first).
pub async fn flip(ctx: &StepContext) -> Result<StepOutcome> {
    let Some(spec) = dns_spec(ctx) else {
        return Ok(skipped_without_dns());
    };
    let provider = connect(ctx, spec).await?;
    let recorded = ensure_recorded(ctx, spec, &provider).await?;
    let desired = dns::desired_record_sets(spec, &recorded, &ctx.target).await?;
    provider.replace(&desired).await?;
    Ok(StepOutcome::Done(format!(
        "Wrote {} via {}.",
        dns::describe_sets(&desired),
        provider.describe()
    )))
}

/// VerifyDNS: wait until the provider serves the target values.
pub async fn verify(ctx: &StepContext) -> Result<StepOutcome> {
    let Some(spec) = dns_spec(ctx) else {
        return Ok(skipped_without_dns());
    };
    let provider = connect(ctx, spec).await?;
    let recorded = recorded(&fresh_plan(ctx).await?)?
        .map(|r| r.record_sets)
        .unwrap_or_default();
    let desired = dns::desired_record_sets(spec, &recorded, &ctx.target).await?;
    wait_served(ctx, Step::VerifyDNS, &provider, &desired).await
}

/// RestoreDNS (rollback): put the recorded sets back, wait until they are served, drop the record.
pub async fn restore(ctx: &StepContext) -> Result<StepOutcome> {
    let Some(spec) = dns_spec(ctx) else {
        return Ok(skipped_without_dns());
    };
    let plan = fresh_plan(ctx).await?;
    let Some(recorded) = recorded(&plan)? else {
        return Ok(StepOutcome::Skipped(
            "no DNS change was recorded by a cutover of this plan".into(),
        ));
    };
    let provider = connect(ctx, spec).await?;
    provider.restore(&recorded.record_sets).await?;
    match wait_served(ctx, Step::RestoreDNS, &provider, &recorded.record_sets).await? {
        StepOutcome::Done(message) => {
            set_annotation(ctx, &plan, None).await?;
            Ok(StepOutcome::Done(format!("Restored: {message}")))
        }
        other => Ok(other),
    }
}

async fn wait_served(
    ctx: &StepContext,
    step: Step,
    provider: &Configured,
    desired: &[RecordSet],
) -> Result<StepOutcome> {
    match provider.verify(desired, VERIFY_ATTEMPT).await {
        Ok(took) => Ok(StepOutcome::Done(format!(
            "{} served ({} ms after the last check began).",
            dns::describe_sets(desired),
            took.as_millis()
        ))),
        Err(crate::Error::DnsVerifyTimeout { .. }) if ctx.elapsed(step) < VERIFY_TIMEOUT => {
            Ok(StepOutcome::InProgress {
                message: format!("Waiting for {} to serve the new records.", provider.describe()),
                progress: Vec::new(),
                after: Duration::from_secs(1),
            })
        }
        Err(crate::Error::DnsVerifyTimeout { .. }) => Ok(StepOutcome::Failed(format!(
            "{} did not serve {} within {}s",
            provider.describe(),
            dns::describe_sets(desired),
            VERIFY_TIMEOUT.as_secs()
        ))),
        Err(err) => Err(err),
    }
}

fn dns_spec(ctx: &StepContext) -> Option<&DnsSpec> {
    ctx.plan.spec.dns.as_ref().filter(|d| !d.records.is_empty())
}

fn skipped_without_dns() -> StepOutcome {
    StepOutcome::Skipped("the plan has no spec.dns records".into())
}

async fn connect(ctx: &StepContext, spec: &DnsSpec) -> Result<Configured> {
    dns::connect(spec, ctx.host.clone(), ctx.host.clone()).await
}

/// The sets as they were before Ferry changed anything: from the plan's annotation, or read now and
/// stored there before anything is written.
async fn ensure_recorded(ctx: &StepContext, spec: &DnsSpec, provider: &Configured) -> Result<Vec<RecordSet>> {
    let plan = fresh_plan(ctx).await?;
    if let Some(recorded) = recorded(&plan)? {
        return Ok(recorded.record_sets);
    }
    let record_sets = provider.read(&RecordKey::of_spec(spec)).await?;
    let recorded = Recorded {
        migration: ctx.uid(),
        record_sets: record_sets.clone(),
    };
    set_annotation(ctx, &plan, Some(serde_json::to_string(&recorded)?)).await?;
    Ok(record_sets)
}

/// The plan as stored now: an earlier step of this reconcile may have recorded the sets since
/// `ctx.plan` was read.
async fn fresh_plan(ctx: &StepContext) -> Result<MigPlan> {
    let api: Api<MigPlan> = Api::namespaced(ctx.host.clone(), &ctx.plan_namespace());
    Ok(api.get(&ctx.plan.name_any()).await?)
}

/// Sets (or with `None` removes) the annotation, guarded by the plan's resourceVersion when setting so
/// two writers cannot both believe they recorded the original.
async fn set_annotation(ctx: &StepContext, plan: &MigPlan, value: Option<String>) -> Result<()> {
    let api: Api<MigPlan> = Api::namespaced(ctx.host.clone(), &ctx.plan_namespace());
    let mut metadata = serde_json::json!({"annotations": {PRE_CUTOVER_DNS: value}});
    if value.is_some() {
        metadata["resourceVersion"] = serde_json::json!(plan.resource_version());
    }
    api.patch(
        &ctx.plan.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({"metadata": metadata})),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::RecordType;

    fn set(ttl: u32, values: &[&str]) -> RecordSet {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        RecordSet::new("app.example.test", RecordType::A, ttl, &values).unwrap()
    }

    #[test]
    fn the_ttl_wait_is_the_old_ttl_capped_and_counts_down() {
        let recorded = [set(60, &["192.0.2.1"])];
        assert_eq!(
            ttl_wait_left(&recorded, 5, Duration::ZERO),
            Duration::from_secs(60)
        );
        assert_eq!(
            ttl_wait_left(&recorded, 5, Duration::from_secs(45)),
            Duration::from_secs(15)
        );
        assert_eq!(
            ttl_wait_left(&recorded, 5, Duration::from_secs(90)),
            Duration::ZERO
        );
        let long = [set(86_400, &["192.0.2.1"])];
        assert_eq!(ttl_wait_left(&long, 5, Duration::ZERO), MAX_TTL_WAIT);
    }

    #[test]
    fn nothing_to_wait_for_when_no_ttl_was_lowered() {
        assert_eq!(
            ttl_wait_left(&[set(5, &["192.0.2.1"])], 30, Duration::ZERO),
            Duration::ZERO
        );
        let absent = RecordSet::absent("app.example.test", RecordType::A).unwrap();
        assert_eq!(ttl_wait_left(&[absent], 30, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn the_record_round_trips_through_the_annotation() {
        let recorded = Recorded {
            migration: "uid-1".into(),
            record_sets: vec![set(300, &["192.0.2.1"])],
        };
        let mut plan = MigPlan::new("shop", Default::default());
        plan.annotations_mut()
            .insert(PRE_CUTOVER_DNS.into(), serde_json::to_string(&recorded).unwrap());
        assert_eq!(super::recorded(&plan).unwrap(), Some(recorded));
        plan.annotations_mut().insert(PRE_CUTOVER_DNS.into(), "{".into());
        assert!(super::recorded(&plan).is_err());
    }
}
