//! `ferry mover send --verify`: a compare-only rsync pass (the sync's own options plus `--dry-run
//! --checksum --itemize-changes`, see [`super::rsync::send_args`]) that changes nothing on the receiver
//! and names what differs. Pure: the parser of rsync's itemized lines, the bounded list of differing
//! paths, and the one-line verdict the controller shows the user (a contract: docs/mover.md, "Verify").

use super::rsync::ITEM_PREFIX;
use super::stats_file::truncate;

/// Paths the verdict names; the rest are only counted.
pub(crate) const NAMED_PATHS: usize = 10;
/// Longest path, in bytes, the verdict quotes whole; longer ones keep their end (the file name).
const MAX_PATH_BYTES: usize = 240;
/// Longest verdict in bytes: with the stats record before it (at most about 350 bytes, every number at
/// its widest) it fits the stats file's [`super::stats_file::MAX_BYTES`] whole.
pub(crate) const MAX_VERDICT_BYTES: usize = 3500;

/// The path of one itemized line (`ferry-item: >fc.t...... dir/file`, `ferry-item: *deleting   old`),
/// as rsync printed it: non-printable bytes (newlines included) escaped as `\#ooo`, so a path is always
/// one line. `None` for every other line (progress, stats).
pub(crate) fn parse_item_line(line: &str) -> Option<&str> {
    let rest = line.strip_prefix(ITEM_PREFIX)?;
    // The item code is 11 characters (`YXcstpoguax`, or `*deleting` padded), then one space. A line
    // with the prefix that does not fit that shape still counts: better a mangled name than a miss.
    Some(
        rest.get(11..)
            .and_then(|tail| tail.strip_prefix(' '))
            .filter(|path| !path.is_empty())
            .unwrap_or(rest),
    )
}

/// What a verify found: how many paths differ and the first [`NAMED_PATHS`] of them (bounded memory
/// whatever the size of the tree).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Differences {
    /// Paths that differ (would be sent, changed or deleted).
    pub count: u64,
    /// The first of them, in rsync's order and escaping.
    pub first: Vec<String>,
}

impl Differences {
    /// Notes one differing path.
    pub(crate) fn record(&mut self, path: &str) {
        self.count += 1;
        if self.first.len() < NAMED_PATHS {
            self.first.push(path.to_string());
        }
    }

    /// Adds another run's findings after this one's.
    pub(crate) fn merge(&mut self, other: &Differences) {
        self.count += other.count;
        let room = NAMED_PATHS.saturating_sub(self.first.len());
        self.first.extend(other.first.iter().take(room).cloned());
    }

    /// Whether source and target agree.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// `verification failed: N path(s) differ between source and target: a, b, and M more`, one line of
    /// at most `max_bytes`: long paths are shortened, and paths that do not fit are counted in "more".
    pub fn verdict(&self, max_bytes: usize) -> String {
        let head = format!(
            "verification failed: {} path(s) differ between source and target",
            self.count
        );
        let mut named: Vec<String> = self.first.iter().map(|path| quotable(path)).collect();
        loop {
            let more = self.count.saturating_sub(named.len() as u64);
            let mut items = named.clone();
            if more > 0 && !named.is_empty() {
                items.push(format!("and {more} more"));
            }
            let line = if items.is_empty() {
                head.clone()
            } else {
                format!("{head}: {}", items.join(", "))
            };
            if line.len() <= max_bytes || named.is_empty() {
                return truncate(&line, max_bytes).to_string();
            }
            named.pop();
        }
    }
}

