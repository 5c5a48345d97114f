//! The data plane: `ferry mover send|receive`, rsync over Ferry's own mutual-TLS tunnel (DESIGN.md §6).
//!
//! ```text
//!  source pod                                              target pod
//!  ferry mover send                                        ferry mover receive
//!    └─ rsync (client) ─stdio─ ferry mover tunnel ══mTLS══▶  └─ rsync --server --daemon (per connection)
//!                                  (optional HTTP CONNECT proxy)     module "ferry" = volume root
//! ```
//!
//! [`certs`] issues the per-migration CA and certificates; [`rsync`] builds rsync's arguments and the
//! daemon config (pure); [`progress`] parses rsync's output into JSON lines; [`tunnel`] and [`proxy`] move
//! the bytes; [`send`] and [`receive`] run the two ends; [`verify`] reads a compare-only pass's findings,
//! [`stats_file`] bounds what the controller reads back. With a manifest key, [`delta_pass`] sends only
//! what changed since the last pass: [`tree_scan`] walks the source, [`manifest`] stores what the target
//! holds, [`delta`] computes the change set. [`hold`] keeps a sender started early waiting for its release. [`scratch`] is the private folder each end writes its own
//! files in, removed on every exit that unwinds. docs/mover.md describes the CLI and exit codes.

pub mod certs;
pub(crate) mod delta;
pub(crate) mod delta_pass;
pub mod hold;
pub(crate) mod manifest;
mod paced;
pub mod progress;
pub(crate) mod proxy;
mod read_ahead;
pub mod receive;
pub(crate) mod rsync;
pub(crate) mod scratch;
pub mod send;
pub(crate) mod shard;
#[cfg(test)]
mod sni_tests;
mod stats_file;
pub(crate) mod tree_scan;
pub(crate) mod tunnel;
pub(crate) mod unreadable;
pub mod verify;

use std::io::Write as _;

pub use certs::{MoverCerts, issue};
pub use progress::{PassMode, Progress};
pub use receive::ReceiveConfig;
pub use rsync::ARCHIVE_OPTIONS;
pub use send::{SendConfig, SendOutcome};
pub use verify::Differences;

/// Writes one JSON line to stdout. Output errors (a closed pipe) are ignored: progress is advisory.
pub(crate) fn emit(record: &Progress) {
    if let Ok(line) = serde_json::to_string(record) {
        let mut stdout = std::io::stdout().lock();
        let _written = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    }
}

/// The effective uid and the supplementary groups of this process, from /proc (no libc calls needed).
pub(crate) fn process_identity() -> (Option<u32>, Vec<u32>) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    parse_identity(&status)
}

fn parse_identity(status: &str) -> (Option<u32>, Vec<u32>) {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|word| word.parse::<u32>().ok())
                    .collect::<Vec<_>>()
            })
    };
    let effective_uid = field("Uid:").and_then(|ids| ids.get(1).copied());
    (effective_uid, field("Groups:").unwrap_or_default())
}

/// Whether this process runs with effective uid 0.
pub(crate) fn running_as_root() -> bool {
    process_identity().0 == Some(0)
}

/// Checks the requested supplemental groups against what the process holds. Ferry never calls
/// setgroups: in a pod the groups come from the securityContext; as root they are not needed to read
/// or write (the receiver's daemon also gets them through its `gid` list). Missing ones are logged.
pub(crate) fn check_supplemental_groups(requested: &[u32]) -> Vec<u32> {
    let (uid, held) = process_identity();
    if uid == Some(0) {
        return Vec::new();
    }
    let missing: Vec<u32> = requested
        .iter()
        .copied()
        .filter(|gid| !held.contains(gid))
        .collect();
    if !missing.is_empty() {
        tracing::warn!(
            ?missing,
            "supplemental groups not held by this process; set them in the pod securityContext"
        );
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_comes_from_proc_status() {
        let status = "Name:\tferry\nUid:\t1000\t0\t0\t0\nGid:\t1\t1\t1\t1\nGroups:\t4 24 1000 \n";
        assert_eq!(parse_identity(status), (Some(0), vec![4, 24, 1000]));
        assert_eq!(parse_identity("Uid:\t5\t6\t7\t8\nGroups:\n"), (Some(6), vec![]));
    }
}
