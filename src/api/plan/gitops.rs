//! The plan's GitOps settings: the repo holding the app's manifests, where each cluster's copy lives,
//! and how the source app is quiesced at cutover (DESIGN.md §4, §5).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::ResourceRef;

/// Where the app's manifests live and how Ferry changes them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitOps {
    /// The Git repository Argo CD deploys the app from.
    pub repo: GitRepo,
    /// Directory in the repo with the manifests deployed to the source cluster.
    pub source_path: String,
    /// Directory in the repo with the manifests deployed to the target cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
    /// How the source app is stopped at cutover.
    #[serde(default)]
    pub quiesce: Quiesce,
    /// The Argo CD Applications that deploy the app, when Argo CD is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argocd: Option<ArgoCd>,
    /// Pause Argo CD automated sync (restored afterwards) instead of refusing Patch-mode quiesce when an
    /// Application with selfHeal manages the workloads.
    #[serde(default)]
    pub pause_auto_sync: bool,
    /// Author of Ferry's commits; `Ferry <ferry@migration.ferry.dev>` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<GitAuthor>,
}

/// A Git repository and branch.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepo {
    /// Clone URL: `https://...`, `ssh://...`, `git@host:path` or `file://...`.
    #[schemars(length(min = 1))]
    pub url: String,
    /// Branch Argo CD tracks; `main` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Secret with `token`, or `username`+`password`, or `sshPrivateKey`+`knownHosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<ResourceRef>,
}

/// Commit author.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitAuthor {
    /// Author name.
    pub name: String,
    /// Author e-mail.
    pub email: String,
}

/// Quiesce settings.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quiesce {
    /// `Commit` (edit the manifests in Git, Argo CD applies them) or `Patch` (patch the cluster).
    #[serde(default)]
    pub method: QuiesceMethod,
}

/// How the source app is scaled to zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum QuiesceMethod {
    /// Commit `replicas: 0` (and equivalents) to `sourcePath` and wait until the cluster shows it.
    #[default]
    Commit,
    /// Patch the workloads in the source cluster directly, recording the previous values first.
    Patch,
}

/// The Argo CD Applications deploying the app to each cluster.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArgoCd {
    /// Application deploying `sourcePath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_application: Option<ResourceRef>,
    /// Application deploying `targetPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_application: Option<ResourceRef>,
}
