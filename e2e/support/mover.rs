//! Shared helpers for the mover e2e tests: certificates in temp dirs, the real `ferry` binary run as a
//! receiver process (killed on drop) and as a sender, and a tree snapshot (content hashes, mode, ids,
//! mtimes, symlink targets, hard-link groups, device numbers) that two trees must agree on.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// A temp dir with `server/` and `client/` certificate folders of one migration.
pub struct CertDirs {
    pub dir: tempfile::TempDir,
}

impl CertDirs {
    pub fn issue(uid: &str) -> CertDirs {
        let dir = tempfile::tempdir().unwrap();
        let certs = ferry::mover::issue(uid, &["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        certs.write_server_dir(&dir.path().join("server")).unwrap();
        certs.write_client_dir(&dir.path().join("client")).unwrap();
        CertDirs { dir }
    }
    pub fn server(&self) -> PathBuf {
        self.dir.path().join("server")
    }
    pub fn client(&self) -> PathBuf {
        self.dir.path().join("client")
    }
}

/// A running `ferry mover receive` on loopback; killed when dropped.
pub struct Receiver {
    child: Child,
    pub address: String,
}

impl Receiver {
    pub fn start(root: &Path, certs: &Path, extra: &[&str]) -> Receiver {
        let mut child = Command::new(FERRY)
            .args(["mover", "receive", "--listen", "127.0.0.1:0", "--root"])
            .arg(root)
            .arg("--certs-dir")
            .arg(certs)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _sent = sender.send(line);
            }
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("receiver printed no listening line");
        let record: ferry::mover::Progress = serde_json::from_str(&line).unwrap();
        let ferry::mover::Progress::Listening { address } = record else {
            panic!("unexpected first line {line}")
        };
        Receiver { child, address }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _waited = self.child.wait();
    }
}

/// Runs `ferry mover send` to completion (bounded by rsync's own timeouts) and returns its output.
pub fn send(address: &str, certs: &Path, source: &Path, extra: &[&str]) -> Output {
    let output = Command::new(FERRY)
        .args([
            "mover",
            "send",
            "--connect",
            address,
            "--retry-delay-ms",
            "200",
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

/// Parses the JSON lines a sender printed.
pub fn records(output: &Output) -> Vec<ferry::mover::Progress> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}")))
        .collect()
}

/// One entry of a tree snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    pub sha256: Option<String>,
    pub link_target: Option<PathBuf>,
    pub rdev: u64,
    /// For hard-linked files: the smallest path of the group.
    pub link_group: Option<String>,
}

/// Snapshots `root` recursively, skipping the top-level names in `skip`.
pub fn snapshot(root: &Path, skip: &[&str]) -> BTreeMap<String, Entry> {
    let mut entries = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    walk(root, root, skip, &mut entries, &mut inodes);
    for paths in inodes.values().filter(|paths| paths.len() > 1) {
        let first = paths.iter().min().unwrap().clone();
        for path in paths {
            entries.get_mut(path).unwrap().link_group = Some(first.clone());
        }
    }
    entries
}

fn walk(
    root: &Path,
    dir: &Path,
    skip: &[&str],
    entries: &mut BTreeMap<String, Entry>,
    inodes: &mut HashMap<(u64, u64), Vec<String>>,
) {
    let relative = |path: &Path| path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
    let record = |path: &Path, entries: &mut BTreeMap<String, Entry>| {
        let meta = std::fs::symlink_metadata(path).unwrap();
        let file_type = meta.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if file_type.is_dir() {
            "dir"
        } else if file_type.is_symlink() {
            "symlink"
        } else if file_type.is_file() {
            "file"
        } else if file_type.is_fifo() {
            "fifo"
        } else if file_type.is_char_device() {
            "char"
        } else if file_type.is_block_device() {
            "block"
        } else {
            "socket"
        };
        let sha256 = file_type
            .is_file()
            .then(|| hex::encode(Sha256::digest(std::fs::read(path).unwrap())));
        let link_target = file_type.is_symlink().then(|| std::fs::read_link(path).unwrap());
        let entry = Entry {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            size: if file_type.is_dir() { 0 } else { meta.size() },
            sha256,
            link_target,
            rdev: meta.rdev(),
            link_group: None,
        };
        entries.insert(relative(path), entry);
        meta
    };
    if dir == root {
        record(root, entries);
    }
    for item in std::fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        if dir == root && skip.iter().any(|name| path.file_name().unwrap() == *name) {
            continue;
        }
        let meta = record(&path, entries);
        if meta.is_dir() {
            walk(root, &path, skip, entries, inodes);
        } else if meta.nlink() > 1 {
            inodes
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .push(relative(&path));
        }
    }
}

/// Asserts two trees are equal, printing only the differing entries.
pub fn assert_same_tree(source: &Path, target: &Path) {
    let left = snapshot(source, &["lost+found"]);
    // .ferry-manifest: what a stage leaves for the next pass (docs/mover.md, "Delta passes"), Ferry's
    // and not the volume's; e2e/mover_delta.rs checks that none is left after a final sync.
    let right = snapshot(target, &["lost+found", ".ferry-partial", ".ferry-manifest"]);
    let mut differences = Vec::new();
    for key in left.keys().chain(right.keys()) {
        if left.get(key) != right.get(key) {
            differences.push(format!(
                "{key}:\n  source {:?}\n  target {:?}",
                left.get(key),
                right.get(key)
            ));
        }
    }
    differences.dedup();
    assert!(
        differences.is_empty(),
        "trees differ:\n{}",
        differences.join("\n")
    );
    assert!(left.len() > 1, "empty tree compared");
}

/// Runs a shell-free command and asserts it succeeded.
pub fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?} failed");
}

/// Sets the mtime of every entry under `root` (symlinks themselves included) to `epoch`. rsync compares
/// only whole seconds for non-regular files, so a tree built and copied within one second would hide
/// whether times were copied at all.
pub fn backdate(root: &Path, epoch: &str) {
    let status = Command::new("find")
        .arg(root)
        .args(["-exec", "touch", "-h", "-d", &format!("@{epoch}"), "{}", "+"])
        .status()
        .unwrap();
    assert!(status.success(), "backdating {} failed", root.display());
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|uid| uid == "0"))
        .unwrap_or(false)
}

/// Waits until `check` holds, at most `limit`.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
