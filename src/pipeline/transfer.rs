//! Reading a transfer from its send pods, purely: what state each sender is in (from its phase and
//! termination message, where `ferry mover send --stats-file` puts the final stats record and rsync's
//! failure), the progress lines shown in the MigMigration, and the totals that end up in the step's
//! message and the plan's `lastStage`.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::mover::Progress;

/// Where one sender is.
#[derive(Clone, Debug, PartialEq)]
pub enum SenderState {
    /// Not running yet: not scheduled, image not pulled, volume not attached, ...; the pod's own
    /// reason (see [`pending_reason`]).
    Pending(String),
    /// Running, not finished yet.
    Running,
    /// rsync succeeded; the final record when the pod reported one.
    Succeeded(Option<Progress>),
    /// It failed; `retryable` when a new attempt may pass (lost connections), with the cause.
    Failed {
        /// A connection-type failure (rsync 5, 10, 12, 30, 35, 255) or no record at all.
        retryable: bool,
        /// What went wrong, for the step's message.
        message: String,
    },
}

/// The state of a send pod.
pub fn sender_state(pod: &Pod) -> SenderState {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let terminated = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    let message = terminated.and_then(|t| t.message.clone()).unwrap_or_default();
    let (record, rest) = parse_termination(&message);
    match phase {
        "Pending" => SenderState::Pending(pending_reason(pod)),
        "Succeeded" => SenderState::Succeeded(record),
        "Failed" => {
            let code = match &record {
                Some(Progress::Stats { rsync_exit_code, .. }) => Some(*rsync_exit_code),
                _ => None,
            };
            let retryable = code.is_none_or(crate::mover::rsync::exit_is_retryable);
            let cause = if !rest.is_empty() {
                rest
            } else if !message.is_empty() && record.is_none() {
                message.trim().to_string()
            } else {
                status
                    .and_then(|s| s.message.clone())
                    .unwrap_or_else(|| format!("exit code {}", terminated.map_or(-1, |t| t.exit_code)))
            };
            SenderState::Failed {
                retryable,
                message: format!("{}: {cause}", pod.name_any()),
            }
        }
        _ => SenderState::Running,
    }
}

/// Why a pod is not running yet, in the kubelet's and scheduler's own words: `Unschedulable: 0/1
/// nodes are available: ...`, `ErrImagePull: ...`, `CreateContainerConfigError: ...`, or
/// `ContainerCreating` while nothing is wrong yet.
pub fn pending_reason(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let with_message = |reason: &str, message: Option<&str>| match message.filter(|m| !m.is_empty()) {
        Some(message) => format!("{reason}: {}", message.trim()),
        None => reason.to_string(),
    };
    let unscheduled = status.and_then(|s| s.conditions.as_ref()).and_then(|c| {
        c.iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    });
    if let Some(condition) = unscheduled {
        return with_message(
            condition.reason.as_deref().unwrap_or("Unschedulable"),
            condition.message.as_deref(),
        );
    }
    let waiting = status.and_then(|s| {
        s.init_container_statuses
            .iter()
            .chain(&s.container_statuses)
            .flatten()
            .find_map(|c| c.state.as_ref()?.waiting.as_ref().filter(|w| w.reason.is_some()))
    });
    match waiting {
        Some(waiting) => with_message(
            waiting.reason.as_deref().unwrap_or("Waiting"),
            waiting.message.as_deref(),
        ),
        None if pod.spec.as_ref().is_some_and(|s| s.node_name.is_none()) => "not scheduled yet".into(),
        None => "ContainerCreating".into(),
    }
}

/// Splits a termination message into the stats record (first line) and the rest.
fn parse_termination(message: &str) -> (Option<Progress>, String) {
    let mut lines = message.splitn(2, '\n');
    let first = lines.next().unwrap_or_default();
    match serde_json::from_str::<Progress>(first) {
        Ok(record) => (Some(record), lines.next().unwrap_or_default().trim().to_string()),
        Err(_) => (None, String::new()),
    }
}

/// The last progress record in a sender's log tail, if any (its stats record once it has finished).
pub fn last_progress(log_tail: &str) -> Option<Progress> {
    log_tail
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Progress>(line).ok())
        .find(|record| {
            matches!(
                record,
                Progress::Progress { .. }
                    | Progress::Retry { .. }
                    | Progress::Held { .. }
                    | Progress::Released { .. }
                    | Progress::Stats { .. }
            )
        })
}

