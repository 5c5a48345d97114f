//! Retries after a failed reconcile, per object: exponential (the base retry, doubled per consecutive
//! failure, capped at [`MAX_DELAY`]) with ±20% jitter, so a cluster that went away is not hammered by
//! every plan at once, and objects failing together do not retry in lockstep. A success resets the
//! count.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The longest wait between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(300);

/// Consecutive failures per object key.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Counts a failure of `key` and returns how long to wait before the next attempt.
    pub fn failed(&self, key: &str, base: Duration) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = failures.entry(key.to_string()).or_default();
        *count = count.saturating_add(1);
        delay(base, *count, rand::random::<f64>())
    }

    /// Forgets the failures of `key` (its reconcile succeeded).
    pub fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(key);
    }

    /// Consecutive failures of `key`.
    pub fn failures(&self, key: &str) -> u32 {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.get(key).copied().unwrap_or_default()
    }
}

/// The wait after the `failures`-th consecutive failure; `jitter` in `[0, 1)` spreads it over
/// ±20% of the nominal value (never above [`MAX_DELAY`]).
pub fn delay(base: Duration, failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let nominal = base.saturating_mul(1 << doublings).min(MAX_DELAY);
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    nominal.mul_f64(factor).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(10);

    #[test]
    fn doubles_per_failure_up_to_the_cap() {
        assert_eq!(delay(BASE, 1, 0.5), BASE);
        assert_eq!(delay(BASE, 2, 0.5), BASE * 2);
        assert_eq!(delay(BASE, 3, 0.5), BASE * 4);
        assert_eq!(delay(BASE, 6, 0.5), MAX_DELAY);
        assert_eq!(delay(BASE, u32::MAX, 0.5), MAX_DELAY);
    }

    #[test]
    fn jitter_spreads_twenty_percent_either_way() {
        assert_eq!(delay(BASE, 1, 0.0), Duration::from_secs(8));
        assert!(delay(BASE, 1, 0.999) > Duration::from_millis(11_990));
        assert!(delay(BASE, 1, 0.999) <= Duration::from_secs(12));
        assert!(delay(BASE, 9, 1.0) <= MAX_DELAY);
    }

    #[test]
    fn a_success_resets_the_count() {
        let backoff = Backoff::default();
        let first = backoff.failed("ns/a", BASE);
        assert!(first >= Duration::from_secs(8) && first <= Duration::from_secs(12));
        let second = backoff.failed("ns/a", BASE);
        assert!(second >= Duration::from_secs(16));
        assert_eq!(backoff.failures("ns/a"), 2);
        assert_eq!(backoff.failures("ns/b"), 0, "counts are per object");
        backoff.succeeded("ns/a");
        assert_eq!(backoff.failures("ns/a"), 0);
    }
}
