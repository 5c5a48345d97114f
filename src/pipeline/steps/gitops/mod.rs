//! Commit mode (DESIGN.md §4, §5): the source app is quiesced, the target started and a rollback
//! undone through commits to the app's Git repo, which Argo CD (or any GitOps agent) applies; each
//! step pushes at most once per migration (found again by its trailers after a crash) and then waits
//! until the cluster, and the Argo CD Application when configured, show the commit.
//!
//! ```text
//!  quiesce_source:   record pre-quiesce values on the MigPlan ─▶ commit replicas 0 to sourcePath ─▶ wait source
//!  unquiesce_target: recorded values (namespaces mapped) ─▶ commit to targetPath ─▶ wait target
//!  rollback:         quiesce_target (revert targetPath commits) · unquiesce_source (revert sourcePath
//!                    commits) · revert_commits (anything of the plan left)
//! ```

mod applied;
pub mod record;

use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use self::record::{PRE_QUIESCE_COMMIT, PreQuiesceRecord};
use crate::Result;
use crate::api::MigPlan;
use crate::api::plan::{GitOps, NameMapping};
use crate::api::{ResourceRef, Step};
use crate::git::{CommitRequest, Oid, PushOutcome, QuiescePlan, quiesce};
use crate::pipeline::repo::{PUSH_ATTEMPTS, RepoAccess};
use crate::pipeline::{StepContext, StepOutcome};

/// QuiesceSource in Commit mode: commit the quiesce edits of `gitops.sourcePath` (after recording the
/// previous values on the MigPlan) and wait until the source cluster runs nothing.
pub async fn quiesce_source(ctx: &StepContext) -> Result<StepOutcome> {
    let Some(gitops) = gitops(ctx) else {
        return Ok(StepOutcome::Skipped("the plan has no gitops settings".into()));
    };
    let access = RepoAccess::of(ctx, &gitops).await?;
    let path = gitops.source_path.clone();
    let namespaces = sources(ctx);
    let (filter, scope, plan_path) = (access.migration_filter(), vec![path.clone()], path.clone());
    let (own_commit, tip, plan) = access
        .with_repo(move |repo| {
            let own = repo.ferry_commits_touching(&filter, &scope)?.first().copied();
            let plan = quiesce::plan(&record::only_namespaces(
                &repo.load_manifests(&plan_path)?,
                &namespaces,
            ));
            Ok((own, repo.remote_tip()?, plan))
        })
        .await?;
    let revision = match own_commit {
        Some(commit) => commit,
        None => {
            record_pre_quiesce(
                ctx,
                &PreQuiesceRecord::from_plan(&ctx.uid(), &tip.to_string(), &plan),
            )
            .await?;
            let message = format!(
                "Ferry: quiesce {} for migration {}",
                path,
                ctx.migration.name_any()
            );
            push(&access, plan.edits, message).await?
        }
    };
    wait_applied(
        ctx,
        &access,
        &gitops,
        Side::Source,
        &path,
        revision,
        Step::QuiesceSource,
        format!("source quiesced by commit {revision}"),
    )
    .await
}

/// UnquiesceTarget in Commit mode: give the workloads of `gitops.targetPath` the recorded source values
/// and wait until the target cluster shows them.
pub async fn unquiesce_target(ctx: &StepContext) -> Result<StepOutcome> {
    let Some(gitops) = gitops(ctx) else {
        return Ok(StepOutcome::Skipped("the plan has no gitops settings".into()));
    };
    let Some(path) = gitops.target_path.clone() else {
        return Ok(StepOutcome::Skipped("gitops.targetPath is not set".into()));
    };
    let Some(recorded) = read_pre_quiesce(ctx).await? else {
        return Ok(StepOutcome::Failed(format!(
            "no {PRE_QUIESCE_COMMIT} record of migration {} on the plan: QuiesceSource did not run in Commit mode",
            ctx.uid()
        )));
    };
    let access = RepoAccess::of(ctx, &gitops).await?;
    let values = recorded.for_target(&mappings(ctx));
    let edits_path = path.clone();
    let edits = access
        .with_repo(move |repo| {
            let manifests = repo.load_manifests(&edits_path)?;
            Ok(quiesce::unquiesce_plan(&manifests, &values))
        })
        .await?;
    let edits = match edits {
        Ok(edits) => edits,
        Err(crate::Error::InvalidSpec(why)) => {
            return Ok(StepOutcome::Failed(format!(
                "cannot start the target from {path}: {why}"
            )));
        }
        Err(err) => return Err(err),
    };
    let message = format!("Ferry: start {} for migration {}", path, ctx.migration.name_any());
    let revision = push(&access, edits, message).await?;
    wait_applied(
        ctx,
        &access,
        &gitops,
        Side::Target,
        &path,
        revision,
        Step::UnquiesceTarget,
        format!("target started by commit {revision}"),
    )
    .await
}

