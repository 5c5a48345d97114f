//! Committing manifest edits and pushing them: the edits (JSON patches per file and document) are
//! applied in place to the files at the branch tip, committed with Ferry's trailers, and pushed without
//! force. When someone else pushed first, the branch is fetched again and the same patches are applied
//! on the new tip, a bounded number of times. Nothing changed means no commit (idempotent).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, atomic::AtomicUsize};

use git2::{ErrorCode, FileMode, Oid, PushOptions, Signature, build::TreeUpdateBuilder};

use super::credentials::redact;
use super::quiesce::FileEdit;
use super::repo::{Repo, classify};
use super::yaml::edit;
use crate::{Error, Result};

/// The default commit author and committer.
pub const DEFAULT_AUTHOR: (&str, &str) = ("Ferry", "ferry@migration.ferry.dev");
/// Trailer naming the MigPlan (`namespace/name`).
pub const TRAILER_PLAN: &str = "Ferry-Plan";
/// Trailer naming the MigMigration (`name/uid`).
pub const TRAILER_MIGRATION: &str = "Ferry-Migration";
/// Trailer on a revert commit naming the commit it reverts.
pub const TRAILER_REVERTS: &str = "Ferry-Reverts";

/// Who Ferry's commits are from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
}

impl Default for Author {
    fn default() -> Self {
        Author {
            name: DEFAULT_AUTHOR.0.to_string(),
            email: DEFAULT_AUTHOR.1.to_string(),
        }
    }
}

/// The trailers identifying Ferry's commits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trailers {
    /// `Ferry-Plan: namespace/name`.
    pub plan: String,
    /// `Ferry-Migration: name/uid`.
    pub migration: String,
}

/// What to commit.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// The edits, with paths relative to the repository root.
    pub edits: Vec<FileEdit>,
    /// Subject line, optionally followed by a blank line and a body.
    pub message: String,
    /// Ferry's trailers, appended to the message.
    pub trailers: Trailers,
    /// Author and committer; [`Author::default`] when `None`.
    pub author: Option<Author>,
    /// How many times to push (each retry re-fetches and re-applies); at least 1.
    pub max_attempts: u32,
}

/// The result of a commit-and-push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// A new commit is on the remote branch.
    Pushed {
        /// The new commit.
        commit: Oid,
        /// How many push attempts it took (1 when nobody raced us).
        attempts: u32,
    },
    /// The files already had the requested content: no commit was made.
    Unchanged {
        /// The branch tip that already has the content.
        head: Oid,
    },
}

/// Builds a commit message with Ferry's trailers (and any extra trailer lines).
pub fn message_with_trailers(message: &str, trailers: &Trailers, extra: &[(&str, String)]) -> String {
    let mut text = message.trim_end().to_string();
    text.push_str("\n\n");
    text.push_str(&format!(
        "{TRAILER_PLAN}: {}\n{TRAILER_MIGRATION}: {}\n",
        trailers.plan, trailers.migration
    ));
    for (key, value) in extra {
        text.push_str(&format!("{key}: {value}\n"));
    }
    text
}

/// The `Key: value` trailers of a commit message (its last paragraph).
pub fn parse_trailers(message: &str) -> Vec<(String, String)> {
    let last = message.trim_end().rsplit("\n\n").next().unwrap_or_default();
    last.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(": ")?;
            let is_token = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            is_token.then(|| (key.to_string(), value.trim().to_string()))
        })
        .collect()
}

impl Repo {
    /// Applies `request.edits` on the branch tip, commits and pushes (see the module docs).
    pub fn commit_and_push(&self, request: &CommitRequest) -> Result<PushOutcome> {
        self.commit_and_push_observed(request, &mut |_| {})
    }

    /// [`Repo::commit_and_push`], calling `before_push(attempt)` after each commit is built and before
    /// it is pushed (for progress reporting; tests use it to race another pusher deterministically).
    pub fn commit_and_push_observed(
        &self,
        request: &CommitRequest,
        before_push: &mut dyn FnMut(u32),
    ) -> Result<PushOutcome> {
        let attempts = request.max_attempts.max(1);
        let mut last_rejection = String::new();
        for attempt in 1..=attempts {
            let tip = self.fetch()?;
            let Some(commit) = self.build_commit(tip, request)? else {
                return Ok(PushOutcome::Unchanged { head: tip });
            };
            before_push(attempt);
            match self.push(commit)? {
                None => {
                    self.after_push(commit)?;
                    return Ok(PushOutcome::Pushed {
                        commit,
                        attempts: attempt,
                    });
                }
                Some(reason) => {
                    tracing::info!(attempt, %reason, "push rejected, fetching and re-applying the edits");
                    last_rejection = reason;
                }
            }
        }
        Err(Error::GitPushRejected(format!(
            "{} (branch {}) still rejects after {attempts} attempts: {last_rejection}",
            redact(&self.url),
            self.branch
        )))
    }

