//! `ferry mover send --verify` against a real receiver (real rsync, the `ferry` binary, loopback TLS):
//! identical trees pass; a target that differs in content (same size and mtime), mode, symlink target,
//! owner (as root), a missing and an extra file fails with exit 1, names every one of those paths in the
//! stats file and on stderr, and is left exactly as it was; `--checksum` then repairs what a plain sync
//! cannot see. The message stays one bounded line however many or odd the paths.

#[path = "support/mover.rs"]
mod support;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::PathBuf;
use std::process::Output;

use ferry::mover::Progress;
use support::*;

/// A source tree, a receiver on a target synced from it, and a place for the stats file.
struct Synced {
    _work: tempfile::TempDir,
    certs: CertDirs,
    source: PathBuf,
    target: PathBuf,
    stats_file: PathBuf,
    receiver: Receiver,
}

impl Synced {
    fn new(uid: &str) -> Synced {
        let certs = CertDirs::issue(uid);
        let work = tempfile::tempdir().unwrap();
        let (source, target) = (work.path().join("source"), work.path().join("target"));
        fs::create_dir_all(source.join("data")).unwrap();
        fs::create_dir_all(&target).unwrap();
        for (name, text) in [
            ("data/content.txt", "original"),
            ("data/mode.txt", "mode"),
            ("data/owned.txt", "owned"),
            ("data/gone.txt", "deleted on the target"),
            ("data/same.txt", "untouched"),
        ] {
            fs::write(source.join(name), text).unwrap();
        }
        symlink("same.txt", source.join("data/link")).unwrap();
        backdate(&source, "1600000000.250000000");
        let receiver = Receiver::start(&target, &certs.server(), &[]);
        let stats_file = work.path().join("termination-log");
        let synced = Synced {
            certs,
            source,
            target,
            stats_file,
            receiver,
            _work: work,
        };
        let first = synced.send(&[]);
        assert!(first.status.success(), "first sync failed: {first:?}");
        assert_same_tree(&synced.source, &synced.target);
        synced
    }

    fn send(&self, extra: &[&str]) -> Output {
        send(&self.receiver.address, &self.certs.client(), &self.source, extra)
    }

    fn verify(&self, extra: &[&str]) -> Output {
        let mut args = vec!["--verify", "--stats-file", self.stats_file.to_str().unwrap()];
        args.extend(extra);
        self.send(&args)
    }

    /// The stats file: the record on its first line, the reason (if any) on the second.
    fn stats_file(&self) -> (Progress, Option<String>, usize) {
        let text = fs::read_to_string(&self.stats_file).unwrap();
        let mut lines = text.split('\n');
        let record = serde_json::from_str(lines.next().unwrap()).unwrap();
        let reason = lines.next().map(str::to_string);
        assert_eq!(lines.next(), None, "more than two lines: {text:?}");
        (record, reason, text.len())
    }

    /// Sets the target's folders' mtimes back to the source's, so only the planted differences remain.
    fn restore_dir_times(&self) {
        for dir in ["", "data"] {
            let (source, target) = (self.source.join(dir), self.target.join(dir));
            run(
                "touch",
                &["-h", "-r", source.to_str().unwrap(), target.to_str().unwrap()],
            );
        }
    }
}

fn exit_code(output: &Output) -> Option<i32> {
    output.status.code()
}

fn final_record(output: &Output) -> Progress {
    records(output)
        .into_iter()
        .rev()
        .find(|r| matches!(r, Progress::Stats { .. }))
        .expect("no stats line")
}

fn success_and_code(record: &Progress) -> (bool, i32) {
    let Progress::Stats {
        success,
        rsync_exit_code,
        ..
    } = record
    else {
        panic!("not a stats record: {record:?}")
    };
    (*success, *rsync_exit_code)
}

#[test]
fn identical_trees_pass() {
    let synced = Synced::new("verify-same");
    let before = snapshot(&synced.target, &[]);
    let verified = synced.verify(&[]);
    assert_eq!(exit_code(&verified), Some(0), "{verified:?}");
    assert_eq!(success_and_code(&final_record(&verified)), (true, 0));
    let (record, reason, _) = synced.stats_file();
    assert_eq!(success_and_code(&record), (true, 0));
    assert_eq!(reason, None);
    assert_eq!(snapshot(&synced.target, &[]), before);
}

