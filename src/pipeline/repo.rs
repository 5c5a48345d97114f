//! The plan's Git side, shared by the Commit-mode steps and the plan reconciler's branch watch: where
//! the repo is cached, its credentials (read from the Secret named by
//! `gitops.repo.credentialsSecretRef` in the host cluster), the trailers that mark Ferry's commits of
//! this plan and migration, and running libgit2 work off the async runtime.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use sha2::{Digest, Sha256};

use crate::api::plan::GitOps;
use crate::git::{Author, Credentials, Repo, RevertFilter, Trailers};
use crate::pipeline::StepContext;
use crate::{Error, Result};

/// How many times a push is retried after a race (each retry re-fetches and re-applies).
pub const PUSH_ATTEMPTS: u32 = 5;

/// Everything needed to open the plan's repo from a blocking task.
#[derive(Clone)]
pub struct RepoAccess {
    /// Local cache of the clone.
    pub cache_dir: PathBuf,
    /// Remote URL.
    pub url: String,
    /// Branch Argo CD follows.
    pub branch: String,
    /// Credentials from the plan's Secret.
    pub credentials: Credentials,
    /// Author of Ferry's commits.
    pub author: Option<Author>,
    /// `Ferry-Plan` / `Ferry-Migration` of this migration.
    pub trailers: Trailers,
}

impl RepoAccess {
    /// Reads the plan's repo settings and credentials.
    pub async fn of(ctx: &StepContext, gitops: &GitOps) -> Result<Self> {
        let credentials = read_credentials(&ctx.host, &ctx.plan_namespace(), gitops).await?;
        Ok(Self {
            cache_dir: cache_dir(&ctx.plan_key(), &gitops.repo.url),
            url: gitops.repo.url.clone(),
            branch: gitops.repo.branch.clone().unwrap_or_else(|| "main".to_string()),
            credentials,
            author: gitops.author.as_ref().map(|a| Author {
                name: a.name.clone(),
                email: a.email.clone(),
            }),
            trailers: Trailers {
                plan: ctx.plan_key(),
                migration: format!("{}/{}", ctx.migration.name_any(), ctx.uid()),
            },
        })
    }

    /// Ferry commits of this migration.
    pub fn migration_filter(&self) -> RevertFilter {
        RevertFilter {
            plan: Some(self.trailers.plan.clone()),
            migration: Some(self.trailers.migration.clone()),
        }
    }

    /// Ferry commits of this plan, any migration.
    pub fn plan_filter(&self) -> RevertFilter {
        RevertFilter {
            plan: Some(self.trailers.plan.clone()),
            migration: None,
        }
    }

    /// Opens (or clones) the cache at the branch tip and runs `work` on it in a blocking task.
    pub async fn with_repo<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Repo) -> Result<T> + Send + 'static,
    {
        let access = self.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(parent) = access.cache_dir.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(Error::io(format!("creating {}", parent.display())))?;
            }
            let repo =
                Repo::open_or_clone(&access.cache_dir, &access.url, &access.branch, access.credentials)?;
            work(&repo)
        })
        .await
        .map_err(|err| Error::GitTask(err.to_string()))?
    }
}

/// The credentials of a plan's repo, read from the Secret named by `gitops.repo.credentialsSecretRef`
/// (none: anonymous access).
pub async fn read_credentials(
    host: &kube::Client,
    plan_namespace: &str,
    gitops: &GitOps,
) -> Result<Credentials> {
    let Some(reference) = &gitops.repo.credentials_secret_ref else {
        return Credentials::from_secret_data(&BTreeMap::new());
    };
    let namespace = reference.namespace_or(plan_namespace).to_string();
    let secrets: Api<Secret> = Api::namespaced(host.clone(), &namespace);
    let secret = secrets.get(&reference.name).await?;
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    Credentials::from_secret_data(&data)
}

/// The cache directory of a plan's repo: `$FERRY_GIT_CACHE` (or the temp dir) / plan / URL hash, so
/// two plans, or a plan whose URL changes, never share a clone.
pub fn cache_dir(plan_key: &str, url: &str) -> PathBuf {
    let root = std::env::var_os("FERRY_GIT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("ferry-git"));
    let digest = hex::encode(&Sha256::digest(url.as_bytes())[..8]);
    root.join(format!("{}-{digest}", plan_key.replace('/', "_")))
}
