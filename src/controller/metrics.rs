//! The controller's Prometheus metrics, served at `/metrics` in the text format: migrations by
//! itinerary and result, stage durations, bytes in the migrated volumes, cutover downtime, reconcile
//! errors by kind and reason, triggered (and skipped) stages, webhook requests by result, and each
//! scheduled plan's next fire. Counted by the replica that observed the event (the leader).

use std::collections::BTreeSet;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `ferry_migrations_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MigrationLabels {
    /// `Stage`, `Final` or `Rollback`.
    pub itinerary: String,
    /// `succeeded`, `failed` or `canceled`.
    pub result: String,
}

/// Labels of `ferry_reconcile_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The kind reconciled (`MigPlan`, …).
    pub kind: String,
    /// The error's low-cardinality label (`Error::metric_label`).
    pub reason: String,
}

/// Labels of `ferry_triggered_stages_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabels {
    /// `schedule` or `push`.
    pub trigger: String,
    /// `created`, or why no stage started (`skipped_busy`, `skipped_missed`, `skipped_cut_over`,
    /// `skipped_not_ready`).
    pub result: String,
}

/// Labels of `ferry_webhook_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// `accepted` (a plan recorded the push), `ignored` (valid but concerns no plan, or not a push),
    /// `unauthorized` (missing or bad signature), `bad_request`, `error` (recording failed).
    pub result: String,
}

/// Labels of `ferry_plan_next_scheduled_stage_timestamp_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct PlanLabels {
    /// The plan's namespace.
    pub namespace: String,
    /// The plan's name.
    pub plan: String,
}

/// Every metric, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    /// Finished migrations.
    pub migrations: Family<MigrationLabels, Counter>,
    /// Seconds a successful stage took, start to end.
    pub stage_duration: Histogram,
    /// Bytes of volume data mirrored by the syncs of successful migrations (each pass counts the data
    /// it made identical, whether rsync had to send it or found it in place).
    pub bytes: Counter,
    /// Seconds of each completed cutover's downtime window.
    pub downtime: Histogram,
    /// Reconciles that ended in an error (and were retried).
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Stage migrations created by triggers, and scheduled fires skipped.
    pub triggered_stages: Family<TriggerLabels, Counter>,
    /// Requests to the push webhook, by result.
    pub webhook_requests: Family<WebhookLabels, Counter>,
    /// Unix time of each scheduled plan's next fire (`time() - x > 0` for long: the schedule is late).
    pub next_scheduled_stage: Family<PlanLabels, Gauge>,
    /// The plans that have a `next_scheduled_stage` series, so a deleted plan's series can be removed.
    scheduled: Mutex<BTreeSet<PlanLabels>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ferry");
        let migrations = Family::<MigrationLabels, Counter>::default();
        registry.register(
            "migrations",
            "Finished migrations by itinerary and result",
            migrations.clone(),
        );
        let stage_duration = Histogram::new(exponential_buckets(1.0, 2.0, 16));
        registry.register(
            "stage_duration_seconds",
            "Duration of successful stages",
            stage_duration.clone(),
        );
        let bytes = Counter::default();
        registry.register(
            "synced_bytes",
            "Bytes of volume data mirrored by the syncs of successful migrations",
            bytes.clone(),
        );
        let downtime = Histogram::new(exponential_buckets(0.25, 2.0, 14));
        registry.register(
            "cutover_downtime_seconds",
            "Downtime window of completed cutovers (QuiesceSource start to VerifyDNS end)",
            downtime.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed and were retried, by kind and reason",
            reconcile_errors.clone(),
        );
        let triggered_stages = Family::<TriggerLabels, Counter>::default();
        registry.register(
            "triggered_stages",
            "Stage migrations created by the schedule and push triggers, and scheduled fires skipped",
            triggered_stages.clone(),
        );
        let webhook_requests = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_requests",
            "Requests to the git push webhook by result",
            webhook_requests.clone(),
        );
        let next_scheduled_stage = Family::<PlanLabels, Gauge>::default();
        registry.register(
            "plan_next_scheduled_stage_timestamp_seconds",
            "Unix time of the next scheduled stage of each plan with a schedule (not while cut over)",
            next_scheduled_stage.clone(),
        );
        Self {
            registry,
            next_scheduled_stage,
            scheduled: Mutex::default(),
            triggered_stages,
            webhook_requests,
            migrations,
            stage_duration,
            bytes,
            downtime,
            reconcile_errors,
        }
    }
}

