//! Push-event payloads of GitHub, GitLab and Gitea/Forgejo, reduced to what Ferry needs: which
//! repository, which branch, the new head and the changed files. Pure; unit-tested on the same fixture
//! files the e2e test sends (`e2e/fixtures/webhooks/`).

use http::HeaderMap;
use serde_json::Value;

/// The forge that sent an event (Forgejo is a Gitea fork with the same payloads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Forge {
    /// GitHub (and GitHub Enterprise).
    GitHub,
    /// GitLab.
    GitLab,
    /// Gitea or Forgejo.
    Gitea,
}

/// A push to a branch, as sent to the triggers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    /// The repository URL as configured in Ferry (not as the forge spelled it).
    pub repo_url: String,
    /// The branch name (without `refs/heads/`).
    pub branch: String,
    /// The commit the branch now points to.
    pub head_sha: String,
    /// Files added, modified or removed by the pushed commits (may be incomplete: forges cap it).
    pub changed_paths: Vec<String>,
}

/// What a push payload says, before matching it to a configured repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPush {
    /// Every URL the payload gives for the repository (clone, web, ssh).
    pub repo_urls: Vec<String>,
    /// The full ref, e.g. `refs/heads/main`.
    pub git_ref: String,
    /// The new head; all zeros when the ref was deleted.
    pub after: String,
    /// Changed files, deduplicated, in order of appearance.
    pub changed_paths: Vec<String>,
}

impl ParsedPush {
    /// The branch name if this is a push that updates (not deletes) a branch.
    pub fn updated_branch(&self) -> Option<&str> {
        let deleted = self.after.is_empty() || self.after.bytes().all(|b| b == b'0');
        self.git_ref.strip_prefix("refs/heads/").filter(|_| !deleted)
    }
}

/// The forge and whether the event is a push, from the request headers. Gitea/Forgejo also send
/// GitHub-style headers, so their own headers are checked first.
pub fn detect(headers: &HeaderMap) -> Option<(Forge, bool)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(event) = header("x-gitea-event").or_else(|| header("x-forgejo-event")) {
        return Some((Forge::Gitea, event == "push"));
    }
    if let Some(event) = header("x-gitlab-event") {
        return Some((Forge::GitLab, event == "Push Hook"));
    }
    if let Some(event) = header("x-github-event") {
        return Some((Forge::GitHub, event == "push"));
    }
    None
}

/// Parses a push payload body.
pub fn parse_push(forge: Forge, body: &[u8]) -> Result<ParsedPush, String> {
    let value: Value = serde_json::from_slice(body).map_err(|err| format!("payload is not JSON: {err}"))?;
    let text = |v: &Value| v.as_str().map(str::to_string);
    let git_ref = text(&value["ref"]).ok_or("payload has no \"ref\"")?;
    let after = text(&value["after"])
        .or_else(|| text(&value["checkout_sha"]))
        .ok_or("payload has no \"after\"")?;
    let url_fields: &[(&str, &str)] = match forge {
        Forge::GitHub | Forge::Gitea => &[
            ("repository", "clone_url"),
            ("repository", "html_url"),
            ("repository", "ssh_url"),
            ("repository", "url"),
        ],
        Forge::GitLab => &[
            ("project", "git_http_url"),
            ("project", "web_url"),
            ("project", "git_ssh_url"),
            ("repository", "git_http_url"),
            ("repository", "homepage"),
            ("repository", "git_ssh_url"),
        ],
    };
    let repo_urls: Vec<String> = url_fields
        .iter()
        .filter_map(|(object, field)| text(&value[object][field]))
        .collect();
    if repo_urls.is_empty() {
        return Err("payload names no repository URL".to_string());
    }
    let mut changed_paths: Vec<String> = Vec::new();
    for commit in value["commits"].as_array().into_iter().flatten() {
        for list in ["added", "modified", "removed"] {
            for path in commit[list]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !changed_paths.iter().any(|p| p == path) {
                    changed_paths.push(path.to_string());
                }
            }
        }
    }
    Ok(ParsedPush {
        repo_urls,
        git_ref,
        after,
        changed_paths,
    })
}