#[test]
fn differences_fail_naming_each_path_and_change_nothing() {
    let synced = Synced::new("verify-differ");
    let target = &synced.target;
    // Same size, same mtime to the nanosecond: only a checksum tells.
    fs::write(target.join("data/content.txt"), "ORIGINAL").unwrap();
    let (source_content, target_content) = (
        synced.source.join("data/content.txt"),
        target.join("data/content.txt"),
    );
    run(
        "touch",
        &[
            "-r",
            source_content.to_str().unwrap(),
            target_content.to_str().unwrap(),
        ],
    );
    fs::set_permissions(target.join("data/mode.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(target.join("data/gone.txt")).unwrap();
    fs::write(target.join("extra.txt"), "only on the target").unwrap();
    fs::remove_file(target.join("data/link")).unwrap();
    symlink("content.txt", target.join("data/link")).unwrap();
    run(
        "touch",
        &[
            "-h",
            "-d",
            "@1600000000.25",
            target.join("data/link").to_str().unwrap(),
        ],
    );
    // Names rsync must escape: a newline, and a byte that is not UTF-8.
    fs::write(target.join("new\nline"), "odd").unwrap();
    fs::write(target.join(OsStr::from_bytes(b"bad\xff")), "odd").unwrap();
    let mut expected = vec![
        "data/content.txt",
        "data/mode.txt",
        "data/gone.txt",
        "extra.txt",
        "data/link",
        "new\\#012line",
        "bad\\#377",
    ];
    if is_root() {
        std::os::unix::fs::chown(target.join("data/owned.txt"), Some(4242), Some(4243)).unwrap();
        expected.push("data/owned.txt");
    }
    synced.restore_dir_times();
    let before = snapshot(target, &[]);

    // Parallel streams asked for: a verify still runs one stream (no scan).
    let verified = synced.verify(&["--parallel", "3", "--parallel-min-bytes", "0"]);
    assert_eq!(exit_code(&verified), Some(1), "{verified:?}");
    assert_eq!(snapshot(target, &[]), before, "the verify changed the target");
    assert_eq!(success_and_code(&final_record(&verified)), (false, 0));
    let stderr = String::from_utf8_lossy(&verified.stderr);
    assert!(!stderr.contains("source scanned"), "{stderr}");

    let (record, reason, _) = synced.stats_file();
    assert_eq!(success_and_code(&record), (false, 0));
    let reason = reason.expect("no reason after the record");
    let head = format!(
        "verification failed: {} path(s) differ between source and target: ",
        expected.len()
    );
    assert!(reason.starts_with(&head), "{reason}");
    let named: Vec<&str> = reason[head.len()..].split(", ").collect();
    let mut sorted_named = named.clone();
    sorted_named.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sorted_named, expected, "{reason}");
    assert!(
        stderr.lines().any(|line| line == reason),
        "stderr lacks {reason:?}:\n{stderr}"
    );

    // A sync repairs what the verify found, except the content change: a sync trusts size and mtime,
    // which the change kept. `--checksum` repairs that too, and then the verify passes.
    let repaired = synced.send(&[]);
    assert!(repaired.status.success(), "{repaired:?}");
    assert_eq!(exit_code(&synced.verify(&[])), Some(1));
    assert_eq!(
        synced.stats_file().1.as_deref(),
        Some("verification failed: 1 path(s) differ between source and target: data/content.txt")
    );
    let checksummed = synced.send(&["--checksum"]);
    assert!(checksummed.status.success(), "{checksummed:?}");
    let again = synced.verify(&[]);
    assert_eq!(exit_code(&again), Some(0), "{again:?}");
    assert_eq!(synced.stats_file().1, None);
    assert_same_tree(&synced.source, &synced.target);
}

#[test]
fn many_long_paths_keep_the_message_one_line_within_a_termination_message() {
    let synced = Synced::new("verify-many");
    let long = "l".repeat(200);
    for n in 0..40 {
        fs::write(synced.target.join(format!("{long}-{n:02}")), "extra").unwrap();
    }
    synced.restore_dir_times();
    let before = snapshot(&synced.target, &[]);
    let verified = synced.verify(&[]);
    assert_eq!(exit_code(&verified), Some(1), "{verified:?}");
    assert_eq!(snapshot(&synced.target, &[]), before);
    let (record, reason, size) = synced.stats_file();
    assert_eq!(success_and_code(&record), (false, 0));
    let reason = reason.unwrap();
    assert!(size < 4096, "{size} bytes");
    assert!(
        reason.starts_with("verification failed: 40 path(s) differ between source and target: "),
        "{reason}"
    );
    assert!(reason.ends_with(", and 30 more"), "{reason}");
    assert_eq!(reason.matches(&long).count(), 10, "{reason}");
}

/// The stats file of a verify that could not run at all carries rsync's failure, not a verdict.
#[test]
fn a_verify_that_cannot_connect_reports_rsync_not_a_verdict() {
    let synced = Synced::new("verify-unreachable");
    let verified = send(
        "127.0.0.1:1",
        &synced.certs.client(),
        &synced.source,
        &[
            "--verify",
            "--retries",
            "0",
            "--stats-file",
            synced.stats_file.to_str().unwrap(),
        ],
    );
    let code = exit_code(&verified).unwrap();
    assert!(code != 0 && code != 1, "{verified:?}");
    let (record, reason, _) = synced.stats_file();
    let (success, rsync_code) = success_and_code(&record);
    assert!(!success && rsync_code == code, "{record:?}");
    assert!(reason.unwrap().starts_with("rsync exited with code"));
}
