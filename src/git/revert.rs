//! Reverting Ferry's own commits (rollback): commits are found by their `Ferry-Plan` /
//! `Ferry-Migration` trailers and undone with new revert commits, newest first, pushed like any other
//! commit (re-fetch and retry on a race, never force). Commits already reverted (a later commit carries
//! `Ferry-Reverts: <sha>`) are skipped, so a rollback can be run again safely.

use std::collections::HashSet;

use git2::{Oid, Sort};

use super::commit::{Author, PushOutcome, TRAILER_MIGRATION, TRAILER_PLAN, TRAILER_REVERTS, Trailers};
use super::commit::{message_with_trailers, parse_trailers};
use super::credentials::redact;
use super::repo::Repo;
use crate::{Error, Result};

/// How far back on the branch to look for Ferry's commits.
const HISTORY_LIMIT: usize = 2000;

/// Which Ferry commits to revert; every field that is set must match its trailer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevertFilter {
    /// `Ferry-Plan` value (`namespace/name`).
    pub plan: Option<String>,
    /// `Ferry-Migration` value (`name/uid`).
    pub migration: Option<String>,
}

impl RevertFilter {
    fn matches(&self, trailers: &[(String, String)]) -> bool {
        let value = |key: &str| trailers.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let has =
            |key: &str, wanted: &Option<String>| wanted.as_deref().is_none_or(|w| value(key) == Some(w));
        value(TRAILER_PLAN).is_some()
            && value(TRAILER_REVERTS).is_none()
            && has(TRAILER_PLAN, &self.plan)
            && has(TRAILER_MIGRATION, &self.migration)
    }
}

/// The result of a revert run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevertOutcome {
    /// The commits that were reverted by this run, newest first.
    pub reverted: Vec<Oid>,
    /// The push result (`Unchanged` when there was nothing left to revert).
    pub push: PushOutcome,
}

