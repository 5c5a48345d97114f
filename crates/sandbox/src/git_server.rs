//! A real Git server for tests and `make demo`: bare repositories under a root directory, served over
//! smart HTTP by running `git http-backend` as a CGI program behind a small axum server on
//! 127.0.0.1 with HTTP basic authentication. Clones, fetches and pushes from libgit2 and the git CLI
//! go through the same code paths as against a hosted forge.
//!
//! ```text
//!   client ──HTTP basic──▶ axum (127.0.0.1:0) ──CGI env + body──▶ git http-backend ──▶ root/<name>.git
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine as _;
use git2::{FileMode, Oid, Repository, Signature, build::TreeUpdateBuilder};
use http::{HeaderValue, StatusCode, header};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use crate::{Error, Result};

/// The branch `create_repo` creates.
pub const DEFAULT_BRANCH: &str = "main";
/// Largest request body accepted (packs pushed by tests and the demo are far smaller).
const MAX_REQUEST_BYTES: usize = 256 * 1024 * 1024;

/// A running Git HTTP server; stops when dropped or on [`GitServer::stop`].
pub struct GitServer {
    addr: SocketAddr,
    root: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct Shared {
    root: PathBuf,
    /// The expected `Authorization` header value.
    authorization: String,
    username: String,
}

impl GitServer {
    /// Serves the bare repositories under `root_dir` (created if missing) on a free loopback port,
    /// requiring `username`/`password` for every request.
    pub async fn start(root_dir: impl Into<PathBuf>, username: &str, password: &str) -> Result<GitServer> {
        let root = root_dir.into();
        std::fs::create_dir_all(&root).map_err(Error::io(format!("creating {}", root.display())))?;
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        let shared = Arc::new(Shared {
            root: root.clone(),
            authorization: format!("Basic {credentials}"),
            username: username.to_string(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(Error::io("binding the git server to 127.0.0.1"))?;
        let addr = listener
            .local_addr()
            .map_err(Error::io("reading the git server address"))?;
        let app = axum::Router::new().fallback(serve).with_state(shared);
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(err) = server.await {
                tracing::warn!(error = %err, "git server stopped with an error");
            }
        });
        tracing::info!(%addr, root = %root.display(), "git server started");
        Ok(GitServer {
            addr,
            root,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// The clone URL of repository `name` (without credentials), e.g. `http://127.0.0.1:4321/app.git`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{}.git", self.addr, name.trim_end_matches(".git"))
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bare repository directory of `name`.
    pub fn repo_path(&self, name: &str) -> PathBuf {
        self.root.join(format!("{}.git", name.trim_end_matches(".git")))
    }

    /// Creates bare repository `name` accepting pushes, with one commit on `main` holding `files`
    /// (`(path, content)` pairs, nested paths allowed). Returns that commit.
    pub fn create_repo(&self, name: &str, files: &[(&str, &str)]) -> Result<Oid> {
        let path = self.repo_path(name);
        let repo =
            Repository::init_bare(&path).map_err(Error::git(format!("creating {}", path.display())))?;
        let mut config = repo.config().map_err(Error::git("configuring the repository"))?;
        config
            .set_bool("http.receivepack", true)
            .map_err(Error::git("enabling pushes"))?;
        repo.set_head(&format!("refs/heads/{DEFAULT_BRANCH}"))
            .map_err(Error::git("setting HEAD"))?;
        commit_files(&path, files, "Initial commit")
    }

    /// Commits `files` directly on `main` of repository `name` (as if someone else had pushed).
    pub fn commit(&self, name: &str, files: &[(&str, &str)], message: &str) -> Result<Oid> {
        commit_files(&self.repo_path(name), files, message)
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Writes `files` over the tip of `main` (or as the first commit) of the bare repository at `path`.
fn commit_files(path: &Path, files: &[(&str, &str)], message: &str) -> Result<Oid> {
    let context = format!("committing to {}", path.display());
    let repo = Repository::open_bare(path).map_err(Error::git(context.clone()))?;
    let branch = format!("refs/heads/{DEFAULT_BRANCH}");
    let parent = repo
        .refname_to_id(&branch)
        .ok()
        .map(|oid| repo.find_commit(oid))
        .transpose();
    let parent = parent.map_err(Error::git(context.clone()))?;
    let base = match &parent {
        Some(commit) => commit.tree().map_err(Error::git(context.clone()))?,
        None => {
            let empty = repo
                .treebuilder(None)
                .and_then(|b| b.write())
                .map_err(Error::git(context.clone()))?;
            repo.find_tree(empty).map_err(Error::git(context.clone()))?
        }
    };
    let mut updates = TreeUpdateBuilder::new();
    for (file, content) in files {
        let blob = repo
            .blob(content.as_bytes())
            .map_err(Error::git(context.clone()))?;
        updates.upsert(*file, blob, FileMode::Blob);
    }
    let tree = updates
        .create_updated(&repo, &base)
        .map_err(Error::git(context.clone()))?;
    let tree = repo.find_tree(tree).map_err(Error::git(context.clone()))?;
    let signature = Signature::now("Sandbox", "sandbox@ferry.test").map_err(Error::git(context.clone()))?;
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(Some(&branch), &signature, &signature, message, &tree, &parents)
        .map_err(Error::git(context))
}

/// Authenticates, then hands the request to `git http-backend` and relays its CGI response.
async fn serve(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == shared.authorization.as_bytes());
    if !authorized {
        let mut response = Response::new(Body::from("authentication required\n"));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"ferry-git\""),
        );
        return response;
    }
    match run_backend(&shared, request).await {
        Ok(response) => response,
        Err(err) => {
            tracing::warn!(error = %err, "git http-backend failed");
            let mut response = Response::new(Body::from(format!("{err}\n")));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

async fn run_backend(shared: &Shared, request: Request) -> Result<Response> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|err| Error::Sandbox(format!("reading the request body: {err}")))?;
    let header_text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", &shared.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("REMOTE_USER", &shared.username)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header_text("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        // http-backend inflates gzip request bodies itself when told the encoding.
        .env("HTTP_CONTENT_ENCODING", header_text("content-encoding"))
        .env("HTTP_GIT_PROTOCOL", header_text("git-protocol"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(Error::io("starting git http-backend"))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| Error::Sandbox("no stdin for http-backend".into()))?;
    // Write the body while the backend's output is read, so large pushes cannot deadlock on pipes.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
        let _ = stdin.shutdown().await;
    });
    let output = child
        .wait_with_output()
        .await
        .map_err(Error::io("running git http-backend"))?;
    let _ = writer.await;
    if !output.stderr.is_empty() {
        tracing::debug!(stderr = %String::from_utf8_lossy(&output.stderr), "git http-backend");
    }
    parse_cgi_response(&output.stdout)
}

/// Splits a CGI response into status, headers and body.
fn parse_cgi_response(output: &[u8]) -> Result<Response> {
    let (head, body) = match find(output, b"\r\n\r\n") {
        Some(at) => (&output[..at], &output[at + 4..]),
        None => match find(output, b"\n\n") {
            Some(at) => (&output[..at], &output[at + 2..]),
            None => return Err(Error::Sandbox("git http-backend printed no CGI headers".into())),
        },
    };
    let mut response = Response::new(Body::from(body.to_vec()));
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|code| code.parse().ok());
            *response.status_mut() = code
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::OK);
        } else if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(name.trim()),
            HeaderValue::try_from(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_response_status_headers_and_body() {
        let response =
            parse_cgi_response(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno such repo")
                .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["content-type"], "text/plain");
        let ok = parse_cgi_response(b"Content-Type: application/x-git-upload-pack-advertisement\n\n001e#")
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        assert!(parse_cgi_response(b"garbage").is_err());
    }
}
