//! The push webhook receiver on a real loopback socket, called with a real HTTP client (hyper) using
//! each forge's payload format and signature scheme: valid pushes become events; bad signatures,
//! unsigned, malformed and oversized requests are refused and produce nothing; unknown repos are ignored.

use std::time::Duration;

use ferry::git::webhook::{self, Forge, PushEvent, WebhookConfig, WebhookRepo, sign_hex};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use tokio::sync::mpsc;

const GITHUB_SECRET: &str = "gh-webhook-secret";
const GITLAB_TOKEN: &str = "gl-token-7f3a";
const GITEA_SECRET: &str = "gitea-webhook-secret";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/e2e/fixtures/webhooks/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn config() -> WebhookConfig {
    let repo = |url: &str, forge, secret: &str| WebhookRepo {
        url: url.into(),
        forge,
        secret: secret.into(),
    };
    WebhookConfig {
        repos: vec![
            repo(
                "https://github.com/acme/shop-deploy.git",
                Forge::GitHub,
                GITHUB_SECRET,
            ),
            repo(
                "git@gitlab.example.com:acme/shop-deploy.git",
                Forge::GitLab,
                GITLAB_TOKEN,
            ),
            repo(
                "https://gitea.example.com/acme/shop-deploy",
                Forge::Gitea,
                GITEA_SECRET,
            ),
        ],
        max_body_bytes: 1024 * 1024,
    }
}

struct Receiver {
    addr: std::net::SocketAddr,
    events: mpsc::Receiver<PushEvent>,
    server: tokio::task::JoinHandle<()>,
}

async fn start() -> Receiver {
    let (tx, events) = mpsc::channel(16);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = webhook::router(config(), tx);
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { addr, events, server }
}

/// POSTs `body` with `headers` over a fresh HTTP/1.1 connection; returns status and response body.
async fn post(addr: std::net::SocketAddr, headers: &[(&str, String)], body: Vec<u8>) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::post(format!("http://{addr}{}", webhook::PATH))
        .header("host", addr.to_string())
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (status, String::from_utf8_lossy(&text).to_string())
}

async fn next_event(events: &mut mpsc::Receiver<PushEvent>) -> PushEvent {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap()
}

fn assert_no_event(events: &mut mpsc::Receiver<PushEvent>) {
    assert!(events.try_recv().is_err(), "a refused request produced an event");
}