/// A path as the verdict quotes it: on one line (rsync escapes control characters already; this holds
/// even for a path that did not come from rsync) and at most [`MAX_PATH_BYTES`].
fn quotable(path: &str) -> String {
    let escaped: String = path
        .chars()
        .map(|c| {
            if c.is_control() {
                format!("\\#{:03o}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect();
    if escaped.len() <= MAX_PATH_BYTES {
        return escaped;
    }
    let mut start = escaped.len() - (MAX_PATH_BYTES - "...".len());
    while !escaped.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &escaped[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itemized_lines_give_their_paths() {
        for (line, path) in [
            ("ferry-item: >fc........ data/a.txt", "data/a.txt"),
            ("ferry-item: *deleting   extra", "extra"),
            ("ferry-item: .f...p..... d/b", "d/b"),
            ("ferry-item: cLc.t...... link", "link"),
            ("ferry-item: .d..t...... ./", "./"),
            ("ferry-item: >f+++++++++  leading space", " leading space"),
            ("ferry-item: *deleting   new\\#012line", "new\\#012line"),
            ("ferry-item: *deleting   bad\\#377", "bad\\#377"),
            // Not the expected shape: still a difference, named as well as it can be.
            ("ferry-item: odd", "odd"),
        ] {
            assert_eq!(parse_item_line(line), Some(path), "{line:?}");
        }
        for line in [
            "",
            "      1,234  52%   10.74kB/s    0:00:00 (xfr#2, to-chk=0/7)",
            "Number of files: 7 (reg: 4, dir: 2, link: 1)",
            "deleting extra",
            "sent 232 bytes  received 56 bytes  576.00 bytes/sec",
        ] {
            assert_eq!(parse_item_line(line), None, "{line:?}");
        }
    }

    fn found(paths: &[&str]) -> Differences {
        let mut differences = Differences::default();
        for path in paths {
            differences.record(path);
        }
        differences
    }

    #[test]
    fn the_verdict_names_every_path_when_few_differ() {
        assert_eq!(
            found(&["a", "d/b", "extra"]).verdict(MAX_VERDICT_BYTES),
            "verification failed: 3 path(s) differ between source and target: a, d/b, extra"
        );
        assert!(found(&[]).is_empty());
    }

    #[test]
    fn the_verdict_names_ten_and_counts_the_rest() {
        let paths: Vec<String> = (0..25).map(|n| format!("f{n}")).collect();
        let differences = found(&paths.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!((differences.count, differences.first.len()), (25, NAMED_PATHS));
        assert_eq!(
            differences.verdict(MAX_VERDICT_BYTES),
            "verification failed: 25 path(s) differ between source and target: \
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, and 15 more"
        );
    }

    #[test]
    fn merged_runs_keep_the_first_ten_and_the_total() {
        let mut first = found(&["a", "b"]);
        first.merge(&found(&["c"; 12]));
        assert_eq!(first.count, 14);
        assert_eq!(first.first.len(), NAMED_PATHS);
        assert_eq!(&first.first[..3], ["a", "b", "c"]);
    }

    #[test]
    fn long_paths_and_control_characters_keep_the_verdict_one_bounded_line() {
        let long = format!("{}/tail-{}", "x".repeat(4000), "é".repeat(200));
        let differences = found(&[long.as_str(); 10]);
        // Ten shortened paths fit the real budget whole, ending in their file names.
        let line = differences.verdict(MAX_VERDICT_BYTES);
        assert!(line.len() <= MAX_VERDICT_BYTES, "{}", line.len());
        assert_eq!(line.matches(", ...").count(), 9, "{line}");
        assert!(line.starts_with("verification failed: 10 path(s) differ between source and target: ..."));
        assert!(line.ends_with('é') && !line.contains("xxx"), "{line}");
        // A smaller budget names fewer and counts the rest.
        let line = differences.verdict(1000);
        assert!(line.len() <= 1000, "{}", line.len());
        assert!(line.ends_with(", and 7 more"), "{line}");

        let odd = found(&["new\nline", "cr\rhere", "bad\u{fffd}"]).verdict(MAX_VERDICT_BYTES);
        assert_eq!(odd.lines().count(), 1, "{odd:?}");
        assert!(
            odd.ends_with(": new\\#012line, cr\\#015here, bad\u{fffd}"),
            "{odd:?}"
        );

        // A budget too small for any path still gives the head, cut to fit.
        let tiny = found(&["a"]).verdict(30);
        assert_eq!(tiny, "verification failed: 1 path(s)");
    }
}
