//! Failure handling with real rsync: a connection cut mid-transfer is retried with backoff and ends with
//! an identical tree; files vanishing during a stage (rsync exit 24) are tolerated, during the final sync
//! they fail the run with rsync's code.

#[path = "support/mover.rs"]
mod support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use ferry::mover::Progress;
use support::*;

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[test]
fn connection_cut_mid_transfer_is_retried_to_an_identical_tree() {
    let certs = CertDirs::issue("retry");
    let work = tempfile::tempdir().unwrap();
    let (source, target) = (work.path().join("source"), work.path().join("target"));
    fs::create_dir_all(source.join("dir")).unwrap();
    fs::create_dir_all(&target).unwrap();
    fs::write(source.join("dir/big.bin"), pseudo_random(24 << 20, 7)).unwrap();
    for i in 0..50 {
        fs::write(source.join(format!("dir/small-{i}")), pseudo_random(5000, i)).unwrap();
    }
    backdate(&source, "1600000000.75");
    // The receiver drops the first connection after 8 MB from the sender: inside big.bin.
    let receiver = Receiver::start(&target, &certs.server(), &["--test-cut-after-bytes", "8000000"]);
    let output = send(&receiver.address, &certs.client(), &source, &["--retries", "3"]);
    assert!(output.status.success(), "{output:?}");
    let records = records(&output);
    let retries: Vec<_> = records
        .iter()
        .filter(|r| matches!(r, Progress::Retry { .. }))
        .collect();
    assert_eq!(retries.len(), 1, "expected exactly one retry: {records:?}");
    let Some(Progress::Stats {
        attempts, success, ..
    }) = records.last()
    else {
        panic!("no stats")
    };
    assert_eq!((*attempts, *success), (2, true));
    assert_same_tree(&source, &target);
}

/// In a parallel send only the stream that lost its connection retries; the others and the passes
/// around them are not disturbed, and the tree still comes out identical.
#[test]
fn a_parallel_stream_cut_mid_transfer_retries_alone() {
    let certs = CertDirs::issue("retry-parallel");
    let work = tempfile::tempdir().unwrap();
    let (source, target) = (work.path().join("source"), work.path().join("target"));
    fs::create_dir_all(source.join("big")).unwrap();
    fs::create_dir_all(&target).unwrap();
    fs::write(source.join("big/big.bin"), pseudo_random(24 << 20, 11)).unwrap();
    for folder in ["a", "b", "c"] {
        fs::create_dir_all(source.join(folder)).unwrap();
        for i in 0..30 {
            fs::write(source.join(format!("{folder}/f-{i}")), pseudo_random(5000, i)).unwrap();
        }
    }
    backdate(&source, "1600000000.25");
    // Only the stream carrying big.bin moves more than 8 MB.
    let receiver = Receiver::start(&target, &certs.server(), &["--test-cut-after-bytes", "8000000"]);
    let output = send(
        &receiver.address,
        &certs.client(),
        &source,
        &["--retries", "3", "--parallel", "2", "--parallel-min-bytes", "0"],
    );
    assert!(output.status.success(), "{output:?}");
    let records = records(&output);
    let retries = records
        .iter()
        .filter(|r| matches!(r, Progress::Retry { .. }))
        .count();
    assert_eq!(retries, 1, "expected exactly one retry: {records:?}");
    let Some(Progress::Stats {
        attempts,
        success,
        files_total,
        ..
    }) = records.last()
    else {
        panic!("no stats")
    };
    // The root, 4 folders, 91 files.
    assert_eq!((*attempts, *success, *files_total), (2, true, 96));
    assert_same_tree(&source, &target);
}

/// Starts a bandwidth-limited send, deletes files once it is under way, returns its output.
fn send_while_files_vanish(extra: &[&str]) -> (std::process::Output, tempfile::TempDir) {
    let certs = CertDirs::issue("vanish");
    let work = tempfile::tempdir().unwrap();
    let (source, target) = (work.path().join("source"), work.path().join("target"));
    fs::create_dir_all(&source).unwrap();
    fs::create_dir_all(&target).unwrap();
    // Sorted first and slow to send (bwlimit), so the small files are still queued when they vanish.
    fs::write(source.join("a-big"), pseudo_random(2 << 20, 1)).unwrap();
    for i in 0..20 {
        fs::write(source.join(format!("z-{i:02}")), "soon gone").unwrap();
    }
    let receiver = Receiver::start(&target, &certs.server(), &[]);
    let mut child = Command::new(FERRY)
        .args([
            "mover",
            "send",
            "--bwlimit",
            "1024",
            "--progress-interval-ms",
            "0",
            "--connect",
        ])
        .arg(&receiver.address)
        .arg("--certs-dir")
        .arg(certs.client())
        .arg("--source")
        .arg(&source)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        stdout.push_str(&line);
        stdout.push('\n');
        if line.contains(r#""type":"progress""#) {
            break;
        }
    }
    for i in 0..20 {
        fs::remove_file(source.join(format!("z-{i:02}"))).unwrap();
    }
    for line in lines {
        stdout.push_str(&line.unwrap());
        stdout.push('\n');
    }
    let status = child.wait().unwrap();
    (
        std::process::Output {
            status,
            stdout: stdout.into_bytes(),
            stderr: Vec::new(),
        },
        work,
    )
}

fn last_stats(output: &std::process::Output) -> (i32, bool) {
    match records(output).last() {
        Some(Progress::Stats {
            rsync_exit_code,
            success,
            ..
        }) => (*rsync_exit_code, *success),
        other => panic!("no stats line, last was {other:?}"),
    }
}

#[test]
fn vanished_files_are_tolerated_on_stage_only() {
    let (stage, _work) = send_while_files_vanish(&[]);
    assert!(
        stage.status.success(),
        "stage must tolerate vanished files: {stage:?}"
    );
    assert_eq!(last_stats(&stage), (24, true));

    let (last, _work) = send_while_files_vanish(&["--final"]);
    assert_eq!(
        last.status.code(),
        Some(24),
        "final sync must fail with rsync's code"
    );
    assert_eq!(last_stats(&last), (24, false));
}
