//! Remote clients cached per MigCluster. Building one reads the cluster's Secret and sets up TLS; a
//! running migration needs two of them on every look, so they are kept, keyed by the cluster's UID
//! and generation (a spec change builds a new one) and the Secret's resourceVersion (a rotated token
//! builds a new one). The Secret is read again at most once per [`SECRET_RECHECK`]; the MigCluster
//! reconciler asks with `max_age` zero on every pass, so a broken or rotated Secret is seen within
//! one resync. A kept client also keeps its connection pool: no new TLS handshake per look.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::{Client, ResourceExt};

use super::remote::{self, Problem};
use crate::api::MigCluster;

/// How long a cached client is used before its Secret's resourceVersion is checked again.
pub const SECRET_RECHECK: Duration = Duration::from_secs(60);

/// Clients of remote clusters, by `namespace/name` of their MigCluster.
#[derive(Default)]
pub struct RemoteClients {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone)]
struct Entry {
    /// The MigCluster the client was built for: UID and generation.
    cluster: (String, i64),
    /// The Secret's resourceVersion the token was read at.
    secret_version: String,
    /// When the Secret was last read.
    checked: Instant,
    client: Client,
}

/// What to do with a cache entry, decided from what is known without I/O.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// Use the cached client as it is.
    Use,
    /// Read the Secret; keep the client if its resourceVersion did not change.
    Recheck,
    /// Nothing usable is cached.
    Build,
}

/// The pure decision behind [`RemoteClients::get`].
pub(crate) fn freshness(
    cached: Option<((&str, i64), Instant)>,
    cluster: (&str, i64),
    now: Instant,
    max_age: Duration,
) -> Freshness {
    match cached {
        Some((identity, _)) if identity != cluster => Freshness::Build,
        Some((_, checked)) if now.saturating_duration_since(checked) < max_age => Freshness::Use,
        Some(_) => Freshness::Recheck,
        None => Freshness::Build,
    }
}

impl RemoteClients {
    /// A client for `cluster` (the host's own for the host cluster), built or reused. `max_age`:
    /// how old the last look at the Secret may be ([`SECRET_RECHECK`]; zero to always look).
    pub async fn get(
        &self,
        host: &Client,
        cluster: &MigCluster,
        max_age: Duration,
    ) -> Result<Client, Problem> {
        if cluster.spec.is_host_cluster {
            return Ok(host.clone());
        }
        let key = format!(
            "{}/{}",
            cluster.namespace().unwrap_or_default(),
            cluster.name_any()
        );
        let uid = cluster.uid().unwrap_or_default();
        let identity = (uid.as_str(), cluster.metadata.generation.unwrap_or_default());
        let cached = self.lock().get(&key).cloned();
        let now = Instant::now();
        let decision = freshness(
            cached
                .as_ref()
                .map(|e| ((e.cluster.0.as_str(), e.cluster.1), e.checked)),
            identity,
            now,
            max_age,
        );
        if let (Freshness::Use, Some(entry)) = (&decision, &cached) {
            return Ok(entry.client.clone());
        }
        let read = remote::read_token(host, cluster).await;
        let (token, secret_version) = match read {
            Ok(found) => found,
            Err(problem) => {
                self.lock().remove(&key);
                return Err(problem);
            }
        };
        let client = match cached {
            Some(entry) if decision == Freshness::Recheck && entry.secret_version == secret_version => {
                entry.client
            }
            _ => remote::client_for_token(cluster, token)?,
        };
        self.lock().insert(
            key,
            Entry {
                cluster: (uid.clone(), identity.1),
                secret_version,
                checked: now,
                client: client.clone(),
            },
        );
        Ok(client)
    }

    /// Forgets the client of `cluster` (deleted, or its credentials were refused).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.lock().remove(&format!("{namespace}/{name}"));
    }

    /// How many clients are cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no client is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_entry_of_the_same_cluster_is_used() {
        let now = Instant::now();
        let cached = Some((("uid-1", 3), now));
        assert_eq!(
            freshness(cached, ("uid-1", 3), now, SECRET_RECHECK),
            Freshness::Use
        );
    }

    #[test]
    fn an_old_entry_rechecks_the_secret() {
        let then = Instant::now();
        let now = then + SECRET_RECHECK;
        let cached = Some((("uid-1", 3), then));
        assert_eq!(
            freshness(cached, ("uid-1", 3), now, SECRET_RECHECK),
            Freshness::Recheck
        );
        // The MigCluster reconciler always looks at the Secret.
        assert_eq!(
            freshness(cached, ("uid-1", 3), then, Duration::ZERO),
            Freshness::Recheck
        );
    }

    #[test]
    fn a_changed_or_recreated_cluster_builds_a_new_client() {
        let now = Instant::now();
        let cached = Some((("uid-1", 3), now));
        assert_eq!(
            freshness(cached, ("uid-1", 4), now, SECRET_RECHECK),
            Freshness::Build
        );
        assert_eq!(
            freshness(cached, ("uid-2", 3), now, SECRET_RECHECK),
            Freshness::Build
        );
        assert_eq!(
            freshness(None, ("uid-1", 3), now, SECRET_RECHECK),
            Freshness::Build
        );
    }
}