impl Repo {
    /// Ferry commits on the branch matching `filter` that are not reverted yet, newest first.
    pub fn ferry_commits(&self, filter: &RevertFilter) -> Result<Vec<Oid>> {
        let context = "walking the branch history";
        let mut walk = self.repo.revwalk().map_err(Error::git(context))?;
        walk.push(self.remote_tip()?).map_err(Error::git(context))?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)
            .map_err(Error::git(context))?;
        let mut reverted = HashSet::new();
        let mut found = Vec::new();
        for oid in walk.take(HISTORY_LIMIT) {
            let oid = oid.map_err(Error::git(context))?;
            let commit = self.repo.find_commit(oid).map_err(Error::git(context))?;
            let trailers = parse_trailers(commit.message().unwrap_or_default());
            for (key, value) in &trailers {
                if key == TRAILER_REVERTS {
                    reverted.insert(value.clone());
                }
            }
            if filter.matches(&trailers) && !reverted.contains(&oid.to_string()) {
                found.push(oid);
            }
        }
        Ok(found)
    }

    /// [`Repo::ferry_commits`] limited to commits that change a file under one of `paths`
    /// (repository-relative; an empty list keeps every commit).
    pub fn ferry_commits_touching(&self, filter: &RevertFilter, paths: &[String]) -> Result<Vec<Oid>> {
        let mut kept = Vec::new();
        for oid in self.ferry_commits(filter)? {
            if paths.is_empty() || self.commit_touches(oid, paths)? {
                kept.push(oid);
            }
        }
        Ok(kept)
    }

    /// Whether `commit` changes a file under one of `paths`, compared with its first parent.
    pub fn commit_touches(&self, commit: Oid, paths: &[String]) -> Result<bool> {
        let context = format!("listing the files of {commit}");
        let commit = self
            .repo
            .find_commit(commit)
            .map_err(Error::git(context.clone()))?;
        let new = commit.tree().map_err(Error::git(context.clone()))?;
        let old = match commit.parent(0) {
            Ok(parent) => Some(parent.tree().map_err(Error::git(context.clone()))?),
            Err(_) => None,
        };
        let diff = self
            .repo
            .diff_tree_to_tree(old.as_ref(), Some(&new), None)
            .map_err(Error::git(context))?;
        Ok(diff.deltas().any(|delta| {
            [delta.old_file().path(), delta.new_file().path()]
                .into_iter()
                .flatten()
                .any(|file| super::watch::is_watched(&file.to_string_lossy(), paths))
        }))
    }

    /// Reverts the matching Ferry commits with new commits and pushes them (see the module docs).
    pub fn revert_ferry_commits(
        &self,
        filter: &RevertFilter,
        trailers: &Trailers,
        author: Option<&Author>,
        max_attempts: u32,
    ) -> Result<RevertOutcome> {
        self.revert_ferry_commits_touching(filter, &[], trailers, author, max_attempts)
    }

    /// [`Repo::revert_ferry_commits`] limited to the commits that change a file under `paths` (a
    /// rollback of the source leaves the target path's commits alone, and the other way round).
    pub fn revert_ferry_commits_touching(
        &self,
        filter: &RevertFilter,
        paths: &[String],
        trailers: &Trailers,
        author: Option<&Author>,
        max_attempts: u32,
    ) -> Result<RevertOutcome> {
        let author = author.cloned().unwrap_or_default();
        let mut last_rejection = String::new();
        for attempt in 1..=max_attempts.max(1) {
            let tip = self.fetch()?;
            let targets = self.ferry_commits_touching(filter, paths)?;
            if targets.is_empty() {
                return Ok(RevertOutcome {
                    reverted: targets,
                    push: PushOutcome::Unchanged { head: tip },
                });
            }
            let mut head = tip;
            for target in &targets {
                head = self.revert_one(head, *target, trailers, &author)?;
            }
            match self.push(head)? {
                None => {
                    self.after_push(head)?;
                    let push = PushOutcome::Pushed {
                        commit: head,
                        attempts: attempt,
                    };
                    return Ok(RevertOutcome {
                        reverted: targets,
                        push,
                    });
                }
                Some(reason) => last_rejection = reason,
            }
        }
        Err(Error::GitPushRejected(format!(
            "reverting on {} (branch {}): {last_rejection}",
            redact(&self.url),
            self.branch
        )))
    }

    /// Writes a commit on `head` undoing `target`.
    fn revert_one(&self, head: Oid, target: Oid, trailers: &Trailers, author: &Author) -> Result<Oid> {
        let context = format!("reverting {target}");
        let ours = self.repo.find_commit(head).map_err(Error::git(context.clone()))?;
        let theirs = self
            .repo
            .find_commit(target)
            .map_err(Error::git(context.clone()))?;
        let mut index = self
            .repo
            .revert_commit(&theirs, &ours, 0, None)
            .map_err(Error::git(context.clone()))?;
        if index.has_conflicts() {
            return Err(Error::ManifestEdit(format!(
                "commit {target} cannot be reverted automatically: later commits changed the same lines"
            )));
        }
        let tree = index.write_tree_to(&self.repo).map_err(Error::git(context))?;
        let subject = theirs.summary().ok().flatten().unwrap_or("Ferry commit");
        let message = format!("Revert \"{subject}\"\n\nThis reverts commit {target}.");
        let message = message_with_trailers(&message, trailers, &[(TRAILER_REVERTS, target.to_string())]);
        self.write_commit(&ours, tree, author, &message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trailers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn filter_matches_ferry_commits_but_not_reverts() {
        let commit = trailers(&[("Ferry-Plan", "ns/p"), ("Ferry-Migration", "m/1")]);
        let revert = trailers(&[
            ("Ferry-Plan", "ns/p"),
            ("Ferry-Migration", "m/1"),
            ("Ferry-Reverts", "abc"),
        ]);
        let any = RevertFilter::default();
        assert!(any.matches(&commit));
        assert!(!any.matches(&revert));
        assert!(!any.matches(&trailers(&[("Signed-off-by", "x")])));
        let plan = RevertFilter {
            plan: Some("ns/p".into()),
            migration: None,
        };
        assert!(plan.matches(&commit));
        let other = RevertFilter {
            plan: None,
            migration: Some("m/2".into()),
        };
        assert!(!other.matches(&commit));
    }
}