/// One progress line for volume `label` (`ns/pvc`).
pub fn progress_line(label: &str, record: &Progress) -> String {
    match record {
        Progress::Progress {
            bytes_total: 0,
            files_done,
            ..
        } => format!("{label}: scanning, {files_done} files so far"),
        Progress::Progress {
            bytes_done,
            bytes_total,
            files_done,
            rate_bytes_per_sec,
            ..
        } => {
            let percent = if *bytes_total > 0 {
                (bytes_done.saturating_mul(100) / bytes_total).min(100)
            } else {
                0
            };
            format!(
                "{label}: {} of {} ({percent}%), {files_done} files, {}/s",
                human_bytes(*bytes_done),
                human_bytes(*bytes_total),
                human_bytes(*rate_bytes_per_sec)
            )
        }
        Progress::Retry { attempt, message, .. } => {
            format!("{label}: connection lost (attempt {attempt}), retrying: {message}")
        }
        Progress::Stats {
            total_size,
            files_transferred,
            files_total,
            duration_secs,
            pass,
            ..
        } => format!(
            "{label}: done, {} in {files_total} entries, {files_transferred} files sent, {duration_secs:.1}s{}",
            human_bytes(*total_size),
            pass.as_deref().map(|p| format!(" ({p})")).unwrap_or_default()
        ),
        Progress::Listening { address } => format!("{label}: receiver listening on {address}"),
        Progress::Held { .. } => format!("{label}: sender ready, held until the source is quiesced"),
        Progress::Released { waited_secs } => {
            format!("{label}: sender released after {waited_secs:.0}s held, scanning")
        }
        Progress::Mode {
            mode,
            reason,
            changed,
            deleted,
            ..
        } => match reason {
            Some(reason) => format!("{label}: {} pass ({reason})", mode.as_str()),
            None => format!(
                "{label}: {} pass, {changed} changed, {deleted} deleted",
                mode.as_str()
            ),
        },
    }
}

/// Totals over the final records of a pass: `(bytes of data in the trees, files transferred)`.
pub fn totals(records: &[Progress]) -> (u64, u64) {
    records
        .iter()
        .fold((0, 0), |(bytes, files), record| match record {
            Progress::Stats {
                total_size,
                files_transferred,
                ..
            } => (bytes + total_size, files + files_transferred),
            _ => (bytes, files),
        })
}

/// The step message of a finished pass; [`totals_from_message`] reads it back.
pub fn done_message(volumes: usize, bytes: u64, files: u64) -> String {
    format!(
        "Synced {volumes} volume(s): {bytes} bytes ({}), {files} files transferred.",
        human_bytes(bytes)
    )
}

/// `(bytes, files)` from a [`done_message`].
pub fn totals_from_message(message: &str) -> Option<(u64, u64)> {
    let rest = message.strip_prefix("Synced ")?;
    let (_, rest) = rest.split_once(": ")?;
    let (bytes, rest) = rest.split_once(" bytes (")?;
    let (_, rest) = rest.split_once("), ")?;
    let (files, _) = rest.split_once(" files")?;
    Some((bytes.parse().ok()?, files.parse().ok()?))
}

