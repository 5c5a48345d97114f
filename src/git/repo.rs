//! A local cache of one branch of the app's repository: clone once, fetch incrementally, keep the
//! working tree at the branch tip (it is Ferry's own copy, so it is reset, never merged). A cache that
//! libgit2 cannot read is deleted and cloned again. Blocking (libgit2): call from `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use git2::{ErrorClass, ErrorCode, FetchOptions, Oid, Repository, build::CheckoutBuilder};

use super::credentials::{Credentials, redact};
use super::manifests::{self, Manifests};
use crate::{Error, Result};

/// One branch of a remote repository, cached in a local directory.
pub struct Repo {
    pub(crate) repo: Repository,
    pub(crate) url: String,
    pub(crate) branch: String,
    pub(crate) credentials: Credentials,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("url", &redact(&self.url))
            .field("branch", &self.branch)
            .finish()
    }
}

impl Repo {
    /// Opens the cache in `cache_dir` (cloning into it when absent, of another URL, or unreadable)
    /// and brings it to the tip of `branch`.
    pub fn open_or_clone(
        cache_dir: &Path,
        url: &str,
        branch: &str,
        credentials: Credentials,
    ) -> Result<Repo> {
        if cache_dir.exists() {
            match Self::open_existing(cache_dir, url, branch, credentials.clone()) {
                Ok(repo) => return Ok(repo),
                Err(err @ (Error::GitAuth(_) | Error::Git { .. })) if !matches!(&err, Error::Git { source, .. } if is_cache_damage(source)) =>
                {
                    return Err(err);
                }
                Err(err) => {
                    tracing::warn!(cache = %cache_dir.display(), error = %err, "git cache unusable, cloning again");
                    std::fs::remove_dir_all(cache_dir).map_err(Error::io(format!(
                        "removing damaged git cache {}",
                        cache_dir.display()
                    )))?;
                }
            }
        }
        Self::clone_fresh(cache_dir, url, branch, credentials)
    }

    fn open_existing(cache_dir: &Path, url: &str, branch: &str, credentials: Credentials) -> Result<Repo> {
        let repo = Repository::open(cache_dir)
            .map_err(Error::git(format!("opening cache {}", cache_dir.display())))?;
        let remote_url = repo
            .find_remote("origin")
            .ok()
            .and_then(|r| r.url().ok().map(str::to_string));
        if remote_url.as_deref() != Some(url) {
            return Err(Error::InvalidSpec(format!(
                "cache {} holds another repository",
                cache_dir.display()
            )));
        }
        let repo = Repo {
            repo,
            url: url.to_string(),
            branch: branch.to_string(),
            credentials,
        };
        repo.fetch()?;
        Ok(repo)
    }

    fn clone_fresh(cache_dir: &Path, url: &str, branch: &str, credentials: Credentials) -> Result<Repo> {
        let rejected = Arc::new(AtomicUsize::new(0));
        let mut fetch = FetchOptions::new();
        fetch.remote_callbacks(credentials.callbacks(rejected.clone()));
        let result = git2::build::RepoBuilder::new()
            .branch(branch)
            .fetch_options(fetch)
            .clone(url, cache_dir);
        let repo = result.map_err(|err| {
            let _ = std::fs::remove_dir_all(cache_dir);
            classify(
                err,
                &rejected,
                &credentials,
                url,
                &format!("cloning {} (branch {branch})", redact(url)),
            )
        })?;
        Ok(Repo {
            repo,
            url: url.to_string(),
            branch: branch.to_string(),
            credentials,
        })
    }

    /// Fetches the branch (incrementally) and resets the working tree to its tip; returns the tip.
    pub fn fetch(&self) -> Result<Oid> {
        let rejected = Arc::new(AtomicUsize::new(0));
        let mut options = FetchOptions::new();
        options.remote_callbacks(self.credentials.callbacks(rejected.clone()));
        let refspec = format!("+refs/heads/{0}:refs/remotes/origin/{0}", self.branch);
        let context = format!("fetching {} from {}", self.branch, redact(&self.url));
        let mut remote = self
            .repo
            .find_remote("origin")
            .map_err(Error::git(context.clone()))?;
        remote
            .fetch(&[refspec.as_str()], Some(&mut options), None)
            .map_err(|err| classify(err, &rejected, &self.credentials, &self.url, &context))?;
        let tip = self.remote_tip()?;
        self.checkout(tip)?;
        Ok(tip)
    }