/// A repository URL reduced to `host/path` in lower case, without credentials, port of the default
/// scheme, `.git` or trailing `/`, so that clone, web and scp-style SSH URLs of one repo compare equal.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim();
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest.to_string(),
        // scp-like syntax: git@host:owner/repo.git
        None => url.replacen(':', "/", 1),
    };
    let rest = rest.rsplit_once('@').map_or(rest.as_str(), |(_, host)| host);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.trim_end_matches(":443").trim_end_matches(":80");
    let path = path
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .trim_end_matches('/');
    format!("{host}/{path}").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/e2e/fixtures/webhooks/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    #[test]
    fn github_push_fixture() {
        let push = parse_push(Forge::GitHub, &fixture("github-push.json")).unwrap();
        assert_eq!(push.updated_branch(), Some("main"));
        assert_eq!(push.after, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
        assert!(
            push.repo_urls
                .contains(&"https://github.com/acme/shop-deploy.git".to_string())
        );
        assert_eq!(
            push.changed_paths,
            vec!["apps/source/app.yaml", "apps/source/db.yaml", "README.md"]
        );
    }

    #[test]
    fn gitlab_push_fixture() {
        let push = parse_push(Forge::GitLab, &fixture("gitlab-push.json")).unwrap();
        assert_eq!(push.updated_branch(), Some("main"));
        assert_eq!(push.after, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
        assert!(
            push.repo_urls
                .iter()
                .any(|u| u == "https://gitlab.example.com/acme/shop-deploy.git")
        );
        assert_eq!(
            push.changed_paths,
            vec!["CHANGELOG.md", "apps/source/app.yaml", "old.yaml"]
        );
    }

    #[test]
    fn gitea_push_fixture() {
        let push = parse_push(Forge::Gitea, &fixture("gitea-push.json")).unwrap();
        assert_eq!(push.updated_branch(), Some("main"));
        assert_eq!(push.changed_paths, vec!["apps/source/app.yaml"]);
        assert!(
            push.repo_urls
                .contains(&"https://gitea.example.com/acme/shop-deploy.git".to_string())
        );
    }

    #[test]
    fn deletions_tags_and_garbage() {
        let deleted = br#"{"ref":"refs/heads/old","after":"0000000000000000000000000000000000000000","repository":{"clone_url":"https://x/y.git"}}"#;
        assert_eq!(parse_push(Forge::GitHub, deleted).unwrap().updated_branch(), None);
        let tag = br#"{"ref":"refs/tags/v1","after":"abc","repository":{"clone_url":"https://x/y.git"}}"#;
        assert_eq!(parse_push(Forge::GitHub, tag).unwrap().updated_branch(), None);
        assert!(parse_push(Forge::GitHub, b"not json").is_err());
        assert!(parse_push(Forge::GitHub, br#"{"ref":"refs/heads/a","after":"b"}"#).is_err());
    }

    #[test]
    fn url_normalization() {
        let same = [
            "https://github.com/Acme/Shop-Deploy.git",
            "https://github.com/acme/shop-deploy",
            "https://token@github.com:443/acme/shop-deploy/",
            "git@github.com:acme/shop-deploy.git",
            "ssh://git@github.com/acme/shop-deploy.git",
        ];
        for url in same {
            assert_eq!(normalize_url(url), "github.com/acme/shop-deploy", "{url}");
        }
        assert_ne!(
            normalize_url("https://github.com/acme/shop"),
            normalize_url("https://github.com/acme/shop-deploy")
        );
    }

    #[test]
    fn forge_detection_prefers_gitea_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-github-event", "push".parse().unwrap());
        assert_eq!(detect(&headers), Some((Forge::GitHub, true)));
        headers.insert("x-gitea-event", "push".parse().unwrap());
        assert_eq!(detect(&headers), Some((Forge::Gitea, true)));
        let mut gitlab = HeaderMap::new();
        gitlab.insert("x-gitlab-event", "Tag Push Hook".parse().unwrap());
        assert_eq!(detect(&gitlab), Some((Forge::GitLab, false)));
        assert_eq!(detect(&HeaderMap::new()), None);
    }
}
