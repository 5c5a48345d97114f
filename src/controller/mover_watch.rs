//! Watches of the mover pods in the clusters migrations run in, one per cluster, shared by every
//! migration there (issue #13): a running transfer is looked at in a reflector store that one long
//! WATCH keeps current, instead of a LIST of its senders on every look, and a pod event (a sender
//! running, finished, failed or deleted; a receiver gone) wakes its migration at once, so the looks
//! in between can be far apart.
//!
//! ```text
//!  cluster ─► watch (pods with a migration UID and a mover role) ─► store ─► steps (StepContext)
//!                                                                  └► uid ─► wake the MigMigration
//! ```
//!
//! A watch starts on the first lookup for its cluster, ends after [`IDLE`] without one, and is
//! started again (with the cluster's current client) when it failed. Until it has listed, or after
//! an error, a lookup gets `None` and the steps read the API: a stale or broken watch never decides.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt};

use crate::pipeline::{labels, movers};

/// How long a watch is kept without a lookup (no migration runs a transfer in its cluster).
pub const IDLE: Duration = Duration::from_secs(120);

/// The label selector of the watched pods: Ferry's movers, each labelled with its migration's UID.
pub fn selector() -> String {
    format!("{},{}", labels::MIGRATION_UID, movers::ROLE)
}

/// Where a watch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum State {
    /// Started, not listed yet.
    Starting = 0,
    /// Listed, and no error since.
    Ready = 1,
    /// The watch failed (or its cluster stopped answering); a lookup starts it again.
    Failed = 2,
    /// Ended after [`IDLE`] without a lookup.
    Ended = 3,
}

impl State {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => State::Starting,
            1 => State::Ready,
            2 => State::Failed,
            _ => State::Ended,
        }
    }
}

/// What a lookup does with the watch of its cluster, decided without I/O.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Use the store.
    Use,
    /// Wait for it (read the API meanwhile).
    Wait,
    /// Start a new watch (read the API meanwhile).
    Start,
}

/// The pure decision behind [`MoverWatches::store`]: a ready watch is used, a starting one waited
/// for (unless it has been starting for longer than `IDLE`), anything else started again.
pub(crate) fn lookup(state: Option<(State, Duration)>) -> Lookup {
    match state {
        Some((State::Ready, _)) => Lookup::Use,
        Some((State::Starting, age)) if age < IDLE => Lookup::Wait,
        _ => Lookup::Start,
    }
}

struct Watch {
    store: Store<Pod>,
    state: Arc<AtomicU8>,
    started: Instant,
    used: Arc<Mutex<Instant>>,
    task: tokio::task::AbortHandle,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The watches, by cluster key (`namespace/name` of the MigCluster, or the host's key).
pub struct MoverWatches {
    watches: Mutex<HashMap<String, Watch>>,
    /// The UID of a migration whose mover pod changed.
    wake: futures::channel::mpsc::UnboundedSender<String>,
}

impl MoverWatches {
    /// Watches that send the UID of a migration whose mover pod changed into `wake`.
    pub fn new(wake: futures::channel::mpsc::UnboundedSender<String>) -> Self {
        Self {
            watches: Mutex::default(),
            wake,
        }
    }

    /// The store of the mover pods of cluster `key` (reached with `client`) when its watch is
    /// current; `None` while it starts or after it failed (it is started again here).
    pub fn store(&self, key: &str, client: &Client) -> Option<Store<Pod>> {
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let seen = watches.get(key).map(|w| {
            (
                State::from_u8(w.state.load(Ordering::Acquire)),
                now.saturating_duration_since(w.started),
            )
        });
        match lookup(seen) {
            Lookup::Use | Lookup::Wait => {
                let watch = watches.get(key)?;
                *watch.used.lock().unwrap_or_else(|p| p.into_inner()) = now;
                (watch.state.load(Ordering::Acquire) == State::Ready as u8).then(|| watch.store.clone())
            }
            Lookup::Start => {
                tracing::debug!(cluster = key, "starting the mover pod watch");
                watches.insert(key.to_string(), self.start(key, client.clone()));
                None
            }
        }
    }

    /// How many watches are held (running or not).
    pub fn len(&self) -> usize {
        self.watches.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no watch is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn start(&self, key: &str, client: Client) -> Watch {
        let (store, writer) = reflector::store::<Pod>();
        let state = Arc::new(AtomicU8::new(State::Starting as u8));
        let used = Arc::new(Mutex::new(Instant::now()));
        let config = watcher::Config::default().labels(&selector());
        let events =
            reflector::reflector(writer, watcher::watcher(Api::<Pod>::all(client), config)).default_backoff();
        let task = tokio::spawn(follow(
            key.to_string(),
            events,
            state.clone(),
            used.clone(),
            self.wake.clone(),
        ));
        Watch {
            store,
            state,
            started: Instant::now(),
            used,
            task: task.abort_handle(),
        }
    }
}

/// Runs one watch: tracks its state, wakes the migration of every pod that changed, and ends once
/// no lookup came for [`IDLE`].
async fn follow(
    key: String,
    events: impl futures::Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Send,
    state: Arc<AtomicU8>,
    used: Arc<Mutex<Instant>>,
    wake: futures::channel::mpsc::UnboundedSender<String>,
) {
    let mut events = std::pin::pin!(events);
    let mut idle_check = tokio::time::interval(IDLE / 4);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(watcher::Event::InitDone)) => state.store(State::Ready as u8, Ordering::Release),
                Some(Ok(watcher::Event::Apply(pod) | watcher::Event::Delete(pod))) => {
                    if let Some(uid) = pod.labels().get(labels::MIGRATION_UID) {
                        let _ = wake.unbounded_send(uid.clone());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    tracing::debug!(cluster = %key, error = %err, "mover pod watch failed");
                    state.store(State::Failed as u8, Ordering::Release);
                    return;
                }
                None => {
                    state.store(State::Failed as u8, Ordering::Release);
                    return;
                }
            },
            _ = idle_check.tick() => {
                let last = *used.lock().unwrap_or_else(|p| p.into_inner());
                if last.elapsed() > IDLE {
                    tracing::debug!(cluster = %key, "mover pod watch idle; ended");
                    state.store(State::Ended as u8, Ordering::Release);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_listed_watch_is_used_and_a_broken_one_is_started_again() {
        assert_eq!(lookup(None), Lookup::Start);
        assert_eq!(
            lookup(Some((State::Ready, Duration::from_secs(900)))),
            Lookup::Use
        );
        assert_eq!(
            lookup(Some((State::Starting, Duration::from_secs(1)))),
            Lookup::Wait
        );
        assert_eq!(
            lookup(Some((State::Starting, IDLE))),
            Lookup::Start,
            "a watch that never listed is replaced"
        );
        assert_eq!(lookup(Some((State::Failed, Duration::ZERO))), Lookup::Start);
        assert_eq!(lookup(Some((State::Ended, Duration::ZERO))), Lookup::Start);
    }

    #[test]
    fn the_watch_selects_movers_of_a_migration() {
        assert_eq!(selector(), format!("{},{}", labels::MIGRATION_UID, movers::ROLE));
    }
}