/// QuiesceTarget in Commit mode (rollback): revert Ferry's commits of this migration on
/// `gitops.targetPath`, or commit the quiesce edits there when there are none; wait for the target.
pub async fn quiesce_target(ctx: &StepContext) -> Result<StepOutcome> {
    let Some(gitops) = gitops(ctx) else {
        return Ok(StepOutcome::Skipped("the plan has no gitops settings".into()));
    };
    let Some(path) = gitops.target_path.clone() else {
        return Ok(StepOutcome::Skipped("gitops.targetPath is not set".into()));
    };
    let access = RepoAccess::of(ctx, &gitops).await?;
    let (filter, scope, trailers, author) = (
        access.migration_filter(),
        vec![path.clone()],
        access.trailers.clone(),
        access.author.clone(),
    );
    let namespaces = targets(ctx);
    let plan_path = path.clone();
    let reverted = access
        .with_repo(move |repo| {
            let outcome = repo.revert_ferry_commits_touching(
                &filter,
                &scope,
                &trailers,
                author.as_ref(),
                PUSH_ATTEMPTS,
            )?;
            let plan = quiesce::plan(&record::only_namespaces(
                &repo.load_manifests(&plan_path)?,
                &namespaces,
            ));
            Ok((outcome, plan))
        })
        .await?;
    let revision = match reverted {
        (outcome, _) if !outcome.reverted.is_empty() => revision_of(outcome.push),
        (outcome, plan) if plan.edits.is_empty() => revision_of(outcome.push),
        (_, plan) => {
            let message = format!(
                "Ferry: quiesce {} (rollback of migration {})",
                path,
                ctx.migration.name_any()
            );
            push(&access, plan.edits, message).await?
        }
    };
    wait_applied(
        ctx,
        &access,
        &gitops,
        Side::Target,
        &path,
        revision,
        Step::QuiesceTarget,
        format!("target quiesced at {revision}"),
    )
    .await
}

/// UnquiesceSource in Commit mode (rollback): revert Ferry's commits of this migration on
/// `gitops.sourcePath` with new commits and wait until the source cluster shows the result.
pub async fn unquiesce_source(ctx: &StepContext) -> Result<StepOutcome> {
    let Some(gitops) = gitops(ctx) else {
        return Ok(StepOutcome::Skipped("the plan has no gitops settings".into()));
    };
    let access = RepoAccess::of(ctx, &gitops).await?;
    let path = gitops.source_path.clone();
    let (filter, scope, trailers, author) = (
        access.migration_filter(),
        vec![path.clone()],
        access.trailers.clone(),
        access.author.clone(),
    );
    let outcome = access
        .with_repo(move |repo| {
            repo.revert_ferry_commits_touching(&filter, &scope, &trailers, author.as_ref(), PUSH_ATTEMPTS)
        })
        .await?;
    let revision = revision_of(outcome.push);
    wait_applied(
        ctx,
        &access,
        &gitops,
        Side::Source,
        &path,
        revision,
        Step::UnquiesceSource,
        format!("source restored at {revision}"),
    )
    .await
}

/// RevertCommits (rollback): revert every Ferry commit of the plan still in effect.
pub async fn revert_commits(ctx: &StepContext) -> Result<StepOutcome> {
    let Some(gitops) = gitops(ctx) else {
        return Ok(StepOutcome::Skipped("the plan has no gitops settings".into()));
    };
    let access = RepoAccess::of(ctx, &gitops).await?;
    let (filter, trailers, author) = (
        access.plan_filter(),
        access.trailers.clone(),
        access.author.clone(),
    );
    let outcome = access
        .with_repo(move |repo| repo.revert_ferry_commits(&filter, &trailers, author.as_ref(), PUSH_ATTEMPTS))
        .await?;
    if outcome.reverted.is_empty() {
        return Ok(StepOutcome::Done("nothing left to revert".into()));
    }
    let list: Vec<String> = outcome.reverted.iter().map(|c| c.to_string()).collect();
    Ok(StepOutcome::Done(format!(
        "reverted {} commit(s): {}",
        list.len(),
        list.join(", ")
    )))
}

fn gitops(ctx: &StepContext) -> Option<GitOps> {
    ctx.plan.spec.gitops.clone()
}