    /// The branch tip as last fetched.
    pub fn remote_tip(&self) -> Result<Oid> {
        let name = format!("refs/remotes/origin/{}", self.branch);
        self.repo.refname_to_id(&name).map_err(Error::git(format!(
            "branch {} not found on the remote",
            self.branch
        )))
    }

    /// Points the local branch and working tree at `commit`, discarding anything else there.
    pub(crate) fn checkout(&self, commit: Oid) -> Result<()> {
        let context = format!("checking out {commit}");
        let target = self
            .repo
            .find_commit(commit)
            .map_err(Error::git(context.clone()))?;
        let local = format!("refs/heads/{}", self.branch);
        self.repo
            .reference(&local, commit, true, "ferry: reset to remote tip")
            .map_err(Error::git(context.clone()))?;
        self.repo.set_head(&local).map_err(Error::git(context.clone()))?;
        let mut checkout = CheckoutBuilder::new();
        checkout.force().remove_untracked(true);
        self.repo
            .checkout_tree(target.as_object(), Some(&mut checkout))
            .map_err(Error::git(context))?;
        Ok(())
    }

    /// The working tree (the branch tip after [`Repo::fetch`]).
    pub fn workdir(&self) -> PathBuf {
        self.repo
            .workdir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.repo.path().to_path_buf())
    }

    /// The remote URL (may contain credentials if the user put them there; use for matching only).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The branch this cache follows.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// Loads the manifests under `path` (relative to the repository root) of the checked-out tip;
    /// file names in the result are relative to the repository root, ready for commits.
    pub fn load_manifests(&self, path: &str) -> Result<Manifests> {
        let root = self.workdir();
        manifests::load_at(&root, &root.join(path.trim_matches('/')))
    }

    /// The content of `path` at `commit`, or `None` if the file does not exist there.
    pub(crate) fn read_file(&self, commit: Oid, path: &str) -> Result<Option<Vec<u8>>> {
        let context = format!("reading {path} at {commit}");
        let tree = self
            .repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(Error::git(context.clone()))?;
        let entry = match tree.get_path(Path::new(path)) {
            Ok(entry) => entry,
            Err(err) if err.code() == ErrorCode::NotFound => return Ok(None),
            Err(err) => return Err(Error::git(context)(err)),
        };
        let blob = self.repo.find_blob(entry.id()).map_err(Error::git(context))?;
        Ok(Some(blob.content().to_vec()))
    }
}

/// Errors that mean the local cache itself is broken (as opposed to the network or the server).
/// `ErrorClass::Os` is left out on purpose: libgit2 uses it for socket errors too, and a network blip
/// must not throw the cache away.
fn is_cache_damage(err: &git2::Error) -> bool {
    matches!(
        err.class(),
        ErrorClass::Odb
            | ErrorClass::Object
            | ErrorClass::Repository
            | ErrorClass::Index
            | ErrorClass::Reference
            | ErrorClass::Zlib
            | ErrorClass::Tree
            | ErrorClass::Checkout
            | ErrorClass::Filesystem
    )
}

/// Turns a failed network operation into an authentication error when the credentials were asked
/// for and refused, and into a contextual git error otherwise.
pub(crate) fn classify(
    err: git2::Error,
    asked: &AtomicUsize,
    creds: &Credentials,
    url: &str,
    context: &str,
) -> Error {
    let asked = asked.load(Ordering::SeqCst);
    let refused = asked >= 2 || (asked >= 1 && matches!(creds, Credentials::None));
    if refused || err.code() == ErrorCode::Auth {
        return Error::GitAuth(redact(url));
    }
    if err.class() == ErrorClass::Ssh && err.message().contains("hostkey") {
        let context = format!("{context}: the server's host key is not listed in knownHosts");
        return Error::Git { context, source: err };
    }
    Error::Git {
        context: context.to_string(),
        source: err,
    }
}
