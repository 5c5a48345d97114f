//! The mover's machine-readable output: one JSON object per line on stdout ([`Progress`], which the
//! controller deserializes), and the pure parsers that turn rsync's `--info=progress2,stats2` text into
//! it. rsync rewrites its progress line with `\r`, so callers split on both `\r` and `\n`.

use serde::{Deserialize, Serialize};

/// One line of mover output. Tagged by `"type"`; fields in camelCase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Progress {
    /// The receiver is accepting connections on this address.
    Listening {
        /// `ip:port` actually bound (useful with port 0).
        address: String,
    },
    /// A transfer is under way (at most a few per second).
    Progress {
        /// Bytes of file data processed so far (sent or matched).
        bytes_done: u64,
        /// Estimated total bytes (grows while rsync is still scanning the tree).
        bytes_total: u64,
        /// Files checked so far.
        files_done: u64,
        /// Files known so far.
        files_total: u64,
        /// Current rate in bytes per second, as rsync reports it.
        rate_bytes_per_sec: u64,
        /// Seconds since the send started.
        elapsed_secs: f64,
        /// 1 for the first attempt, then 2, 3... after retries (the highest of parallel streams).
        attempt: u32,
    },
    /// An attempt failed with a retryable error; another follows after `delaySecs`.
    Retry {
        /// The attempt that failed.
        attempt: u32,
        /// rsync's exit code for it.
        rsync_exit_code: i32,
        /// The last line rsync wrote to stderr.
        message: String,
        /// Wait before the next attempt.
        delay_secs: f64,
    },
    /// A sender started before the source is quiesced waits for its release (`--hold-file`);
    /// printed when it starts waiting (and again after it read the target's manifest).
    Held {
        /// Seconds it will wait before giving up.
        timeout_secs: u64,
        /// Printed again, still held, once the target's manifest was read while waiting (a delta
        /// pass): its entries. Absent in the first record, and when there was none to read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefetched: Option<u64>,
    },
    /// The release came: the pass starts now.
    Released {
        /// Seconds the sender was held.
        waited_secs: f64,
    },
    /// Which pass a send with a manifest runs, and why; printed once, before rsync starts.
    Mode {
        /// Only what changed since the manifest, or the whole tree.
        mode: PassMode,
        /// Why a full pass ran (`no manifest`, `corrupt manifest (...)`, ...); absent for a delta pass.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Entries changed or new since the manifest (0 for a full pass).
        changed: u64,
        /// Paths deleted since the manifest (0 for a full pass).
        deleted: u64,
        /// Entries the source scan found.
        entries: u64,
    },
    /// The final record of a `send` run, success or not.
    Stats {
        /// Bytes rsync wrote to the connection (after delta compression).
        bytes_sent: u64,
        /// Bytes rsync read from the connection.
        bytes_received: u64,
        /// Regular files whose data was transferred.
        files_transferred: u64,
        /// Entries in the file list (files, directories, links...).
        files_total: u64,
        /// Sum of the sizes of all files in the tree.
        total_size: u64,
        /// Files deleted on the receiver.
        files_deleted: u64,
        /// Wall-clock seconds of the whole run, all attempts.
        duration_secs: f64,
        /// Exit code of the last rsync run (0, 24 when tolerated, or the failure).
        rsync_exit_code: i32,
        /// How many rsync runs it took.
        attempts: u32,
        /// Whether the run counts as a success.
        success: bool,
        /// How the pass went about it (`delta pass: N changed, M deleted`, or `full pass: <why>`); absent for a
        /// pass without a manifest key (or from an older mover).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pass: Option<String>,
    },
}

/// The kind of pass a [`Progress::Mode`] record announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PassMode {
    /// Only the paths that changed since the manifest (docs/mover.md, "Delta passes").
    Delta,
    /// The whole tree, as rsync walks it.
    Full,
}

impl PassMode {
    /// The word used in records and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            PassMode::Delta => "delta",
            PassMode::Full => "full",
        }
    }
}

/// One parsed `--info=progress2` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ProgressLine {
    pub bytes_done: u64,
    pub percent: u64,
    pub rate_bytes_per_sec: u64,
    /// `(files left to check, files known)` from `to-chk=` or `ir-chk=`, when present.
    pub to_check: Option<(u64, u64)>,
}

