//! Push trigger, pure part: which pushes concern a plan. The debounce that turns a burst of them into one
//! stage is persisted in the plan's status and lives in [`super::decide`].
//!
//! Decisions: a push whose changed-file list is empty is treated as touching everything, because forges cap
//! the list (GitHub at 20 commits) and a missed stage is worse than an extra one. A watched path matches the
//! file itself or anything under it as a folder; an empty watched path means the whole repository.

use crate::git::webhook::{PushEvent, normalize_url};

/// Does this push (already verified and attributed by `crate::git::webhook`) concern a plan that watches
/// `repo_url` on `branch`, paths `watched`?
pub fn push_concerns_plan(event: &PushEvent, repo_url: &str, branch: &str, watched: &[&str]) -> bool {
    if normalize_url(&event.repo_url) != normalize_url(repo_url) || event.branch != branch {
        return false;
    }
    event.changed_paths.is_empty()
        || event
            .changed_paths
            .iter()
            .any(|changed| watched.iter().any(|path| path_under(changed, path)))
}

fn path_under(changed: &str, watched: &str) -> bool {
    let watched = watched.trim_matches('/');
    let changed = changed.trim_start_matches('/');
    watched.is_empty()
        || changed == watched
        || changed
            .strip_prefix(watched)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(branch: &str, paths: &[&str]) -> PushEvent {
        PushEvent {
            repo_url: "http://127.0.0.1:3000/ferry/app.git".into(),
            branch: branch.into(),
            head_sha: "a".repeat(40),
            changed_paths: paths.iter().map(|path| path.to_string()).collect(),
        }
    }

    const REPO: &str = "http://127.0.0.1:3000/ferry/app.git";

    #[test]
    fn matches_repo_branch_and_watched_paths_only() {
        let watched = ["clusters/source/shop", "clusters/target/shop"];
        assert!(push_concerns_plan(
            &event("main", &["clusters/source/shop/db.yaml"]),
            REPO,
            "main",
            &watched
        ));
        assert!(!push_concerns_plan(
            &event("dev", &["clusters/source/shop/db.yaml"]),
            REPO,
            "main",
            &watched
        ));
        assert!(!push_concerns_plan(
            &event("main", &["clusters/source/shopping/x"]),
            REPO,
            "main",
            &watched
        ));
        assert!(!push_concerns_plan(
            &event("main", &["README.md"]),
            REPO,
            "main",
            &watched
        ));
        let other_repo = "http://127.0.0.1:3000/ferry/other.git";
        assert!(!push_concerns_plan(
            &event("main", &["clusters/source/shop/a"]),
            other_repo,
            "main",
            &watched
        ));
    }

    #[test]
    fn unknown_changed_files_and_empty_watch_path_match() {
        assert!(push_concerns_plan(
            &event("main", &[]),
            REPO,
            "main",
            &["clusters/source/shop"]
        ));
        assert!(push_concerns_plan(
            &event("main", &["any/file"]),
            REPO,
            "main",
            &[""]
        ));
    }
}
