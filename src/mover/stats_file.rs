//! The stats file (`--stats-file`; in a pod, the termination-message file the controller reads): the
//! final stats record on the first line and, when the send failed, one line saying why (rsync's error,
//! or a verify's verdict). Kubernetes keeps only the first 4096 bytes, so the text is bounded here.

use std::path::Path;

use super::progress::Progress;

/// Longest stats file, under Kubernetes' 4096 bytes for a termination message.
pub(crate) const MAX_BYTES: usize = 4000;

/// The file's text: the record, then the failure on one line, at most [`MAX_BYTES`] (the record is a few
/// hundred bytes, so only the failure line is ever cut).
pub(crate) fn text(stats: &Progress, failure: Option<&str>) -> String {
    let mut text = serde_json::to_string(stats).unwrap_or_default();
    if let Some(failure) = failure {
        text.push('\n');
        // The reader takes the second line as the reason: it must stay one line.
        text.push_str(&failure.replace(['\n', '\r'], " "));
    }
    truncate(&text, MAX_BYTES).to_string()
}

/// Writes the file. Best effort: stdout already has the record.
pub(crate) fn write(path: &Path, text: &str) {
    if let Err(err) = std::fs::write(path, text) {
        tracing::warn!(path = %path.display(), error = %err, "cannot write the stats file");
    }
}

/// The longest prefix of `text` of at most `max_bytes` that ends on a character boundary.
pub(crate) fn truncate(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with every number at its widest: what the verdict's budget is sized against.
    fn widest() -> Progress {
        Progress::Stats {
            bytes_sent: u64::MAX,
            bytes_received: u64::MAX,
            files_transferred: u64::MAX,
            files_total: u64::MAX,
            total_size: u64::MAX,
            files_deleted: u64::MAX,
            duration_secs: -f64::MAX / 3.0,
            rsync_exit_code: i32::MIN,
            attempts: u32::MAX,
            success: false,
            pass: None,
        }
    }

    #[test]
    fn a_success_is_the_record_alone() {
        let text = text(&widest(), None);
        assert!(!text.contains('\n'));
        assert_eq!(serde_json::from_str::<Progress>(&text).unwrap(), widest());
    }

    #[test]
    fn the_widest_record_and_the_longest_verdict_fit_whole() {
        let verdict = "v".repeat(super::super::verify::MAX_VERDICT_BYTES);
        let text = text(&widest(), Some(&verdict));
        let (record, reason) = text.split_once('\n').unwrap();
        assert_eq!(reason, verdict);
        assert!(text.len() <= MAX_BYTES, "{} + {}", record.len(), reason.len());
    }

    #[test]
    fn a_long_failure_is_cut_to_one_bounded_line_after_a_whole_record() {
        let failure = format!("first\nsecond\r{}", "é".repeat(5000));
        let text = text(&widest(), Some(&failure));
        assert!(
            text.len() <= MAX_BYTES && text.len() > MAX_BYTES - 2,
            "{}",
            text.len()
        );
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), 2);
        assert!(serde_json::from_str::<Progress>(lines[0]).is_ok());
        assert!(lines[1].starts_with("first second é"), "{}", &lines[1][..20]);
        assert_eq!(truncate("aé", 2), "a");
    }
}