impl ProgressLine {
    /// Estimated total bytes from the percentage (rsync rounds it down).
    pub(crate) fn bytes_total(&self) -> u64 {
        if self.percent == 0 {
            self.bytes_done
        } else {
            (u128::from(self.bytes_done) * 100 / u128::from(self.percent)) as u64
        }
    }
}

/// The latest progress of each rsync run of one send, summed into one [`Progress::Progress`]: a parallel
/// send runs several at once (and passes one after another), and the controller wants one figure.
#[derive(Debug, Clone, Default)]
pub(crate) struct Board {
    /// Per run: its latest line and attempt; a finished run keeps its last line.
    slots: Vec<Option<(ProgressLine, u32)>>,
}

impl Board {
    /// A board for `runs` runs.
    pub(crate) fn new(runs: usize) -> Self {
        Self {
            slots: vec![None; runs],
        }
    }

    /// Records run `slot`'s latest line (a retry's first line replaces the failed attempt's).
    pub(crate) fn update(&mut self, slot: usize, line: ProgressLine, attempt: u32) {
        if let Some(entry) = self.slots.get_mut(slot) {
            *entry = Some((line, attempt));
        }
    }

    /// The sum over all runs, as the record to print.
    pub(crate) fn total(&self, elapsed_secs: f64) -> Progress {
        let (mut bytes_done, mut bytes_total, mut files_done, mut files_total, mut rate) = (0, 0, 0, 0, 0);
        let mut attempt = 1;
        for (line, run_attempt) in self.slots.iter().flatten() {
            bytes_done += line.bytes_done;
            bytes_total += line.bytes_total();
            if let Some((left, total)) = line.to_check {
                files_done += total - left.min(total);
                files_total += total;
            }
            rate += line.rate_bytes_per_sec;
            attempt = attempt.max(*run_attempt);
        }
        Progress::Progress {
            bytes_done,
            bytes_total,
            files_done,
            files_total,
            rate_bytes_per_sec: rate,
            elapsed_secs,
            attempt,
        }
    }
}

/// Parses a line like `  1,234,567  45%   12.34MB/s    0:00:01 (xfr#3, to-chk=10/20)`.
pub(crate) fn parse_progress_line(line: &str) -> Option<ProgressLine> {
    let mut words = line.split_whitespace();
    let bytes_done = parse_number(words.next()?)?;
    let percent = words.next()?.strip_suffix('%')?.parse().ok()?;
    let rate_bytes_per_sec = parse_rate(words.next()?)?;
    let _elapsed = words.next()?;
    let rest: String = words.collect::<Vec<_>>().join(" ");
    let to_check = ["to-chk=", "ir-chk="].iter().find_map(|key| {
        let start = rest.find(key)? + key.len();
        let tail = &rest[start..];
        let end = tail.find(')').unwrap_or(tail.len());
        let (left, total) = tail[..end].split_once('/')?;
        Some((left.parse().ok()?, total.parse().ok()?))
    });
    Some(ProgressLine {
        bytes_done,
        percent,
        rate_bytes_per_sec,
        to_check,
    })
}

fn parse_number(text: &str) -> Option<u64> {
    let digits: String = text.chars().filter(|c| *c != ',' && *c != '.').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || text.contains('.') {
        return None;
    }
    digits.parse().ok()
}

fn parse_rate(text: &str) -> Option<u64> {
    let number_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))?;
    let (number, unit) = text.split_at(number_end);
    let value: f64 = number.replace(',', "").parse().ok()?;
    let scale = match unit {
        "B/s" => 1.0,
        "kB/s" | "KB/s" => 1024.0,
        "MB/s" => 1024.0 * 1024.0,
        "GB/s" => 1024.0 * 1024.0 * 1024.0,
        "TB/s" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((value * scale) as u64)
}

