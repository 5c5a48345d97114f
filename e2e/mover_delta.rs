//! Delta passes (`--manifest-key`) against full rsync passes on the same trees, real rsync over the real
//! TLS tunnel: each case builds a source, stages it into target A (a full pass that leaves a manifest),
//! copies A into target B, changes the source, then runs a delta pass into A and a full `rsync
//! --checksum` pass into B. A must equal B and the source byte for byte and in metadata (type, mode,
//! owner, group, size, mtime in ns directories included, symlink targets, hard-link groups, allocated
//! blocks of files). Also: every reason to distrust a manifest gives a full pass, a failed pass leaves no
//! manifest, a final sync leaves none, and none ever counts as data.

#[path = "support/mover.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use ferry::mover::{PassMode, Progress};
use sha2::{Digest, Sha256};
use support::{CertDirs, Receiver, records, send};

const MANIFEST: &str = ".ferry-manifest";
const KEY: &str = "source-pvc-uid/target-ns/target-pvc";

/// One entry of a byte-exact snapshot (paths as raw bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    kind: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    sha256: Option<String>,
    target: Option<Vec<u8>>,
    rdev: u64,
    /// Allocated 512-byte blocks of a regular file (holes show here).
    blocks: Option<u64>,
    link_group: Option<Vec<u8>>,
}

fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Meta> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<u64, Vec<Vec<u8>>> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        let full = root.join(&relative);
        let meta = fs::symlink_metadata(&full).unwrap();
        let kind = meta.mode() & 0o170000;
        let is_file = meta.is_file();
        let key = relative.as_os_str().as_bytes().to_vec();
        if is_file && meta.nlink() > 1 {
            inodes.entry(meta.ino()).or_default().push(key.clone());
        }
        out.insert(
            key,
            Meta {
                kind,
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                size: if meta.is_dir() { 0 } else { meta.size() },
                mtime: (meta.mtime(), meta.mtime_nsec()),
                sha256: is_file.then(|| hex::encode(Sha256::digest(fs::read(&full).unwrap()))),
                target: meta
                    .file_type()
                    .is_symlink()
                    .then(|| fs::read_link(&full).unwrap().as_os_str().as_bytes().to_vec()),
                rdev: meta.rdev(),
                blocks: is_file.then(|| meta.blocks()),
                link_group: None,
            },
        );
        if meta.is_dir() {
            for item in fs::read_dir(&full).unwrap() {
                let name = item.unwrap().file_name();
                if relative.as_os_str().is_empty() && (name == MANIFEST || name == "lost+found") {
                    continue;
                }
                stack.push(relative.join(name));
            }
        }
    }
    for group in inodes.values().filter(|group| group.len() > 1) {
        let first = group.iter().min().unwrap().clone();
        for path in group {
            out.get_mut(path).unwrap().link_group = Some(first.clone());
        }
    }
    out
}

fn assert_same(label: &str, left: &Path, right: &Path) {
    let (a, b) = (snapshot(left), snapshot(right));
    let mut differences = Vec::new();
    for key in a.keys().chain(b.keys()) {
        if a.get(key) != b.get(key) {
            differences.push(format!(
                "{:?}:\n  {:?}\n  {:?}",
                String::from_utf8_lossy(key),
                a.get(key),
                b.get(key)
            ));
        }
    }
    differences.dedup();
    assert!(
        differences.is_empty(),
        "{label}: trees differ:\n{}",
        differences.join("\n")
    );
    assert!(a.len() > 1, "{label}: empty tree compared");
}

/// A plain local rsync with Ferry's options (the reference full pass), `--checksum` so that an edit
/// that kept size and mtime is found (the delta pass finds it through ctime).
fn rsync_full(from: &Path, to: &Path) {
    let mut from_arg = from.as_os_str().to_owned();
    from_arg.push("/");
    let status = Command::new("rsync")
        .args(ferry::mover::ARCHIVE_OPTIONS)
        .args(["--checksum", "--modify-window=-1", "--info=none"])
        .arg(from_arg)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success(), "reference rsync failed");
}

