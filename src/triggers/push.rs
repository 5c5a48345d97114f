//! Push trigger, pure part: which pushes concern a plan, and the debounce that turns a burst of them into
//! one stage. No I/O: the caller feeds events and instants, so the rules are unit-tested without a clock.
//!
//! Decisions: a push whose changed-file list is empty is treated as touching everything, because forges cap
//! the list (GitHub at 20 commits) and a missed stage is worse than an extra one. A watched path matches the
//! file itself or anything under it as a folder; an empty watched path means the whole repository.

use std::time::{Duration, Instant};

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

/// Collapses a burst of pushes for one plan into one stage: the stage starts when `window` has passed
/// since the last push of the burst. Pushes arriving while a stage runs leave one pending follow-up.
#[derive(Debug, Clone)]
pub struct Debouncer {
    window: Duration,
    last_push: Option<Instant>,
}

impl Debouncer {
    /// A debouncer with a quiet window (the controller's default is 10 s).
    pub fn new(window: Duration) -> Debouncer {
        Debouncer {
            window,
            last_push: None,
        }
    }

    /// Records a matching push.
    pub fn push(&mut self, at: Instant) {
        self.last_push = Some(at);
    }

    /// Whether a stage should be created now. `stage_running` holds the pending push back (at most one
    /// follow-up however many pushes arrive meanwhile). Returns true once per burst and clears it.
    pub fn take_due(&mut self, now: Instant, stage_running: bool) -> bool {
        match self.last_push {
            Some(last) if !stage_running && now.saturating_duration_since(last) >= self.window => {
                self.last_push = None;
                true
            }
            _ => false,
        }
    }

    /// When to look again, if a push is pending.
    pub fn wake_at(&self) -> Option<Instant> {
        self.last_push.map(|last| last + self.window)
    }
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

    #[test]
    fn a_burst_of_three_pushes_yields_one_stage() {
        let window = Duration::from_secs(10);
        let start = Instant::now();
        let mut debouncer = Debouncer::new(window);
        for offset in [0, 2, 4] {
            debouncer.push(start + Duration::from_secs(offset));
            assert!(!debouncer.take_due(start + Duration::from_secs(offset), false));
        }
        assert_eq!(debouncer.wake_at(), Some(start + Duration::from_secs(14)));
        assert!(
            !debouncer.take_due(start + Duration::from_secs(13), false),
            "window restarts per push"
        );
        assert!(debouncer.take_due(start + Duration::from_secs(14), false));
        assert!(
            !debouncer.take_due(start + Duration::from_secs(60), false),
            "once per burst"
        );
    }

    #[test]
    fn pushes_during_a_running_stage_give_one_follow_up() {
        let start = Instant::now();
        let mut debouncer = Debouncer::new(Duration::from_secs(1));
        for offset in 0..5 {
            debouncer.push(start + Duration::from_secs(offset));
        }
        assert!(
            !debouncer.take_due(start + Duration::from_secs(30), true),
            "held while a stage runs"
        );
        assert!(debouncer.take_due(start + Duration::from_secs(31), false));
        assert!(!debouncer.take_due(start + Duration::from_secs(32), false));
    }
}
