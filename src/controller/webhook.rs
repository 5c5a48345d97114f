//! `POST /hooks/git` on the controller: the push webhook for plans with `spec.triggers.onPush` and a
//! `webhookSecretRef`. Every replica serves it (the Service picks any), so a verified push is not acted
//! on here: it is recorded on each plan it concerns as the `migration.ferry.dev/last-push` annotation,
//! and the leader's plan reconciler debounces it into one stage (`controller::plan::triggers`).
//!
//! ```text
//!  request ─▶ plans with onPush + webhookSecretRef (their Secrets, key `secret`)
//!          ─▶ per plan: forge signature checked in constant time (crate::git::webhook)
//!          ─▶ same repo and branch, a watched path touched ─▶ annotate the plan ─▶ 202 accepted
//!  no plan concerned ─▶ 202 ignored    bad or missing signature ─▶ 401    bad payload ─▶ 400
//! ```

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use super::metrics::{Metrics, WebhookLabels};
use super::plan::triggers::{PUSH_ANNOTATION, watched_paths};
use crate::api::MigPlan;
use crate::api::plan::PushRecord;
use crate::git::webhook::{self, DEFAULT_MAX_BODY_BYTES, Forge, PushEvent, WebhookConfig, WebhookRepo};
use crate::triggers::decide::format_time;
use crate::triggers::push::push_concerns_plan;

/// The key of the webhook Secret that holds the shared secret.
pub const SECRET_KEY: &str = "secret";

struct Hook {
    client: Client,
    metrics: Arc<Metrics>,
}

/// The webhook route, to merge into the controller's HTTP router.
pub fn router(client: Client, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(webhook::PATH, post(receive))
        .layer(DefaultBodyLimit::max(DEFAULT_MAX_BODY_BYTES))
        .with_state(Arc::new(Hook { client, metrics }))
}

/// What one request amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accepted,
    Ignored,
    Unauthorized,
    BadRequest,
    Error,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Ignored => "ignored",
            Verdict::Unauthorized => "unauthorized",
            Verdict::BadRequest => "bad_request",
            Verdict::Error => "error",
        }
    }

    fn reply(self) -> (StatusCode, &'static str) {
        match self {
            Verdict::Accepted => (StatusCode::ACCEPTED, "accepted\n"),
            Verdict::Ignored => (StatusCode::ACCEPTED, "ignored\n"),
            Verdict::Unauthorized => (StatusCode::UNAUTHORIZED, "missing or bad signature\n"),
            Verdict::BadRequest => (StatusCode::BAD_REQUEST, "not a push event Ferry understands\n"),
            Verdict::Error => (
                StatusCode::SERVICE_UNAVAILABLE,
                "could not record the push; retry\n",
            ),
        }
    }
}

async fn receive(
    State(hook): State<Arc<Hook>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let verdict = match handle(&hook.client, &headers, &body).await {
        Ok(verdict) => verdict,
        Err(err) => {
            tracing::warn!(error = %err, "webhook: reading or annotating plans failed");
            Verdict::Error
        }
    };
    hook.metrics
        .webhook_requests
        .get_or_create(&WebhookLabels {
            result: verdict.label().into(),
        })
        .inc();
    verdict.reply()
}

async fn handle(client: &Client, headers: &HeaderMap, body: &[u8]) -> crate::Result<Verdict> {
    let plans = Api::<MigPlan>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let mut verdicts = Vec::new();
    for plan in plans.items.iter().filter(|p| listens(p)) {
        let Some(config) = plan_config(client, plan).await? else {
            continue;
        };
        let verdict = match webhook::check_request(&config, headers, body) {
            Ok(Some(event)) if concerns(plan, &event) => {
                record(client, plan, &event).await?;
                Verdict::Accepted
            }
            Ok(_) => Verdict::Ignored,
            Err(401) => Verdict::Unauthorized,
            Err(_) => Verdict::BadRequest,
        };
        verdicts.push(verdict);
    }
    Ok(combine(&verdicts))
}

