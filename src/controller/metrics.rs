//! The controller's Prometheus metrics, served at `/metrics` in the text format: migrations by
//! itinerary and result, stage durations, bytes in the migrated volumes, cutover downtime, and
//! reconcile errors by kind and reason. Counted by the replica that observed the event (the leader).

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
        Self {
            registry,
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
        ] {
            assert!(text.contains(name), "{name} missing: {text}");
        }
    }
}
