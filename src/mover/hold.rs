//! Held senders: a cutover's final-pass sender is started before the source is quiesced, so the
//! downtime window does not wait for a pod to be scheduled, its image and volumes set up and its
//! process started. It waits here until the controller releases it (docs/mover.md, "Held senders").
//!
//! The release is a file (in a pod: a downward-API volume showing one annotation of the pod itself,
//! which the kubelet rewrites when the annotation is set): empty while held, any text once released.
//! No API access is needed in the pod. A sender never released gives up after its timeout, having
//! sent nothing.
//!
//! While it waits, a sender may warm up (a delta pass reads the target's manifest, leaving it there):
//! work that does not depend on the source, taken out of the downtime window. The release does not
//! wait for it: a warm-up still running then is dropped, and the pass does that work itself.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Progress;
use crate::{Error, Result};

/// How often the release file is read while held.
const LOOK: Duration = Duration::from_millis(50);

/// Whether `content` (the release file's) releases the sender: anything but blanks.
pub(crate) fn released(content: &str) -> bool {
    !content.trim().is_empty()
}

/// Where a held sender looks for its release, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Empty while held, any text once released.
    pub file: PathBuf,
    /// How long to wait before giving up, having sent nothing.
    pub timeout: Duration,
}

/// Waits until the hold's file holds a release, or fails after its timeout, running `warm_up`
/// meanwhile; returns how long it waited and what the warm-up made (with the count a second `held`
/// record shows) when it finished before the release. A missing or unreadable file counts as not
/// released yet (the kubelet replaces the file atomically).
pub async fn wait<T>(
    hold: &Hold,
    warm_up: impl Future<Output = Option<(T, u64)>>,
) -> Result<(Duration, Option<T>)> {
    let Hold { file, timeout } = hold;
    let started = Instant::now();
    super::emit(&Progress::Held {
        timeout_secs: timeout.as_secs(),
        prefetched: None,
    });
    tracing::info!(file = %file.display(), "held until released");
    let mut warm_up = std::pin::pin!(warm_up);
    let mut warming = true;
    let mut warm = None;
    loop {
        let content = tokio::fs::read_to_string(file).await.unwrap_or_default();
        if released(&content) {
            let waited = started.elapsed();
            super::emit(&Progress::Released {
                waited_secs: waited.as_secs_f64(),
            });
            tracing::info!(release = content.trim(), warm = warm.is_some(), "released");
            return Ok((waited, warm));
        }
        if started.elapsed() >= *timeout {
            return Err(Error::Mover(format!(
                "the sender was not released within {}s (held until the source is quiesced); nothing was sent",
                timeout.as_secs()
            )));
        }
        let look = tokio::time::sleep(LOOK);
        if warming {
            tokio::select! {
                made = &mut warm_up => {
                    warming = false;
                    // Shown again, still held (the controller reads the last record as the state).
                    super::emit(&Progress::Held {
                        timeout_secs: timeout.as_secs(),
                        prefetched: made.as_ref().map(|(_, count)| *count),
                    });
                    warm = made.map(|(made, _)| made);
                }
                () = look => {}
            }
        } else {
            look.await;
        }
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
        let hold = Hold {
            file: file.clone(),
            timeout: Duration::from_secs(10),
        };
        let (waited, warm) = wait(&hold, async { Some(("warm", 1)) }).await.unwrap();
        writer.await.unwrap();
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        assert_eq!(warm, Some("warm"), "a warm-up done before the release is kept");

        let never = Hold {
            file: dir.path().join("never"),
            timeout: Duration::from_millis(200),
        };
        let err = wait(&never, std::future::pending::<Option<((), u64)>>())
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("not released within 0s") && message.contains("nothing was sent"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn the_release_does_not_wait_for_a_warm_up_still_running() {
        let dir = tempfile::tempdir().unwrap();
        let hold = Hold {
            file: dir.path().join("release"),
            timeout: Duration::from_secs(10),
        };
        std::fs::write(&hold.file, "released").unwrap();
        let slow = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Some(("late", 1))
        };
        let started = Instant::now();
        let (_, warm) = wait(&hold, slow).await.unwrap();
        assert_eq!(warm, None);
        assert!(started.elapsed() < Duration::from_secs(5));
        // A warm-up that finds nothing to keep leaves the sender held as before.
        std::fs::write(&hold.file, "").unwrap();
        let writer = {
            let file = hold.file.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                std::fs::write(&file, "now").unwrap();
            })
        };
        let (_, warm) = wait(&hold, async { None::<((), u64)> }).await.unwrap();
        writer.await.unwrap();
        assert_eq!(warm, None);
    }
}
