//! Part of `mover_security` (included with `#[path]`): who the movers run as, attacked with the real
//! binary and real rsync. A non-root sender meeting files it may not read fails naming every one; the
//! default root movers, holding only the capabilities the pod specs add (the same lists, from
//! `ferry::pipeline::movers::capabilities`, imposed with `setpriv --bounding-set`), copy a uid-999 0700
//! tree with its owners and modes, and a device file; and the receiver leaves nothing in its TMPDIR
//! however it stops.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use ferry::pipeline::movers::{Side, capabilities};

use super::support::*;

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// `path` (and everything below it) owned by `uid:gid`, symlinks themselves included.
fn chown_tree(path: &Path, uid: u32, gid: u32) {
    run("chown", &["-hR", &format!("{uid}:{gid}"), path.to_str().unwrap()]);
}

/// The ferry binary where uid 999 can run it (the build lives under /root, mode 0700).
fn public_ferry(dir: &Path) -> PathBuf {
    let path = dir.join("ferry");
    if fs::hard_link(FERRY, &path).is_err() {
        fs::copy(FERRY, &path).unwrap();
    }
    chmod(&path, 0o755);
    path
}

/// `ferry` under `setpriv`, limited to `side`'s capabilities as the pod spec does (drop ALL, add
/// these; no privilege escalation).
fn ferry_with_capabilities_of(side: Side) -> Command {
    let caps: Vec<String> = capabilities(side)
        .iter()
        .map(|c| format!("+{}", c.to_lowercase()))
        .collect();
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--bounding-set=-all,{}", caps.join(",")))
        .arg("--inh-caps=-all")
        .arg("--no-new-privs")
        .arg(FERRY);
    command
}

/// A receiver process, killed when dropped (a std `Child` is not).
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _killed = child.kill();
            let _waited = child.wait();
        }
    }
}

/// Starts a receiver from `command` (a `ferry mover receive` to be) and waits for its address.
fn start_receiver(mut command: Command, root: &Path, certs: &Path) -> (Running, String) {
    let mut child = command
        .args(["mover", "receive", "--listen", "127.0.0.1:0", "--root"])
        .arg(root)
        .arg("--certs-dir")
        .arg(certs)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _sent = sender.send(line);
        }
    });
    let line = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("receiver printed no listening line");
    let ferry::mover::Progress::Listening { address } = serde_json::from_str(&line).unwrap() else {
        panic!("unexpected first line {line}")
    };
    (Running(Some(child)), address)
}

fn send_with(mut command: Command, address: &str, certs: &Path, source: &Path, extra: &[&str]) -> Output {
    let output = command
        .args([
            "mover",
            "send",
            "--connect",
            address,
            "--retries",
            "0",
            "--certs-dir",
        ])
        .arg(certs)
        .arg("--source")
        .arg(source)
        .args(extra)
        .output()
        .unwrap();
    eprintln!("send stderr: {}", String::from_utf8_lossy(&output.stderr));
    output
}

fn stop(mut running: Running, signal: &str) -> std::process::ExitStatus {
    let mut child = running.0.take().unwrap();
    run("kill", &[&format!("-{signal}"), &child.id().to_string()]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "receiver ignored SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_non_root_sender_names_every_file_it_cannot_read_and_fails() {
    if !is_root() {
        eprintln!("skipped: needs root to make root-only files and to switch to uid 999");
        return;
    }
    let certs = CertDirs::issue("restricted");
    let work = tempfile::tempdir().unwrap();
    chmod(work.path(), 0o755);
    // uid 999 must read its client certificate (in a pod: the Secret, mounted for its user).
    chmod(certs.dir.path(), 0o755);
    chmod(&certs.client(), 0o755);
    for file in ["ca.crt", "tls.crt", "tls.key"] {
        chmod(&certs.client().join(file), 0o644);
    }
    let ferry = public_ferry(work.path());
    let (source, target, tmp) = (
        work.path().join("source"),
        work.path().join("target"),
        work.path().join("tmp"),
    );
    for dir in [&source, &target, &tmp] {
        fs::create_dir_all(dir).unwrap();
    }
    chmod(&tmp, 0o777);
    fs::create_dir_all(source.join("public")).unwrap();
    fs::write(source.join("public/readme"), "anyone").unwrap();
    fs::create_dir_all(source.join("db/base")).unwrap();
    fs::write(source.join("db/base/1"), "rows").unwrap();
    chmod(&source.join("db"), 0o700);
    fs::write(source.join("secret.key"), "key").unwrap();
    chmod(&source.join("secret.key"), 0o600);
    let (receiver, address) = start_receiver(Command::new(FERRY), &target, &certs.server());

    let mut as_999 = Command::new("setpriv");
    as_999
        .args(["--reuid", "999", "--regid", "999", "--clear-groups"])
        .arg(&ferry)
        .env("TMPDIR", &tmp);
    let stats_file = tmp.join("termination-log");
    let output = send_with(
        as_999,
        &address,
        &certs.client(),
        &source,
        // As in a pod: a manifest key (delta passes), the stats file as the termination message.
        &[
            "--stats-file",
            stats_file.to_str().unwrap(),
            "--manifest-key",
            "src-uid/shop-new/db",
        ],
    );
    drop(receiver);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(23), "{stderr}");
    let verdict = stderr
        .lines()
        .find(|line| line.contains("could not be read"))
        .unwrap_or_else(|| panic!("no line names the unreadable files: {stderr}"));
    assert!(
        verdict.contains("2 file(s)") && verdict.contains(": db, secret.key;"),
        "{verdict}"
    );
    assert!(!verdict.contains("public"), "a readable file named: {verdict}");
    // What the controller reads back (the termination message) says the same.
    let recorded = fs::read_to_string(&stats_file).unwrap();
    assert!(recorded.contains("db, secret.key"), "{recorded}");
    let stats = records(&output).into_iter().last().unwrap();
    assert!(
        matches!(
            stats,
            ferry::mover::Progress::Stats {
                success: false,
                rsync_exit_code: 23,
                ..
            }
        ),
        "{stats:?}"
    );
    assert_eq!(
        entries(&tmp),
        ["termination-log"],
        "the sender left scratch files"
    );
}