/// The request's verdict from each listening plan's: one plan recording it is enough; otherwise the
/// most telling refusal (a bad signature beats a payload another forge's plan could not read).
fn combine(verdicts: &[Verdict]) -> Verdict {
    [
        Verdict::Accepted,
        Verdict::Ignored,
        Verdict::Unauthorized,
        Verdict::BadRequest,
    ]
    .into_iter()
    .find(|wanted| verdicts.contains(wanted))
    .unwrap_or(Verdict::Ignored)
}

fn listens(plan: &MigPlan) -> bool {
    plan.spec.gitops.is_some()
        && plan
            .spec
            .triggers
            .as_ref()
            .is_some_and(|t| t.on_push && t.webhook_secret_ref.is_some())
}

/// The plan's repository under each forge with its secret; `None` when the Secret or key is missing
/// (logged: the plan cannot be triggered until it exists).
async fn plan_config(client: &Client, plan: &MigPlan) -> crate::Result<Option<WebhookConfig>> {
    let (Some(gitops), Some(reference)) = (
        plan.spec.gitops.as_ref(),
        plan.spec
            .triggers
            .as_ref()
            .and_then(|t| t.webhook_secret_ref.as_ref()),
    ) else {
        return Ok(None);
    };
    let own_ns = plan.namespace().unwrap_or_default();
    let namespace = reference.namespace_or(&own_ns);
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(&reference.name)
        .await?;
    let Some(value) = secret.and_then(|s| s.data).and_then(|data| {
        data.get(SECRET_KEY)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
    }) else {
        tracing::warn!(plan = %format!("{own_ns}/{}", plan.name_any()), secret = %reference, "webhook Secret or its `secret` key is missing; pushes for this plan are refused");
        return Ok(None);
    };
    let repos = [Forge::GitHub, Forge::GitLab, Forge::Gitea]
        .into_iter()
        .map(|forge| WebhookRepo {
            url: gitops.repo.url.clone(),
            forge,
            secret: value.trim().to_string(),
        })
        .collect();
    Ok(Some(WebhookConfig {
        repos,
        ..WebhookConfig::default()
    }))
}

fn concerns(plan: &MigPlan, event: &PushEvent) -> bool {
    let Some(gitops) = &plan.spec.gitops else {
        return false;
    };
    let branch = gitops.repo.branch.as_deref().unwrap_or("main");
    let paths = watched_paths(gitops);
    let watched: Vec<&str> = paths.iter().map(String::as_str).collect();
    push_concerns_plan(event, &gitops.repo.url, branch, &watched)
}

/// Records the push on the plan; the leader's reconciler (woken by the change) takes it from there.
async fn record(client: &Client, plan: &MigPlan, event: &PushEvent) -> crate::Result<()> {
    let record = PushRecord {
        revision: event.head_sha.clone(),
        time: format_time(jiff::Timestamp::now()),
    };
    let patch = serde_json::json!({
        "metadata": {"annotations": {PUSH_ANNOTATION: serde_json::to_string(&record)?}}
    });
    let own_ns = plan.namespace().unwrap_or_default();
    Api::<MigPlan>::namespaced(client.clone(), &own_ns)
        .patch(&plan.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    tracing::info!(plan = %format!("{own_ns}/{}", plan.name_any()), revision = %event.head_sha, branch = %event.branch, "push recorded");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_plan_recording_the_push_is_enough_and_a_bad_signature_is_reported() {
        use Verdict::*;
        assert_eq!(combine(&[Unauthorized, Accepted]), Accepted);
        assert_eq!(combine(&[Unauthorized, Ignored]), Ignored);
        assert_eq!(combine(&[BadRequest, Unauthorized]), Unauthorized);
        assert_eq!(combine(&[]), Ignored);
    }
}
