//! When a running migration is next due for a look. A step that waits (a transfer, a rollout) asks to
//! be looked at again after a while; but every status write of the look itself comes back as a watch
//! event, and kube-runtime would reconcile at once, so a running transfer was looked at as fast as
//! the API server answered (a LIST, GETs, a log read and a status write each time). A reconcile
//! triggered only by this controller's own write (the cached object is what it wrote last) waits
//! until the look is due; a change by anyone else (cancel, delete) is acted on at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Not-before instants per object key.
#[derive(Default)]
pub struct Pacing {
    due: Mutex<HashMap<String, Instant>>,
}

impl Pacing {
    /// Records that `key` asked to be looked at again in `after`.
    pub fn defer(&self, key: &str, after: Duration) {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        due.insert(key.to_string(), Instant::now() + after);
    }

    /// How long until `key` is due, if it is not yet; forgets it once due.
    pub fn remaining(&self, key: &str) -> Option<Duration> {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        let left = due.get(key)?.checked_duration_since(Instant::now());
        match left {
            Some(left) if !left.is_zero() => Some(left),
            _ => {
                due.remove(key);
                None
            }
        }
    }

    /// Forgets `key` (it finished, or must be looked at now).
    pub fn clear(&self, key: &str) {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        due.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deferred_key_waits_until_due_then_runs() {
        let pacing = Pacing::default();
        assert_eq!(pacing.remaining("m"), None, "nothing deferred: run now");
        pacing.defer("m", Duration::from_secs(5));
        let left = pacing.remaining("m").unwrap();
        assert!(left > Duration::from_secs(4) && left <= Duration::from_secs(5));
        assert_eq!(pacing.remaining("other"), None, "keys are independent");
        pacing.defer("m", Duration::ZERO);
        assert_eq!(pacing.remaining("m"), None, "due: run now");
        pacing.defer("m", Duration::from_secs(5));
        pacing.clear("m");
        assert_eq!(pacing.remaining("m"), None);
    }
}
