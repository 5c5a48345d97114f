//! The push webhook receiver: `POST /hooks/git` from GitHub, GitLab or Gitea/Forgejo. A request is
//! checked in this order, and anything but a valid push to a configured repository changes nothing:
//!
//! ```text
//!   body > limit ─▶ 413      unknown forge ─▶ 400     not a push event ─▶ 202 ignored
//!   no signature ─▶ 401      malformed JSON ─▶ 400    unknown repository ─▶ 202 ignored (logged)
//!   bad signature ─▶ 401     tag / deleted branch ─▶ 202 ignored
//!   valid push ─▶ PushEvent on the channel ─▶ 202 accepted   (channel closed ─▶ 503)
//! ```

mod payload;
mod signature;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use tokio::sync::mpsc;

pub use payload::{Forge, ParsedPush, PushEvent, detect, normalize_url, parse_push};
pub use signature::{sign_hex, verify_gitea, verify_github, verify_gitlab};

/// The path the receiver serves.
pub const PATH: &str = "/hooks/git";
/// Default body limit: push payloads are a few KiB; GitHub caps them at 25 MiB but Ferry needs little.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Which repositories may send events, and with which secret.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The configured repositories.
    pub repos: Vec<WebhookRepo>,
    /// Largest accepted body; larger requests get 413.
    pub max_body_bytes: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            repos: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// One repository's webhook secret.
#[derive(Clone)]
pub struct WebhookRepo {
    /// The repository URL as written in the plan (`gitops.repo.url`).
    pub url: String,
    /// The forge that will call.
    pub forge: Forge,
    /// The shared secret (GitHub/Gitea HMAC key, GitLab token).
    pub secret: String,
}

impl std::fmt::Debug for WebhookRepo {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRepo")
            .field("url", &self.url)
            .field("forge", &self.forge)
            .finish_non_exhaustive()
    }
}

struct Receiver {
    config: WebhookConfig,
    events: mpsc::Sender<PushEvent>,
}

/// A router serving `POST /hooks/git`, sending each valid push on `events`.
pub fn router(config: WebhookConfig, events: mpsc::Sender<PushEvent>) -> axum::Router {
    let limit = config.max_body_bytes;
    axum::Router::new()
        .route(PATH, post(receive))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(Arc::new(Receiver { config, events }))
}

/// A reply and whether it carried an event.
type Reply = (StatusCode, &'static str);

async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Reply {
    match check(&receiver.config, &headers, &body) {
        Ok(Some(event)) => {
            tracing::info!(repo = %event.repo_url, branch = %event.branch, head = %event.head_sha, "git push received");
            match receiver.events.send(event).await {
                Ok(()) => (StatusCode::ACCEPTED, "accepted\n"),
                Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not accepting events\n"),
            }
        }
        Ok(None) => (StatusCode::ACCEPTED, "ignored\n"),
        Err(reply) => reply,
    }
}

/// Authenticates and parses a request: `Ok(Some)` for a push to act on, `Ok(None)` for an event to
/// ignore, `Err` with the 4xx reply otherwise. Pure (no I/O besides logging).
pub fn check_request(
    config: &WebhookConfig,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<PushEvent>, u16> {
    check(config, headers, body).map_err(|(status, _)| status.as_u16())
}

fn check(config: &WebhookConfig, headers: &HeaderMap, body: &[u8]) -> Result<Option<PushEvent>, Reply> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (forge, is_push) = detect(headers).ok_or((StatusCode::BAD_REQUEST, "unknown forge event\n"))?;
    if !is_push {
        return Ok(None);
    }
    let signature = match forge {
        Forge::GitHub => header("x-hub-signature-256"),
        Forge::GitLab => header("x-gitlab-token"),
        Forge::Gitea => header("x-gitea-signature").or_else(|| header("x-forgejo-signature")),
    };
    let signature = signature.ok_or((StatusCode::UNAUTHORIZED, "missing signature\n"))?;
    let push = parse_push(forge, body).map_err(|err| {
        tracing::info!(?forge, error = %err, "malformed webhook payload");
        (StatusCode::BAD_REQUEST, "malformed payload\n")
    })?;
    let urls: Vec<String> = push.repo_urls.iter().map(|url| normalize_url(url)).collect();
    let Some(repo) = config
        .repos
        .iter()
        .find(|r| r.forge == forge && urls.contains(&normalize_url(&r.url)))
    else {
        tracing::info!(?forge, repo = %push.repo_urls[0], "webhook for an unknown repository ignored");
        return Ok(None);
    };
    let secret = repo.secret.as_bytes();
    let valid = match forge {
        Forge::GitHub => verify_github(secret, body, signature),
        Forge::GitLab => verify_gitlab(secret, signature),
        Forge::Gitea => verify_gitea(secret, body, signature),
    };
    if !valid {
        tracing::warn!(?forge, repo = %repo.url, "webhook signature mismatch");
        return Err((StatusCode::UNAUTHORIZED, "bad signature\n"));
    }
    let Some(branch) = push.updated_branch() else {
        return Ok(None);
    };
    Ok(Some(PushEvent {
        repo_url: repo.url.clone(),
        branch: branch.to_string(),
        head_sha: push.after.clone(),
        changed_paths: push.changed_paths.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WebhookConfig {
        WebhookConfig {
            repos: vec![WebhookRepo {
                url: "https://github.com/acme/shop-deploy".into(),
                forge: Forge::GitHub,
                secret: "hook-secret".into(),
            }],
            ..Default::default()
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    const BODY: &[u8] = br#"{"ref":"refs/heads/main","after":"abc123","repository":{"clone_url":"https://github.com/acme/shop-deploy.git"},"commits":[{"added":["a.yaml"],"modified":[],"removed":[]}]}"#;

    #[test]
    fn a_signed_push_becomes_an_event() {
        let signature = format!("sha256={}", sign_hex(b"hook-secret", BODY));
        let h = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &signature)]);
        let event = check_request(&config(), &h, BODY).unwrap().unwrap();
        assert_eq!(event.repo_url, "https://github.com/acme/shop-deploy");
        assert_eq!(
            (event.branch.as_str(), event.head_sha.as_str()),
            ("main", "abc123")
        );
        assert_eq!(event.changed_paths, vec!["a.yaml"]);
    }

    #[test]
    fn rejections_and_ignored_events() {
        let good = format!("sha256={}", sign_hex(b"hook-secret", BODY));
        let bad = format!("sha256={}", sign_hex(b"wrong", BODY));
        let cfg = config();
        assert_eq!(
            check_request(&cfg, &headers(&[("x-github-event", "push")]), BODY),
            Err(401)
        );
        let h = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &bad)]);
        assert_eq!(check_request(&cfg, &h, BODY), Err(401));
        let h = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &good)]);
        assert_eq!(check_request(&cfg, &h, b"{nope"), Err(400));
        assert_eq!(
            check_request(&cfg, &headers(&[("x-hub-signature-256", &good)]), BODY),
            Err(400)
        );
        let ping = headers(&[("x-github-event", "ping"), ("x-hub-signature-256", &good)]);
        assert_eq!(check_request(&cfg, &ping, BODY), Ok(None));
        // The same payload for a repository nobody configured is ignored, even unsigned correctly.
        let unknown = String::from_utf8_lossy(BODY).replace("shop-deploy", "other");
        let h = headers(&[("x-github-event", "push"), ("x-hub-signature-256", &bad)]);
        assert_eq!(check_request(&cfg, &h, unknown.as_bytes()), Ok(None));
    }
}