#[test]
fn root_movers_with_only_their_capabilities_preserve_a_uid_999_0700_tree() {
    if !is_root() {
        eprintln!("skipped: needs root to own files as uid 999 and to bound capabilities");
        return;
    }
    let certs = CertDirs::issue("ownership");
    let work = tempfile::tempdir().unwrap();
    let (source, target) = (work.path().join("source"), work.path().join("target"));
    fs::create_dir_all(&target).unwrap();
    // A database's tree: everything uid 999, directories 0700, files 0600, a read-only folder, a
    // setgid folder of another group, a setuid program, a fifo and a symlink.
    let db = source.join("pgdata");
    fs::create_dir_all(db.join("base/16384")).unwrap();
    fs::write(db.join("PG_VERSION"), "17\n").unwrap();
    fs::write(db.join("base/16384/1259"), vec![7u8; 70_000]).unwrap();
    fs::create_dir_all(db.join("frozen")).unwrap();
    fs::write(db.join("frozen/archive"), "old").unwrap();
    fs::create_dir_all(source.join("shared")).unwrap();
    fs::write(source.join("shared/note"), "group").unwrap();
    fs::write(source.join("helper"), "#!/bin/sh\n").unwrap();
    run("mkfifo", &[db.join("socket.fifo").to_str().unwrap()]);
    std::os::unix::fs::symlink("base/16384/1259", db.join("current")).unwrap();
    chown_tree(&source, 999, 999);
    chown(source.join("shared"), Some(999), Some(998)).unwrap();
    chown(source.join("shared/note"), Some(999), Some(998)).unwrap();
    for (path, mode) in [
        ("pgdata/PG_VERSION", 0o600),
        ("pgdata/base/16384/1259", 0o600),
        ("pgdata/frozen/archive", 0o400),
        ("pgdata/base/16384", 0o700),
        ("pgdata/base", 0o700),
        ("pgdata/frozen", 0o500),
        ("pgdata", 0o700),
        ("shared/note", 0o640),
        ("shared", 0o2750),
        ("helper", 0o4755),
    ] {
        chmod(&source.join(path), mode);
    }
    backdate(&source, "1600000000.25");

    let (receiver, address) = start_receiver(
        ferry_with_capabilities_of(Side::Receive),
        &target,
        &certs.server(),
    );
    let output = send_with(
        ferry_with_capabilities_of(Side::Send),
        &address,
        &certs.client(),
        &source,
        &["--final"],
    );
    drop(receiver);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_same_tree(&source, &target);
    let copied = snapshot(&target, &[".ferry-partial", ".ferry-manifest"]);
    let db = &copied["pgdata"];
    assert_eq!((db.uid, db.gid, db.mode), (999, 999, 0o700), "{db:?}");
    assert_eq!(copied["helper"].mode, 0o4755, "setuid bit lost");
    assert_eq!((copied["shared"].gid, copied["shared"].mode), (998, 0o2750));
}

