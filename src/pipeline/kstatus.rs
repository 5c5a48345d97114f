//! The kstatus conditions (`Reconciling`, `Stalled`) beside MTC's, so `kubectl wait`, Flux and Argo CD
//! tell a running migration from a finished one without knowing MTC's condition types:
//! - running: `Reconciling=True` (reason: the current step, message `Step: N/M`);
//! - finished: `Reconciling=False` (reason `Succeeded`, `Failed` or `Canceled`), and on a failure
//!   `Stalled=True` (reason: the failed step or the refusal, message: the cause).
//!
//! With `status.observedGeneration` that is the convention's whole contract. Pure, like the engine.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{Category, Condition, condition};

/// The kstatus condition types.
pub const RECONCILING: &str = "Reconciling";
/// See [`RECONCILING`].
pub const STALLED: &str = "Stalled";

/// The migration works toward its end, at `step`.
pub fn reconciling(conditions: &mut Vec<Condition>, step: &str, message: &str, now: &Time) {
    condition::remove(conditions, STALLED);
    condition::set(
        conditions,
        Condition::holds(RECONCILING, Category::Advisory, step, message),
        now,
    );
}

/// The migration ended: successfully (`failure: None`), canceled, or failed with `(reason, cause)`.
pub fn finished(conditions: &mut Vec<Condition>, failure: Option<(&str, &str)>, now: &Time) {
    let canceled = condition::is_true(conditions, "Canceled");
    let (reason, message) = match (failure, canceled) {
        (Some(_), _) => ("Failed", "The migration failed; see Stalled."),
        (None, true) => ("Canceled", "The migration was canceled."),
        (None, false) => ("Succeeded", "The migration has completed successfully."),
    };
    condition::set(
        conditions,
        Condition::fails(RECONCILING, Category::Advisory, reason, message).durable(),
        now,
    );
    match failure {
        Some((reason, cause)) => condition::set(
            conditions,
            Condition::holds(STALLED, Category::Critical, reason, cause).durable(),
            now,
        ),
        None => condition::remove(conditions, STALLED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap())
    }

    #[test]
    fn running_then_failed_then_the_convention_reads_stalled() {
        let mut conditions = Vec::new();
        reconciling(&mut conditions, "FinalSync", "Step: 8/14", &now());
        assert!(condition::is_true(&conditions, RECONCILING));
        assert!(condition::find(&conditions, STALLED).is_none());
        finished(
            &mut conditions,
            Some(("Verify", "Verify failed: 1 path(s) differ")),
            &now(),
        );
        let reconciling = condition::find(&conditions, RECONCILING).unwrap();
        assert_eq!(
            (reconciling.is_true(), reconciling.reason.as_deref()),
            (false, Some("Failed"))
        );
        let stalled = condition::find(&conditions, STALLED).unwrap();
        assert_eq!(stalled.reason.as_deref(), Some("Verify"));
        assert!(stalled.is_true() && stalled.durable);
    }

    #[test]
    fn a_success_is_current_with_nothing_stalled() {
        let mut conditions = Vec::new();
        reconciling(&mut conditions, "Prepare", "Step: 1/8", &now());
        finished(&mut conditions, None, &now());
        let reconciling = condition::find(&conditions, RECONCILING).unwrap();
        assert_eq!(
            (reconciling.is_true(), reconciling.reason.as_deref()),
            (false, Some("Succeeded"))
        );
        assert!(condition::find(&conditions, STALLED).is_none());
    }
}
