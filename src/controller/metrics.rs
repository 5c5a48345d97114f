//! The controller's Prometheus metrics, served at `/metrics` in the text format: migrations by
//! itinerary and result, stage durations, bytes in the migrated volumes, cutover downtime, reconcile
//! errors by kind and reason, triggered (and skipped) stages, and webhook requests by result. Counted by the replica that observed the event (the leader).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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
        Self {
            registry,
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