#[test]
fn a_device_file_arrives_with_the_receivers_capabilities() {
    if !is_root() {
        eprintln!("skipped: needs root to make a device node");
        return;
    }
    let certs = CertDirs::issue("devices");
    let work = tempfile::tempdir().unwrap();
    let (source, target) = (work.path().join("source"), work.path().join("target"));
    fs::create_dir_all(&source).unwrap();
    fs::create_dir_all(&target).unwrap();
    fs::write(source.join("data"), "x").unwrap();
    if !Command::new("mknod")
        .args([source.join("null").to_str().unwrap(), "c", "1", "3"])
        .status()
        .unwrap()
        .success()
    {
        eprintln!("skipped: this machine allows no mknod");
        return;
    }
    backdate(&source, "1600000000.5");
    // A receiver whose rsync fails to create a node reports it only in its own log: the sender exits 0
    // (found here, without MKNOD). So the receiver holds MKNOD, and the device must arrive.
    let (receiver, address) = start_receiver(
        ferry_with_capabilities_of(Side::Receive),
        &target,
        &certs.server(),
    );
    let output = send_with(
        ferry_with_capabilities_of(Side::Send),
        &address,
        &certs.client(),
        &source,
        &["--final"],
    );
    drop(receiver);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_same_tree(&source, &target);
    assert_eq!(snapshot(&target, &[])["null"].kind, "char");
}

#[test]
fn the_receiver_leaves_nothing_in_its_tmpdir_however_it_stops() {
    let certs = CertDirs::issue("scratch");
    let work = tempfile::tempdir().unwrap();
    let (source, target) = (work.path().join("source"), work.path().join("target"));
    fs::create_dir_all(&source).unwrap();
    fs::create_dir_all(&target).unwrap();
    fs::write(source.join("file"), "data").unwrap();
    // SIGKILL too: nothing the receiver writes outlives its descriptors (e2e/support's receivers, and
    // the sandbox's node agent after the grace period, stop receivers that way).
    for signal in ["TERM", "INT", "KILL"] {
        let tmp = tempfile::tempdir().unwrap();
        let mut command = Command::new(FERRY);
        command.env("TMPDIR", tmp.path());
        let (receiver, address) = start_receiver(command, &target, &certs.server());
        // Two connections served, each daemon reading the config, then the stop.
        for _ in 0..2 {
            let output = send(&address, &certs.client(), &source, &[]);
            assert!(output.status.success(), "{output:?}");
        }
        assert!(
            entries(tmp.path()).is_empty(),
            "while running: {:?}",
            entries(tmp.path())
        );
        let status = stop(receiver, signal);
        if signal != "KILL" {
            assert!(status.success(), "SIG{signal}: {status:?}");
        }
        assert!(
            entries(tmp.path()).is_empty(),
            "SIG{signal} left {:?}",
            entries(tmp.path())
        );
    }
    // An error after the config was written (the address is taken) leaves nothing either.
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let output = Command::new(FERRY)
        .args([
            "mover",
            "receive",
            "--listen",
            &taken.local_addr().unwrap().to_string(),
            "--root",
        ])
        .arg(&target)
        .arg("--certs-dir")
        .arg(certs.server())
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        entries(tmp.path()).is_empty(),
        "an error left {:?}",
        entries(tmp.path())
    );
}

#[test]
fn a_terminated_sender_leaves_nothing_in_its_tmpdir() {
    let certs = CertDirs::issue("sender-scratch");
    let work = tempfile::tempdir().unwrap();
    let (source, target, tmp) = (
        work.path().join("source"),
        work.path().join("target"),
        work.path().join("tmp"),
    );
    for dir in [&source, &target, &tmp] {
        fs::create_dir_all(dir).unwrap();
    }
    for i in 0..4 {
        fs::write(source.join(format!("f{i}")), vec![i as u8; 1 << 20]).unwrap();
    }
    let (_receiver, address) = start_receiver(Command::new(FERRY), &target, &certs.server());
    // A delta pass (manifest key) writes its lists in the scratch folder; 64 KiB/s keeps it running.
    let mut sender = Command::new(FERRY)
        .args(["mover", "send", "--connect", &address, "--certs-dir"])
        .arg(certs.client())
        .arg("--source")
        .arg(&source)
        .args([
            "--manifest-key",
            "k",
            "--bwlimit",
            "64",
            "--parallel",
            "2",
            "--parallel-min-bytes",
            "0",
        ])
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || !entries(&tmp).is_empty()),
        "the sender never wrote scratch files"
    );
    std::thread::sleep(Duration::from_millis(300));
    run("kill", &["-TERM", &sender.id().to_string()]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = sender.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the sender ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(143), "{status:?}");
    assert!(entries(&tmp).is_empty(), "SIGTERM left {:?}", entries(&tmp));
}
