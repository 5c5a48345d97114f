//! The main mover scenario, driving the real `ferry` binary: stage a tree, change it (adds, modifies,
//! deletes, renames, permission and ownership changes), stage again, then a final sync and a verify; after
//! each run the target must equal the source (hashes, modes, ids, mtimes, links, devices).

#[path = "support/mover.rs"]
mod support;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use ferry::mover::Progress;
use support::*;

fn build_tree(root: &Path) {
    fs::create_dir_all(root.join("data/nested/deeper")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::create_dir_all(root.join("lost+found")).unwrap();
    fs::write(root.join("lost+found/junk"), "fsck leftovers").unwrap();
    fs::write(root.join("data/a.txt"), "alpha").unwrap();
    fs::write(root.join("data/nested/b.bin"), vec![7u8; 300_000]).unwrap();
    fs::write(root.join("data/nested/deeper/c.txt"), "gamma").unwrap();
    fs::write(root.join("name with spaces & 'quotes'"), "odd names").unwrap();
    fs::write(root.join("data/secret"), "0600").unwrap();
    fs::set_permissions(root.join("data/secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(root.join("data/nested"), fs::Permissions::from_mode(0o750)).unwrap();
    symlink("a.txt", root.join("data/relative-link")).unwrap();
    symlink("/etc/hostname", root.join("data/absolute-link")).unwrap();
    symlink("../../outside", root.join("data/dangling-up")).unwrap();
    fs::hard_link(root.join("data/a.txt"), root.join("data/nested/a-hardlink")).unwrap();
    // A sparse file: 8 MiB with only 4 KiB of data at the end.
    let sparse = fs::File::create(root.join("sparse.img")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    drop(sparse);
    let mut data = fs::OpenOptions::new()
        .write(true)
        .open(root.join("sparse.img"))
        .unwrap();
    use std::io::{Seek, SeekFrom, Write};
    data.seek(SeekFrom::Start((8 << 20) - 4096)).unwrap();
    data.write_all(&[1u8; 4096]).unwrap();
    run("mkfifo", &[root.join("data/fifo").to_str().unwrap()]);
    if is_root() {
        run(
            "mknod",
            &[root.join("data/null-device").to_str().unwrap(), "c", "1", "3"],
        );
        std::os::unix::fs::chown(root.join("data/a.txt"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("data/relative-link"), Some(4321), Some(8765)).unwrap();
        std::os::unix::fs::chown(root.join("data/nested"), Some(1000), Some(1000)).unwrap();
    }
}

fn change_tree(root: &Path) {
    fs::write(root.join("data/new-file"), "added between stages").unwrap();
    fs::create_dir_all(root.join("new-dir/sub")).unwrap();
    fs::write(root.join("new-dir/sub/x"), "x").unwrap();
    // Same size, different content, different mtime.
    fs::write(root.join("data/nested/deeper/c.txt"), "GAMMA").unwrap();
    fs::remove_file(root.join("data/nested/b.bin")).unwrap();
    fs::rename(root.join("data/secret"), root.join("data/renamed-secret")).unwrap();
    fs::set_permissions(root.join("data/a.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::remove_dir(root.join("empty")).unwrap();
    fs::remove_file(root.join("data/relative-link")).unwrap();
    symlink("nested/deeper/c.txt", root.join("data/relative-link")).unwrap();
    fs::hard_link(root.join("data/new-file"), root.join("new-dir/new-hardlink")).unwrap();
    if is_root() {
        std::os::unix::fs::chown(root.join("data/a.txt"), Some(2000), Some(3000)).unwrap();
        std::os::unix::fs::chown(root.join("data/renamed-secret"), Some(42), Some(43)).unwrap();
    }
}

fn stats_of(records: &[Progress]) -> Progress {
    records
        .iter()
        .rev()
        .find(|r| matches!(r, Progress::Stats { .. }))
        .expect("no stats line")
        .clone()
}

#[test]
fn stage_change_stage_final_mirrors_the_tree_in_one_stream() {
    mirror_through_stages(&["--parallel", "1"], 1);
}

/// The same story cut into parallel streams (forced on this small tree): root-level files, deletions at
/// the root, and a hard link across two top-level folders (which must share a stream) all come out right.
#[test]
fn stage_change_stage_final_mirrors_the_tree_in_parallel_streams() {
    mirror_through_stages(&["--parallel", "3", "--parallel-min-bytes", "0"], 3);
}

/// How many streams the send said it used (its `source scanned` log line; 1 when it did not scan).
fn streams_used(output: &std::process::Output) -> u64 {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|record| record["fields"]["message"] == "source scanned")
        .and_then(|record| record["fields"]["streams"].as_u64())
        .unwrap_or(1)
}

fn mirror_through_stages(parallel: &[&str], streams: u64) {
    let send = |address: &str, certs: &std::path::Path, source: &std::path::Path, extra: &[&str]| {
        let args: Vec<&str> = extra.iter().chain(parallel).copied().collect();
        let output = send(address, certs, source, &args);
        assert_eq!(streams_used(&output), streams, "{output:?}");
        output
    };
    let certs = CertDirs::issue("sync-test");
    let work = tempfile::tempdir().unwrap();
    let (source, target) = (work.path().join("source"), work.path().join("target"));
    fs::create_dir_all(&source).unwrap();
    fs::create_dir_all(target.join("lost+found")).unwrap();
    fs::write(target.join("stale-on-target"), "must be deleted").unwrap();
    build_tree(&source);
    backdate(&source, "1600000000.123456789");
    let receiver = Receiver::start(&target, &certs.server(), &[]);

    let first = send(
        &receiver.address,
        &certs.client(),
        &source,
        &["--progress-interval-ms", "0"],
    );
    assert!(first.status.success(), "first stage failed: {first:?}");
    assert_same_tree(&source, &target);
    assert!(
        !target.join("lost+found/junk").exists(),
        "lost+found must not be transferred"
    );
    let records = records(&first);
    assert!(
        records.iter().any(|r| matches!(r, Progress::Progress { .. })),
        "no progress lines"
    );
    let Progress::Stats {
        success,
        rsync_exit_code,
        files_transferred,
        total_size,
        bytes_sent,
        ..
    } = stats_of(&records)
    else {
        unreachable!()
    };
    assert!(success && rsync_exit_code == 0);
    assert!(files_transferred >= 6, "files_transferred {files_transferred}");
    assert!(total_size >= (8 << 20) + 300_000, "total_size {total_size}");
    assert!(bytes_sent > 0);
    // The sparse file stays sparse on the target.
    let sparse = fs::metadata(target.join("sparse.img")).unwrap();
    assert!(
        std::os::unix::fs::MetadataExt::blocks(&sparse) * 512 < 1 << 20,
        "sparse file was filled"
    );

    change_tree(&source);
    backdate(&source.join("new-dir"), "1700000000.5");
    backdate(&source.join("data"), "1700000001.25");
    run("touch", &["-h", "-d", "@1700000002", source.to_str().unwrap()]);
    let second = send(&receiver.address, &certs.client(), &source, &[]);
    assert!(second.status.success(), "second stage failed: {second:?}");
    assert_same_tree(&source, &target);
    let Progress::Stats { files_deleted, .. } = stats_of(&records_of(&second)) else {
        unreachable!()
    };
    assert!(files_deleted >= 3, "deletes not mirrored: {files_deleted}");

    let last = send(&receiver.address, &certs.client(), &source, &["--final"]);
    assert!(last.status.success(), "final sync failed: {last:?}");
    assert_same_tree(&source, &target);
    let Progress::Stats {
        files_transferred, ..
    } = stats_of(&records_of(&last))
    else {
        unreachable!()
    };
    assert_eq!(files_transferred, 0, "nothing changed, nothing to send");

    // The verify after it compares every checksum and finds nothing (e2e/mover_verify.rs: when it does).
    // Always one stream, so not through the closure that checks the stream count.
    let verified = support::send(&receiver.address, &certs.client(), &source, &["--verify"]);
    assert!(verified.status.success(), "verify failed: {verified:?}");
    let Progress::Stats {
        success,
        files_transferred,
        ..
    } = stats_of(&records_of(&verified))
    else {
        unreachable!()
    };
    assert!(success && files_transferred == 0);
}

fn records_of(output: &std::process::Output) -> Vec<Progress> {
    records(output)
}

/// A file rewritten within the same second at the same size, and a directory changed within the same
/// second as the previous sync: rsync's default whole-second time comparison misses both (stale data,
/// a wrong directory mtime); the mover compares to the nanosecond.
#[test]
fn changes_within_the_same_second_are_not_missed() {
    let certs = CertDirs::issue("same-second");
    let work = tempfile::tempdir().unwrap();
    let (source, target) = (work.path().join("source"), work.path().join("target"));
    fs::create_dir_all(source.join("db")).unwrap();
    fs::create_dir_all(&target).unwrap();
    fs::write(source.join("db/page"), "before").unwrap();
    backdate(&source, "1600000000.100000000");
    let receiver = Receiver::start(&target, &certs.server(), &[]);
    assert!(
        send(&receiver.address, &certs.client(), &source, &[])
            .status
            .success()
    );
    assert_same_tree(&source, &target);

    fs::write(source.join("db/page"), "after!").unwrap();
    fs::write(source.join("db/new"), "n").unwrap();
    backdate(&source, "1600000000.900000000");
    assert!(
        send(&receiver.address, &certs.client(), &source, &[])
            .status
            .success()
    );
    assert_eq!(fs::read_to_string(target.join("db/page")).unwrap(), "after!");
    assert_same_tree(&source, &target);
}