/// `1.5 MiB` style sizes.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(code: i32, success: bool) -> Progress {
        Progress::Stats {
            bytes_sent: 10,
            bytes_received: 5,
            files_transferred: 3,
            files_total: 7,
            total_size: 2048,
            files_deleted: 0,
            duration_secs: 1.5,
            rsync_exit_code: code,
            attempts: 1,
            success,
            pass: None,
        }
    }

    fn pod(phase: &str, message: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ferry-send-x-0-stage"},
            "status": {"phase": phase, "containerStatuses": [{
                "name": "mover", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "message": message}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_succeeded_sender_reports_its_stats() {
        let message = serde_json::to_string(&stats(0, true)).unwrap();
        assert_eq!(
            sender_state(&pod("Succeeded", &message)),
            SenderState::Succeeded(Some(stats(0, true)))
        );
        assert_eq!(sender_state(&pod("Running", "")), SenderState::Running);
    }

    #[test]
    fn a_verification_that_found_differences_fails_for_good_naming_them() {
        let message = format!(
            "{}\nverification failed: 2 path(s) differ between source and target: orders/1, orders/3",
            serde_json::to_string(&stats(0, false)).unwrap()
        );
        match sender_state(&pod("Failed", &message)) {
            SenderState::Failed { retryable, message } => {
                assert!(!retryable, "a difference is not a lost connection");
                assert!(
                    message.ends_with("differ between source and target: orders/1, orders/3"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_pending_pod_says_why_in_the_kubelets_words() {
        let pending = |status: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p"}, "spec": {"containers": [], "nodeName": "n"}, "status": status
            }))
            .unwrap()
        };
        let unschedulable = pending(serde_json::json!({"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 node(s) were unschedulable."}]}));
        assert_eq!(
            sender_state(&unschedulable),
            SenderState::Pending(
                "Unschedulable: 0/1 nodes are available: 1 node(s) were unschedulable.".into()
            )
        );
        let image = pending(serde_json::json!({"phase": "Pending", "containerStatuses": [{
            "name": "mover", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImagePull", "message": "pull access denied for nope"}}}]}));
        assert_eq!(
            pending_reason(&image),
            "ErrImagePull: pull access denied for nope"
        );
        assert_eq!(
            pending_reason(&pending(serde_json::json!({"phase": "Pending"}))),
            "ContainerCreating"
        );
    }

    #[test]
    fn data_errors_fail_for_good_and_lost_connections_are_retried() {
        let failed = |code: i32| {
            let message = format!(
                "{}\nrsync exited with code {code}: some files vanished",
                serde_json::to_string(&stats(code, false)).unwrap()
            );
            sender_state(&pod("Failed", &message))
        };
        match failed(24) {
            SenderState::Failed { retryable, message } => {
                assert!(!retryable);
                assert!(message.contains("code 24: some files vanished"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(failed(12), SenderState::Failed { retryable: true, .. }));
        // No record at all (the mover failed before rsync ran): the log tail is the cause.
        match sender_state(&pod("Failed", "error: cannot read /certs/tls.key")) {
            SenderState::Failed { message, .. } => assert!(message.contains("tls.key"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn progress_lines_and_totals() {
        let record = Progress::Progress {
            bytes_done: 512 * 1024,
            bytes_total: 1024 * 1024,
            files_done: 12,
            files_total: 20,
            rate_bytes_per_sec: 2048,
            elapsed_secs: 1.0,
            attempt: 1,
        };
        assert_eq!(
            progress_line("shop/db", &record),
            "shop/db: 512.0 KiB of 1.0 MiB (50%), 12 files, 2.0 KiB/s"
        );
        let tail = format!(
            "noise\n{}\n{{\"type\":\"listening\",\"address\":\"x\"}}",
            serde_json::to_string(&record).unwrap()
        );
        assert_eq!(last_progress(&tail), Some(record.clone()));
        // A finished sender's log ends with its stats record (FinalSync takes it for done); a held
        // one's with `held`, then `released`.
        let finished = format!(
            "{tail}\n{}\n{{\"level\":\"INFO\"}}",
            serde_json::to_string(&stats(0, true)).unwrap()
        );
        assert_eq!(last_progress(&finished), Some(stats(0, true)));
        let held = format!(
            "{}\n{}",
            serde_json::to_string(&Progress::Held {
                timeout_secs: 60,
                prefetched: Some(1_000_000)
            })
            .unwrap(),
            "{\"fields\":{\"message\":\"held until released\"}}"
        );
        // Held again after reading the target's manifest: still held.
        assert_eq!(
            last_progress(&held),
            Some(Progress::Held {
                timeout_secs: 60,
                prefetched: Some(1_000_000)
            })
        );
        assert_eq!(
            progress_line("shop/db", &Progress::Released { waited_secs: 41.7 }),
            "shop/db: sender released after 42s held, scanning"
        );
        let (bytes, files) = totals(&[stats(0, true), stats(0, true)]);
        assert_eq!((bytes, files), (4096, 6));
        assert_eq!(
            totals_from_message(&done_message(2, bytes, files)),
            Some((4096, 6))
        );
    }
}