fn mode_record(records: &[Progress]) -> (PassMode, Option<String>, u64, u64) {
    records
        .iter()
        .find_map(|record| match record {
            Progress::Mode {
                mode,
                reason,
                changed,
                deleted,
                ..
            } => Some((*mode, reason.clone(), *changed, *deleted)),
            _ => None,
        })
        .expect("no mode record")
}

/// A source, a receiver on target A, and the certificates.
struct Rig {
    source: tempfile::TempDir,
    target: tempfile::TempDir,
    reference: tempfile::TempDir,
    certs: CertDirs,
    receiver: Receiver,
}

impl Rig {
    fn new(build: impl Fn(&Path)) -> Rig {
        let source = tempfile::tempdir().unwrap();
        build(source.path());
        let target = tempfile::tempdir().unwrap();
        let certs = CertDirs::issue("delta-test");
        let receiver = Receiver::start(target.path(), &certs.server(), &[]);
        Rig {
            source,
            target,
            reference: tempfile::tempdir().unwrap(),
            certs,
            receiver,
        }
    }

    fn send(&self, extra: &[&str]) -> (std::process::Output, Vec<Progress>) {
        let output = send(
            &self.receiver.address,
            &self.certs.client(),
            self.source.path(),
            extra,
        );
        let parsed = records(&output);
        (output, parsed)
    }

    fn pass(&self, extra: &[&str]) -> (PassMode, Option<String>, u64, u64) {
        self.pass_keyed(KEY, extra)
    }

    fn pass_keyed(&self, key: &str, extra: &[&str]) -> (PassMode, Option<String>, u64, u64) {
        let args: Vec<&str> = ["--manifest-key", key, "--parallel", "1"]
            .iter()
            .chain(extra)
            .copied()
            .collect();
        let (output, parsed) = self.send(&args);
        assert!(output.status.success(), "send failed: {output:?}");
        mode_record(&parsed)
    }

    fn manifest(&self) -> PathBuf {
        self.target.path().join(MANIFEST)
    }

    /// Stage (full), copy A into B, run `change`, then a delta pass into A and the reference into B.
    fn delta_after(&self, change: impl Fn(&Path), extra: &[&str]) -> (u64, u64) {
        self.delta_after_checked(change, extra, true)
    }

    /// [`Self::delta_after`]; `against_rsync: false` compares A with the source only, for a change
    /// rsync's own full pass gets wrong.
    fn delta_after_checked(&self, change: impl Fn(&Path), extra: &[&str], against_rsync: bool) -> (u64, u64) {
        let (mode, reason, ..) = self.pass(&[]);
        assert_eq!((mode, reason.as_deref()), (PassMode::Full, Some("no manifest")));
        assert!(self.manifest().exists(), "a stage leaves a manifest");
        assert_same("after the stage", self.source.path(), self.target.path());
        rsync_full(self.target.path(), self.reference.path());
        // Step past the current tick of the clock, so a change cannot share the stage's timestamps.
        std::thread::sleep(Duration::from_millis(20));
        change(self.source.path());
        let (mode, reason, changed, deleted) = self.pass(extra);
        assert_eq!((mode, reason), (PassMode::Delta, None));
        if against_rsync {
            rsync_full(self.source.path(), self.reference.path());
            assert_same("delta vs full rsync", self.target.path(), self.reference.path());
        }
        assert_same("delta vs source", self.source.path(), self.target.path());
        (changed, deleted)
    }
}

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