#[tokio::test]
async fn each_forge_signed_push_becomes_an_event() {
    let mut receiver = start().await;

    let body = fixture("github-push.json");
    let signature = format!("sha256={}", sign_hex(GITHUB_SECRET.as_bytes(), &body));
    let headers = [
        ("x-github-event", "push".to_string()),
        (
            "x-github-delivery",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_string(),
        ),
        ("x-hub-signature-256", signature),
        ("user-agent", "GitHub-Hookshot/044aadd".to_string()),
    ];
    assert_eq!(
        post(receiver.addr, &headers, body).await,
        (202, "accepted\n".to_string())
    );
    let event = next_event(&mut receiver.events).await;
    assert_eq!(event.repo_url, "https://github.com/acme/shop-deploy.git");
    assert_eq!(event.branch, "main");
    assert_eq!(event.head_sha, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    assert_eq!(
        event.changed_paths,
        vec!["apps/source/app.yaml", "apps/source/db.yaml", "README.md"]
    );

    let headers = [
        ("x-gitlab-event", "Push Hook".to_string()),
        ("x-gitlab-token", GITLAB_TOKEN.to_string()),
    ];
    assert_eq!(
        post(receiver.addr, &headers, fixture("gitlab-push.json")).await.0,
        202
    );
    let event = next_event(&mut receiver.events).await;
    assert_eq!(event.repo_url, "git@gitlab.example.com:acme/shop-deploy.git");
    assert_eq!(event.head_sha, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");

    let body = fixture("gitea-push.json");
    let headers = [
        ("x-gitea-event", "push".to_string()),
        // Gitea also sends GitHub-compatible headers; the Gitea ones must win.
        ("x-github-event", "push".to_string()),
        ("x-gitea-signature", sign_hex(GITEA_SECRET.as_bytes(), &body)),
    ];
    assert_eq!(post(receiver.addr, &headers, body).await.0, 202);
    let event = next_event(&mut receiver.events).await;
    assert_eq!(event.repo_url, "https://gitea.example.com/acme/shop-deploy");
    assert_eq!(event.head_sha, "bffeb74224043ba2feb48d137756c8a9331c449a");
    assert_eq!(event.changed_paths, vec!["apps/source/app.yaml"]);
    receiver.server.abort();
}

#[tokio::test]
async fn bad_unsigned_malformed_and_oversized_requests_are_refused() {
    let mut receiver = start().await;
    let body = fixture("github-push.json");
    let github = |signature: String| {
        [
            ("x-github-event", "push".to_string()),
            ("x-hub-signature-256", signature),
        ]
    };

    // Signed with the wrong secret, or the right signature over a tampered body.
    let wrong = format!("sha256={}", sign_hex(b"not-the-secret", &body));
    assert_eq!(post(receiver.addr, &github(wrong), body.clone()).await.0, 401);
    let good = format!("sha256={}", sign_hex(GITHUB_SECRET.as_bytes(), &body));
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("6113728f", "deadbeef")
        .into_bytes();
    assert_eq!(post(receiver.addr, &github(good.clone()), tampered).await.0, 401);
    // Unsigned.
    assert_eq!(
        post(
            receiver.addr,
            &[("x-github-event", "push".to_string())],
            body.clone()
        )
        .await
        .0,
        401
    );
    // GitLab with a wrong token; Gitea with a GitHub-style prefix.
    let gitlab = [
        ("x-gitlab-event", "Push Hook".to_string()),
        ("x-gitlab-token", "guess".to_string()),
    ];
    assert_eq!(
        post(receiver.addr, &gitlab, fixture("gitlab-push.json")).await.0,
        401
    );
    let gitea_body = fixture("gitea-push.json");
    let gitea = [
        ("x-gitea-event", "push".to_string()),
        (
            "x-gitea-signature",
            format!("sha256={}", sign_hex(GITEA_SECRET.as_bytes(), &gitea_body)),
        ),
    ];
    assert_eq!(post(receiver.addr, &gitea, gitea_body).await.0, 401);
    // Malformed JSON, and no forge headers at all.
    let junk = b"{\"ref\": ".to_vec();
    let signed_junk = format!("sha256={}", sign_hex(GITHUB_SECRET.as_bytes(), &junk));
    assert_eq!(post(receiver.addr, &github(signed_junk), junk).await.0, 400);
    assert_eq!(post(receiver.addr, &[], body.clone()).await.0, 400);
    // Over the 1 MiB limit, even correctly signed.
    let mut huge = body.clone();
    huge.extend(std::iter::repeat_n(b' ', 1024 * 1024 + 1));
    let signed_huge = format!("sha256={}", sign_hex(GITHUB_SECRET.as_bytes(), &huge));
    assert_eq!(post(receiver.addr, &github(signed_huge), huge).await.0, 413);
    assert_no_event(&mut receiver.events);

    // A repository nobody configured is ignored with 2xx, and produces no event either.
    let unknown = String::from_utf8(body.clone())
        .unwrap()
        .replace("acme/shop-deploy", "acme/other")
        .into_bytes();
    let signed = format!("sha256={}", sign_hex(GITHUB_SECRET.as_bytes(), &unknown));
    assert_eq!(
        post(receiver.addr, &github(signed), unknown).await,
        (202, "ignored\n".to_string())
    );
    assert_no_event(&mut receiver.events);

    // After all that, a good request still works.
    assert_eq!(post(receiver.addr, &github(good), body).await.0, 202);
    assert_eq!(next_event(&mut receiver.events).await.branch, "main");
    receiver.server.abort();
}
