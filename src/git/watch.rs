//! Watching a branch: the newest commit and whether it changed the watched paths since a known SHA.
//! [`Repo::poll`] is the on-demand check (call it when a webhook arrives); [`spawn_interval`] runs it
//! on a timer and sends an event for each new commit that touches the paths.

use std::path::PathBuf;
use std::time::Duration;

use git2::Oid;
use tokio::sync::mpsc;

use super::credentials::Credentials;
use super::repo::Repo;
use crate::{Error, Result};

/// The state of the branch relative to a previously seen commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchReport {
    /// The branch tip.
    pub head: Oid,
    /// Changed files under the watched paths between `since` and `head` (empty if none or no `since`).
    pub changed_paths: Vec<String>,
    /// Whether `head` differs from `since` and touches a watched path; with no `since`, always true.
    pub touched: bool,
}

impl Repo {
    /// Files changed between `since` and the fetched tip that lie under one of `paths` (repository-
    /// relative directories or files; an empty list or `""` watches everything).
    pub fn changed_since(&self, since: Oid, paths: &[String]) -> Result<WatchReport> {
        let head = self.remote_tip()?;
        if head == since {
            return Ok(WatchReport {
                head,
                changed_paths: Vec::new(),
                touched: false,
            });
        }
        let context = format!("comparing {since} with {head}");
        let tree = |oid: Oid| {
            self.repo
                .find_commit(oid)
                .and_then(|c| c.tree())
                .map_err(Error::git(context.clone()))
        };
        let (old, new) = (tree(since)?, tree(head)?);
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&old), Some(&new), None)
            .map_err(Error::git(context.clone()))?;
        let mut changed = Vec::new();
        for delta in diff.deltas() {
            for file in [delta.old_file().path(), delta.new_file().path()]
                .into_iter()
                .flatten()
            {
                let file = file.to_string_lossy().to_string();
                if is_watched(&file, paths) && !changed.contains(&file) {
                    changed.push(file);
                }
            }
        }
        Ok(WatchReport {
            head,
            touched: !changed.is_empty(),
            changed_paths: changed,
        })
    }

    /// Fetches, then reports changes since `since` (`None`: report the tip as touched).
    pub fn poll(&self, since: Option<Oid>, paths: &[String]) -> Result<WatchReport> {
        self.fetch()?;
        self.report_since(since, paths)
    }

    /// Whether the clone has commit `oid` (a revision recorded elsewhere may be unknown to it).
    pub fn has_commit(&self, oid: Oid) -> bool {
        self.repo.find_commit(oid).is_ok()
    }

    /// Whether commit `oid` carries the `Ferry-Plan: <plan>` trailer (Ferry's own quiesce or revert
    /// commit for that plan, which must not trigger a stage of it).
    pub fn made_by_ferry_for(&self, oid: Oid, plan: &str) -> Result<bool> {
        let commit = self
            .repo
            .find_commit(oid)
            .map_err(Error::git(format!("reading commit {oid}")))?;
        let message = commit.message().unwrap_or_default();
        Ok(super::commit::parse_trailers(message)
            .iter()
            .any(|(key, value)| key == super::commit::TRAILER_PLAN && value == plan))
    }

    /// Like [`Repo::poll`] without fetching (the caller just fetched).
    pub fn report_since(&self, since: Option<Oid>, paths: &[String]) -> Result<WatchReport> {
        let head = self.remote_tip()?;
        match since {
            Some(since) => self.changed_since(since, paths),
            None => Ok(WatchReport {
                head,
                changed_paths: Vec::new(),
                touched: true,
            }),
        }
    }
}

/// Whether `file` is one of `paths` or lies under one of them.
pub fn is_watched(file: &str, paths: &[String]) -> bool {
    paths.is_empty()
        || paths.iter().any(|path| {
            let path = path.trim_matches('/');
            path.is_empty() || file == path || file.starts_with(&format!("{path}/"))
        })
}

/// Where to watch, for [`spawn_interval`].
#[derive(Debug, Clone)]
pub struct WatchTarget {
    /// Cache directory for the clone.
    pub cache_dir: PathBuf,
    /// Remote URL.
    pub url: String,
    /// Branch to follow.
    pub branch: String,
    /// Credentials for the remote.
    pub credentials: Credentials,
    /// Repository-relative paths whose changes matter.
    pub paths: Vec<String>,
}

/// Polls `target` every `interval` starting from `since`, sending a report for each new tip that
/// touches the paths. Errors are logged and retried on the next tick; the task ends when the
/// receiver is dropped.
pub fn spawn_interval(
    target: WatchTarget,
    since: Option<Oid>,
    interval: Duration,
    events: mpsc::Sender<WatchReport>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut since = since;
        let mut ticker = tokio::time::interval(interval);
        loop {
            ticker.tick().await;
            let job = target.clone();
            let seen = since;
            let polled = tokio::task::spawn_blocking(move || {
                // open_or_clone fetches, so there is no second fetch here.
                let repo = Repo::open_or_clone(&job.cache_dir, &job.url, &job.branch, job.credentials)?;
                repo.report_since(seen, &job.paths)
            })
            .await;
            match polled {
                Ok(Ok(report)) => {
                    let new_tip = since != Some(report.head);
                    since = Some(report.head);
                    if new_tip && report.touched && events.send(report).await.is_err() {
                        return;
                    }
                }
                Ok(Err(err)) => tracing::warn!(error = %err, "git watch poll failed"),
                Err(err) => tracing::warn!(error = %err, "git watch poll panicked"),
            }
            if events.is_closed() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_paths_are_prefixes_on_path_boundaries() {
        let paths = vec!["apps/source".to_string(), "kustomization.yaml".to_string()];
        assert!(is_watched("apps/source/app.yaml", &paths));
        assert!(is_watched("kustomization.yaml", &paths));
        assert!(!is_watched("apps/source-old/app.yaml", &paths));
        assert!(!is_watched("README.md", &paths));
        assert!(is_watched("anything", &[]));
        assert!(is_watched("anything", &["/".to_string()]));
    }
}
