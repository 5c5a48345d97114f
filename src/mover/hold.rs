//! Held senders: a cutover's final-pass sender is started before the source is quiesced, so the
//! downtime window does not wait for a pod to be scheduled, its image and volumes set up and its
//! process started. It waits here until the controller releases it (docs/mover.md, "Held senders").
//!
//! The release is a file (in a pod: a downward-API volume showing one annotation of the pod itself,
//! which the kubelet rewrites when the annotation is set): empty while held, any text once released.
//! No API access is needed in the pod. A sender never released gives up after its timeout, having
//! sent nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use super::Progress;
use crate::{Error, Result};

/// How often the release file is read while held.
const LOOK: Duration = Duration::from_millis(50);

/// Whether `content` (the release file's) releases the sender: anything but blanks.
pub(crate) fn released(content: &str) -> bool {
    !content.trim().is_empty()
}

/// Waits until `file` holds a release, or fails after `timeout`; returns how long it waited. A missing
/// or unreadable file counts as not released yet (the kubelet replaces the file atomically).
pub async fn wait(file: &Path, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    super::emit(&Progress::Held {
        timeout_secs: timeout.as_secs(),
    });
    tracing::info!(file = %file.display(), "held until released");
    loop {
        let content = tokio::fs::read_to_string(file).await.unwrap_or_default();
        if released(&content) {
            let waited = started.elapsed();
            super::emit(&Progress::Released {
                waited_secs: waited.as_secs_f64(),
            });
            tracing::info!(release = content.trim(), "released");
            return Ok(waited);
        }
        if started.elapsed() >= timeout {
            return Err(Error::Mover(format!(
                "the sender was not released within {}s (held until the source is quiesced); nothing was sent",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(LOOK).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_non_blank_file_releases() {
        assert!(!released(""));
        assert!(!released(" \n"));
        assert!(released("2026-12-02T05:00:00Z"));
    }

    #[tokio::test]
    async fn waits_for_the_file_then_returns_and_gives_up_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("release");
        std::fs::write(&file, "").unwrap();
        let writer = {
            let file = file.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                std::fs::write(&file, "now").unwrap();
            })
        };
        let waited = wait(&file, Duration::from_secs(10)).await.unwrap();
        writer.await.unwrap();
        assert!(waited >= Duration::from_millis(250), "{waited:?}");

        let never = dir.path().join("never");
        let err = wait(&never, Duration::from_millis(200)).await.unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("not released within 0s") && message.contains("nothing was sent"),
            "{message}"
        );
    }
}