fn mappings(ctx: &StepContext) -> Vec<NameMapping> {
    ctx.plan
        .spec
        .namespaces
        .iter()
        .filter_map(|n| NameMapping::parse(n).ok())
        .collect()
}

/// Which cluster a Commit-mode step waits on.
#[derive(Clone, Copy)]
enum Side {
    Source,
    Target,
}

/// Waits until `side` shows `revision` of `path` applied (and its Argo CD Application reports it):
/// InProgress while pending, Done with `done` once applied, Failed after the wait limit.
#[allow(clippy::too_many_arguments)]
async fn wait_applied(
    ctx: &StepContext,
    access: &RepoAccess,
    gitops: &GitOps,
    side: Side,
    path: &str,
    revision: Oid,
    step: Step,
    done: String,
) -> Result<StepOutcome> {
    let argocd = gitops.argocd.as_ref();
    let (cluster, namespaces, application) = match side {
        Side::Source => (
            &ctx.source,
            sources(ctx),
            argocd.and_then(|a| a.source_application.clone()),
        ),
        Side::Target => (
            &ctx.target,
            targets(ctx),
            argocd.and_then(|a| a.target_application.clone()),
        ),
    };
    let pending = pending(ctx, access, cluster, path, namespaces, application, revision).await?;
    Ok(applied::outcome(ctx, step, pending, done))
}

fn sources(ctx: &StepContext) -> Vec<String> {
    mappings(ctx).into_iter().map(|m| m.source).collect()
}

fn targets(ctx: &StepContext) -> Vec<String> {
    mappings(ctx).into_iter().map(|m| m.target).collect()
}

fn revision_of(push: PushOutcome) -> Oid {
    match push {
        PushOutcome::Pushed { commit, .. } => commit,
        PushOutcome::Unchanged { head } => head,
    }
}

/// Commits and pushes `edits` (nothing when they change nothing); the revision to wait for.
async fn push(access: &RepoAccess, edits: Vec<crate::git::FileEdit>, message: String) -> Result<Oid> {
    let request = CommitRequest {
        edits,
        message,
        trailers: access.trailers.clone(),
        author: access.author.clone(),
        max_attempts: PUSH_ATTEMPTS,
    };
    let outcome = access
        .with_repo(move |repo| repo.commit_and_push(&request))
        .await?;
    Ok(revision_of(outcome))
}

/// What is not applied yet: the fields the manifests of `path` (in `namespaces`) write, as seen in
/// `cluster`, and the Application's revision.
async fn pending(
    ctx: &StepContext,
    access: &RepoAccess,
    cluster: &Client,
    path: &str,
    namespaces: Vec<String>,
    application: Option<ResourceRef>,
    revision: Oid,
) -> Result<Vec<String>> {
    let default_namespace = namespaces.first().cloned().unwrap_or_default();
    let path = path.to_string();
    let plan: QuiescePlan = access
        .with_repo(move |repo| {
            Ok(quiesce::plan(&record::only_namespaces(
                &repo.load_manifests(&path)?,
                &namespaces,
            )))
        })
        .await?;
    let expected = record::expectations(&plan, &default_namespace);
    let mut pending = applied::pending_in_cluster(cluster, &expected).await?;
    if let Some(application) = application
        && let Some(why) = applied::pending_application(ctx, access, &application, revision).await?
    {
        pending.push(why);
    }
    Ok(pending)
}

/// Writes the pre-quiesce record on the MigPlan unless one of this migration is already there (a rerun
/// after a crash keeps the first, which holds the values from before any Ferry commit).
async fn record_pre_quiesce(ctx: &StepContext, record: &PreQuiesceRecord) -> Result<()> {
    if read_pre_quiesce(ctx).await?.is_some() {
        return Ok(());
    }
    let plans: Api<MigPlan> = Api::namespaced(ctx.host.clone(), &ctx.plan_namespace());
    let patch = json!({"metadata": {"annotations": {PRE_QUIESCE_COMMIT: serde_json::to_string(record)?}}});
    plans
        .patch(
            &ctx.plan.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

/// The pre-quiesce record of this migration on the MigPlan (read fresh from the host cluster).
async fn read_pre_quiesce(ctx: &StepContext) -> Result<Option<PreQuiesceRecord>> {
    let plans: Api<MigPlan> = Api::namespaced(ctx.host.clone(), &ctx.plan_namespace());
    let plan = plans.get(&ctx.plan.name_any()).await?;
    let record = plan
        .annotations()
        .get(PRE_QUIESCE_COMMIT)
        .and_then(|text| serde_json::from_str::<PreQuiesceRecord>(text).ok())
        .filter(|record| record.migration_uid == ctx.uid());
    Ok(record)
}