fn base_tree(root: &Path) {
    write(&root.join("a/f"), b"hello");
    write(&root.join("a/g"), b"gee");
    write(&root.join("a/b/c/deep"), b"deep");
    write(&root.join("top"), b"top");
    write(&root.join("lost+found/junk"), b"never synced");
    symlink("f", root.join("a/link")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    std::os::unix::fs::chown(root.join("a/g"), Some(1000), Some(1000)).unwrap();
}

fn set_mtime(path: &Path, time: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

#[test]
fn an_edit_of_the_same_size_with_its_mtime_restored_is_sent() {
    let rig = Rig::new(base_tree);
    let (changed, deleted) = rig.delta_after(
        |root| {
            let path = root.join("a/f");
            let before = fs::metadata(&path).unwrap().modified().unwrap();
            fs::write(&path, b"HELLO").unwrap();
            set_mtime(&path, before);
        },
        &[],
    );
    assert_eq!((changed, deleted), (1, 0));
    assert_eq!(fs::read(rig.target.path().join("a/f")).unwrap(), b"HELLO");
}

#[test]
fn mode_only_and_owner_only_changes_are_sent() {
    let rig = Rig::new(base_tree);
    rig.delta_after(
        |root| {
            fs::set_permissions(root.join("a/f"), fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(root.join("a/g"), Some(2000), Some(3000)).unwrap();
            std::os::unix::fs::lchown(root.join("a/link"), Some(7), Some(8)).unwrap();
            fs::set_permissions(root.join("a/b"), fs::Permissions::from_mode(0o700)).unwrap();
        },
        &[],
    );
}

#[test]
fn a_retargeted_symlink_is_sent() {
    let rig = Rig::new(base_tree);
    rig.delta_after(
        |root| {
            fs::remove_file(root.join("a/link")).unwrap();
            symlink("g", root.join("a/link")).unwrap();
            symlink("../top", root.join("a/b/new-link")).unwrap();
        },
        &[],
    );
}

#[test]
fn hard_links_made_and_broken_come_out_as_on_the_source() {
    let rig = Rig::new(|root| {
        base_tree(root);
        write(&root.join("x"), b"shared");
        fs::hard_link(root.join("x"), root.join("a/y")).unwrap();
        fs::hard_link(root.join("x"), root.join("a/b/z")).unwrap();
        write(&root.join("solo"), b"solo");
    });
    rig.delta_after(
        |root| {
            // Broken: a/y becomes a file of its own.
            fs::remove_file(root.join("a/y")).unwrap();
            write(&root.join("a/y"), b"mine!!");
            // Made: solo gains a name in another folder, and top a new partner.
            fs::hard_link(root.join("solo"), root.join("a/b/c/solo2")).unwrap();
            fs::hard_link(root.join("top"), root.join("empty/top2")).unwrap();
        },
        &[],
    );
    let target = rig.target.path();
    assert_eq!(
        fs::metadata(target.join("solo")).unwrap().ino(),
        fs::metadata(target.join("a/b/c/solo2")).unwrap().ino()
    );
    assert_ne!(
        fs::metadata(target.join("x")).unwrap().ino(),
        fs::metadata(target.join("a/y")).unwrap().ino()
    );
}

/// A hard link broken on the source into two files of the same content: rsync's own full pass leaves
/// the target's names linked (it transfers neither, then sets the shared inode's times twice); the
/// delta pass sends the listed names and matches the source.
#[test]
fn a_hard_link_broken_into_equal_files_is_broken_on_the_target() {
    let rig = Rig::new(|root| {
        base_tree(root);
        write(&root.join("x"), b"shared");
        fs::hard_link(root.join("x"), root.join("a/y")).unwrap();
    });
    rig.delta_after_checked(
        |root| {
            fs::remove_file(root.join("a/y")).unwrap();
            write(&root.join("a/y"), b"shared");
        },
        &[],
        false,
    );
    let target = rig.target.path();
    assert_ne!(
        fs::metadata(target.join("x")).unwrap().ino(),
        fs::metadata(target.join("a/y")).unwrap().ino()
    );
}

#[test]
fn files_replaced_by_directories_and_back() {
    let rig = Rig::new(|root| {
        base_tree(root);
        write(&root.join("p"), b"a file");
        write(&root.join("q/1"), b"one");
        write(&root.join("q/2/3"), b"three");
    });
    rig.delta_after(
        |root| {
            fs::remove_file(root.join("p")).unwrap();
            write(&root.join("p/inside"), b"now a folder");
            fs::remove_dir_all(root.join("q")).unwrap();
            write(&root.join("q"), b"now a file");
            fs::remove_file(root.join("a/link")).unwrap();
            fs::create_dir(root.join("a/link")).unwrap();
        },
        &[],
    );
}

#[test]
fn deletions_at_every_depth() {
    let rig = Rig::new(|root| {
        base_tree(root);
        for depth in 1..=5 {
            let dir: PathBuf = (1..=depth).map(|level| format!("d{level}")).collect();
            write(&root.join(&dir).join("file"), format!("depth {depth}").as_bytes());
            write(&root.join(&dir).join("keep"), b"kept");
        }
    });
    let (_, deleted) = rig.delta_after(
        |root| {
            fs::remove_file(root.join("top")).unwrap();
            fs::remove_file(root.join("d1/d2/d3/d4/d5/file")).unwrap();
            fs::remove_file(root.join("d1/d2/file")).unwrap();
            fs::remove_dir_all(root.join("d1/d2/d3/d4")).unwrap();
            fs::remove_dir_all(root.join("a")).unwrap();
            fs::remove_dir(root.join("empty")).unwrap();
        },
        &[],
    );
    assert_eq!(deleted, 5, "only the topmost deletions are listed");
}

#[test]
fn directory_mtimes_follow_the_source() {
    let rig = Rig::new(base_tree);
    let old = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_600_000_000_123_456_789);
    rig.delta_after(
        |root| {
            // A new entry moves a/b's mtime; then a/b/c gets an explicit one, and "empty" only a new time.
            write(&root.join("a/b/new"), b"new");
            fs::File::open(root.join("a/b/c"))
                .unwrap()
                .set_modified(old)
                .unwrap();
            fs::File::open(root.join("empty"))
                .unwrap()
                .set_modified(old)
                .unwrap();
            // A content edit inside a folder whose own mtime does not change.
            fs::write(root.join("a/b/c/deep"), b"DEEPER").unwrap();
        },
        &[],
    );
}

fn sparse_file(path: &Path, len: u64, data_at: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = fs::File::create(path).unwrap();
    file.set_len(len).unwrap();
    file.seek(SeekFrom::Start(data_at)).unwrap();
    file.write_all(&[7u8; 4096]).unwrap();
}

#[test]
fn sparse_files_keep_their_holes() {
    let rig = Rig::new(|root| {
        base_tree(root);
        sparse_file(&root.join("disk.img"), 16 << 20, 8 << 20);
    });
    rig.delta_after(
        |root| {
            use std::io::{Seek, SeekFrom, Write};
            let mut file = fs::File::options()
                .write(true)
                .open(root.join("disk.img"))
                .unwrap();
            file.seek(SeekFrom::Start(1 << 20)).unwrap();
            file.write_all(&[9u8; 4096]).unwrap();
            sparse_file(&root.join("a/new.img"), 4 << 20, 0);
        },
        &[],
    );
    let blocks = fs::metadata(rig.target.path().join("disk.img")).unwrap().blocks();
    assert!(
        blocks * 512 < 1 << 20,
        "the target's image is dense: {blocks} blocks"
    );
}

#[test]
fn names_with_newlines_and_invalid_utf8() {
    let odd = |root: &Path, name: &[u8]| root.join(OsStr::from_bytes(name));
    let rig = Rig::new(|root| {
        base_tree(root);
        write(&odd(root, b"line\nbreak"), b"one");
        write(&odd(root, b"a/\xff\xfe-bytes"), b"two");
        fs::create_dir(odd(root, b"dir\n\xc3")).unwrap();
        write(&odd(root, b"dir\n\xc3/inner"), b"three");
    });
    rig.delta_after(
        |root| {
            fs::write(odd(root, b"line\nbreak"), b"ONE!").unwrap();
            fs::rename(odd(root, b"a/\xff\xfe-bytes"), odd(root, b"a/\xfe\xff\nmoved")).unwrap();
            fs::remove_dir_all(odd(root, b"dir\n\xc3")).unwrap();
            write(&odd(root, b"new\n\x80/x"), b"four");
        },
        &[],
    );
}

#[test]
fn everything_at_once_in_a_final_sync_leaves_no_manifest() {
    let rig = Rig::new(|root| {
        base_tree(root);
        sparse_file(&root.join("disk.img"), 8 << 20, 0);
        write(&root.join("h1"), b"linked");
        fs::hard_link(root.join("h1"), root.join("a/h2")).unwrap();
    });
    rig.delta_after(
        |root| {
            fs::write(root.join("a/f"), b"changed").unwrap();
            fs::remove_file(root.join("a/h2")).unwrap();
            fs::hard_link(root.join("top"), root.join("a/h2")).unwrap();
            fs::remove_dir_all(root.join("a/b")).unwrap();
            write(&root.join("a/b"), b"was a folder");
            fs::set_permissions(root.join("top"), fs::Permissions::from_mode(0o751)).unwrap();
        },
        &["--final"],
    );
    assert!(!rig.manifest().exists(), "the final sync left a manifest behind");
    // A verify after it passes (no manifest to count), and the next pass has nothing to trust.
    let (output, _) = rig.send(&["--verify", "--parallel", "1"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(rig.pass(&[]).1.as_deref(), Some("no manifest"));
}

#[test]
fn a_manifest_that_is_missing_corrupt_stale_or_of_another_volume_gives_a_full_pass() {
    let rig = Rig::new(base_tree);
    assert_eq!(rig.pass(&[]).0, PassMode::Full);
    // Present, readable by the movers only: a verify ignores it, and the next stage is a delta pass.
    assert_eq!(fs::metadata(rig.manifest()).unwrap().mode() & 0o777, 0o600);
    let (output, _) = rig.send(&["--verify", "--parallel", "1"]);
    assert!(
        output.status.success(),
        "the manifest counted as a difference: {output:?}"
    );
    assert_eq!(rig.pass(&[]).0, PassMode::Delta);

    let mut bytes = fs::read(rig.manifest()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(rig.manifest(), &bytes).unwrap();
    fs::write(
        rig.source.path().join("a/f"),
        b"changed while the manifest was corrupt",
    )
    .unwrap();
    assert_eq!(
        rig.pass(&[]).1.as_deref(),
        Some("corrupt manifest (checksum mismatch)")
    );
    assert_same("after a corrupt manifest", rig.source.path(), rig.target.path());

    fs::write(rig.manifest(), b"FERRYMF\n\x07rest").unwrap();
    assert_eq!(
        rig.pass(&[]).1.as_deref(),
        Some("manifest of format 7, expected 1")
    );

    let (mode, reason, ..) = rig.pass_keyed("another-volume", &[]);
    assert_eq!(
        (mode, reason.as_deref()),
        (PassMode::Full, Some("manifest of another volume"))
    );

    fs::remove_file(rig.manifest()).unwrap();
    assert_eq!(rig.pass(&[]).1.as_deref(), Some("no manifest"));
    assert_eq!(rig.pass(&[]).0, PassMode::Delta);
    assert_same("after a delta", rig.source.path(), rig.target.path());

    // A final sync that finds a corrupt manifest runs full, removes it, and leaves the root right.
    fs::write(rig.manifest(), b"not a manifest at all").unwrap();
    fs::write(rig.source.path().join("top"), b"changed for the final").unwrap();
    assert_eq!(
        rig.pass(&["--final"]).1.as_deref(),
        Some("corrupt manifest (not a manifest)")
    );
    assert!(!rig.manifest().exists());
    assert_same("after a full final", rig.source.path(), rig.target.path());
}

/// A pass that fails after it fetched the manifest (the connection drops mid-transfer, no retries)
/// leaves none: the target may be half-changed, and the next pass must not trust the old one.
#[test]
fn a_failed_pass_leaves_no_manifest_and_the_next_runs_full() {
    let source = tempfile::tempdir().unwrap();
    base_tree(source.path());
    let target = tempfile::tempdir().unwrap();
    let certs = CertDirs::issue("delta-fail");
    {
        let receiver = Receiver::start(target.path(), &certs.server(), &[]);
        let output = send(
            &receiver.address,
            &certs.client(),
            source.path(),
            &["--manifest-key", KEY],
        );
        assert!(output.status.success());
    }
    assert!(target.path().join(MANIFEST).exists());
    write(&source.path().join("big"), &vec![5u8; 8 << 20]);
    let cut = Receiver::start(
        target.path(),
        &certs.server(),
        &["--test-cut-after-bytes", "1000000"],
    );
    let output = send(
        &cut.address,
        &certs.client(),
        source.path(),
        &["--manifest-key", KEY, "--retries", "0"],
    );
    assert!(!output.status.success(), "the cut pass succeeded: {output:?}");
    assert_eq!(mode_record(&records(&output)).0, PassMode::Delta);
    assert!(
        !target.path().join(MANIFEST).exists(),
        "a failed pass left the manifest"
    );
    let output = send(
        &cut.address,
        &certs.client(),
        source.path(),
        &["--manifest-key", KEY],
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(mode_record(&records(&output)).1.as_deref(), Some("no manifest"));
    assert_same("after the retry", source.path(), target.path());
}

/// A delta pass whose connection drops is not retried as a delta pass: rsync may have left temporary
/// files on the target that only a full pass (--delete) removes, so a full pass follows at once.
#[test]
fn an_interrupted_delta_pass_continues_as_a_full_pass_that_removes_leftovers() {
    let source = tempfile::tempdir().unwrap();
    base_tree(source.path());
    let target = tempfile::tempdir().unwrap();
    let certs = CertDirs::issue("delta-cut");
    {
        let receiver = Receiver::start(target.path(), &certs.server(), &[]);
        let output = send(
            &receiver.address,
            &certs.client(),
            source.path(),
            &["--manifest-key", KEY],
        );
        assert!(output.status.success());
    }
    write(&source.path().join("a/big"), &vec![3u8; 8 << 20]);
    // What a killed receiver leaves: rsync's temporary file next to the one it was writing.
    write(&target.path().join("a/.big.Xy12Zq"), b"half a file");
    let cut = Receiver::start(
        target.path(),
        &certs.server(),
        &["--test-cut-after-bytes", "1000000"],
    );
    let output = send(
        &cut.address,
        &certs.client(),
        source.path(),
        &["--manifest-key", KEY, "--final"],
    );
    assert!(output.status.success(), "{output:?}");
    let modes: Vec<(PassMode, Option<String>)> = records(&output)
        .into_iter()
        .filter_map(|record| match record {
            Progress::Mode { mode, reason, .. } => Some((mode, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(modes.len(), 2, "{modes:?}");
    assert_eq!(modes[0].0, PassMode::Delta);
    assert_eq!(modes[1].0, PassMode::Full);
    assert!(
        modes[1]
            .1
            .as_deref()
            .unwrap()
            .starts_with("delta pass interrupted"),
        "{modes:?}"
    );
    assert!(
        !target.path().join("a/.big.Xy12Zq").exists(),
        "the leftover stayed"
    );
    assert!(!target.path().join(MANIFEST).exists());
    assert_same("after the full pass", source.path(), target.path());
}

/// Full passes of a manifest send still go in parallel streams, and the manifest they leave serves a
/// delta pass.
#[test]
fn parallel_full_passes_keep_working_with_a_manifest() {
    let rig = Rig::new(|root| {
        base_tree(root);
        for dir in 0..6 {
            for file in 0..20 {
                write(
                    &root.join(format!("many/{dir}/{file}")),
                    format!("{dir}-{file}").as_bytes(),
                );
            }
        }
    });
    let parallel = [
        "--manifest-key",
        KEY,
        "--parallel",
        "3",
        "--parallel-min-bytes",
        "0",
    ];
    let (output, parsed) = rig.send(&parallel);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(mode_record(&parsed).0, PassMode::Full);
    assert!(String::from_utf8_lossy(&output.stderr).contains("source scanned"));
    assert_same("parallel full", rig.source.path(), rig.target.path());
    fs::write(rig.source.path().join("many/3/7"), b"changed").unwrap();
    let (output, parsed) = rig.send(&parallel);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(mode_record(&parsed).0, PassMode::Delta);
    assert_same("delta after parallel", rig.source.path(), rig.target.path());
}

/// Attack: delta passes, then plain passes (`transfer.fullPasses: true`: no manifest key) while the
/// tree changes, then delta passes again. A manifest left on the target by the first stage would
/// describe a tree the plain passes have since changed, and trusting it would leave on the target a
/// file created and deleted in between (the delta pass deletes only what the manifest lists). A plain
/// pass mirrors the volume exactly, so it removes the stale manifest, and the next keyed pass is full.
#[test]
fn a_plain_pass_removes_a_stale_manifest_so_delta_passes_never_trust_it() {
    let rig = Rig::new(base_tree);
    let (mode, ..) = rig.pass(&[]);
    assert_eq!(mode, PassMode::Full);
    assert!(rig.manifest().exists());

    write(
        &rig.source.path().join("between/created"),
        b"made after the manifest",
    );
    let (output, _) = rig.send(&["--parallel", "1"]);
    assert!(output.status.success(), "{output:?}");
    assert!(!rig.manifest().exists(), "the plain pass kept a stale manifest");
    assert_same("after the plain pass", rig.source.path(), rig.target.path());

    fs::remove_file(rig.source.path().join("between/created")).unwrap();
    let (mode, reason, ..) = rig.pass(&[]);
    assert_eq!((mode, reason.as_deref()), (PassMode::Full, Some("no manifest")));
    assert_same("after the keyed pass", rig.source.path(), rig.target.path());
}

/// A held final sender (`--hold-file`), its records read as they come, its stderr kept.
struct Held {
    child: std::process::Child,
    records: std::sync::mpsc::Receiver<Progress>,
    release: PathBuf,
    _dir: tempfile::TempDir,
}

impl Held {
    fn start(rig: &Rig, timeout_secs: u64) -> Held {
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join("release");
        fs::write(&release, "").unwrap();
        let mut child = Command::new(support::FERRY)
            .args([
                "mover",
                "send",
                "--final",
                "--parallel",
                "1",
                "--retry-delay-ms",
                "200",
            ])
            .args(["--manifest-key", KEY, "--connect", &rig.receiver.address])
            .arg("--certs-dir")
            .arg(rig.certs.client())
            .arg("--source")
            .arg(rig.source.path())
            .arg("--hold-file")
            .arg(&release)
            .args(["--hold-timeout", &timeout_secs.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, records) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let record = serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
                let _sent = sender.send(record);
            }
        });
        Held {
            child,
            records,
            release,
            _dir: dir,
        }
    }

    /// Waits for the `held` record that follows the read of the target's manifest; its entries.
    fn prefetched(&self) -> Option<u64> {
        loop {
            match self.records.recv_timeout(Duration::from_secs(30)) {
                Ok(Progress::Held { prefetched, .. }) if prefetched.is_some() => return prefetched,
                Ok(_) => continue,
                Err(err) => panic!("no second held record: {err}"),
            }
        }
    }

    /// Releases it and waits for it to end: its success, the rest of its records and its stderr.
    fn release(mut self) -> (bool, Vec<Progress>, String) {
        fs::write(&self.release, "2026-12-02T21:00:00Z").unwrap();
        self.finish()
    }

    fn finish(&mut self) -> (bool, Vec<Progress>, String) {
        let status = self.child.wait().unwrap();
        let records: Vec<Progress> = self.records.iter().collect();
        let stderr = fs::read_to_string(self._dir.path().join("stderr")).unwrap();
        eprintln!("held send stderr: {stderr}");
        (status.success(), records, stderr)
    }
}

/// A held final sender reads the target's manifest while it waits, changing nothing there (nothing
/// is sent before the release), and after the release uses what it read: the manifest had not
/// changed. The pass is still a delta pass equal to a full rsync pass, and leaves no manifest.
#[test]
fn a_held_sender_reads_the_manifest_while_held_and_changes_nothing_before_its_release() {
    let rig = Rig::new(base_tree);
    assert_eq!(rig.pass(&[]).0, PassMode::Full);
    let before = fs::read(rig.manifest()).unwrap();
    rsync_full(rig.target.path(), rig.reference.path());
    std::thread::sleep(Duration::from_millis(20));
    write(&rig.source.path().join("a/f"), b"written before the cutover");
    write(&rig.source.path().join("new/file"), b"new");

    let held = Held::start(&rig, 60);
    let entries = held.prefetched().expect("no entries");
    assert_eq!(
        entries, 10,
        "the manifest's entries: the stage's tree, lost+found aside"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        fs::read(rig.manifest()).unwrap(),
        before,
        "the manifest changed while held"
    );
    assert_same("held: nothing sent", rig.target.path(), rig.reference.path());

    let (success, records, stderr) = held.release();
    assert!(success, "{stderr}");
    let (mode, reason, changed, _) = mode_record(&records);
    assert_eq!((mode, reason), (PassMode::Delta, None));
    assert!(changed >= 2, "{changed}");
    assert!(
        stderr.contains("\"prefetched\":true"),
        "the prefetched manifest was not used: {stderr}"
    );
    assert!(!rig.manifest().exists(), "a final sync left the manifest");
    rsync_full(rig.source.path(), rig.reference.path());
    assert_same(
        "held delta vs full rsync",
        rig.target.path(),
        rig.reference.path(),
    );
    assert_same("held delta vs source", rig.source.path(), rig.target.path());
}

/// Attack: the target's manifest changes while the sender is held, to the same size and mtime (one
/// byte flipped), or goes away, or the sender is never released. What was read while held is never
/// trusted over what the target holds at the release; a sender never released leaves the manifest.
#[test]
fn a_manifest_changed_or_removed_while_held_is_read_again_and_an_unreleased_sender_leaves_it() {
    let rig = Rig::new(base_tree);
    assert_eq!(rig.pass(&[]).0, PassMode::Full);

    // Same size, same mtime, other bytes: only a comparison of contents tells.
    let held = Held::start(&rig, 60);
    held.prefetched().unwrap();
    let mtime = fs::metadata(rig.manifest()).unwrap().modified().unwrap();
    let mut bytes = fs::read(rig.manifest()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(rig.manifest(), &bytes).unwrap();
    set_mtime(&rig.manifest(), mtime);
    write(&rig.source.path().join("top"), b"changed while held");
    let (success, records, stderr) = held.release();
    assert!(success, "{stderr}");
    assert_eq!(
        mode_record(&records).1.as_deref(),
        Some("corrupt manifest (checksum mismatch)"),
        "the copy read while held was trusted"
    );
    assert!(!rig.manifest().exists());
    assert_same(
        "after a manifest changed while held",
        rig.source.path(),
        rig.target.path(),
    );

    // Removed while held: no manifest now, whatever was read before.
    assert_eq!(rig.pass(&[]).1.as_deref(), Some("no manifest"));
    let held = Held::start(&rig, 60);
    held.prefetched().unwrap();
    fs::remove_file(rig.manifest()).unwrap();
    write(&rig.source.path().join("a/g"), b"changed again");
    let (success, records, stderr) = held.release();
    assert!(success, "{stderr}");
    assert_eq!(mode_record(&records).1.as_deref(), Some("no manifest"));
    assert_same(
        "after a manifest removed while held",
        rig.source.path(),
        rig.target.path(),
    );

    // Never released: it gives up having changed nothing; the next pass still finds the manifest.
    assert_eq!(rig.pass(&[]).1.as_deref(), Some("no manifest"));
    let before = fs::read(rig.manifest()).unwrap();
    let mut held = Held::start(&rig, 2);
    held.prefetched().unwrap();
    let (success, records, stderr) = held.finish();
    assert!(!success, "an unreleased sender succeeded");
    assert!(stderr.contains("not released within 2s"), "{stderr}");
    assert!(
        !records.iter().any(|r| matches!(r, Progress::Mode { .. })),
        "it started a pass"
    );
    assert_eq!(fs::read(rig.manifest()).unwrap(), before);
    assert_eq!(rig.pass(&[]).0, PassMode::Delta);
    assert_same("after an unreleased sender", rig.source.path(), rig.target.path());
}