    /// Applies the edits to the files of `tip`; `None` when no file changes.
    fn build_commit(&self, tip: Oid, request: &CommitRequest) -> Result<Option<Oid>> {
        let mut by_file: BTreeMap<&str, Vec<&FileEdit>> = BTreeMap::new();
        for edit in &request.edits {
            by_file.entry(edit.path.as_str()).or_default().push(edit);
        }
        let mut updates = TreeUpdateBuilder::new();
        let mut changed = false;
        for (path, edits) in by_file {
            let bytes = self.read_file(tip, path)?.ok_or_else(|| {
                Error::ManifestEdit(format!("{path} does not exist on branch {}", self.branch))
            })?;
            let original =
                String::from_utf8(bytes).map_err(|_| Error::ManifestEdit(format!("{path} is not UTF-8")))?;
            let mut text = original.clone();
            for edit in edits {
                text = edit::apply(&text, edit.document, &edit.patch)
                    .map_err(|err| Error::ManifestEdit(format!("{path}: {err}")))?;
            }
            if text != original {
                let blob = self
                    .repo
                    .blob(text.as_bytes())
                    .map_err(Error::git(format!("storing {path}")))?;
                updates.upsert(path, blob, FileMode::Blob);
                changed = true;
            }
        }
        if !changed {
            return Ok(None);
        }
        let author = request.author.clone().unwrap_or_default();
        let message = message_with_trailers(&request.message, &request.trailers, &[]);
        self.commit_tree(tip, &mut updates, &author, &message).map(Some)
    }

    /// Writes a commit on top of `parent` with the tree updates applied.
    pub(crate) fn commit_tree(
        &self,
        parent: Oid,
        updates: &mut TreeUpdateBuilder,
        author: &Author,
        message: &str,
    ) -> Result<Oid> {
        let context = "writing the commit";
        let parent = self.repo.find_commit(parent).map_err(Error::git(context))?;
        let base = parent.tree().map_err(Error::git(context))?;
        let tree_id = updates
            .create_updated(&self.repo, &base)
            .map_err(Error::git(context))?;
        self.write_commit(&parent, tree_id, author, message)
    }

    pub(crate) fn write_commit(
        &self,
        parent: &git2::Commit<'_>,
        tree: Oid,
        author: &Author,
        message: &str,
    ) -> Result<Oid> {
        let context = "writing the commit";
        let tree = self.repo.find_tree(tree).map_err(Error::git(context))?;
        let signature = Signature::now(&author.name, &author.email).map_err(Error::git(context))?;
        self.repo
            .commit(None, &signature, &signature, message, &tree, &[parent])
            .map_err(Error::git(context))
    }

    /// Pushes `commit` to the branch without force. `Ok(Some(reason))` when the server (or libgit2,
    /// seeing the remote moved) rejects it as not a fast-forward.
    pub(crate) fn push(&self, commit: Oid) -> Result<Option<String>> {
        let local = format!("refs/heads/{}", self.branch);
        self.repo
            .reference(&local, commit, true, "ferry: commit to push")
            .map_err(Error::git("updating branch"))?;
        let rejected = Arc::new(AtomicUsize::new(0));
        let status: Arc<Mutex<Option<String>>> = Arc::default();
        let mut callbacks = self.credentials.callbacks(rejected.clone());
        let seen = status.clone();
        callbacks.push_update_reference(move |_reference, message| {
            if let Some(message) = message {
                *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.to_string());
            }
            Ok(())
        });
        let mut options = PushOptions::new();
        options.remote_callbacks(callbacks);
        let context = format!("pushing {} to {}", self.branch, redact(&self.url));
        let mut remote = self
            .repo
            .find_remote("origin")
            .map_err(Error::git(context.clone()))?;
        let refspec = format!("{local}:{local}");
        match remote.push(&[refspec.as_str()], Some(&mut options)) {
            Ok(()) => Ok(status.lock().unwrap_or_else(|e| e.into_inner()).take()),
            Err(err) if err.code() == ErrorCode::NotFastForward => Ok(Some(err.message().to_string())),
            Err(err) => Err(classify(err, &rejected, &self.credentials, &self.url, &context)),
        }
    }

    /// Records a pushed commit as the remote tip and checks it out.
    pub(crate) fn after_push(&self, commit: Oid) -> Result<()> {
        let remote = format!("refs/remotes/origin/{}", self.branch);
        self.repo
            .reference(&remote, commit, true, "ferry: pushed")
            .map_err(Error::git("updating remote ref"))?;
        self.checkout(commit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_round_trip() {
        let trailers = Trailers {
            plan: "apps/shop".into(),
            migration: "cutover-1/1234-abcd".into(),
        };
        let message = message_with_trailers("Quiesce shop\n\nBody line: not a trailer.\n", &trailers, &[]);
        assert_eq!(
            message,
            "Quiesce shop\n\nBody line: not a trailer.\n\nFerry-Plan: apps/shop\nFerry-Migration: cutover-1/1234-abcd\n"
        );
        assert_eq!(
            parse_trailers(&message),
            vec![
                ("Ferry-Plan".to_string(), "apps/shop".to_string()),
                ("Ferry-Migration".to_string(), "cutover-1/1234-abcd".to_string())
            ]
        );
        assert!(parse_trailers("just a subject").is_empty());
    }
}