impl Metrics {
    /// Records `plan`'s next scheduled stage (`None`: it has none), and drops the series of plans that
    /// `exists` no longer knows (deleted plans are never reconciled again).
    pub fn set_next_scheduled_stage(
        &self,
        plan: PlanLabels,
        unix_seconds: Option<i64>,
        exists: impl Fn(&PlanLabels) -> bool,
    ) {
        let mut scheduled = self.scheduled.lock().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<PlanLabels> = scheduled.iter().filter(|p| !exists(p)).cloned().collect();
        for labels in gone {
            self.next_scheduled_stage.remove(&labels);
            scheduled.remove(&labels);
        }
        match unix_seconds {
            Some(at) => {
                self.next_scheduled_stage.get_or_create(&plan).set(at);
                scheduled.insert(plan);
            }
            None => {
                self.next_scheduled_stage.remove(&plan);
                scheduled.remove(&plan);
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str) -> PlanLabels {
        PlanLabels {
            namespace: "ns".into(),
            plan: name.into(),
        }
    }

    #[test]
    fn a_plan_without_a_schedule_or_gone_has_no_next_stage_series() {
        let metrics = Metrics::default();
        metrics.set_next_scheduled_stage(plan("a"), Some(1_800_000_000), |_| true);
        metrics.set_next_scheduled_stage(plan("b"), Some(1_800_000_600), |_| true);
        let text = metrics.encode();
        assert!(
            text.contains(
                "ferry_plan_next_scheduled_stage_timestamp_seconds{namespace=\"ns\",plan=\"a\"} 1800000000"
            ),
            "{text}"
        );
        // Plan b lost its schedule; plan a was deleted (the store no longer has it).
        metrics.set_next_scheduled_stage(plan("b"), None, |p| p.plan != "a");
        let text = metrics.encode();
        assert!(!text.contains("plan=\"a\""), "{text}");
        assert!(!text.contains("plan=\"b\""), "{text}");
    }

    #[test]
    fn the_exposition_names_every_metric() {
        let metrics = Metrics::default();
        metrics
            .migrations
            .get_or_create(&MigrationLabels {
                itinerary: "Final".into(),
                result: "succeeded".into(),
            })
            .inc();
        metrics.downtime.observe(0.7);
        metrics
            .reconcile_errors
            .get_or_create(&ErrorLabels {
                kind: "MigPlan".into(),
                reason: "kube".into(),
            })
            .inc();
        metrics
            .webhook_requests
            .get_or_create(&WebhookLabels {
                result: "unauthorized".into(),
            })
            .inc();
        metrics
            .triggered_stages
            .get_or_create(&TriggerLabels {
                trigger: "schedule".into(),
                result: "created".into(),
            })
            .inc();
        let text = metrics.encode();
        assert!(
            text.contains("ferry_migrations_total{itinerary=\"Final\",result=\"succeeded\"} 1"),
            "{text}"
        );
        for name in [
            "ferry_stage_duration_seconds",
            "ferry_synced_bytes_total",
            "ferry_cutover_downtime_seconds_count 1",
            "ferry_reconcile_errors_total{kind=\"MigPlan\",reason=\"kube\"} 1",
            "ferry_webhook_requests_total{result=\"unauthorized\"} 1",
            "ferry_triggered_stages_total{trigger=\"schedule\",result=\"created\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing: {text}");
        }
    }
}