/// Totals from rsync's `--info=stats2` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Stats {
    pub files_total: u64,
    pub files_transferred: u64,
    pub files_deleted: u64,
    pub total_size: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl Stats {
    /// Feeds one output line; lines that are not stats are ignored.
    pub(crate) fn absorb(&mut self, line: &str) {
        let Some((key, value)) = line.split_once(':') else {
            return;
        };
        let Some(number) = value.split_whitespace().next().and_then(parse_number) else {
            return;
        };
        match key.trim() {
            "Number of files" => self.files_total = number,
            "Number of regular files transferred" => self.files_transferred = number,
            "Number of deleted files" => self.files_deleted = number,
            "Total file size" => self.total_size = number,
            "Total bytes sent" => self.bytes_sent = number,
            "Total bytes received" => self.bytes_received = number,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_sums_parallel_runs_and_a_retry_replaces_its_run() {
        let line = |done: u64, percent: u64, left: u64, total: u64| ProgressLine {
            bytes_done: done,
            percent,
            rate_bytes_per_sec: 10,
            to_check: Some((left, total)),
        };
        let mut board = Board::new(3);
        board.update(0, line(100, 50, 1, 4), 1);
        board.update(1, line(300, 100, 0, 6), 1);
        let expected = Progress::Progress {
            bytes_done: 400,
            bytes_total: 500,
            files_done: 9,
            files_total: 10,
            rate_bytes_per_sec: 20,
            elapsed_secs: 1.5,
            attempt: 1,
        };
        assert_eq!(board.total(1.5), expected);
        board.update(0, line(0, 0, 4, 4), 2);
        let Progress::Progress {
            bytes_done, attempt, ..
        } = board.total(2.0)
        else {
            panic!()
        };
        assert_eq!((bytes_done, attempt), (300, 2));
        board.update(7, line(1, 1, 0, 1), 1); // no such run: ignored
    }

    #[test]
    fn parses_progress2_lines() {
        let line =
            parse_progress_line("    536,870,912  50%  412.50MB/s    0:00:01 (xfr#1, to-chk=3/5)").unwrap();
        assert_eq!(line.bytes_done, 536_870_912);
        assert_eq!(line.percent, 50);
        assert_eq!(line.rate_bytes_per_sec, (412.5 * 1024.0 * 1024.0) as u64);
        assert_eq!(line.to_check, Some((3, 5)));
        assert_eq!(line.bytes_total(), 1_073_741_824);

        let early = parse_progress_line("          0   0%    0.00kB/s    0:00:00").unwrap();
        assert_eq!(
            (early.bytes_done, early.to_check, early.bytes_total()),
            (0, None, 0)
        );
        let scanning = parse_progress_line("  4,096 1% 3.91kB/s 0:00:00 (xfr#1, ir-chk=1000/1024)").unwrap();
        assert_eq!(scanning.to_check, Some((1000, 1024)));
    }

    #[test]
    fn ignores_other_output() {
        for line in [
            "",
            "sending incremental file list",
            "Number of files: 5",
            "deleting a/b",
            "1.5 2% x y",
        ] {
            assert_eq!(parse_progress_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn collects_stats2_totals() {
        let mut stats = Stats::default();
        for line in [
            "Number of files: 1,005 (reg: 1,000, dir: 5)",
            "Number of created files: 10 (reg: 10)",
            "Number of deleted files: 2 (reg: 2)",
            "Number of regular files transferred: 10",
            "Total file size: 4,096,000 bytes",
            "Total transferred file size: 40,960 bytes",
            "Total bytes sent: 52,311",
            "Total bytes received: 1,234",
            "sent 52,311 bytes  received 1,234 bytes  107,090.00 bytes/sec",
        ] {
            stats.absorb(line);
        }
        assert_eq!(
            stats,
            Stats {
                files_total: 1005,
                files_transferred: 10,
                files_deleted: 2,
                total_size: 4_096_000,
                bytes_sent: 52_311,
                bytes_received: 1_234,
            }
        );
    }

    #[test]
    fn progress_json_is_camel_case_and_round_trips() {
        let record = Progress::Stats {
            bytes_sent: 1,
            bytes_received: 2,
            files_transferred: 3,
            files_total: 4,
            total_size: 5,
            files_deleted: 0,
            duration_secs: 1.5,
            rsync_exit_code: 24,
            attempts: 1,
            success: true,
            pass: None,
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.starts_with(r#"{"type":"stats","bytesSent":1"#), "{json}");
        assert_eq!(serde_json::from_str::<Progress>(&json).unwrap(), record);
    }
}
